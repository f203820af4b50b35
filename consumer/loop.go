package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/pause"
	"github.com/stripe-billing/billing/retry"
)

// The one delivery loop: a worker collects a batch from its lane (a
// single event is a batch of one: BatchSize 1) and delivers it to its
// end: applied events acked, failed ones republished and acked, the
// batch held at the gate while a dependency is down.

// worker collects batches from its lane and delivers them until the
// stream ends or stop. A batch being collected when stop comes is left
// unacked: the broker redelivers it when the channel closes.
func (c *Consumer) worker(stop, work context.Context, l *lane) {
	for {
		ds, more := c.collect(stop, l.deliveries)
		if len(ds) > 0 {
			start := time.Now()
			items := make([]*item, len(ds))
			for i, d := range ds {
				items[i] = c.newItem(d, start)
			}
			c.deliver(stop, work, l, items, c.cfg.BatchSize > 1)
		}
		if !more {
			return
		}
	}
}

// ChannelPrefetch is the prefetch of one worker's channel, the unacked
// deliveries the broker sends it ahead: two batches, one in hand and one
// ready. With only the one in hand, a worker that acked its batch found
// the replacements still on their way and took a part of a batch (11
// events of 16 on average in the processing benchmark, 14 with two).
func ChannelPrefetch(batchSize int) int { return 2 * max(batchSize, 1) }

// MaxConcurrency is the most workers a Consumer runs: each consumes on a
// channel of its own, and RabbitMQ's default channel_max is 2047 channels
// per connection.
const MaxConcurrency = 2047

// relay copies a lane's deliveries into a channel buffered to the lane's
// prefetch, so that "already delivered" means what the broker sent:
// amqp091-go hands deliveries over an unbuffered channel from a goroutine
// that is rarely parked on the send when a worker looks again, so collect
// without a BatchWait saw batches of one. The send never blocks (the
// broker sends at most the prefetch unacked, and the worker acks only
// what it took), so the relay needs no select: it ends, closing its
// channel, when the stream ends (the consumer canceled or the channel
// closed). What is in the buffer when the worker stops is left unacked,
// for redelivery, like what amqp091-go still holds.
func relay(in <-chan amqp.Delivery, prefetch int) <-chan amqp.Delivery {
	out := make(chan amqp.Delivery, prefetch)
	go func() {
		defer close(out)
		for d := range in {
			out <- d
		}
	}()
	return out
}

// collect waits for one delivery, then takes up to BatchSize-1 more that
// arrive within BatchWait (only those already delivered when it is 0).
// more is false when the stream ended or stop came.
func (c *Consumer) collect(stop context.Context, deliveries <-chan amqp.Delivery) (batch []amqp.Delivery, more bool) {
	select {
	case <-stop.Done():
		return nil, false
	case d, ok := <-deliveries:
		if !ok {
			return nil, false
		}
		batch = append(batch, d)
	}
	var deadline <-chan time.Time
	if c.cfg.BatchWait > 0 && c.cfg.BatchSize > 1 {
		t := time.NewTimer(c.cfg.BatchWait)
		defer t.Stop()
		deadline = t.C
	}
	for len(batch) < c.cfg.BatchSize {
		if deadline == nil {
			select {
			case d, ok := <-deliveries:
				if !ok {
					return batch, false
				}
				batch = append(batch, d)
				continue
			default:
			}
			break
		}
		select {
		case <-stop.Done():
			return nil, false
		case <-deadline:
			return batch, stop.Err() == nil
		case d, ok := <-deliveries:
			if !ok {
				return batch, false
			}
			batch = append(batch, d)
		}
	}
	if stop.Err() != nil {
		return nil, false
	}
	return batch, true
}

// item is one delivery on its way: what the handler sees, and what the
// Observer is told at its end.
type item struct {
	d       amqp.Delivery
	state   state
	a       broker.Attempt
	ev      Delivery
	logger  *slog.Logger // the delivery's, built when first needed (log)
	handled Handled
	dec     failure.Decision
	cause   error
	start   time.Time
}

