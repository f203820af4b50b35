package broker_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
)

// TestPermissions runs each role's user, with Permissions' regexes, against
// the real broker: what the role's process does is allowed, the rest is
// refused.
func TestPermissions(t *testing.T) {
	t.Parallel()
	topo := broker.NewTopology(testenv.Namespace(t), []time.Duration{time.Second}, 5)
	perms := topo.Permissions()
	dialURL := func(t *testing.T, rawURL string) *amqp.Connection {
		t.Helper()
		conn, err := amqp.Dial(rawURL)
		if err != nil {
			t.Fatalf("%s: %v", broker.RedactURL(rawURL), err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return conn
	}
	dial := func(t *testing.T, role broker.Role) *amqp.Connection {
		t.Helper()
		return dialURL(t, testenv.RabbitUser(t, perms[role]))
	}

	// The topology user declares and sets the policies; the others are
	// tested on what it made.
	topologyURL := testenv.RabbitUser(t, perms[broker.RoleTopology])
	topology := dialURL(t, topologyURL)
	ch, err := topology.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Declare(context.Background(), ch, testenv.ManagementClientAs(t, topologyURL)); err != nil {
		t.Fatalf("topology user: Declare = %v", err)
	}
	ch.Close()
	if err := declareQueue(topology, "other.queue"); !refused(err) {
		t.Errorf("topology user declared a queue outside its namespace: %v", err)
	}

	t.Run("API", func(t *testing.T) {
		conn := dial(t, broker.RoleAPI)
		if err := topo.Check(conn); err != nil {
			t.Errorf("Check (passive declares) = %v, want nil", err)
		}
		if err := publish(conn, topo.Events, "invoice.paid"); err != nil {
			t.Errorf("publish to %s = %v, want a confirm", topo.Events, err)
		}
		for _, x := range []string{topo.Retry, topo.Dead, ""} {
			if err := publish(conn, x, topo.Work); !refused(err) {
				t.Errorf("publish to %q = %v, want ACCESS_REFUSED", x, err)
			}
		}
		if err := declareQueue(conn, topo.Namespace+".mine"); !refused(err) {
			t.Errorf("declare a queue = %v, want ACCESS_REFUSED", err)
		}
		if err := consume(conn, topo.Work); !refused(err) {
			t.Errorf("consume %s = %v, want ACCESS_REFUSED", topo.Work, err)
		}
	})
	t.Run("Worker", func(t *testing.T) {
		conn := dial(t, broker.RoleWorker)
		if err := topo.Check(conn); err != nil {
			t.Errorf("Check = %v, want nil", err)
		}
		if err := consume(conn, topo.Work); err != nil {
			t.Errorf("consume %s = %v", topo.Work, err)
		}
		for _, x := range []string{topo.Retry, topo.Dead} {
			key := topo.TierName(0)
			if err := publish(conn, x, key); err != nil {
				t.Errorf("publish to %s = %v, want a confirm", x, err)
			}
		}
		if err := publish(conn, topo.Events, "invoice.paid"); !refused(err) {
			t.Errorf("publish to %s = %v, want ACCESS_REFUSED", topo.Events, err)
		}
		if err := declareExchange(conn, topo.Events); !refused(err) {
			t.Errorf("declare %s = %v, want ACCESS_REFUSED", topo.Events, err)
		}
		if err := consume(conn, topo.DLQ); !refused(err) {
			t.Errorf("consume %s = %v, want ACCESS_REFUSED", topo.DLQ, err)
		}
	})
	t.Run("Sweep", func(t *testing.T) {
		conn := dial(t, broker.RoleSweep)
		if err := consume(conn, topo.DLQ); err != nil {
			t.Errorf("consume %s = %v", topo.DLQ, err)
		}
		if err := publish(conn, topo.Replay, "invoice.paid"); err != nil {
			t.Errorf("publish to the work queue through %s = %v", topo.Replay, err)
		}
		if err := publish(conn, topo.Events, "invoice.paid"); err != nil {
			t.Errorf("publish to %s = %v", topo.Events, err)
		}
		if err := publish(conn, "", topo.Work); !refused(err) {
			t.Errorf("publish through the default exchange = %v, want ACCESS_REFUSED", err)
		}
		if err := consume(conn, topo.Work); !refused(err) {
			t.Errorf("consume %s = %v, want ACCESS_REFUSED", topo.Work, err)
		}
		if err := declareQueue(conn, topo.Namespace+".mine"); !refused(err) {
			t.Errorf("declare a queue = %v, want ACCESS_REFUSED", err)
		}
	})
	t.Run("Support", func(t *testing.T) {
		amqpURL := testenv.RabbitUser(t, perms[broker.RoleSupport])
		u, err := url.Parse(amqpURL)
		if err != nil {
			t.Fatal(err)
		}
		pw, _ := u.User.Password()
		ui := func(method, path string, body any) error {
			return managementAs(u.User.Username(), pw, method, path, body)
		}
		// The runbook's ways, as the management UI sends them.
		get := map[string]any{"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}
		if err := ui(http.MethodPost, "/api/queues/%2F/"+url.PathEscape(topo.DLQ)+"/get", get); err != nil {
			t.Errorf("Get messages on the DLQ = %v", err)
		}
		pub := map[string]any{"properties": map[string]any{}, "routing_key": "invoice.paid", "payload": "{}", "payload_encoding": "string"}
		if err := ui(http.MethodPost, "/api/exchanges/%2F/"+url.PathEscape(topo.Events)+"/publish", pub); err != nil {
			t.Errorf("Publish message on %s = %v", topo.Events, err)
		}
		// "Move messages" creates a shovel, which needs the policymaker
		// tag and declares its destination with the plugin's rights: a
		// typo would create a queue. Support does not get it.
		shovel := map[string]any{"value": map[string]any{
			"src-uri": "amqp:///%2F", "src-queue": topo.DLQ, "dest-uri": "amqp:///%2F", "dest-queue": topo.Work + "x",
			"src-delete-after": "queue-length",
		}}
		if err := ui(http.MethodPut, "/api/parameters/shovel/%2F/"+url.PathEscape("Move from "+topo.DLQ), shovel); err == nil {
			t.Error("Move messages (a shovel) was allowed")
		}
		if err := ui(http.MethodPut, "/api/queues/%2F/"+url.PathEscape(topo.Namespace+".typo"), map[string]any{"durable": true}); err == nil {
			t.Error("the support user created a queue in the UI")
		}
		conn := dialURL(t, amqpURL)
		// `billing dlq replay`: through the replay exchange to the work queue.
		if err := publish(conn, topo.Replay, "invoice.paid"); err != nil {
			t.Errorf("publish to %s = %v", topo.Replay, err)
		}
		if err := publish(conn, "", topo.Work); !refused(err) {
			t.Errorf("publish straight into %s = %v, want ACCESS_REFUSED", topo.Work, err)
		}
		if err := consume(conn, topo.Work); !refused(err) {
			t.Errorf("consume %s = %v, want ACCESS_REFUSED", topo.Work, err)
		}

		// Nothing that loses or forges a parked event: no publish into the
		// DLQ (its exchange, or the queue page's "Publish message" through
		// the default exchange), no Delete of a namespace queue.
		if err := publish(conn, topo.Dead, ""); !refused(err) {
			t.Errorf("publish to %s = %v, want ACCESS_REFUSED", topo.Dead, err)
		}
		if err := publish(conn, "", topo.DLQ); !refused(err) {
			t.Errorf("publish into %s = %v, want ACCESS_REFUSED", topo.DLQ, err)
		}
		intoDLQ := map[string]any{"properties": map[string]any{}, "routing_key": topo.DLQ, "payload": "{}", "payload_encoding": "string"}
		if err := ui(http.MethodPost, "/api/exchanges/%2F/"+broker.DefaultExchange+"/publish", intoDLQ); err == nil {
			t.Error(`the queue page's "Publish message" into the DLQ was allowed`)
		}
		for _, q := range topo.Queues() {
			if err := ui(http.MethodDelete, "/api/queues/%2F/"+url.PathEscape(q), nil); err == nil {
				t.Errorf("the support user deleted %s in the UI", q)
			}
		}
		if err := deleteQueue(conn, topo.DLQ); !refused(err) {
			t.Errorf("queue.delete %s = %v, want ACCESS_REFUSED", topo.DLQ, err)
		}

		// What read on the DLQ still allows, as the broker does it (no tag
		// or permission of RabbitMQ 3.10 or 4.0 tells purging from
		// reading): Purge, and "Get messages" with Automatic ack, empty
		// it. docs/security.md#support-and-the-dlq says what catches that.
		guest := testenv.Channel(t)
		depth := func() int {
			t.Helper()
			info, err := guest.QueueDeclarePassive(topo.DLQ, true, false, false, false, nil)
			if err != nil {
				t.Fatal(err)
			}
			return info.Messages
		}
		park := func() {
			t.Helper()
			if err := guest.Publish(topo.Dead, "", false, false, amqp.Publishing{Body: []byte("{}")}); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, 5*time.Second, func() bool { return depth() > 0 }, "a message parked in %s", topo.DLQ)
		}
		park()
		if err := ui(http.MethodDelete, "/api/queues/%2F/"+url.PathEscape(topo.DLQ)+"/contents", nil); err != nil {
			t.Errorf("Purge of the DLQ as support = %v, want it allowed (read permits it)", err)
		}
		testenv.Eventually(t, 5*time.Second, func() bool { return depth() == 0 }, "the DLQ purged")
		park()
		autoAck := map[string]any{"count": 10, "ackmode": "ack_requeue_false", "encoding": "auto"}
		if err := ui(http.MethodPost, "/api/queues/%2F/"+url.PathEscape(topo.DLQ)+"/get", autoAck); err != nil {
			t.Errorf("Get messages with Automatic ack as support = %v, want it allowed (read permits it)", err)
		}
		testenv.Eventually(t, 5*time.Second, func() bool { return depth() == 0 }, "the DLQ emptied by Automatic ack")
	})
}

func refused(err error) bool {
	var aerr *amqp.Error
	return errors.As(err, &aerr) && aerr.Code == amqp.AccessRefused
}

// publish sends one mandatory persistent message on a channel of its own
// and waits for the confirm or the channel's closing.
func publish(conn *amqp.Connection, exchange, key string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Confirm(false); err != nil {
		return err
	}
	dc, err := ch.PublishWithDeferredConfirm(exchange, key, true, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte("{}")})
	if err != nil {
		return err
	}
	select {
	case <-dc.Done():
		if dc.Acked() {
			return nil
		}
	case <-time.After(5 * time.Second):
	}
	select {
	case err := <-closed:
		return err
	case <-time.After(time.Second):
		return errors.New("neither confirmed nor refused")
	}
}

func consume(conn *amqp.Connection, queue string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.Consume(queue, "", false, false, false, false, nil)
	return err
}

func declareQueue(conn *amqp.Connection, name string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.QueueDeclare(name, true, true, false, false, nil)
	return err
}

func deleteQueue(conn *amqp.Connection, name string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	_, err = ch.QueueDelete(name, false, false, false)
	return err
}

func declareExchange(conn *amqp.Connection, name string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	return ch.ExchangeDeclare(name, amqp.ExchangeTopic, true, false, false, false, nil)
}

// managementAs calls the management API as user, as the UI does for them.
func managementAs(user, password, method, path string, body any) error {
	base, err := url.Parse(testenv.ManagementURL())
	if err != nil {
		return err
	}
	base.User = url.UserPassword(user, password)
	return testenv.ManagementAt(base.String(), method, path, body, nil)
}
