package consumer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/verify"
)

// The delivery loop's gate, ack and batch logic in-process: a fake
// channel feeds each worker's lane and records how its deliveries are
// settled, under testing/synctest, so that the loop's waits (a batch's
// wait, the outage backoff) take no time and "nothing happened" is
// observed once every goroutine is blocked (synctest.Wait), not slept
// for. The same loop on the real broker: the other tests of this package.

// loopSecret signs the fake channel's events.
const loopSecret = "whsec_loop_test"

// loopCreated is the events' created; the verifier's clock is an hour
// later (the bubble's clock starts in 2000).
var loopCreated = time.Unix(1700000000, 0)

// fakeChannel stands for one worker's *amqp.Channel: it feeds the lane
// and settles its deliveries (amqp.Acknowledger), recording each
// settlement in order.
type fakeChannel struct {
	deliveries chan amqp.Delivery
	next       uint64
	mu         sync.Mutex
	settled    []string
}

func newFakeChannel() *fakeChannel {
	return &fakeChannel{deliveries: make(chan amqp.Delivery, 64)}
}

func (f *fakeChannel) Ack(tag uint64, multiple bool) error {
	f.record("ack", tag, multiple)
	return nil
}

func (f *fakeChannel) Nack(tag uint64, multiple, _ bool) error {
	f.record("nack", tag, multiple)
	return nil
}

func (f *fakeChannel) Reject(tag uint64, _ bool) error {
	f.record("reject", tag, false)
	return nil
}

func (f *fakeChannel) record(op string, tag uint64, multiple bool) {
	s := fmt.Sprintf("%s %d", op, tag)
	if multiple {
		s += " multiple"
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.settled = append(f.settled, s)
}

// log is every settlement so far, in order ("ack 4 multiple").
func (f *fakeChannel) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.settled)
}

// send delivers the events ids with the next delivery tags, each signed
// as the api forwards it.
func (f *fakeChannel) send(ids ...string) {
	for _, id := range ids {
		body := fmt.Appendf(nil, `{"id":%q,"object":"event","type":"customer.created","created":%d,"data":{"object":{"id":"cus_1","object":"customer"}}}`, id, loopCreated.Unix())
		sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: loopSecret, Timestamp: loopCreated}).Header
		f.next++
		f.deliveries <- amqp.Delivery{
			Acknowledger: f, DeliveryTag: f.next, MessageId: id, Type: "customer.created",
			Headers: amqp.Table{broker.HeaderStripeSignature: sig}, Body: body,
		}
	}
}

// script is the handling the test gives each event: its n-th call (from
// 1) returns the error, or panics.
type script func(id string, n int) error

// loop runs Consumer workers on fake channels inside a synctest bubble.
type loop struct {
	t       *testing.T
	c       *Consumer
	mu      sync.Mutex
	calls   map[string]int
	batches [][]string // the ids of each call of the handler (batch or single)
	failed  []string   // the ids given to Failures, in order
	results map[Result]int
	pings   atomic.Int64
	down    atomic.Bool // Ping fails while set
	stop    context.CancelFunc
	work    context.CancelFunc
	wg      sync.WaitGroup
}

