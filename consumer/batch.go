package consumer

import (
	"context"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/failure"
)

// batchWorker collects batches and handles them until the stream ends or
// stop. A batch being collected when stop comes is left unacked: the
// broker redelivers it when the channel closes.
func (c *Consumer) batchWorker(stop, work context.Context, deliveries <-chan amqp.Delivery) {
	for {
		batch, more := c.collect(stop, deliveries)
		if len(batch) > 0 {
			c.deliverBatch(stop, work, batch)
		}
		if !more {
			return
		}
	}
}

// Prefetch is the prefetch count of a Consumer's channel, the unacked
// deliveries the broker sends ahead: two batches per worker, one in hand
// and one ready. With only the one in hand, a worker that acked its batch
// found the replacements still on their way and took a part of a batch
// (11 events of 16 on average in the processing benchmark, 14 with two).
func Prefetch(concurrency, batchSize int) int { return 2 * concurrency * max(batchSize, 1) }

func (c *Consumer) prefetch() int { return Prefetch(c.cfg.Concurrency, c.cfg.BatchSize) }

// relay copies deliveries into a channel buffered to the prefetch, so
// that "already delivered" means what the broker sent: amqp091-go hands
// deliveries over an unbuffered channel from a goroutine that is rarely
// parked on the send when a worker looks again, so collect without a
// BatchWait saw batches of one. The buffer never fills (the broker sends
// at most the prefetch unacked), and what is in it when stop comes is
// left unacked, for redelivery, like what amqp091-go still holds. The
// relay ends, closing its channel, when the stream ends or stop.
func (c *Consumer) relay(wg *sync.WaitGroup, stop context.Context, in <-chan amqp.Delivery) <-chan amqp.Delivery {
	out := make(chan amqp.Delivery, c.prefetch())
	wg.Go(func() {
		defer close(out)
		for {
			select {
			case <-stop.Done():
				return
			case d, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- d:
				case <-stop.Done():
					return
				}
			}
		}
	})
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

// deliverBatch handles a batch to its end: the events the batch handler
// committed are acked; each failed one goes to retry alone; those that
// failed for an outage are retried, as a batch, once the database answers
// again, without spending an attempt.
func (c *Consumer) deliverBatch(stop, work context.Context, ds []amqp.Delivery) {
	start := time.Now()
	pending := make([]*item, len(ds))
	for i, d := range ds {
		pending[i] = c.newItem(d, start)
	}
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
				c.deliver(stop, work, it.d)
			}
			return
		}
		var outage []*item
		var outageErr error
		for i, it := range pending {
			switch e := errs[i]; {
			case e == nil:
				c.ack(it.logger, it.d)
				c.observe(it, Acked)
			case work.Err() != nil:
				c.observe(it, Dropped)
			case failure.Of(e) == failure.Outage:
				outage, outageErr = append(outage, it), e
			default:
				c.fail(stop, work, it, e)
			}
		}
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
