// Package broker owns everything between the program and RabbitMQ: the
// topology (names, declaration, check, each role's permissions), supervised
// connections that reconnect with backoff, the confirm-mode publisher pool,
// and the message contract (envelope.go).
package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/changes"
)

// Topology names every exchange and queue of one namespace. All names derive
// from the namespace so that tests and deployments can share one broker.
type Topology struct {
	Namespace string
	// Events is the topic exchange the api publishes to (routing key = event type).
	Events string
	// Work is the quorum queue the workers consume, bound to Events with "#".
	Work string
	// Retry is the direct exchange scheduled retries are published to; the
	// routing key is the tier's name.
	Retry string
	// Return is the fanout exchange the delay tiers dead-letter into; it
	// routes back to Work. A delivery from it is a scheduled retry.
	Return string
	// Dead is the fanout exchange that routes into DLQ (parking, and the
	// work queue's delivery-limit backstop).
	Dead string
	// DLQ is the quorum queue of parked events.
	DLQ string
	// Replay is the DLQ's own dead-letter exchange, routing back to Work:
	// "Reject requeue false" in the management UI replays through it.
	Replay string
	// Changes is the topic exchange of the change feed (changes.Exchange):
	// `billing relay` publishes to it, consumers bind their own queues.
	Changes string
	// Notify is `billing notify`'s quorum queue, bound to Changes with
	// NotifyKeys.
	Notify string
	// Delays are the retry tiers in order.
	Delays []time.Duration
	// DeliveryLimit is the work queue's delivery-limit backstop (a policy).
	DeliveryLimit int
	// DLQMaxLength is the DLQ's length limit (a policy); 0: none.
	DLQMaxLength int
	// QuorumInitialGroupSize is the members of each quorum queue Declare
	// creates (x-quorum-initial-group-size): the cluster's size, so each
	// queue survives losing a node; 0 leaves RabbitMQ's default (every
	// node of the cluster, at most 5 in recent versions).
	QuorumInitialGroupSize int
}

// Defaults of the topology and the publisher pool (config.Vars refers to
// them).
const (
	DefaultNamespace         = "billing"
	DefaultDeliveryLimit     = 20
	DefaultPublisherChannels = 8
)

// NewTopology derives every name from the namespace.
func NewTopology(namespace string, delays []time.Duration, deliveryLimit int) Topology {
	return Topology{
		Namespace:     namespace,
		Events:        namespace + ".events",
		Work:          namespace + ".events.work",
		Retry:         namespace + ".retry",
		Return:        namespace + ".retry.return",
		Dead:          namespace + ".dead",
		DLQ:           namespace + ".events.dlq",
		Replay:        namespace + ".replay",
		Changes:       changes.Exchange(namespace),
		Notify:        namespace + ".notify",
		Delays:        delays,
		DeliveryLimit: deliveryLimit,
	}
}

// TierName is the routing key of delay tier i, such as "10s" or "1m0s".
func (t Topology) TierName(i int) string {
	return strings.ReplaceAll(t.Delays[i].String(), ".", "_")
}

// TierQueue is the queue of delay tier i: <ns>.retry.<tier>.
func (t Topology) TierQueue(i int) string {
	return t.Retry + "." + t.TierName(i)
}

// NotifyKeys are the change feed's routing keys `billing notify` acts
// on: a charge first seen or become failed (package notify says why),
// a dispute opened.
var NotifyKeys = []string{"charge.created", "charge.status.failed", "dispute.created"}

// Queues lists every queue of the topology: work, DLQ, notify, tiers.
func (t Topology) Queues() []string {
	qs := []string{t.Work, t.DLQ, t.Notify}
	for i := range t.Delays {
		qs = append(qs, t.TierQueue(i))
	}
	return qs
}

// Exchanges lists every exchange of the topology.
func (t Topology) Exchanges() []string {
	return []string{t.Events, t.Retry, t.Return, t.Dead, t.Replay, t.Changes}
}

// exchangeKinds pairs every exchange with its kind, in declaration order.
func (t Topology) exchangeKinds() []struct{ name, kind string } {
	return []struct{ name, kind string }{
		{t.Events, amqp.ExchangeTopic},
		{t.Retry, amqp.ExchangeDirect},
		{t.Return, amqp.ExchangeFanout},
		{t.Dead, amqp.ExchangeFanout},
		{t.Replay, amqp.ExchangeFanout},
		{t.Changes, amqp.ExchangeTopic},
	}
}

// queueSpec is one queue as Declare creates it: the arguments it is
// declared with (what RabbitMQ cannot change in place) and its bindings.
type queueSpec struct {
	name string
	args amqp.Table
	bind []binding
}

