package consumer

import (
	"context"
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/failure"
)

// batchWorker collects batches from its lane and handles them until the
// stream ends or stop. A batch being collected when stop comes is left
// unacked: the broker redelivers it when the channel closes.
func (c *Consumer) batchWorker(stop, work context.Context, l *lane) {
	for {
		batch, more := c.collect(stop, l.deliveries)
		if len(batch) > 0 {
			c.deliverBatch(stop, work, l, batch)
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
	if c.cfg.BatchWait > 0 {
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

// deliverBatch handles a batch of one lane to its end: the events the
// batch handler committed are acked (ackApplied: one multiple ack); each
// failed one goes to retry alone and is acked alone once its copy is
// confirmed, before that ack; those that failed for an outage stay
// unacked and are retried, as a batch, once the database answers again,
// without spending an attempt.
func (c *Consumer) deliverBatch(stop, work context.Context, l *lane, ds []amqp.Delivery) {
	start := time.Now()
	all := make([]*item, len(ds))
	for i, d := range ds {
		all[i] = c.newItem(d, start)
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
		errs, err := c.batch.HandleBatch(work, evs)
		if err == nil && len(errs) != len(pending) {
			err = fmt.Errorf("consumer: batch handler returned %d results for %d events", len(errs), len(pending))
		}
		if err != nil {
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
				c.deliver(stop, work, it)
			}
			return
		}
		var outage []*item
		var outageErr error
		for i, it := range pending {
			switch e := errs[i]; {
			case e == nil:
				it.state = applied
			case work.Err() != nil:
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
		if !c.outage(stop, c.logger, outageErr) {
			drop(pending)
			return
		}
	}
}

// ackApplied acks the applied deliveries of a batch (all, in the lane's
// delivery-tag order): one multiple ack for the highest of them below the
// first delivery still open, when the lane's deliveries before the batch
// are all settled; those above an open one alone. A multiple ack covers
// every unacked delivery of its channel up to its tag, and the lane's
// channel carries this worker's deliveries only: below that tag they are
// all this batch's applied ones, or settled already (a failed event acked
// alone after its copy's confirm).
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
	if err := last.d.Ack(true); err != nil {
		c.logger.Warn("ack failed; the broker will redeliver", "events", len(below), "error", err)
	}
	for _, it := range below {
		it.state = settled
		c.observe(it, Acked)
	}
}