// state is how far a delivery is settled.
type state uint8

const (
	// open: not settled: in hand, held for an outage or for its copy's
	// confirm, or left for redelivery.
	open state = iota
	// applied: handled and committed, not acked yet.
	applied
	// settled: acked (applied, or failed with its copy confirmed).
	settled
)

func (c *Consumer) newItem(d amqp.Delivery, start time.Time) *item {
	it := &item{d: d, a: c.failures.Attempt(d), start: start}
	body := d.Body
	if !c.cfg.Verifier.Readable(body) {
		body = nil // the verifier parks it unread; its properties name it
	}
	id, typ := broker.Identity(d.MessageId, d.Type, body)
	it.ev = Delivery{ID: id, Type: typ, Body: d.Body, Signature: broker.HeaderString(d.Headers, broker.HeaderStripeSignature), Attempt: it.a.Number(), Replays: it.a.Replays, Redelivered: d.Redelivered, report: &it.handled}
	if it.a.Origin == broker.DeadLettered {
		// No person sent it back: the broker dead-lettered the parked
		// message (a delivery limit on the DLQ, a TTL or length policy).
		c.log(it).Warn("parked event dead-lettered out of the DLQ by the broker, not replayed by a person")
	}
	return it
}

// log is the logger of the lines about it: the consumer's with the event's
// id, type and attempt (and where it came back from). It is built on
// first use: most deliveries are applied without a line of their own,
// and slog's JSON handler formats With's attributes at once, whatever
// the level.
func (c *Consumer) log(it *item) *slog.Logger {
	if it.logger != nil {
		return it.logger
	}
	it.logger = c.logger.With("event_id", it.ev.ID, "event_type", it.ev.Type, "attempt", it.ev.Attempt)
	if it.a.Replays > 0 {
		it.logger = it.logger.With("replays", it.a.Replays, "origin", string(it.a.Origin))
	}
	if it.a.Origin == broker.DeadLettered {
		it.logger = it.logger.With("dead_letter_reason", it.a.DeathReason)
	}
	return it.logger
}

func (c *Consumer) observe(it *item, result Result) {
	if c.cfg.Observer != nil {
		c.cfg.Observer.Observe(Outcome{
			EventType: it.ev.Type, Result: result, Handled: it.handled, Decision: it.dec, Cause: it.cause, Attempt: it.ev.Attempt,
			Origin: it.a.Origin, Duration: time.Since(it.start),
		})
	}
}

// deliver handles a batch of one lane to its end, through the batch
// handler when batch is set and else through the Handler (a batch of
// one). The events the handler committed are acked (ackApplied); each
// failed one goes to retry alone and is acked alone once its copy is
// confirmed, before that ack; those that failed for an outage stay
// unacked and are tried again, together, once the database answers,
// without spending an attempt. What is still open when stop comes, or
// when work ends, is left for the broker to redeliver.
func (c *Consumer) deliver(stop, work context.Context, l *lane, all []*item, batch bool) {
	h := c.single
	if batch {
		h = c.batch
	}
	defer func() {
		// A delivery of the batch still open is left for redelivery: the
		// lane's later acks must not cover it.
		for _, it := range all {
			if it.state != settled {
				l.clean = false
			}
		}
	}()
	pending := all
	drop := func(items []*item) {
		for _, it := range items {
			c.observe(it, Dropped)
		}
	}
	for {
		if c.gate.wait(stop) != nil {
			drop(pending)
			return
		}
		evs := make([]Delivery, len(pending))
		for i, it := range pending {
			it.handled = ""
			evs[i] = it.ev
		}
		errs, err := h.HandleBatch(work, evs)
		if err == nil && len(errs) != len(pending) {
			err = fmt.Errorf("consumer: handler returned %d results for %d events", len(errs), len(pending))
		}
		if err != nil && batch {
			switch {
			case work.Err() != nil:
				drop(pending) // nothing committed; the broker redelivers
				return
			case failure.Of(err) == failure.Outage:
				if !c.outage(stop, c.logger, err) {
					drop(pending)
					return
				}
				continue
			}
			// Nothing was committed and waiting will not help: each event
			// alone through the Handler finds the one to blame.
			c.logger.Warn("batch failed as a whole; handling its events one at a time", "events", len(pending), "error", err)
			for _, it := range pending {
				c.deliver(stop, work, l, []*item{it}, false)
			}
			return
		}
		if err != nil {
			// The Handler's batch of one: the call's error is its event's.
			errs = make([]error, len(pending))
			for i := range errs {
				errs[i] = err
			}
		}
		var outage []*item
		var outageErr error
		for i, it := range pending {
			switch e := errs[i]; {
			case e == nil:
				it.state = applied
			case work.Err() != nil:
				// The channel is gone or the shutdown bound passed: the
				// broker redelivers; publishing a retry now would
				// duplicate.
				c.observe(it, Dropped)
			case failure.Of(e) == failure.Outage:
				outage, outageErr = append(outage, it), e
			default:
				c.fail(stop, work, it, e)
			}
		}
		c.ackApplied(l, all)
		if len(outage) == 0 {
			return
		}
		pending = outage
		logger := c.logger
		if len(all) == 1 {
			logger = c.log(all[0])
		}
		if !c.outage(stop, logger, outageErr) {
			drop(pending)
			return
		}
	}
}