// queueSpecs lists every queue with its arguments. What must hold for no
// event to be lost (the queue type, where a message is dead-lettered, how,
// and that a full queue refuses rather than drops) is an argument: a
// policy can be shadowed by another of higher priority, an argument
// cannot. What a deployment tunes (delivery limits, the DLQ's length) is
// a policy (Policies), which `billing topology` changes in place.
func (t Topology) queueSpecs() []queueSpec {
	queues := []queueSpec{
		{t.Work, amqp.Table{
			amqp.QueueTypeArg:        amqp.QueueTypeQuorum,
			"x-dead-letter-exchange": t.Dead,
			"x-dead-letter-strategy": "at-least-once",
			amqp.QueueOverflowArg:    amqp.QueueOverflowRejectPublish,
		}, []binding{{t.Events, "#"}, {t.Return, ""}, {t.Replay, ""}}},
		// No TTL, no delivery limit: staff may look at parked events as
		// often as they like without losing one. Past DLQ_MAX_LENGTH it
		// refuses what is parked (the worker retries it) and drops nothing.
		{t.DLQ, amqp.Table{
			amqp.QueueTypeArg:        amqp.QueueTypeQuorum,
			"x-dead-letter-exchange": t.Replay,
			amqp.QueueOverflowArg:    amqp.QueueOverflowRejectPublish,
		}, []binding{{t.Dead, ""}}},
		// A consumer of the change feed: what it cannot take yet waits
		// here; the relay, and so the worker, never wait for it.
		{t.Notify, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}, notifyBindings(t.Changes)},
	}
	for i, d := range t.Delays {
		queues = append(queues, queueSpec{t.TierQueue(i), amqp.Table{
			amqp.QueueTypeArg:        amqp.QueueTypeQuorum,
			amqp.QueueMessageTTLArg:  d.Milliseconds(),
			"x-dead-letter-exchange": t.Return,
			// at-least-once: a message leaves the tier only once the work
			// queue has confirmed it, so expiry never loses an event.
			"x-dead-letter-strategy": "at-least-once",
			amqp.QueueOverflowArg:    amqp.QueueOverflowRejectPublish,
		}, []binding{{t.Retry, t.TierName(i)}}})
	}
	for _, q := range queues {
		if t.QuorumInitialGroupSize > 0 {
			q.args["x-quorum-initial-group-size"] = t.QuorumInitialGroupSize
		}
	}
	return queues
}

// Declare creates the topology idempotently and applies its policies:
// `billing topology` is its one caller, with the topology user's configure
// permission and policymaker tag. api reads what AMQP cannot (the broker's
// version, an existing queue's arguments) and sets the policies.
//
// A queue that exists is not declared again: one declared by an older
// version keeps its arguments. Declare first checks every existing queue
// against what the topology needs and, when one must be rebuilt (another
// queue type, dead-letter target, or an argument that keeps a setting from
// taking effect), changes nothing and returns a *RebuildError naming the
// setting and the steps; so it does when a policy of the vhost would win
// over one of ours. Then it sets the policies (before any queue, so a new
// queue has them from its first message), declares what is missing and
// binds.
func (t Topology) Declare(ctx context.Context, ch *amqp.Channel, api *Management) error {
	major, err := api.MajorVersion(ctx)
	if err != nil {
		return err
	}
	specs := t.queueSpecs()
	existing := map[string]bool{}
	var rebuild []Rebuild
	for _, q := range specs {
		info, found, err := api.Queue(ctx, q.name)
		if err != nil {
			return err
		}
		if found {
			existing[q.name] = true
			rebuild = append(rebuild, t.rebuildNeeded(q, info, major)...)
		}
	}
	if len(rebuild) > 0 {
		return &RebuildError{Needed: rebuild}
	}
	if err := t.checkPolicies(ctx, api, major); err != nil {
		return err
	}
	if err := t.applyPolicies(ctx, api, major); err != nil {
		return err
	}
	for _, x := range t.exchangeKinds() {
		if err := ch.ExchangeDeclare(x.name, x.kind, true, false, false, false, nil); err != nil {
			return explainDeclare("exchange", x.name, err)
		}
	}
	for _, q := range specs {
		if !existing[q.name] {
			if _, err := ch.QueueDeclare(q.name, true, false, false, false, q.args); err != nil {
				return explainDeclare("queue", q.name, err)
			}
		}
		for _, b := range q.bind {
			if err := ch.QueueBind(q.name, b.key, b.exchange, false, nil); err != nil {
				return fmt.Errorf("broker: bind %s to %s: %w", q.name, b.exchange, err)
			}
		}
	}
	return nil
}

type binding struct{ exchange, key string }

func notifyBindings(exchange string) []binding {
	bs := make([]binding, len(NotifyKeys))
	for i, k := range NotifyKeys {
		bs[i] = binding{exchange, k}
	}
	return bs
}

// ErrTopologyMissing means an exchange or queue of the namespace does not
// exist: `billing topology` has not run for it.
var ErrTopologyMissing = errors.New("broker: topology missing")

// Check verifies that every exchange and queue of the topology exists,
// without declaring anything: the api, worker, sweep and dlq run as users
// that may not create exchanges or queues. A passive declare needs no
// permission, and a missing object makes the broker close the channel, so
// each object gets a channel of its own and the error names all of them.
// Bindings and arguments are not compared; Declare sets them.
func (t Topology) Check(conn *amqp.Connection) error {
	var missing []string
	check := func(what string, declare func(*amqp.Channel) error) error {
		ch, err := conn.Channel()
		if err != nil {
			return fmt.Errorf("broker: check %s: open channel: %w", what, err)
		}
		err = declare(ch)
		var aerr *amqp.Error
		if errors.As(err, &aerr) && aerr.Code == amqp.NotFound {
			missing = append(missing, what) // the broker closed ch
			return nil
		}
		_ = ch.Close()
		if err != nil {
			return fmt.Errorf("broker: check %s: %w", what, err)
		}
		return nil
	}
	for _, x := range t.exchangeKinds() {
		err := check("exchange "+x.name, func(ch *amqp.Channel) error {
			return ch.ExchangeDeclarePassive(x.name, x.kind, true, false, false, false, nil)
		})
		if err != nil {
			return err
		}
	}
	for _, q := range t.Queues() {
		err := check("queue "+q, func(ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
			return err
		})
		if err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: namespace %s lacks %s: run `billing topology` first, as a user allowed to declare them",
			ErrTopologyMissing, t.Namespace, strings.Join(missing, ", "))
	}
	return nil
}
