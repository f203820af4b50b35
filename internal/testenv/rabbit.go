package testenv

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
)

// Namespace returns a fresh BILLING_NAMESPACE for t and deletes every
// exchange and queue under it when t ends.
func Namespace(t testing.TB) string {
	t.Helper()
	ns := randomName("t")
	t.Cleanup(func() { DeleteNamespace(t, ns) })
	return ns
}

// Declare declares topo as `billing topology` would, policies included,
// and returns it: the components only check the topology, so a test that
// starts one declares first. Its namespace should come from Namespace,
// which removes it (and its policies).
func Declare(t testing.TB, topo broker.Topology) broker.Topology {
	t.Helper()
	if err := DeclareErr(t, topo); err != nil {
		t.Fatalf("testenv: declare topology: %v", err)
	}
	return topo
}

// DeclareErr is Declare returning Declare's error, for a test of it.
func DeclareErr(t testing.TB, topo broker.Topology) error {
	t.Helper()
	conn, err := amqp.Dial(AMQPURL())
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	return topo.Declare(context.Background(), ch, ManagementClient(t))
}

// ManagementClient is a broker.Management on the test broker's management
// API (the default vhost).
func ManagementClient(t testing.TB) *broker.Management {
	t.Helper()
	return ManagementClientAs(t, "")
}

// ManagementClientAs is ManagementClient as the user of amqpURL (a URL
// from RabbitUser); "" keeps ManagementURL's.
func ManagementClientAs(t testing.TB, amqpURL string) *broker.Management {
	t.Helper()
	m, err := broker.NewManagement(ManagementURLAs(t, amqpURL), "/")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// ManagementURLAs is ManagementURL with the user and password of amqpURL
// (a URL from RabbitUser), the RABBITMQ_API_URL of a process that runs as
// that user; "" keeps ManagementURL's.
func ManagementURLAs(t testing.TB, amqpURL string) string {
	t.Helper()
	base, err := url.Parse(ManagementURL())
	if err != nil {
		t.Fatal(err)
	}
	if amqpURL != "" {
		u, err := url.Parse(amqpURL)
		if err != nil {
			t.Fatal(err)
		}
		base.User = u.User
	}
	return base.String()
}

// RabbitUser creates a RabbitMQ user with perm on the default vhost,
// deleted when t ends, and returns AMQPURL with its credentials.
func RabbitUser(t testing.TB, perm broker.Permission) string {
	t.Helper()
	name, password := randomName("u"), randomName("pw")
	user := map[string]string{"password": password, "tags": perm.Tags}
	grant := map[string]string{"configure": perm.Configure, "write": perm.Write, "read": perm.Read}
	if err := Management(http.MethodPut, "/api/users/"+name, user, nil); err != nil {
		t.Fatalf("testenv: rabbitmq user: %v", err)
	}
	t.Cleanup(func() {
		if err := Management(http.MethodDelete, "/api/users/"+name, nil, nil); err != nil {
			t.Logf("testenv: delete rabbitmq user %s: %v", name, err)
		}
	})
	if err := Management(http.MethodPut, "/api/permissions/%2F/"+name, grant, nil); err != nil {
		t.Fatalf("testenv: rabbitmq permissions: %v", err)
	}
	u, err := url.Parse(AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(name, password)
	return u.String()
}

// DeleteNamespace removes the policies, queues and exchanges whose names
// start with ns+".".
func DeleteNamespace(t testing.TB, ns string) {
	for _, kind := range []string{"policies", "queues", "exchanges"} {
		var items []struct {
			Name string `json:"name"`
		}
		if err := Management(http.MethodGet, "/api/"+kind+"/%2F?columns=name", nil, &items); err != nil {
			t.Logf("testenv: list %s: %v", kind, err)
			return
		}
		for _, it := range items {
			if strings.HasPrefix(it.Name, ns+".") {
				if err := Management(http.MethodDelete, "/api/"+kind+"/%2F/"+url.PathEscape(it.Name), nil, nil); err != nil {
					t.Logf("testenv: delete %s %s: %v", kind, it.Name, err)
				}
			}
		}
	}
}

// Management calls the RabbitMQ management HTTP API, as the UI does, with
// body encoded as JSON and the answer decoded into out when out is not nil.
func Management(method, path string, body, out any) error {
	return ManagementAt(ManagementURL(), method, path, body, out)
}

// ManagementAt is Management on another base URL, such as ManagementURL
// with the credentials of a user the test created.
func ManagementAt(baseURL, method, path string, body, out any) error {
	m, err := broker.NewManagement(baseURL, "/")
	if err != nil {
		return err
	}
	return m.Do(context.Background(), method, path, body, out)
}

// QueueDepth returns the number of ready + unacked messages in a queue,
// according to the management API (which lags the broker by up to a few
// seconds; poll with Eventually rather than assert once).
func QueueDepth(queue string) (int, error) {
	var q struct {
		Messages int `json:"messages"`
	}
	err := Management(http.MethodGet, "/api/queues/%2F/"+url.PathEscape(queue), nil, &q)
	return q.Messages, err
}

// Eventually polls cond every 20ms until it returns true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: "+format, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Channel opens a connection of its own to the test broker and returns a
// channel on it; the connection closes when t ends.
func Channel(t testing.TB) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// TakeAll removes and returns every message ready in queue, in order.
func TakeAll(t testing.TB, ch *amqp.Channel, queue string) []amqp.Delivery {
	t.Helper()
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(queue, true)
		if err != nil {
			t.Fatalf("testenv: get from %s: %v", queue, err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// QueuePolicy applies a policy of definition to queue alone (the default
// vhost), removed when t ends, and returns once the queue shows it: say a
// delivery limit on a DLQ, as RabbitMQ 4 gives every quorum queue one.
func QueuePolicy(t testing.TB, queue string, definition map[string]any) {
	t.Helper()
	name := randomName("p")
	err := Management(http.MethodPut, "/api/policies/%2F/"+name, map[string]any{
		"pattern": "^" + regexp.QuoteMeta(queue) + "$", "apply-to": "queues", "priority": 100, "definition": definition,
	}, nil)
	if err != nil {
		t.Fatalf("testenv: policy on %s: %v", queue, err)
	}
	t.Cleanup(func() { _ = Management(http.MethodDelete, "/api/policies/%2F/"+name, nil, nil) })
	Eventually(t, 10*time.Second, func() bool {
		var q struct {
			Policy string `json:"policy"`
		}
		return Management(http.MethodGet, "/api/queues/%2F/"+url.PathEscape(queue), nil, &q) == nil && q.Policy == name
	}, "the policy to apply to %s", queue)
}
