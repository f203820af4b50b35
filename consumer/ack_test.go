package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
)

// A batch's applied events are acked with one multiple ack: every unacked
// delivery of the worker's channel up to the highest tag. These tests put
// a delivery that must stay unacked below (or beside) that tag, stop the
// consumer, and look for it back in the work queue: had a multiple ack
// covered it, the broker would have nothing to hand back.

// ackEvents publishes n events named prefix0..prefixN-1 and returns their
// ids in order: one worker's channel takes them in that order.
func ackEvents(h *harness, prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%d", prefix, i)
		h.publish(ids[i], "invoice.paid", eventJSON(ids[i], "invoice.paid"))
	}
	return ids
}

// returned takes every message back in the work queue (acked) and returns
// their ids, sorted, once there are want of them.
func (h *harness) returned(want int) []string {
	h.t.Helper()
	testenv.Eventually(h.t, 5*time.Second, func() bool { return h.ready(h.topo.Work) >= want }, "%d events back in the work queue (now %d)", want, h.ready(h.topo.Work))
	var ids []string
	for {
		d, ok, err := h.ch.Get(h.topo.Work, false)
		if err != nil {
			h.t.Fatalf("get: %v", err)
		}
		if !ok {
			break
		}
		_ = d.Ack(false)
		ids = append(ids, d.MessageId)
	}
	slices.Sort(ids)
	return ids
}

// handledOnce fails the test when an event reached the batch handler more
// than once: a redelivery after a channel the broker closed (an ack of an
// unknown or already acked tag does that).
func handledOnce(t *testing.T, rec *batches) {
	t.Helper()
	_, att := rec.get()
	for id, as := range att {
		if len(as) != 1 {
			t.Errorf("%s handled %d times (attempts %v), want once", id, len(as), as)
		}
	}
}

// TestBatchAckLeavesOutageHeldEventsUnacked: two events of a batch of 8
// fail for an outage that does not end; the other six are acked, the
// two are held unacked, and stopping the consumer hands them back.
func TestBatchAckLeavesOutageHeldEventsUnacked(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 5)
	ids := ackEvents(h, "evt_oh", 8)
	held := map[string]bool{ids[2]: true, ids[5]: true}
	handler := consumer.BatchHandlerFunc(func(ctx context.Context, ds []consumer.Delivery) ([]error, error) {
		errs := make([]error, len(ds))
		for i, d := range ds {
			if held[d.ID] {
				errs[i] = failure.MarkOutage(errors.New("test: database unreachable"))
			}
		}
		return errs, nil
	})
	outcomes, rec := &counter{}, &batches{}
	r := h.start(consumer.HandlerFunc(func(context.Context, consumer.Delivery) error { return errors.New("single path used") }),
		h.router(nil), func(c *consumer.Config) {
			batched(8, 500*time.Millisecond, rec.wrap(handler), outcomes)(c)
			c.Ping = func(context.Context) error { return errors.New("test: still down") }
			c.ShutdownTimeout = 300 * time.Millisecond
		})
	testenv.Eventually(t, 5*time.Second, func() bool { return outcomes.get("acked") == 6 }, "6 events acked (now %d)", outcomes.get("acked"))
	testenv.Eventually(t, 5*time.Second, r.c.Paused, "the worker pauses")
	seen, _ := rec.get()
	if len(seen) != 1 || len(seen[0]) != 8 {
		t.Fatalf("batches %v, want the 8 events in one", seen)
	}
	r.stop(t, 5*time.Second)
	if got, want := h.returned(2), []string{ids[2], ids[5]}; !reflect.DeepEqual(got, want) {
		t.Errorf("back in the work queue: %v, want the outage-held %v", got, want)
	}
	if n := outcomes.get("acked"); n != 6 {
		t.Errorf("%d acked, want 6", n)
	}
	handledOnce(t, rec)
}

// holdingFailures is a Failures that holds the copy of one event
// unconfirmed until release is closed, then hands it to the real router.
type holdingFailures struct {
	consumer.Failures
	id      string
	release chan struct{}
	mu      sync.Mutex
	tries   int
}

func (f *holdingFailures) Fail(ctx context.Context, d amqp.Delivery, cause error) (failure.Decision, error) {
	if d.MessageId == f.id {
		f.mu.Lock()
		f.tries++
		f.mu.Unlock()
		select {
		case <-f.release:
		default:
			return failure.Decision{}, errors.New("test: copy not confirmed")
		}
	}
	return f.Failures.Fail(ctx, d, cause)
}

func (f *holdingFailures) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries
}

// failingBatch fails ids[3] at its first attempt (transient) and applies
// every other event.
func failingBatch(id string) consumer.BatchHandler {
	return consumer.BatchHandlerFunc(func(ctx context.Context, ds []consumer.Delivery) ([]error, error) {
		errs := make([]error, len(ds))
		for i, d := range ds {
			if d.ID == id && d.Attempt == 1 {
				errs[i] = errors.New("test: transient")
			}
		}
		return errs, nil
	})
}

