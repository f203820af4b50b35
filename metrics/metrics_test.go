package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/stripe-billing/billing/audit"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/metrics"
)

func setup(t *testing.T) (*prometheus.Registry, *metrics.Metrics) {
	t.Helper()
	reg := prometheus.NewRegistry()
	return reg, metrics.New(reg)
}

func TestEachCollectorMoves(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		use  func(m *metrics.Metrics)
		// get reads the value the use must have moved.
		get  func(m *metrics.Metrics) float64
		want float64
	}{
		{
			name: "webhooks by outcome and code",
			use: func(m *metrics.Metrics) {
				m.Webhook("accepted", 200)
				m.Webhook("accepted", 200)
				m.Webhook("unavailable", 503)
			},
			get: func(m *metrics.Metrics) float64 {
				return testutil.ToFloat64(m.Webhooks.WithLabelValues("accepted", "200"))
			},
			want: 2,
		},
		{
			name: "the sweep's last success moves with a pass without errors only",
			use: func(m *metrics.Metrics) {
				m.RecordSweep(maintenance.Report{At: time.Unix(1000, 0)})
				m.RecordSweep(maintenance.Report{At: time.Unix(2000, 0), Errors: []error{errors.New("boom")}})
				m.RecordSweep(maintenance.Report{Skipped: true})
			},
			get:  func(m *metrics.Metrics) float64 { return testutil.ToFloat64(m.SweepLastSuccess) },
			want: 1000,
		},
		{
			name: "the last audit's drift, as a sweep pass read it",
			use: func(m *metrics.Metrics) {
				m.RecordSweep(maintenance.Report{At: time.Unix(1000, 0), Audit: &audit.Summary{At: time.Unix(900, 0), Compared: 10, Differ: 3}})
				m.RecordSweep(maintenance.Report{At: time.Unix(2000, 0)}) // no audit read: the gauge stays
			},
			get:  func(m *metrics.Metrics) float64 { return testutil.ToFloat64(m.AuditDrift) },
			want: 3,
		},
		{
			name: "webhooks keep codes apart",
			use:  func(m *metrics.Metrics) { m.Webhook("unavailable", 503) },
			get: func(m *metrics.Metrics) float64 {
				return testutil.ToFloat64(m.Webhooks.WithLabelValues("unavailable", "200"))
			},
			want: 0,
		},
		{
			name: "the api observer counts webhook requests only",
			use: func(m *metrics.Metrics) {
				m.ObserveRequest("webhook", "published", 200, time.Millisecond)
				m.ObserveRequest("healthz", "published", 200, time.Millisecond)
				m.ObserveRequest("webhook", "publish_failed", 503, time.Millisecond)
			},
			get: func(m *metrics.Metrics) float64 {
				return float64(testutil.CollectAndCount(m.Webhooks)) * testutil.ToFloat64(m.Webhooks.WithLabelValues("published", "200"))
			},
			want: 2, // two series, the 200 one at 1
		},
		{
			name: "events processed by type and outcome",
			use: func(m *metrics.Metrics) {
				m.Event("invoice.paid", string(consumer.Processed), time.Millisecond)
				m.Event("invoice.paid", string(consumer.Duplicate), time.Millisecond)
				m.Event("invoice.paid", string(consumer.Processed), time.Millisecond)
			},
			get: func(m *metrics.Metrics) float64 {
				return testutil.ToFloat64(m.EventsProcessed.WithLabelValues("invoice.paid", string(consumer.Processed)))
			},
			want: 2,
		},
		{
			name: "an event without a type is labelled unknown",
			use:  func(m *metrics.Metrics) { m.Event("", string(consumer.Parked), time.Millisecond) },
			get: func(m *metrics.Metrics) float64 {
				return testutil.ToFloat64(m.EventsProcessed.WithLabelValues("unknown", string(consumer.Parked)))
			},
			want: 1,
		},
		{
			name: "retries by tier",
			use:  func(m *metrics.Metrics) { m.Retry("10s"); m.Retry("1m0s"); m.Retry("10s") },
			get:  func(m *metrics.Metrics) float64 { return testutil.ToFloat64(m.Retries.WithLabelValues("10s")) },
			want: 2,
		},
		{
			name: "parked by class",
			use:  func(m *metrics.Metrics) { m.Park("permanent") },
			get:  func(m *metrics.Metrics) float64 { return testutil.ToFloat64(m.Parked.WithLabelValues("permanent")) },
			want: 1,
		},
		{
			name: "replayed by source",
			use: func(m *metrics.Metrics) {
				m.Replay(metrics.ReplayReject)
				m.Replay(metrics.ReplayReject)
				m.Replay(metrics.ReplayMove)
			},
			get: func(m *metrics.Metrics) float64 {
				return testutil.ToFloat64(m.Replayed.WithLabelValues(metrics.ReplayReject))
			},
			want: 2,
		},
		{
			name: "sweep results",
			use:  func(m *metrics.Metrics) { m.Sweep("redriven"); m.Sweep("skipped_young") },
			get: func(m *metrics.Metrics) float64 {
				return testutil.ToFloat64(m.SweepResults.WithLabelValues("redriven"))
			},
			want: 1,
		},
		{
			name: "database errors by class",
			use:  func(m *metrics.Metrics) { m.DBError("deadlock"); m.DBError("deadlock"); m.DBError("unavailable") },
			get:  func(m *metrics.Metrics) float64 { return testutil.ToFloat64(m.DBErrors.WithLabelValues("deadlock")) },
			want: 2,
		},
		{
			name: "Stripe calls by purpose and outcome",
			use: func(m *metrics.Metrics) {
				m.StripeCall("verify", "not_found")
				m.StripeCall("verify", "not_found")
				m.StripeCall("tie", "not_found")
				m.StripeCall("verify", "limited")
			},
			get: func(m *metrics.Metrics) float64 {
				return testutil.ToFloat64(m.StripeCalls.WithLabelValues("verify", "not_found"))
			},
			want: 2,
		},
		{
			name: "publish confirm latency",
			use: func(m *metrics.Metrics) {
				m.ObservePublish(3 * time.Millisecond)
				m.ObservePublish(2 * time.Second)
			},
			get:  func(m *metrics.Metrics) float64 { return histogramCount(t, m.PublishConfirm) },
			want: 2,
		},
		{
			name: "processing latency follows events",
			use: func(m *metrics.Metrics) {
				m.Event("charge.succeeded", string(consumer.Processed), 5*time.Millisecond)
				m.Event("charge.succeeded", string(consumer.Retried), 50*time.Millisecond)
				m.Event("charge.succeeded", string(consumer.Ignored), time.Millisecond)
			},
			get:  func(m *metrics.Metrics) float64 { return histogramCount(t, m.Processing) },
			want: 3,
		},
		{
			name: "publish latency sum is in seconds",
			use:  func(m *metrics.Metrics) { m.ObservePublish(1500 * time.Millisecond) },
			get:  func(m *metrics.Metrics) float64 { return histogramSum(t, m.PublishConfirm) },
			want: 1.5,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, m := setup(t)
			tt.use(m)
			if got := tt.get(m); got != tt.want {
				t.Errorf("value = %v, want %v", got, tt.want)
			}
		})
	}
}