// startLoop starts one worker per channel with the Handler (and, when
// cfg.BatchSize > 1, the batch handler) running s. The test must call
// end before its bubble returns.
func startLoop(t *testing.T, cfg Config, s script, chans ...*fakeChannel) *loop {
	t.Helper()
	l := &loop{t: t, calls: map[string]int{}, results: map[Result]int{}}
	handle := func(ds []Delivery) []error {
		l.mu.Lock()
		ids := make([]string, len(ds))
		ns := make([]int, len(ds))
		for i, d := range ds {
			ids[i] = d.ID
			l.calls[d.ID]++
			ns[i] = l.calls[d.ID]
		}
		l.batches = append(l.batches, ids)
		l.mu.Unlock()
		errs := make([]error, len(ds))
		for i := range ds {
			errs[i] = s(ids[i], ns[i])
		}
		return errs
	}
	v, err := verify.New(verify.Config{Secrets: []string{loopSecret}, Now: func() time.Time { return loopCreated.Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Queue, cfg.Concurrency, cfg.ShutdownTimeout, cfg.Verifier = "work", len(chans), time.Second, v
	cfg.Observer = l
	if cfg.Ping == nil {
		cfg.Ping = func(context.Context) error {
			l.pings.Add(1)
			if l.down.Load() {
				return errors.New("database down")
			}
			return nil
		}
	}
	if cfg.BatchSize > 1 {
		cfg.Batch = BatchHandlerFunc(func(_ context.Context, ds []Delivery) ([]error, error) { return handle(ds), nil })
	}
	single := HandlerFunc(func(_ context.Context, d Delivery) error { return handle([]Delivery{d})[0] })
	l.c, err = New(cfg, nil, noConnector{}, single, (*loopFailures)(l))
	if err != nil {
		t.Fatal(err)
	}
	stop, cancelStop := context.WithCancel(context.Background())
	work, cancelWork := context.WithCancel(context.Background())
	l.stop, l.work = cancelStop, cancelWork
	for _, ch := range chans {
		ln := &lane{deliveries: ch.deliveries, clean: true}
		l.wg.Go(func() { l.c.worker(stop, work, ln) })
	}
	return l
}

// end stops the workers as a shutdown does and waits for them.
func (l *loop) end() {
	l.stop()
	l.work()
	l.wg.Wait()
}

func (l *loop) Observe(o Outcome) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.results[o.Result]++
}

func (l *loop) snapshot() (calls map[string]int, batches [][]string, failed []string, results map[Result]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return maps.Clone(l.calls), slices.Clone(l.batches), slices.Clone(l.failed), maps.Clone(l.results)
}

// loopFailures is the loop's Failures: every failure is parked and
// confirmed at once (where it goes is dlq.Router's, tested with it).
type loopFailures loop

func (f *loopFailures) Attempt(amqp.Delivery) broker.Attempt {
	return broker.Attempt{Origin: broker.Fresh}
}

func (f *loopFailures) Fail(_ context.Context, d amqp.Delivery, cause error) (failure.Decision, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failed = append(f.failed, d.MessageId)
	return failure.Decision{Class: failure.Of(cause), Parked: true, Tier: -1, Attempt: 1}, nil
}

// noConnector is New's connection; the workers here never open one.
type noConnector struct{}

func (noConnector) Await(context.Context) (*amqp.Connection, error) {
	return nil, errors.New("no connection in-process")
}

func ok(string, int) error { return nil }

func equal[T comparable](t *testing.T, what string, got, want []T) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestLoop(t *testing.T) {
	t.Parallel()

	t.Run("BatchOfOneAckedAlone", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := newFakeChannel()
			ch.send("evt_1", "evt_2", "evt_3")
			l := startLoop(t, Config{}, ok, ch)
			defer l.end()
			synctest.Wait()
			_, batches, failed, results := l.snapshot()
			equal(t, "settled", ch.log(), []string{"ack 1", "ack 2", "ack 3"})
			if len(batches) != 3 || len(failed) != 0 || results[Acked] != 3 {
				t.Errorf("handled %q, failed %q, results %v; want three batches of one acked", batches, failed, results)
			}
		})
	})

	t.Run("BatchAckedWithOneMultipleAck", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := newFakeChannel()
			ch.send("evt_1", "evt_2", "evt_3", "evt_4")
			l := startLoop(t, Config{BatchSize: 4}, ok, ch)
			defer l.end()
			synctest.Wait()
			_, batches, _, results := l.snapshot()
			equal(t, "settled", ch.log(), []string{"ack 4 multiple"})
			if len(batches) != 1 || len(batches[0]) != 4 || results[Acked] != 4 {
				t.Errorf("handled %q, results %v; want one batch of four, acked", batches, results)
			}
		})
	})

	t.Run("BatchWaitCollectsWhatArrivesWithinIt", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := newFakeChannel()
			l := startLoop(t, Config{BatchSize: 4, BatchWait: time.Second}, ok, ch)
			defer l.end()
			ch.send("evt_1")
			synctest.Wait()
			if _, batches, _, _ := l.snapshot(); len(batches) != 0 {
				t.Fatalf("handled %q before the batch wait ended", batches)
			}
			time.Sleep(time.Second / 2)
			ch.send("evt_2", "evt_3")
			time.Sleep(time.Second/2 + time.Millisecond)
			synctest.Wait()
			_, batches, _, _ := l.snapshot()
			equal(t, "settled", ch.log(), []string{"ack 3 multiple"})
			if len(batches) != 1 || len(batches[0]) != 3 {
				t.Errorf("handled %q, want one batch of the three that came within the wait", batches)
			}
		})
	})

	t.Run("FailedEventAckedAloneBeforeTheBatch", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := newFakeChannel()
			ch.send("evt_1", "evt_2", "evt_3", "evt_4")
			l := startLoop(t, Config{BatchSize: 4}, func(id string, _ int) error {
				if id == "evt_2" {
					return failure.MarkPermanent(errors.New("bad event"))
				}
				return nil
			}, ch)
			defer l.end()
			synctest.Wait()
			_, _, failed, results := l.snapshot()
			// The failed event's copy is confirmed and it is acked before
			// the multiple ack covers it.
			equal(t, "settled", ch.log(), []string{"ack 2", "ack 4 multiple"})
			equal(t, "failed", failed, []string{"evt_2"})
			if results[Parked] != 1 || results[Acked] != 3 {
				t.Errorf("results %v, want 1 parked and 3 acked", results)
			}
		})
	})

	t.Run("OutageHoldsEveryWorkerAtTheGate", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			a, b := newFakeChannel(), newFakeChannel()
			var l *loop
			l = startLoop(t, Config{OutageMin: 100 * time.Millisecond, OutageMax: time.Second}, func(id string, _ int) error {
				if l.down.Load() {
					return failure.MarkOutage(errors.New("database down"))
				}
				return nil
			}, a, b)
			defer l.end()
			l.down.Store(true)
			a.send("evt_1")
			synctest.Wait()
			if !l.c.Paused() {
				t.Fatal("not paused after an outage")
			}
			b.send("evt_2")
			time.Sleep(time.Minute) // many probes, all failing
			synctest.Wait()
			calls, _, failed, _ := l.snapshot()
			if calls["evt_1"] != 1 || calls["evt_2"] != 0 || len(a.log())+len(b.log()) != 0 || len(failed) != 0 {
				t.Fatalf("during the outage: calls %v, settled %q %q, failed %q; want evt_1 tried once, evt_2 held at the gate, nothing settled", calls, a.log(), b.log(), failed)
			}
			if n := l.pings.Load(); n < 10 {
				t.Errorf("%d probes in a minute of outage with a backoff capped at 1s", n)
			}
			l.down.Store(false)
			time.Sleep(time.Second)
			synctest.Wait()
			calls, _, failed, results := l.snapshot()
			equal(t, "lane a settled", a.log(), []string{"ack 1"})
			equal(t, "lane b settled", b.log(), []string{"ack 1"})
			if calls["evt_1"] != 2 || calls["evt_2"] != 1 || len(failed) != 0 || results[Acked] != 2 || l.c.Paused() {
				t.Errorf("after the outage: calls %v, failed %q, results %v, paused %v; want both acked, no attempt spent", calls, failed, results, l.c.Paused())
			}
		})
	})

	t.Run("OutageInABatchRetriesOnlyItsEvents", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := newFakeChannel()
			ch.send("evt_1", "evt_2", "evt_3")
			l := startLoop(t, Config{BatchSize: 3}, func(id string, n int) error {
				if id == "evt_2" && n == 1 {
					return failure.MarkOutage(errors.New("database down"))
				}
				return nil
			}, ch)
			defer l.end()
			synctest.Wait()
			time.Sleep(DefaultOutageMax)
			synctest.Wait()
			_, batches, failed, results := l.snapshot()
			want := [][]string{{"evt_1", "evt_2", "evt_3"}, {"evt_2"}}
			if !slices.EqualFunc(batches, want, slices.Equal) {
				t.Errorf("handled %q, want %q", batches, want)
			}
			// evt_3, above the one held open, is acked alone; evt_1 below
			// it too (one applied); evt_2 once the database answers.
			equal(t, "settled", ch.log(), []string{"ack 3", "ack 1", "ack 2"})
			if len(failed) != 0 || results[Acked] != 3 {
				t.Errorf("failed %q, results %v; want all three acked, no attempt spent", failed, results)
			}
		})
	})

	t.Run("BatchFailingAsAWholeIsHandledOneByOne", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := newFakeChannel()
			ch.send("evt_1", "evt_2", "evt_3")
			l := startLoop(t, Config{BatchSize: 3}, func(id string, n int) error {
				switch {
				case n == 1:
					panic("batch handler bug") // the batch's first call of each id
				case id == "evt_2":
					return failure.MarkPermanent(errors.New("bad event"))
				}
				return nil
			}, ch)
			defer l.end()
			synctest.Wait()
			_, batches, failed, results := l.snapshot()
			want := [][]string{{"evt_1", "evt_2", "evt_3"}, {"evt_1"}, {"evt_2"}, {"evt_3"}}
			if !slices.EqualFunc(batches, want, slices.Equal) {
				t.Errorf("handled %q, want %q", batches, want)
			}
			equal(t, "settled", ch.log(), []string{"ack 1", "ack 2", "ack 3"})
			equal(t, "failed", failed, []string{"evt_2"})
			if results[Acked] != 2 || results[Parked] != 1 {
				t.Errorf("results %v, want 2 acked and 1 parked", results)
			}
		})
	})

	t.Run("LoneEventOfABatchFailingAsAWholeTriesTheHandler", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := newFakeChannel()
			ch.send("evt_1")
			l := startLoop(t, Config{BatchSize: 3}, func(_ string, n int) error {
				if n == 1 {
					panic("batch handler bug")
				}
				return nil
			}, ch)
			defer l.end()
			synctest.Wait()
			_, batches, failed, _ := l.snapshot()
			equal(t, "settled", ch.log(), []string{"ack 1"})
			if len(batches) != 2 || len(failed) != 0 {
				t.Errorf("handled %q, failed %q; want the batch handler, then the Handler, and no failure", batches, failed)
			}
		})
	})

	t.Run("PanicParksABatchOfOneOnce", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := newFakeChannel()
			ch.send("evt_1")
			l := startLoop(t, Config{}, func(string, int) error { panic("handler bug") }, ch)
			defer l.end()
			synctest.Wait()
			calls, _, failed, _ := l.snapshot()
			equal(t, "settled", ch.log(), []string{"ack 1"})
			equal(t, "failed", failed, []string{"evt_1"})
			if calls["evt_1"] != 1 {
				t.Errorf("handled evt_1 %d times, want once", calls["evt_1"])
			}
		})
	})

	t.Run("StopDuringAnOutageLeavesTheEventUnacked", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := newFakeChannel()
			ch.send("evt_1", "evt_2")
			l := startLoop(t, Config{}, func(string, int) error {
				return failure.MarkOutage(errors.New("database down"))
			}, ch)
			l.down.Store(true)
			synctest.Wait()
			l.end()
			calls, _, failed, results := l.snapshot()
			if len(ch.log()) != 0 || len(failed) != 0 || calls["evt_2"] != 0 || results[Dropped] != 1 {
				t.Errorf("settled %q, failed %q, calls %v, results %v; want evt_1 dropped unacked, evt_2 untouched", ch.log(), failed, calls, results)
			}
		})
	})

	t.Run("LostChannelDropsWithoutARetry", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ch := newFakeChannel()
			ch.send("evt_1")
			block := make(chan struct{})
			l := startLoop(t, Config{}, func(string, int) error {
				<-block // handling when the channel is lost
				return errors.New("connection reset")
			}, ch)
			synctest.Wait()
			l.work() // the channel is gone: the handler's results cannot be acked
			close(block)
			l.end()
			_, _, failed, results := l.snapshot()
			if len(ch.log()) != 0 || len(failed) != 0 || results[Dropped] != 1 {
				t.Errorf("settled %q, failed %q, results %v; want dropped for redelivery, no copy published", ch.log(), failed, results)
			}
		})
	})
}
