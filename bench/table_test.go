package bench_test

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/config"
	"github.com/stripe-billing/billing/internal/testenv"
)

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration", name, v)
	}
	return d
}

// TestBenchTable measures every figure beside its limit and prints the
// table of the README. It runs only when BILLING_BENCH=1 (`make bench`):
// it takes minutes and loads the whole machine. Knobs: BENCH_ROUNDS
// (each pair is measured this many times, alternating, and the median
// kept), BENCH_OPS (requests or messages per measurement), BENCH_EVENTS
// (events per processing run), BENCH_PEER_OPS (requests per peer
// measurement), BENCH_SCALE_OPS and BENCH_SCALE_EVENTS (the process
// scaling runs), BENCH_RENEWAL_INVOICES (the renewal day's invoices),
// BENCH_LEDGER_ROWS (the filled ledger's events), BENCH_RELAY_CHANGES
// (the relay's outbox),
// BENCH_E2E_DURATION and BENCH_E2E_RATE; backfillRows says the backfill
// rows' own.
func TestBenchTable(t *testing.T) {
	if os.Getenv("BILLING_BENCH") != "1" {
		t.Skip("BILLING_BENCH=1 runs the benchmark table (make bench)")
	}
	cfg := settings(t)
	rounds := testenv.EnvInt(t, "BENCH_ROUNDS", 3)
	ops := testenv.EnvInt(t, "BENCH_OPS", 4000)
	events := testenv.EnvInt(t, "BENCH_EVENTS", 19*200)
	must := mustStats(t)
	var rows []bench.Row
	add := func(r bench.Row) {
		rows = append(rows, r)
		t.Logf("%s | %s | %s | %s | %s", r.Part, r.What, r.Figure, r.Limit, r.Ratio)
	}

	// Limits and ingest: each pair alternates, round after round.
	body := invoiceEvent("table")
	r := newRabbit(t)
	apiURL := ingestServer(t, r)
	honestURL := honestServer(t, r)
	peerURL := peerServer(t)
	bareURL := serve(t, bareHandler())
	peerOps := testenv.EnvInt(t, "BENCH_PEER_OPS", ops/2)
	type ingestFigures struct{ confirm, async, bare, ingest, honest, peer bench.Stats }
	figures := map[int]ingestFigures{}
	for _, c := range concurrencies {
		client := httpClient(c)
		var confirm, async, bare, ingest, honest, peer []bench.Stats
		for round := range rounds {
			// Each of the compared runs starts on servers at rest.
			settle(t)
			confirm = append(confirm, must(rawPublish(r, body, c, ops, 1)))
			r.purge(t)
			reqs := signEvents("table", 64)
			settle(t)
			ingest = append(ingest, must(post(client, apiURL, reqs, c, ops)))
			r.purge(t)
			settle(t)
			honest = append(honest, must(post(client, honestURL, reqs, c, ops)))
			r.purge(t)
			peer = append(peer, must(post(client, peerURL, signDistinct(fmt.Sprintf("peer_%d_%d", c, round), peerOps), c, peerOps)))
			async = append(async, must(rawPublish(r, body, c, 4*ops, 256)))
			r.purge(t)
			bare = append(bare, must(post(client, bareURL, reqs, c, 4*ops)))
		}
		figures[c] = ingestFigures{bench.Median(confirm), bench.Median(async), bench.Median(bare), bench.Median(ingest), bench.Median(honest), bench.Median(peer)}
	}
	for _, c := range concurrencies {
		f := figures[c]
		add(bench.Row{Part: "limit", What: fmt.Sprintf("raw publish, 3 KiB persistent to quorum queue, one confirm per message, c=%d", c),
			Figure: fmt.Sprintf("%s (p50 %s, p99 %s)", bench.PerSecond(f.confirm.Rate(), "msg"), bench.Millis(f.confirm.Percentile(.5)), bench.Millis(f.confirm.Percentile(.99)))})
	}
	for _, c := range concurrencies {
		f := figures[c]
		add(bench.Row{Part: "limit", What: fmt.Sprintf("raw publish, asynchronous confirms (≤256 in flight per channel), c=%d channels", c),
			Figure: bench.PerSecond(f.async.Rate(), "msg")})
	}
	for _, c := range concurrencies {
		f := figures[c]
		add(bench.Row{Part: "limit", What: fmt.Sprintf("the least an honest endpoint does: net/http, stripe-go's signature check, one persistent publish to the quorum queue awaited for its confirm, %d confirm channels, no logging, c=%d", honestChannels, c),
			Figure: fmt.Sprintf("%s (p50 %s, p99 %s)", bench.PerSecond(f.honest.Rate(), "req"), bench.Millis(f.honest.Percentile(.5)), bench.Millis(f.honest.Percentile(.99)))})
	}
	for _, c := range concurrencies {
		f := figures[c]
		add(bench.Row{Part: "peer", What: fmt.Sprintf("what a user would write: stripe-go ConstructEventWithOptions, one GORM transaction in the request (ledger row, invoice upsert), 200 after the commit, c=%d", c),
			Figure: fmt.Sprintf("%s (p50 %s, p99 %s)", bench.PerSecond(f.peer.Rate(), "req"), bench.Millis(f.peer.Percentile(.5)), bench.Millis(f.peer.Percentile(.99)))})
	}
	for _, c := range concurrencies {
		f := figures[c]
		add(bench.Row{Part: "limit", What: fmt.Sprintf("bare net/http handler answering 200, loopback, c=%d", c),
			Figure: fmt.Sprintf("%s (p50 %s, p99 %s)", bench.PerSecond(f.bare.Rate(), "req"), bench.Millis(f.bare.Percentile(.5)), bench.Millis(f.bare.Percentile(.99)))})
	}

	// Processing beside the raw transaction.
	txLimit, processingRows := processingTable(t, cfg, rounds, events)
	add(txLimit)

	for _, c := range concurrencies {
		f := figures[c]
		ratio := f.ingest.Rate() / f.honest.Rate()
		add(bench.Row{Part: "ingest", What: fmt.Sprintf("signed webhook → api → confirmed enqueue, c=%d (%d publisher channels)", c, cfg.PublisherChannels),
			Figure: fmt.Sprintf("%s, p50 %s, p99 %s", bench.PerSecond(f.ingest.Rate(), "req"), bench.Millis(f.ingest.Percentile(.5)), bench.Millis(f.ingest.Percentile(.99))),
			Limit:  bench.PerSecond(f.honest.Rate(), "req") + " least honest endpoint",
			Ratio:  fmt.Sprintf("%.2f×", ratio), Target: "≥ 0.90×", Verdict: bench.AtLeast(ratio, 0.9, "%.2f×")})
		p99 := f.ingest.Percentile(.99)
		add(bench.Row{Part: "ingest", What: fmt.Sprintf("p99 at c=%d", c), Figure: bench.Millis(p99), Target: "≤ 20 ms",
			Limit:   fmt.Sprintf("p99 %s raw one-confirm publish, %s least honest endpoint", bench.Millis(f.confirm.Percentile(.99)), bench.Millis(f.honest.Percentile(.99))),
			Verdict: bench.AtMost(float64(p99)/float64(time.Millisecond), 20, "%.1f ms")})
		add(bench.Row{Part: "ingest", What: fmt.Sprintf("beside the raw one-confirm publish, c=%d", c), Figure: bench.PerSecond(f.ingest.Rate(), "req"),
			Limit: bench.PerSecond(f.confirm.Rate(), "msg") + " raw one-confirm publish", Ratio: fmt.Sprintf("%.2f×", f.ingest.Rate()/f.confirm.Rate())})
		add(bench.Row{Part: "ingest", What: fmt.Sprintf("beside the peer (stripe-go + GORM in the request), c=%d", c),
			Figure: fmt.Sprintf("%s, p99 %s", bench.PerSecond(f.ingest.Rate(), "req"), bench.Millis(p99)),
			Limit:  fmt.Sprintf("%s, p99 %s peer", bench.PerSecond(f.peer.Rate(), "req"), bench.Millis(f.peer.Percentile(.99))),
			Ratio:  fmt.Sprintf("%.2f× throughput, %.2f× p99", f.ingest.Rate()/f.peer.Rate(), float64(p99)/float64(f.peer.Percentile(.99)))})
	}
	for _, row := range processingRows {
		add(row)
	}
	// The change feed's relay beside the processing rate.
	add(relayRows(t, rounds, testenv.EnvInt(t, "BENCH_RELAY_CHANGES", 20_000), events))

	// The ledger grown to a million events beside an empty one; its size.
	ledger := ledgerGrowth(t, testenv.EnvInt(t, "BENCH_LEDGER_ROWS", 1_000_000), rounds, events, cfg.WorkerBatchSize)
	for _, row := range ledger.tableRows(events, cfg.WorkerBatchSize) {
		add(row)
	}

	// Processes of the built binary: scaling on this machine, and the CPU
	// each process spends per event.
	for _, row := range scaling(t, testenv.EnvInt(t, "BENCH_SCALE_OPS", ops), testenv.EnvInt(t, "BENCH_SCALE_EVENTS", events)) {
		add(row)
	}

	// The backfill from the fake Stripe beside a worker, and the audit.
	for _, row := range backfillRows(t) {
		add(row)
	}

	// End to end and memory, with the built binary as real processes.
	e := endToEnd(t, e2eConfig{
		Duration: envDuration(t, "BENCH_E2E_DURATION", 60*time.Second),
		Rate:     float64(testenv.EnvInt(t, "BENCH_E2E_RATE", 100)),
		Burst:    testenv.EnvInt(t, "BENCH_BURST", 5000),
	})
	add(bench.Row{Part: "end to end", What: fmt.Sprintf("billing simulate at %.0f events/s for %s: 2xx received → row committed (processed_at)", e.Rate, e.Duration),
		Figure: fmt.Sprintf("p50 %s, p99 %s (%d events)", bench.Millis(e.P50), bench.Millis(e.P99), e.Events)})
	add(bench.Row{Part: "memory", What: fmt.Sprintf("api peak RSS (VmHWM), after the run and a burst of %d at c=64", e.Burst),
		Figure: fmt.Sprintf("%.1f MiB", e.APIRSS), Target: "≤ 64 MiB", Verdict: bench.AtMost(e.APIRSS, 64, "%.1f MiB")})
	add(bench.Row{Part: "memory", What: "worker peak RSS (VmHWM), same loads",
		Figure: fmt.Sprintf("%.1f MiB", e.WorkerRSS), Target: "≤ 128 MiB", Verdict: bench.AtMost(e.WorkerRSS, 128, "%.1f MiB")})

	// Same-second ties on a renewal day: Stripe's calls and the rate. On
	// 2026-12-08 from 00:15 every run of the table failed at the ledger
	// rows (no event acked in 5 minutes, or RabbitMQ's accepts stalled),
	// with this row before them (00:15-01:07) or after them (01:08), while
	// TestBenchLedger alone passed: the cause is not this row.
	add(renewalRow(t, testenv.EnvInt(t, "BENCH_RENEWAL_INVOICES", 10_000), cfg.WorkerBatchSize, cfg.WorkerConcurrency, rounds))

	var out bytes.Buffer
	fmt.Fprintf(&out, "\n%s, %d CPUs, %s, batch %d, concurrency %d, rounds %d (median)\n\n",
		time.Now().UTC().Format("2006-01-02"), nproc(), goVersion(), cfg.WorkerBatchSize, cfg.WorkerConcurrency, rounds)
	if err := bench.WriteTable(&out, rows); err != nil {
		t.Fatal(err)
	}
	_, _ = os.Stdout.Write(out.Bytes())
}