func histogramCount(t *testing.T, h prometheus.Histogram) float64 {
	t.Helper()
	return float64(writeMetric(t, h).GetHistogram().GetSampleCount())
}

func histogramSum(t *testing.T, h prometheus.Histogram) float64 {
	t.Helper()
	return writeMetric(t, h).GetHistogram().GetSampleSum()
}

func TestBuildInfo(t *testing.T) {
	t.Parallel()
	reg, m := setup(t)
	if n := testutil.CollectAndCount(m.BuildInfo); n != 1 {
		t.Fatalf("build info series = %d, want 1", n)
	}
	out, err := testutil.GatherAndCount(reg, "billing_build_info")
	if err != nil || out != 1 {
		t.Fatalf("gathered build info series = %d, %v; want 1", out, err)
	}
	if got := testutil.ToFloat64(m.BuildInfo.WithLabelValues(labelsOf(t, m.BuildInfo)...)); got != 1 {
		t.Errorf("build info value = %v, want 1", got)
	}
	labels := labelsOf(t, m.BuildInfo)
	if labels[1] != runtime.Version() {
		t.Errorf("goversion label = %q, want %q", labels[1], runtime.Version())
	}
	for i, v := range labels {
		if v == "" {
			t.Errorf("build info label %d is empty", i)
		}
	}
}

// labelsOf returns the label values (in declaration order) of the only
// series of a vector with the labels version, goversion, revision.
func labelsOf(t *testing.T, c prometheus.Collector) []string {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	close(ch)
	pb := writeMetric(t, <-ch)
	byName := map[string]string{}
	for _, l := range pb.GetLabel() {
		byName[l.GetName()] = l.GetValue()
	}
	return []string{byName["version"], byName["goversion"], byName["revision"]}
}

