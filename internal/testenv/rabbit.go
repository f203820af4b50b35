package testenv

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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

// Declare declares topo as `billing topology` would and returns it: the
// components only check the topology, so a test that starts one declares
// first. Its namespace should come from Namespace, which removes it.
func Declare(t testing.TB, topo broker.Topology) broker.Topology {
	t.Helper()
	conn, err := amqp.Dial(AMQPURL())
	if err != nil {
		t.Fatalf("testenv: declare topology: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err == nil {
		err = topo.Declare(ch)
	}
	if err != nil {
		t.Fatalf("testenv: declare topology: %v", err)
	}
	return topo
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

// DeleteNamespace removes the queues and exchanges whose names start with ns+".".
func DeleteNamespace(t testing.TB, ns string) {
	for _, kind := range []string{"queues", "exchanges"} {
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
	base, err := url.Parse(baseURL)
	if err != nil {
		return err
	}
	var reader *strings.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = strings.NewReader(string(b))
	} else {
		reader = strings.NewReader("")
	}
	req, err := http.NewRequest(method, base.Scheme+"://"+base.Host+path, reader)
	if err != nil {
		return err
	}
	if pw, ok := base.User.Password(); ok {
		req.SetBasicAuth(base.User.Username(), pw)
	}
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var msg struct {
			Reason string `json:"reason"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&msg)
		return fmt.Errorf("management %s %s: %s: %s", method, path, resp.Status, msg.Reason)
	}
	if out != nil {
		return json.NewDecoder(resp.Body).Decode(out)
	}
	return nil
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
