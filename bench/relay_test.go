package bench_test

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/relay"
	"github.com/stripe-billing/billing/relay/relaytest"
)

// relayCount is a relay.Observer that closes done once n changes are
// published.
type relayCount struct {
	n, published int64
	done         chan struct{}
	closed       atomic.Bool
}

func (c *relayCount) ChangesPublished(n int) {
	if atomic.AddInt64(&c.published, int64(n)) >= c.n && c.closed.CompareAndSwap(false, true) {
		close(c.done)
	}
}

func (c *relayCount) ChangeBacklog(int64, time.Duration) {}

// relayRun fills a fresh outbox with n changes, two of each object side
// by side (a status and an amount, as one event makes), and measures the
// relay publishing them all to <ns>.changes, bound to one quorum queue,
// from its start to the last stamp.
func relayRun(tb testing.TB, r *rabbit, n int) (bench.Stats, error) {
	tb.Helper()
	cfg := settings(tb)
	store := openStore(tb, testenv.Database(tb), cfg)
	defer store.Close()
	var out relaytest.Outbox
	const perStatement = 250
	for i := 0; i < n/2; i += perStatement {
		objects := make([]string, 0, perStatement)
		for j := i; j < min(i+perStatement, n/2); j++ {
			objects = append(objects, fmt.Sprintf("sub_relay_%d", j))
		}
		out.Write(tb, store.DB(), 2, objects...)
	}
	conn := broker.NewConn(broker.ConnConfig{URL: testenv.AMQPURL(), Name: "bench relay", Topology: r.topo,
		Backoff: func(int) time.Duration { return 100 * time.Millisecond }, DialTimeout: 5 * time.Second}, quietLogger())
	count := &relayCount{n: int64(out.Written()), done: make(chan struct{})}
	rl, err := relay.New(relay.Config{Exchange: r.topo.Changes}, quietLogger(), store, conn, count)
	if err != nil {
		return bench.Stats{}, err
	}
	settle(tb)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	start := time.Now()
	go func() { ran <- rl.Run(ctx) }()
	select {
	case <-count.done:
	case err = <-ran:
		cancel()
		return bench.Stats{}, fmt.Errorf("relay ended early: %v", err)
	case <-time.After(5 * time.Minute):
		err = fmt.Errorf("relay: %d of %d changes published in 5 minutes", atomic.LoadInt64(&count.published), count.n)
	}
	s := bench.Stats{N: int(count.n), Elapsed: time.Since(start)}
	cancel()
	if rerr := <-ran; err == nil {
		err = rerr
	}
	return s, err
}

// relayRows measures the relay's rate beside the worker's processing rate
// (batch cfg.WorkerBatchSize), the runs alternating round after round,
// the medians kept: the relay must publish changes at least as fast as
// the worker makes events.
func relayRows(t *testing.T, rounds, changes, events int) bench.Row {
	t.Helper()
	cfg := settings(t)
	r := newRabbit(t)
	queue := r.topo.Namespace + ".changes.bench"
	if _, err := r.ch.QueueDeclare(queue, true, false, false, false, amqp.Table{amqp.QueueTypeArg: amqp.QueueTypeQuorum}); err != nil {
		t.Fatal(err)
	}
	if err := r.ch.QueueBind(queue, "#", r.topo.Changes, false, nil); err != nil {
		t.Fatal(err)
	}
	must := mustStats(t)
	var published, processed []bench.Stats
	for round := range rounds {
		bodies := lifecycleBodies(events, time.Now().Add(-time.Duration(round+1)*17*time.Minute))
		processed = append(processed, must(processing(t, bodies, cfg.WorkerBatchSize)))
		published = append(published, must(relayRun(t, r, changes)))
		if _, err := r.ch.QueuePurge(queue, false); err != nil {
			t.Fatal(err)
		}
	}
	p, w := bench.Median(published), bench.Median(processed)
	ratio := p.Rate() / w.Rate()
	return bench.Row{Part: "relay", What: fmt.Sprintf("%d changes in the outbox (two per object, side by side) → relay → `<ns>.changes` → a quorum queue, one confirm channel, %d-row batches", changes, relay.DefaultBatch),
		Figure: bench.PerSecond(p.Rate(), "change"), Limit: fmt.Sprintf("%s processing (%d events, batch %d)", bench.PerSecond(w.Rate(), "event"), events, cfg.WorkerBatchSize),
		Ratio: fmt.Sprintf("%.2f×", ratio), Target: "≥ 1.00×", Verdict: bench.AtLeast(ratio, 1, "%.2f×")}
}

// TestBenchRelay measures the relay's row of the table alone
// (BILLING_BENCH=1; BENCH_ROUNDS, BENCH_EVENTS and BENCH_RELAY_CHANGES).
func TestBenchRelay(t *testing.T) {
	if os.Getenv("BILLING_BENCH") != "1" {
		t.Skip("BILLING_BENCH=1 runs the relay's row of the benchmark table")
	}
	r := relayRows(t, testenv.EnvInt(t, "BENCH_ROUNDS", 3), testenv.EnvInt(t, "BENCH_RELAY_CHANGES", 20_000), testenv.EnvInt(t, "BENCH_EVENTS", 19*200))
	t.Logf("%s | %s | %s | %s | %s | %s", r.Part, r.What, r.Figure, r.Limit, r.Ratio, r.Verdict)
}