// TestLint uses every collector and checks the names, units and help texts
// with promlint.
func TestLint(t *testing.T) {
	t.Parallel()
	reg, m := setup(t)
	m.Webhook("accepted", 200)
	m.ObservePublish(time.Millisecond)
	m.Event("invoice.paid", string(consumer.Processed), time.Millisecond)
	m.Retry("10s")
	m.Park("permanent")
	m.Replay(metrics.ReplayMove)
	m.Sweep("redriven")
	m.QueueDepth.WithLabelValues("billing.events.work").Set(3)
	m.QueueDepthErrors.Inc()
	m.OldestParkedAge.Set(42)
	m.DeadEvents.Set(2)
	m.DBError("deadlock")
	m.ChangesPublished(3)
	m.ChangeBacklog(7, 90*time.Second)

	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 22 {
		t.Errorf("gathered %d metric families, want 22", len(families))
	}
	if got := []float64{testutil.ToFloat64(m.ChangesRelayed), testutil.ToFloat64(m.ChangeOutboxDepth), testutil.ToFloat64(m.ChangeOutboxLag)}; !slices.Equal(got, []float64{3, 7, 90}) {
		t.Errorf("changes published, outbox rows, lag = %v, want [3 7 90]", got)
	}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "billing_") {
			t.Errorf("metric %s lacks the billing_ prefix", f.GetName())
		}
	}
	// Each collector linted on its own too, as a component would register it.
	for _, c := range []prometheus.Collector{m.Webhooks, m.PublishConfirm, m.EventsProcessed, m.Processing, m.QueueDepth} {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// TestRegistriesAreIndependent: two processes (or tests) never share counts,
// and registering twice on one registry is refused.
func TestRegistriesAreIndependent(t *testing.T) {
	t.Parallel()
	_, a := setup(t)
	_, b := setup(t)
	a.Park("permanent")
	if got := testutil.ToFloat64(b.Parked.WithLabelValues("permanent")); got != 0 {
		t.Errorf("second registry sees %v parked, want 0", got)
	}
	reg := prometheus.NewRegistry()
	metrics.New(reg)
	defer func() {
		if recover() == nil {
			t.Error("New twice on one registry did not panic")
		}
	}()
	metrics.New(reg)
}

func TestReplaySourcesStartAtZero(t *testing.T) {
	t.Parallel()
	_, m := setup(t)
	if n := testutil.CollectAndCount(m.Replayed); n != 5 {
		t.Errorf("replayed series before any replay = %d, want 5 (move, reject, cli, sweep, dead_letter: the sources a worker tells apart)", n)
	}
}

func TestNilMetricsIsANoOp(t *testing.T) {
	t.Parallel()
	var m *metrics.Metrics
	m.Webhook("accepted", 200)
	m.ObserveRequest("webhook", "published", 200, time.Millisecond)
	m.ObservePublish(time.Millisecond)
	m.Event("invoice.paid", string(consumer.Processed), time.Millisecond)
	m.Retry("10s")
	m.Park("permanent")
	m.Replay(metrics.ReplayMove)
	m.Sweep("redriven")
	m.DBError("deadlock")
	m.StripeCall("verify", "ok")
}

func TestHandler(t *testing.T) {
	t.Parallel()
	reg := metrics.NewRegistry()
	m := metrics.New(reg)
	m.Webhook("accepted", 202)
	srv := httptest.NewServer(metrics.Handler(reg))
	t.Cleanup(srv.Close)

	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d, want 200", resp.StatusCode)
	}
	for _, want := range []string{
		`billing_webhooks_total{code="202",outcome="accepted"} 1`,
		`billing_build_info{`,
		`go_goroutines `,
		`billing_events_replayed_total{source="reject"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestQueueDepthPoller(t *testing.T) {
	t.Parallel()
	_, m := setup(t)

	// The fake broker: each poll returns the next answer, then repeats the last.
	answers := []struct {
		depths map[string]int
		err    error
	}{
		{depths: map[string]int{"ns.events.work": 7, "ns.retry.10s": 2, "ns.events.dlq": 1}},
		{err: errors.New("channel closed")},
		{depths: map[string]int{"ns.events.work": 0, "ns.events.dlq": 4}},
	}
	var mu sync.Mutex
	calls := 0
	depths := func(ctx context.Context) (map[string]int, error) {
		mu.Lock()
		defer mu.Unlock()
		a := answers[min(calls, len(answers)-1)]
		calls++
		return a.depths, a.err
	}
	p, err := metrics.NewQueueDepthPoller(2*time.Millisecond, nil, m, depths)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()

	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := calls
		mu.Unlock()
		if n > len(answers) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d polls in 5s", n)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil after cancel", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	if got := testutil.ToFloat64(m.QueueDepth.WithLabelValues("ns.events.dlq")); got != 4 {
		t.Errorf("dlq depth = %v, want 4", got)
	}
	if got := testutil.ToFloat64(m.QueueDepth.WithLabelValues("ns.events.work")); got != 0 {
		t.Errorf("work depth = %v, want 0", got)
	}
	// The tier vanished from the answer: its series is gone (WithLabelValues
	// above would re-create it, so count instead of reading it).
	if n := testutil.CollectAndCount(m.QueueDepth); n != 2 {
		t.Errorf("queue depth series = %d, want 2 (the vanished tier removed)", n)
	}
	if got := testutil.ToFloat64(m.QueueDepthErrors); got != 1 {
		t.Errorf("poll errors = %v, want 1", got)
	}
}

func TestNewQueueDepthPollerValidates(t *testing.T) {
	t.Parallel()
	_, m := setup(t)
	depths := func(context.Context) (map[string]int, error) { return nil, nil }
	tests := []struct {
		name     string
		interval time.Duration
		m        *metrics.Metrics
		depths   metrics.DepthFunc
	}{
		{"zero interval", 0, m, depths},
		{"no metrics", time.Second, nil, depths},
		{"no depth function", time.Second, m, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := metrics.NewQueueDepthPoller(tt.interval, nil, tt.m, tt.depths); err == nil {
				t.Error("no error")
			}
		})
	}
}

// writeMetric returns the protobuf form of one metric.
func writeMetric(t *testing.T, m prometheus.Metric) *dto.Metric {
	t.Helper()
	var pb dto.Metric
	if err := m.Write(&pb); err != nil {
		t.Fatal(err)
	}
	return &pb
}