// fail gives a failed delivery to Failures (a delay tier or the DLQ) and acks
// it alone once the copy is confirmed (it.state settled); until then it
// holds it unacked, and leaves it so when stop comes.
func (c *Consumer) fail(stop, work context.Context, it *item, err error) {
	logger := c.log(it)
	for n := 0; ; n++ {
		var ferr error
		it.dec, ferr = c.failures.Fail(work, it.d, err)
		it.cause = err
		if ferr == nil {
			c.ack(it)
			if it.dec.Parked {
				logger.Warn("event parked in the DLQ", "class", string(it.dec.Class), "attempts", it.dec.Attempt, "error", err)
				c.observe(it, Parked)
			} else {
				logger.Info("event scheduled for retry", "tier", it.dec.Tier, "attempts", it.dec.Attempt, "error", err)
				c.observe(it, Retried)
			}
			return
		}
		wait := retry.Backoff(n, c.cfg.RepublishMin, c.cfg.RepublishMax, c.cfg.Jitter, c.cfg.Rand)
		logger.Warn("failed event not confirmed in a tier or the DLQ; holding it unacked", "error", ferr, "retry_in", wait.String())
		if pause.For(stop, wait) != nil || work.Err() != nil {
			c.observe(it, Dropped)
			return
		}
	}
}

// ack acks it alone: it is settled.
func (c *Consumer) ack(it *item) {
	it.state = settled
	if err := it.d.Ack(false); err != nil {
		c.log(it).Warn("ack failed; the broker will redeliver", "error", err)
	}
}

// ackApplied acks the applied deliveries of a batch (all, in the lane's
// delivery-tag order): one multiple ack for the highest of them below the
// first delivery still open, when the lane's deliveries before the batch
// are all settled; those above an open one alone. A multiple ack covers
// every unacked delivery of its channel up to its tag, and the lane's
// channel carries this worker's deliveries only: below that tag they are
// all this batch's applied ones, or settled already (a failed event acked
// alone after its copy's confirm). A lone applied delivery is acked
// alone.
func (c *Consumer) ackApplied(l *lane, all []*item) {
	var below []*item
	gap := !l.clean
	for _, it := range all {
		switch {
		case it.state == open:
			gap = true
		case it.state != applied:
		case gap:
			c.ack(it)
			c.observe(it, Acked)
		default:
			below = append(below, it)
		}
	}
	if len(below) == 0 {
		return
	}
	last := below[len(below)-1]
	if err := last.d.Ack(len(below) > 1); err != nil {
		c.logger.Warn("ack failed; the broker will redeliver", "events", len(below), "error", err)
	}
	for _, it := range below {
		it.state = settled
		c.observe(it, Acked)
	}
}
