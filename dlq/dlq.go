// Package dlq owns what happens to a failed event after the handler: the
// Router that schedules it in a delay tier or parks it in the DLQ with the
// reason (the billing-* headers), reading parked messages (Queue.List,
// Queue.Show), sending them back (Queue.Move, for `billing dlq replay` and
// the sweep), dropping them on a person's word (Queue.Discard), and the
// Sweep that re-drives the failures time may cure.
//
// Every pass over the DLQ takes all of its messages unacked on one
// channel, acks only those it moved or dropped, and closes the channel:
// the others go back together, in order. It never nacks with requeue,
// which on a quorum queue would send each message looked at to the back.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/pause"
)

// Parked is one message of the DLQ as staff see it.
type Parked struct {
	EventID       string        `json:"event_id"`
	Type          string        `json:"type"`
	Class         failure.Class `json:"class"`
	Attempts      int           `json:"attempts"`
	Error         string        `json:"error"`
	ParkedAt      time.Time     `json:"parked_at"`
	AgeSeconds    float64       `json:"age_seconds"`
	FirstFailedAt time.Time     `json:"first_failed_at,omitzero"`
	LastFailedAt  time.Time     `json:"last_failed_at,omitzero"`
	SourceQueue   string        `json:"source_queue,omitempty"`
	WorkerHost    string        `json:"worker_host,omitempty"`
	Replays       int           `json:"replays"`
	Redrives      int           `json:"redrives"`
	// Copies counts the DLQ messages of the event (ByEvent): Stripe may
	// deliver an event twice, and each copy that fails is parked.
	Copies int `json:"copies,omitempty"`
}

// ByEvent folds the copies of each event into one line, where its first
// copy stands, with Copies counting them; a message without an event id
// stands alone.
func ByEvent(parked []Parked) []Parked {
	out := make([]Parked, 0, len(parked))
	at := map[string]int{}
	for _, p := range parked {
		if i, ok := at[p.EventID]; ok && p.EventID != "" {
			out[i].Copies++
			continue
		}
		p.Copies = 1
		at[p.EventID] = len(out)
		out = append(out, p)
	}
	return out
}

// Age is how long the message has been parked at now.
func (p Parked) Age(now time.Time) time.Duration {
	if p.ParkedAt.IsZero() {
		return 0
	}
	return now.Sub(p.ParkedAt)
}

// Connector hands out the open AMQP connection the DLQ reads with
// (broker.Conn). It must not be the publisher's connection.
type Connector interface {
	Await(ctx context.Context) (*amqp.Connection, error)
}

// Publisher publishes one message with a confirm and reports success only
// when the broker holds it in a queue (broker.Publisher, on a connection
// used only for publishing).
type Publisher interface {
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error
}