// TestBatchAckNeverCoversAnUnconfirmedCopy: one event of a batch of 8
// fails and its copy to the delay tier is never confirmed. The events
// above it in the channel are acked at shutdown, the failed one is not:
// the broker hands it back, and the tier holds nothing.
func TestBatchAckNeverCoversAnUnconfirmedCopy(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 5)
	ids := ackEvents(h, "evt_uc", 8)
	f := &holdingFailures{Failures: h.router(nil), id: ids[3], release: make(chan struct{})}
	outcomes, rec := &counter{}, &batches{}
	r := h.start(consumer.HandlerFunc(func(context.Context, consumer.Delivery) error { return errors.New("single path used") }),
		f, func(c *consumer.Config) {
			batched(8, 500*time.Millisecond, rec.wrap(failingBatch(ids[3])), outcomes)(c)
			c.ShutdownTimeout = 2 * time.Second
		})
	testenv.Eventually(t, 5*time.Second, func() bool { return f.attempts() >= 3 }, "the copy tried 3 times (now %d)", f.attempts())
	r.stop(t, 5*time.Second)
	if got := h.returned(1); !reflect.DeepEqual(got, []string{ids[3]}) {
		t.Errorf("back in the work queue: %v, want the unconfirmed %s alone", got, ids[3])
	}
	if n := outcomes.get("acked"); n != 7 {
		t.Errorf("%d acked, want the 7 applied", n)
	}
	if n := outcomes.get("retried") + h.ready(h.topo.TierQueue(0)); n != 0 {
		t.Errorf("%d retried or in the tier, want none: its copy was never confirmed", n)
	}
	handledOnce(t, rec)
}

// TestBatchAckOfAFailedEventAfterItsCopy: the failed event's copy is
// confirmed late; it is then acked alone, before the batch's multiple
// ack covers its tag. Had the multiple ack come first, its own ack would
// name a tag already acked and the broker would close the channel.
func TestBatchAckOfAFailedEventAfterItsCopy(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 5)
	logs := &logRecords{}
	h.logger = slog.New(logs)
	ids := ackEvents(h, "evt_lc", 8)
	f := &holdingFailures{Failures: h.router(nil), id: ids[3], release: make(chan struct{})}
	outcomes, rec := &counter{}, &batches{}
	h.start(consumer.HandlerFunc(func(context.Context, consumer.Delivery) error { return errors.New("single path used") }),
		f, batched(8, 500*time.Millisecond, rec.wrap(failingBatch(ids[3])), outcomes))
	testenv.Eventually(t, 5*time.Second, func() bool { return f.attempts() >= 2 }, "the copy tried twice (now %d)", f.attempts())
	if n := outcomes.get("retried"); n != 0 {
		t.Errorf("%d retried while its copy is unconfirmed, want none yet", n)
	}
	close(f.release)
	testenv.Eventually(t, 5*time.Second, func() bool { return outcomes.get("acked") == 8 }, "all 8 acked (now %d): 7 at once, the retry later", outcomes.get("acked"))
	if n := outcomes.get("retried"); n != 1 {
		t.Errorf("%d retried, want 1", n)
	}
	if n := outcomes.get("dropped"); n != 0 {
		t.Errorf("%d dropped, want none: the channel must not have closed", n)
	}
	for _, r := range logs.find("consuming stopped; starting again") {
		t.Errorf("the session ended: %s", r["error"])
	}
	_, att := rec.get()
	for _, id := range ids {
		want := []int{1}
		if id == ids[3] {
			want = []int{1, 2}
		}
		if !reflect.DeepEqual(att[id], want) {
			t.Errorf("%s handled at attempts %v, want %v", id, att[id], want)
		}
	}
	if n := h.ready(h.topo.Work) + h.ready(h.topo.TierQueue(0)) + h.ready(h.topo.DLQ); n != 0 {
		t.Errorf("%d left in the work queue, the tier and the DLQ", n)
	}
}

// TestBatchAckLeavesTheNextBatchUnacked: the worker's channel already
// holds its next batch (the prefetch is two) when the first is acked; the
// multiple ack must stop at the first batch. The second is stuck in its
// handler until the shutdown bound, and comes back whole.
func TestBatchAckLeavesTheNextBatchUnacked(t *testing.T) {
	t.Parallel()
	h := setup(t, []time.Duration{100 * time.Millisecond}, 5)
	ids := ackEvents(h, "evt_nb", 8)
	var calls atomic.Int32
	handler := consumer.BatchHandlerFunc(func(ctx context.Context, ds []consumer.Delivery) ([]error, error) {
		if calls.Add(1) == 1 {
			return make([]error, len(ds)), nil
		}
		<-ctx.Done() // stuck until the shutdown bound
		return nil, ctx.Err()
	})
	outcomes, rec := &counter{}, &batches{}
	r := h.start(consumer.HandlerFunc(func(context.Context, consumer.Delivery) error { return errors.New("single path used") }),
		h.router(nil), func(c *consumer.Config) {
			batched(4, 500*time.Millisecond, rec.wrap(handler), outcomes)(c)
			c.ShutdownTimeout = 300 * time.Millisecond
		})
	testenv.Eventually(t, 5*time.Second, func() bool { return calls.Load() == 2 }, "the second batch in its handler")
	if n := outcomes.get("acked"); n != 4 {
		t.Errorf("%d acked before the second batch, want the first 4", n)
	}
	r.stop(t, 5*time.Second)
	if got := h.returned(4); !reflect.DeepEqual(got, ids[4:]) {
		t.Errorf("back in the work queue: %v, want the second batch %v", got, ids[4:])
	}
	seen, _ := rec.get()
	if len(seen) != 2 || !reflect.DeepEqual(seen[0], ids[:4]) || !reflect.DeepEqual(seen[1], ids[4:]) {
		t.Errorf("batches %v, want %v then %v", seen, ids[:4], ids[4:])
	}
	if n := h.ready(h.topo.TierQueue(0)) + h.ready(h.topo.DLQ); n != 0 {
		t.Errorf("%d in the tier and the DLQ, want none", n)
	}
}
