package bench_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

// buildBinary builds `billing` for the processes of a measurement.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "billing")
	build := exec.Command("go", "build", "-o", bin, "github.com/stripe-billing/billing/cmd/billing")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// buildBinaryAt builds `billing` from the repository at git ref, in a
// worktree of its own: a baseline measured beside today's binary.
func buildBinaryAt(t *testing.T, ref string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	if out, err := exec.Command("git", "worktree", "add", "--detach", dir, ref).CombinedOutput(); err != nil {
		t.Fatalf("git worktree add %s: %v\n%s", ref, err, out)
	}
	t.Cleanup(func() { _ = exec.Command("git", "worktree", "remove", "--force", dir).Run() })
	bin := filepath.Join(t.TempDir(), "billing-"+ref)
	build := exec.Command("go", "build", "-o", bin, "./cmd/billing")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build at %s: %v\n%s", ref, err, out)
	}
	return bin
}

// servers are the shared servers' processes, for their CPU time.
func servers(p *bench.Procs) {
	p.Add("rabbitmq", bench.FindProcesses("beam.smp")...)
	p.Add("mariadb", bench.FindProcesses("mariadbd")...)
}

// ingestProcesses posts ops signed webhooks at concurrency conc to apis
// `billing api` processes (each on its own port, the requests spread
// over them in turn) with the default log level, once the processes have
// answered a first unmeasured 4×conc, and reads the CPU of the api
// processes, this test process (the HTTP client), RabbitMQ and MariaDB
// over the run.
func ingestProcesses(t *testing.T, bin string, apis, conc, ops int) (bench.Stats, bench.CPUUse) {
	t.Helper()
	r := newRabbit(t)
	common := []string{"AMQP_URL=" + testenv.AMQPURL(), "BILLING_NAMESPACE=" + r.topo.Namespace, "STRIPE_WEBHOOK_SECRET=" + secret}
	var procs bench.Procs
	var urls []string
	for range apis {
		addr := testenv.FreeAddr(t)
		p := start(t, bin, "api", append(common, "HTTP_ADDR="+addr, "METRICS_ADDR="+testenv.FreeAddr(t))...)
		procs.Add("api", p.cmd.Process.Pid)
		awaitReady(t, addr)
		urls = append(urls, "http://"+addr+"/webhooks/stripe")
	}
	procs.Add("client", os.Getpid())
	servers(&procs)
	client := httpClient(conc)
	reqs := signEvents("scale", 64)
	// Unmeasured first: the processes' start (publisher channels opened,
	// stacks grown) and the client's connections are not a request's cost.
	if _, err := postSplit(client, urls, reqs, conc, 4*conc); err != nil {
		t.Fatal(err)
	}
	r.purge(t)
	settle(t)
	var s bench.Stats
	use, err := procs.Measure(func() (err error) {
		s, err = postSplit(client, urls, reqs, conc, ops)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	r.purge(t)
	return s, use
}

// workerProcesses drains a work queue pre-filled with events lifecycle
// events with workers `billing worker` processes into a fresh database.
// The rate runs from the first processed_at to the last, so the
// processes' start is not counted; the CPU of the workers, RabbitMQ and
// MariaDB is read from the workers' start to the last event.
func workerProcesses(t *testing.T, bin string, workers, events int) (float64, bench.CPUUse) {
	t.Helper()
	r := newRabbit(t)
	dsn := testenv.Database(t)
	if err := prefill(r, lifecycleBodies(events, time.Now())); err != nil {
		t.Fatal(err)
	}
	store := openStore(t, dsn, settings(t))
	settle(t) // the prefill's writes in RabbitMQ are not the workers' cost
	env := []string{"AMQP_URL=" + testenv.AMQPURL(), "BILLING_NAMESPACE=" + r.topo.Namespace, "LOG_LEVEL=warn",
		"MYSQL_DSN=" + dsn, "STRIPE_WEBHOOK_SECRET=" + testenv.WebhookSecret}
	var procs bench.Procs
	servers(&procs)
	use, err := procs.Measure(func() error {
		for range workers {
			p := start(t, bin, "worker", append(env, "METRICS_ADDR="+testenv.FreeAddr(t))...)
			procs.Add("worker", p.cmd.Process.Pid)
		}
		testenv.Eventually(t, 5*time.Minute, func() bool {
			var done int64
			err := store.DB().Model(&models.StripeEvent{}).Where("status IN ?", []string{models.EventProcessed, models.EventIgnored}).Count(&done).Error
			return err == nil && done >= int64(events)
		}, "%d events processed by %d workers", events, workers)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var span struct{ First, Last time.Time }
	if err := store.DB().Model(&models.StripeEvent{}).Select("MIN(processed_at) AS first, MAX(processed_at) AS last").Scan(&span).Error; err != nil {
		t.Fatal(err)
	}
	window := span.Last.Sub(span.First)
	if window <= 0 {
		t.Fatalf("processed_at spans %s", window)
	}
	use.Elapsed = window // the busy stretch, for the cores
	return float64(events-1) / window.Seconds(), use
}

// scaling measures ingest with 1 and 2 api processes and processing with
// 1, 2 and 4 worker processes on this machine, and the CPU each
// process spends per 1,000 events in the single-process runs.
func scaling(t *testing.T, ops, events int) []bench.Row {
	t.Helper()
	bin := buildBinary(t)
	const conc = 64
	var rows []bench.Row
	var one float64
	for _, apis := range []int{1, 2} {
		var s bench.Stats
		var use bench.CPUUse
		if !t.Run(fmt.Sprintf("apis=%d", apis), func(t *testing.T) { s, use = ingestProcesses(t, bin, apis, conc, ops) }) {
			t.FailNow()
		}
		if apis == 1 {
			one = s.Rate()
			rows = append(rows, bench.Row{Part: "cost", What: fmt.Sprintf("ingest, 1 api process (LOG_LEVEL=info), c=%d, %d requests", conc, ops),
				Figure: use.PerThousand(ops)})
		}
		rows = append(rows, bench.Row{Part: "scaling", What: fmt.Sprintf("ingest, %d `billing api` process(es) on their own ports, the load split, c=%d", apis, conc),
			Figure: fmt.Sprintf("%s, p99 %s; %s", bench.PerSecond(s.Rate(), "req"), bench.Millis(s.Percentile(.99)), use.Cores()),
			Ratio:  fmt.Sprintf("%.2f× 1 process", s.Rate()/one)})
	}
	for _, workers := range []int{1, 2, 4} {
		var rate float64
		var use bench.CPUUse
		if !t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) { rate, use = workerProcesses(t, bin, workers, events) }) {
			t.FailNow()
		}
		if workers == 1 {
			one = rate
			rows = append(rows, bench.Row{Part: "cost", What: fmt.Sprintf("processing, 1 worker process, %d queued lifecycle events", events),
				Figure: use.PerThousand(events)})
		}
		rows = append(rows, bench.Row{Part: "scaling", What: fmt.Sprintf("processing, %d `billing worker` process(es), %d queued events", workers, events),
			Figure: fmt.Sprintf("%s; %s", bench.PerSecond(rate, "event"), use.Cores()),
			Ratio:  fmt.Sprintf("%.2f× 1 process", rate/one)})
	}
	return rows
}

// TestBenchAPIProcess measures one built `billing api` process at c=64
// (BILLING_BENCH=1; BENCH_ROUNDS rounds of BENCH_OPS requests): the
// table's ingest cost row alone, and its rate and p99 as a process of
// its own, which the in-process ingest rows are not.
func TestBenchAPIProcess(t *testing.T) {
	if os.Getenv("BILLING_BENCH") != "1" {
		t.Skip("BILLING_BENCH=1 runs the api process's cost row of the benchmark table")
	}
	bin := buildBinary(t)
	ops := testenv.EnvInt(t, "BENCH_OPS", 4000)
	for round := range testenv.EnvInt(t, "BENCH_ROUNDS", 3) {
		s, use := ingestProcesses(t, bin, 1, 64, ops)
		t.Logf("round %d: %s, p50 %s, p99 %s; %s; %s", round, bench.PerSecond(s.Rate(), "req"), bench.Millis(s.Percentile(.5)), bench.Millis(s.Percentile(.99)), use.PerThousand(ops), use.Cores())
	}
}

// TestBenchWorkerProcess measures the CPU per 1,000 events of one built
// `billing worker` process draining BENCH_EVENTS queued lifecycle events
// (BILLING_BENCH=1), with RabbitMQ's and MariaDB's beside it: the table's
// "processing, 1 worker process" cost row alone. Unlike
// TestBenchProcessing it runs the worker as its own process, so what the
// binary sets for itself shows (its GC settings; `GOGC` or `GOMEMLIMIT` in
// the environment reach it).
func TestBenchWorkerProcess(t *testing.T) {
	if os.Getenv("BILLING_BENCH") != "1" {
		t.Skip("BILLING_BENCH=1 runs the worker process's cost row of the benchmark table")
	}
	events := testenv.EnvInt(t, "BENCH_EVENTS", 19*200)
	bin := buildBinary(t)
	baseline := os.Getenv("BENCH_BASELINE")
	if baseline == "" {
		rate, use := workerProcesses(t, bin, 1, events)
		t.Logf("cost | processing, 1 worker process, %d queued lifecycle events | %s | %s", events, use.PerThousand(events), bench.PerSecond(rate, "event"))
		return
	}
	// BENCH_BASELINE=<git ref>: the binary of that ref beside today's,
	// round after round, the medians compared.
	old := buildBinaryAt(t, baseline)
	var now, then []float64
	for range testenv.EnvInt(t, "BENCH_ROUNDS", 3) {
		for _, b := range []struct {
			bin string
			ms  *[]float64
		}{{old, &then}, {bin, &now}} {
			rate, use := workerProcesses(t, b.bin, 1, events)
			t.Logf("%s: %s; %s", filepath.Base(b.bin), bench.PerSecond(rate, "event"), use.PerThousand(events))
			*b.ms = append(*b.ms, use.MsPerThousand("worker", events))
		}
	}
	slices.Sort(now)
	slices.Sort(then)
	a, b := now[(len(now)-1)/2], then[(len(then)-1)/2]
	t.Logf("cost | 1 worker process, %d queued lifecycle events: worker CPU ms per 1,000 events | %.0f (runs %.0f) | %.0f at %s (runs %.0f) | %.0f%% less",
		events, a, now, b, baseline, then, 100*(1-a/b))
}