// Config configures a Queue.
type Config struct {
	Topology broker.Topology
	// Idle is how long a pass waits for one more delivery before it decides
	// that the rest of the queue is held by someone else. Default 2s.
	Idle time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Queue reads and moves parked messages. Reading never loses or drops a
// message: deliveries are taken with manual acks and returned to the queue
// when the channel closes. Moving is lossless: a message is acked in the DLQ
// only after its copy has been confirmed in the work queue.
type Queue struct {
	topo   broker.Topology
	idle   time.Duration
	now    func() time.Time
	logger *slog.Logger
	conn   Connector
	pub    Publisher
}

// New returns a reader and mover of the DLQ. pub may be nil for a reader only.
// A nil logger discards.
func New(cfg Config, logger *slog.Logger, conn Connector, pub Publisher) (*Queue, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Topology.DLQ == "" || cfg.Topology.Work == "" {
		return nil, errors.New("dlq: new dlq: topology without DLQ or work queue")
	}
	if conn == nil {
		return nil, errors.New("dlq: new dlq: no connection")
	}
	if cfg.Idle <= 0 {
		cfg.Idle = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Queue{topo: cfg.Topology, idle: cfg.Idle, now: cfg.Now, logger: logger, conn: conn, pub: pub}, nil
}

// List returns up to limit parked messages (all when limit <= 0) in queue
// order. Every message stays in the DLQ.
func (q *Queue) List(ctx context.Context, limit int) ([]Parked, error) {
	var out []Parked
	now := q.now()
	err := q.scan(ctx, func(d *amqp.Delivery) (acked, stop bool, err error) {
		out = append(out, ParseParked(d, now))
		return false, limit > 0 && len(out) >= limit, nil
	}, nil)
	if err != nil {
		return out, fmt.Errorf("dlq: list dlq %s: %w", q.topo.DLQ, err)
	}
	return out, nil
}

// MoveOptions says which parked messages Move sends back.
type MoveOptions struct {
	// Match selects a message; nil selects every message.
	Match func(ctx context.Context, p Parked) (bool, error)
	// Limit is the most messages moved (0: no limit).
	Limit int
	// DryRun reports what would move and moves nothing.
	DryRun bool
	// Redrive marks an automatic re-drive by the sweep: billing-redrives
	// is incremented besides billing-replays.
	Redrive bool
	// Moved, if set, is called after each message has been moved.
	Moved func(ctx context.Context, p Parked)
	// Pace is the least time between two publishes (`--rate`): a bulk
	// replay must not flood the workers. 0: no wait.
	Pace time.Duration
}

// MoveResult is what a Move did.
type MoveResult struct {
	// Moved lists the messages sent back to the work queue (or, in a dry
	// run, those that would be).
	Moved []Parked
	// Left counts the messages looked at and left in the DLQ.
	Left int
}

// Move sends the parked messages opts selects back to the work queue, each
// as a fresh attempt (see broker.ReplayCopy): body, properties and billing-*
// headers kept, x-* headers dropped. Each copy is published
// with a confirm through the replay exchange into the work queue,
// and the DLQ message is acked only after that confirm; messages not
// selected return to the DLQ. On an error the messages moved so far stay
// moved and the rest stay parked.
func (q *Queue) Move(ctx context.Context, opts MoveOptions) (MoveResult, error) {
	var res MoveResult
	if q.pub == nil && !opts.DryRun {
		return res, errors.New("dlq: move from dlq: no publisher")
	}
	now := q.now()
	var last time.Time
	err := q.scan(ctx, func(d *amqp.Delivery) (acked, stop bool, err error) {
		p := ParseParked(d, now)
		ok := true
		if opts.Match != nil {
			var err error
			if ok, err = opts.Match(ctx, p); err != nil {
				return false, true, err
			}
		}
		if !ok {
			res.Left++
			return false, false, nil // handed back at the end of the scan
		}
		if !opts.DryRun {
			if err := pace(ctx, last, opts.Pace); err != nil {
				return false, true, err
			}
			last = time.Now()
			msg := broker.ReplayCopy(*d, opts.Redrive)
			// Through the replay exchange, which routes to the work queue
			// only: the user that replays needs no write on amq.default,
			// which would let it publish into any queue, the DLQ included.
			// The key stays the parked one, the event type.
			if err := q.pub.Publish(ctx, q.topo.Replay, d.RoutingKey, msg); err != nil {
				return false, true, fmt.Errorf("publish %s to %s: %w", p.EventID, q.topo.Work, err)
			}
			// The copy is in the work queue: only now may the original go.
			// Should this ack be lost, the event is both parked and
			// queued, and the consumer's dedupe makes that harmless.
			if err := d.Ack(false); err != nil {
				return false, true, fmt.Errorf("ack %s: %w", p.EventID, err)
			}
			// The consumer counts the replay when the copy arrives through
			// the replay exchange (broker.ReadAttempt); show that number.
			p.Replays++
			p.Redrives = broker.HeaderInt(msg.Headers, broker.HeaderRedrives)
			q.logger.Info("dlq message moved", "event_id", p.EventID, "event_type", p.Type, "to", q.topo.Work, "replays", p.Replays, "redrive", opts.Redrive)
			if opts.Moved != nil {
				opts.Moved(ctx, p)
			}
		}
		res.Moved = append(res.Moved, p)
		return !opts.DryRun, opts.Limit > 0 && len(res.Moved) >= opts.Limit, nil
	}, nil)
	if err != nil {
		return res, fmt.Errorf("dlq: move from dlq %s: %w", q.topo.DLQ, err)
	}
	return res, nil
}

// pace waits until at least every has passed since last (zero: at once).
func pace(ctx context.Context, last time.Time, every time.Duration) error {
	wait := time.Until(last.Add(every))
	if last.IsZero() || wait <= 0 {
		return nil
	}
	return pause.For(ctx, wait)
}

// Message is one parked message in full, for `billing dlq show`.
type Message struct {
	Parked
	// Delivery is the message as the DLQ delivered it (its acknowledger
	// removed: it is for reading).
	Delivery amqp.Delivery
}

// Show returns every copy of event id in the DLQ, in queue order. Every
// message stays in the DLQ.
func (q *Queue) Show(ctx context.Context, id string) ([]Message, error) {
	var out []Message
	now := q.now()
	err := q.scan(ctx, func(d *amqp.Delivery) (acked, stop bool, err error) {
		if p := ParseParked(d, now); p.EventID == id {
			m := Message{Parked: p, Delivery: *d}
			m.Delivery.Acknowledger = nil
			out = append(out, m)
		}
		return false, false, nil
	}, nil)
	if err != nil {
		return out, fmt.Errorf("dlq: show %s in %s: %w", id, q.topo.DLQ, err)
	}
	return out, nil
}

// Discard takes every copy of event id off the DLQ for good. It reads the
// whole DLQ first, holding every message, then calls record with the
// copies found (the caller writes who, when and why), and only when
// record succeeds acks them; all other messages go back in order. With no
// copy found, record is not called and ErrNotParked is returned. Should
// an ack be lost after record, the copies stay parked and a second
// Discard removes them (recording the decision again).
func (q *Queue) Discard(ctx context.Context, id string, record func(ctx context.Context, copies []Parked) error) ([]Parked, error) {
	var found []*amqp.Delivery
	var copies []Parked
	now := q.now()
	err := q.scan(ctx, func(d *amqp.Delivery) (acked, stop bool, err error) {
		if p := ParseParked(d, now); p.EventID == id {
			found = append(found, d)
			copies = append(copies, p)
		}
		return false, false, nil
	}, func(ctx context.Context) (int, error) {
		if len(found) == 0 {
			return 0, nil
		}
		if err := record(ctx, copies); err != nil {
			return 0, err
		}
		for i, d := range found {
			if err := d.Ack(false); err != nil {
				return i, fmt.Errorf("ack copy %d of %s: %w", i+1, id, err)
			}
		}
		q.logger.Info("dlq event discarded", "event_id", id, "event_type", copies[0].Type, "copies", len(copies))
		return len(found), nil
	})
	if err != nil {
		return nil, fmt.Errorf("dlq: discard %s from %s: %w", id, q.topo.DLQ, err)
	}
	if len(copies) == 0 {
		return nil, fmt.Errorf("dlq: discard %s: %w", id, ErrNotParked)
	}
	return copies, nil
}

// ErrNotParked is returned for an event with no message in the DLQ.
var ErrNotParked = errors.New("no such event in the DLQ")

// scan hands each message of the DLQ, as it stood when the scan began, to
// fn, which may ack it (and says so); fn returns stop to end the scan.
// Messages fn does not ack stay unacked until the end, so they are neither
// redelivered to this scan nor reordered against each other; closing the
// channel then hands them back together, in order. finish, when set, runs
// after the last message, on the same channel, and acks what it says
// (say, messages fn kept until a decision on all of them). A quorum queue requeues
// them asynchronously, so scan waits (at most Idle) until the queue shows
// them ready again: a `billing dlq list` or `replay` run right after this
// one must find them. The DLQ has no delivery limit, so the delivery count
// this raises cannot drop anything.
func (q *Queue) scan(ctx context.Context, fn func(d *amqp.Delivery) (acked, stop bool, err error), finish func(ctx context.Context) (acked int, err error)) error {
	conn, err := q.conn.Await(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %w", err)
	}
	kept, err := q.take(ctx, ch, fn)
	if err == nil && finish != nil {
		var acked int
		acked, err = finish(ctx)
		kept -= acked
	}
	_ = ch.Close()
	if kept > 0 {
		q.awaitReady(ctx, conn, kept)
	}
	return err
}

// take consumes the DLQ on ch for scan and counts the messages it kept.
func (q *Queue) take(ctx context.Context, ch *amqp.Channel, fn func(d *amqp.Delivery) (acked, stop bool, err error)) (kept int, err error) {
	info, err := ch.QueueDeclarePassive(q.topo.DLQ, true, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("inspect queue: %w", err)
	}
	depth := info.Messages
	if depth == 0 {
		return 0, nil
	}
	// No prefetch limit: unacked messages we keep must not stall the scan.
	// A scan holds at most the depth it saw, one DLQ's worth.
	deliveries, err := ch.ConsumeWithContext(ctx, q.topo.DLQ, "", false, false, false, false, nil)
	if err != nil {
		return 0, fmt.Errorf("consume: %w", broker.Refusal(err, "read", "queue"))
	}
	idle := time.NewTimer(q.idle)
	defer idle.Stop()
	for seen := 0; seen < depth; seen++ {
		select {
		case <-ctx.Done():
			return kept, ctx.Err()
		case <-idle.C:
			// Others hold the rest (a concurrent sweep or replay).
			return kept, nil
		case d, ok := <-deliveries:
			if !ok {
				return kept, errors.New("channel closed during the scan")
			}
			acked, stop, err := fn(&d)
			if !acked {
				kept++
			}
			if err != nil || stop {
				return kept, err
			}
			// Idle counts only the wait for the broker: a slow confirm or
			// ledger write in fn must not cut the pass short.
			idle.Reset(q.idle)
		}
	}
	return kept, nil
}

// awaitReady waits, at most Idle, until the DLQ has at least n messages
// ready. Best effort: the messages come back in any case.
func (q *Queue) awaitReady(ctx context.Context, conn *amqp.Connection, n int) {
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	defer ch.Close()
	wait := time.NewTimer(q.idle)
	defer wait.Stop()
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for {
		info, err := ch.QueueDeclarePassive(q.topo.DLQ, true, false, false, false, nil)
		if err != nil || info.Messages >= n {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-wait.C:
			return
		case <-poll.C:
		}
	}
}

// ParseParked reads what a parked delivery says about itself: our billing-*
// headers, or for a message the work queue's delivery limit parked, its
// x-death entry. Event id and type come from the properties the api sets,
// or from the body for a hand-published message.
func ParseParked(d *amqp.Delivery, now time.Time) Parked {
	h := d.Headers
	p := Parked{
		EventID:       d.MessageId,
		Type:          d.Type,
		Class:         failure.Class(broker.HeaderString(h, broker.HeaderErrorClass)),
		Attempts:      broker.HeaderInt(h, broker.HeaderAttempt),
		Error:         broker.HeaderString(h, broker.HeaderError),
		ParkedAt:      broker.HeaderTime(h, broker.HeaderParkedAt),
		FirstFailedAt: broker.HeaderTime(h, broker.HeaderFirstFailedAt),
		LastFailedAt:  broker.HeaderTime(h, broker.HeaderLastFailedAt),
		SourceQueue:   broker.HeaderString(h, broker.HeaderSourceQueue),
		WorkerHost:    broker.HeaderString(h, broker.HeaderWorkerHost),
		Replays:       broker.HeaderInt(h, broker.HeaderReplays),
		Redrives:      broker.HeaderInt(h, broker.HeaderRedrives),
	}
	p.EventID, p.Type = broker.Identity(d.MessageId, d.Type, d.Body)
	// The newest x-death entry comes first. A message our consumer parked
	// carries none (it never copies x-* headers) until it is dead-lettered
	// again, so our own class wins when present.
	if death, ok := latestDeath(h); ok {
		reason, _ := death["reason"].(string)
		if p.Class == "" || (reason == string(failure.DeliveryLimit) && p.ParkedAt.Before(deathTime(death))) {
			p.Class = failure.Class(reason)
			if reason == string(failure.DeliveryLimit) {
				p.Error = "delivered to workers too often without an ack (x-delivery-limit)"
				if q, _ := death["queue"].(string); q != "" {
					p.SourceQueue = q
				}
				// The work queue's delivery count does not travel with
				// the dead-lettered message (an x-delivery-count on a
				// DLQ delivery is the DLQ's own); x-death counts how
				// often the limit parked it.
				p.Attempts = broker.HeaderInt(death, "count")
			}
			if t := deathTime(death); !t.IsZero() {
				p.ParkedAt = t
			}
		}
	}
	if p.ParkedAt.IsZero() && !d.Timestamp.IsZero() {
		p.ParkedAt = d.Timestamp
	}
	if !p.ParkedAt.IsZero() {
		p.AgeSeconds = now.Sub(p.ParkedAt).Seconds()
	}
	return p
}

func latestDeath(h amqp.Table) (amqp.Table, bool) {
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		return nil, false
	}
	t, ok := deaths[0].(amqp.Table)
	return t, ok
}

func deathTime(death amqp.Table) time.Time {
	t, _ := death["time"].(time.Time)
	return t
}