// TestBenchProcessing measures the processing rows of the table alone
// (BILLING_BENCH=1, knobs BENCH_ROUNDS and BENCH_EVENTS as the table's).
func TestBenchProcessing(t *testing.T) {
	if os.Getenv("BILLING_BENCH") != "1" {
		t.Skip("BILLING_BENCH=1 runs the processing rows of the benchmark table")
	}
	limit, rows := processingTable(t, settings(t), testenv.EnvInt(t, "BENCH_ROUNDS", 3), testenv.EnvInt(t, "BENCH_EVENTS", 19*200))
	for _, r := range append([]bench.Row{limit}, rows...) {
		t.Logf("%s | %s | %s | %s | %s | %s", r.Part, r.What, r.Figure, r.Limit, r.Ratio, r.Verdict)
	}
}

// processingTable measures the worker processing queued lifecycle events,
// one per transaction and in the configured batches, beside the raw
// per-event transaction, the runs alternating round after round and the
// medians kept: the limit's row and the processing rows.
func processingTable(t *testing.T, cfg config.Config, rounds, events int) (limit bench.Row, rows []bench.Row) {
	t.Helper()
	txDB := openDB(t, testenv.Database(t))
	txDB.SetMaxOpenConns(cfg.WorkerConcurrency)
	sizes := []int{1}
	if cfg.WorkerBatchSize > 1 {
		sizes = append(sizes, cfg.WorkerBatchSize)
	}
	must := mustStats(t)
	var raw, again []bench.Stats
	proc := map[int][]bench.Stats{}
	var feed feedRuns
	for round := range rounds {
		// Distinct objects per run, created in the past: the worker parks
		// an event created more than the tolerance in the future.
		bodies := lifecycleBodies(events, time.Now().Add(-time.Duration(round+1)*time.Hour))
		var rawRun bench.Stats
		settle(t)
		use, err := processingProcs().Measure(func() error {
			var err error
			rawRun, err = rawTx(txDB, bodies, fmt.Sprint(round), cfg.WorkerConcurrency, events)
			return err
		})
		rawRun.CPU = use
		raw = append(raw, must(rawRun, err))
		for _, size := range sizes {
			if size != cfg.WorkerBatchSize {
				bodies := lifecycleBodies(events, time.Now().Add(-time.Duration(round*10+size)*time.Minute))
				proc[size] = append(proc[size], must(processing(t, bodies, size)))
			}
		}
		// The configured batch as it ships, with the envelope read again,
		// and with the change feed off: compared with each other, so each
		// takes each place in the round's order once in three rounds (the
		// first run after the raw transactions was the slowest of a round).
		size := cfg.WorkerBatchSize
		variants := []func(bodies [][]byte) error{
			func(bodies [][]byte) error { return feed.measureOn(t, bodies, size) },
			func(bodies [][]byte) error {
				s, err := processingEnvelopeAgain(t, bodies, size)
				again = append(again, s)
				return err
			},
			func(bodies [][]byte) error { return feed.measureOff(t, bodies, size) },
		}
		for i := range variants {
			v := (i + round) % len(variants)
			bodies := lifecycleBodies(events, time.Now().Add(-time.Duration(round*10+3+v)*time.Minute))
			if err := variants[v](bodies); err != nil {
				t.Fatal(err)
			}
		}
		proc[size] = feed.on
	}
	rawTxs := bench.Median(raw)
	limit = bench.Row{Part: "limit", What: fmt.Sprintf("raw MySQL transaction shaped like one event (ledger insert, object upsert, history insert), c=%d", cfg.WorkerConcurrency),
		Figure: fmt.Sprintf("%s (p50 %s, p99 %s; %s)", bench.PerSecond(rawTxs.Rate(), "tx"), bench.Millis(rawTxs.Percentile(.5)), bench.Millis(rawTxs.Percentile(.99)),
			rawTxs.CPU.PerThousand(events))}
	for _, size := range sizes {
		p := bench.Median(proc[size])
		ratio := p.Rate() / rawTxs.Rate()
		row := bench.Row{Part: "processing", What: fmt.Sprintf("%d queued lifecycle events → worker → MySQL, c=%d, batch %d", events, cfg.WorkerConcurrency, size),
			Figure: fmt.Sprintf("%s (%s)", bench.PerSecond(p.Rate(), "event"), p.CPU.PerThousand(events)), Limit: bench.PerSecond(rawTxs.Rate(), "tx") + " raw per-event transaction",
			Ratio: fmt.Sprintf("%.2f×", ratio)}
		if size == cfg.WorkerBatchSize {
			row.Target, row.Verdict = "≥ 2.00×", bench.AtLeast(ratio, 2, "%.2f×")
		}
		rows = append(rows, row)
	}
	// The worker's CPU with the envelope read once (the Verifier's),
	// beside the same worker reading it again, as before issue 26.
	size := sizes[len(sizes)-1]
	once, twice := medianCPU(proc[size], events), medianCPU(again, events)
	rows = append(rows, bench.Row{Part: "cost", What: fmt.Sprintf("worker CPU, %d queued lifecycle events, batch %d: the envelope read once, by the Verifier", events, size),
		Figure: fmt.Sprintf("%.0f CPU ms per 1,000 events", once), Limit: fmt.Sprintf("%.0f read again by the ledger, as before", twice),
		Ratio: fmt.Sprintf("%.2f× (%.0f%% less)", once/twice, 100*(1-once/twice)), Target: "≥ 20% less", Verdict: bench.AtLeast(100*(1-once/twice), 20, "%.0f%%")})
	rows = append(rows, feed.tableRows(cfg.WorkerBatchSize)...)
	return limit, rows
}

// medianCPU is the median of the runs' CPU milliseconds per 1,000 of
// events in this process, the worker's.
func medianCPU(runs []bench.Stats, events int) float64 {
	ms := make([]float64, len(runs))
	for i, r := range runs {
		ms[i] = r.CPU.MsPerThousand(thisProcess, events)
	}
	slices.Sort(ms)
	return ms[(len(ms)-1)/2]
}

// mustStats returns a function that passes a measurement's figures on and
// ends the test at its error.
func mustStats(t *testing.T) func(bench.Stats, error) bench.Stats {
	return func(s bench.Stats, err error) bench.Stats {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}
