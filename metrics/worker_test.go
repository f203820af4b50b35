package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/metrics"
	"github.com/stripe-billing/billing/verify"
)

func TestEventObserver(t *testing.T) {
	t.Parallel()
	topo := broker.NewTopology("obs", []time.Duration{10 * time.Second, time.Minute}, 20)
	type series struct {
		name  string
		value func(m *metrics.Metrics) float64
		want  float64
	}
	events := func(typ, outcome string) func(m *metrics.Metrics) float64 {
		return func(m *metrics.Metrics) float64 {
			return testutil.ToFloat64(m.EventsProcessed.WithLabelValues(typ, outcome))
		}
	}
	tests := []struct {
		name    string
		outcome consumer.Outcome
		want    []series
	}{
		{"processed", consumer.Outcome{EventType: "invoice.paid", Result: "acked", Handled: "processed"},
			[]series{{"events", events("invoice.paid", "processed"), 1}}},
		{"duplicate", consumer.Outcome{EventType: "invoice.paid", Result: "acked", Handled: "duplicate"},
			[]series{{"events", events("invoice.paid", "duplicate"), 1}, {"processed", events("invoice.paid", "processed"), 0}}},
		{"a type without a handler counts as other", consumer.Outcome{EventType: "balance.available", Result: "acked", Handled: "ignored"},
			[]series{{"events", events(metrics.OtherType, "ignored"), 1}, {"own series", events("balance.available", "ignored"), 0}}},
		{"a forged type counts as other", consumer.Outcome{EventType: "evt\x1b[2J" + strings.Repeat("z", 300), Result: "parked", Decision: failure.Decision{Class: failure.Permanent, Parked: true, Tier: -1}},
			[]series{{"events", events(metrics.OtherType, "parked"), 1}}},
		{"acked without a report counts as processed", consumer.Outcome{EventType: "x", Result: "acked"},
			[]series{{"events", events("x", "processed"), 1}}},
		{"retried in the second tier", consumer.Outcome{EventType: "x", Result: "retried", Decision: failure.Decision{Class: failure.Transient, Tier: 1}},
			[]series{
				{"events", events("x", "retried"), 1},
				{"retries", func(m *metrics.Metrics) float64 { return testutil.ToFloat64(m.Retries.WithLabelValues("1m0s")) }, 1},
			}},
		{"parked", consumer.Outcome{EventType: "x", Result: "parked", Decision: failure.Decision{Class: failure.Permanent, Parked: true, Tier: -1}},
			[]series{
				{"events", events("x", "parked"), 1},
				{"parked", func(m *metrics.Metrics) float64 { return testutil.ToFloat64(m.Parked.WithLabelValues("permanent")) }, 1},
			}},
		{"parked unverified: counted by reason", consumer.Outcome{EventType: "x", Result: "parked",
			Decision: failure.Decision{Class: failure.Unverified, Parked: true, Tier: -1},
			Cause:    failure.MarkUnverified(&verify.Error{ID: "evt_1", Reason: verify.NoAPIKey, Err: errors.New("not signed")})},
			[]series{
				{"parked", func(m *metrics.Metrics) float64 { return testutil.ToFloat64(m.Parked.WithLabelValues("unverified")) }, 1},
				{"unverified", func(m *metrics.Metrics) float64 {
					return testutil.ToFloat64(m.Unverified.WithLabelValues("no_api_key"))
				}, 1},
			}},
		{"parked permanent: not unverified", consumer.Outcome{EventType: "x", Result: "parked",
			Decision: failure.Decision{Class: failure.Permanent, Parked: true, Tier: -1}, Cause: failure.MarkPermanent(errors.New("bad"))},
			[]series{{"unverified", func(m *metrics.Metrics) float64 { return float64(testutil.CollectAndCount(m.Unverified)) }, 0}}},
		{"moved back from the DLQ", consumer.Outcome{EventType: "x", Result: "acked", Origin: broker.Moved},
			[]series{{"move", func(m *metrics.Metrics) float64 {
				return testutil.ToFloat64(m.Replayed.WithLabelValues(metrics.ReplayMove))
			}, 1}}},
		{"rejected back from the DLQ", consumer.Outcome{EventType: "x", Result: "parked", Origin: broker.Rejected},
			[]series{{"reject", func(m *metrics.Metrics) float64 {
				return testutil.ToFloat64(m.Replayed.WithLabelValues(metrics.ReplayReject))
			}, 1}}},
		{"dead-lettered out of the DLQ by the broker, apart from a person's replay", consumer.Outcome{EventType: "x", Result: "acked", Origin: broker.DeadLettered},
			[]series{
				{"dead_letter", func(m *metrics.Metrics) float64 {
					return testutil.ToFloat64(m.Replayed.WithLabelValues(metrics.ReplayDeadLettered))
				}, 1},
				{"reject", func(m *metrics.Metrics) float64 {
					return testutil.ToFloat64(m.Replayed.WithLabelValues(metrics.ReplayReject))
				}, 0},
			}},
		{"the CLI's replay and the sweep's re-drive apart from the UI's move", consumer.Outcome{EventType: "x", Result: "acked", Origin: broker.ReplayedByCLI},
			[]series{
				{"cli", func(m *metrics.Metrics) float64 {
					return testutil.ToFloat64(m.Replayed.WithLabelValues(metrics.ReplayCLI))
				}, 1},
				{"sweep", func(m *metrics.Metrics) float64 {
					return testutil.ToFloat64(m.Replayed.WithLabelValues(metrics.ReplaySweep))
				}, 0},
				{"move", func(m *metrics.Metrics) float64 {
					return testutil.ToFloat64(m.Replayed.WithLabelValues(metrics.ReplayMove))
				}, 0},
			}},
		{"a dropped replay counts when it comes back", consumer.Outcome{EventType: "x", Result: "dropped", Origin: broker.Moved},
			[]series{
				{"move", func(m *metrics.Metrics) float64 {
					return testutil.ToFloat64(m.Replayed.WithLabelValues(metrics.ReplayMove))
				}, 0},
				{"events", events("x", "dropped"), 1},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, m := setup(t)
			o := tt.outcome
			o.Duration = 3 * time.Millisecond
			metrics.NewEventObserver(m, topo, []string{"invoice.paid", "x"}).Observe(o)
			for _, s := range tt.want {
				if got := s.value(m); got != s.want {
					t.Errorf("%s = %v, want %v", s.name, got, s.want)
				}
			}
			if n := testutil.CollectAndCount(m.Processing); n != 1 {
				t.Errorf("processing histogram series = %d", n)
			}
		})
	}
}

// TestEventObserverBoundsTypes: however many types the messages claim,
// billing_events_processed_total has a series per handled type and one
// for all the others.
func TestEventObserverBoundsTypes(t *testing.T) {
	t.Parallel()
	_, m := setup(t)
	obs := metrics.NewEventObserver(m, broker.NewTopology("obs", []time.Duration{time.Second}, 20), []string{"invoice.paid"})
	for i := range 500 {
		obs.Observe(consumer.Outcome{EventType: fmt.Sprintf("forged.%d", i), Result: "acked", Handled: "ignored"})
	}
	obs.Observe(consumer.Outcome{EventType: "invoice.paid", Result: "acked", Handled: "processed"})
	if n := testutil.CollectAndCount(m.EventsProcessed); n != 2 {
		t.Errorf("billing_events_processed_total has %d series, want 2 (invoice.paid and other)", n)
	}
	if got := testutil.ToFloat64(m.EventsProcessed.WithLabelValues(metrics.OtherType, "ignored")); got != 500 {
		t.Errorf("other = %v, want 500", got)
	}
}

func TestServerProbes(t *testing.T) {
	t.Parallel()
	reg, m := setup(t)
	m.Park("permanent")
	var notReady error
	logs := &testenv.SyncBuffer{}
	srv, err := metrics.NewServer(metrics.ServerConfig{
		Addr: "127.0.0.1:0", Registry: reg,
		Checks: []metrics.Check{
			{Name: "broker", Probe: func(context.Context) error { return nil }},
			{Name: "database", Probe: func(context.Context) error { return notReady }},
		},
	}, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	get := func(path string) (int, string) {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, `billing_events_parked_total{class="permanent"} 1`) {
		t.Errorf("/metrics = %d %q", code, body)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 200 || body != `{"broker":"ok","database":"ok","status":"ready"}`+"\n" {
		t.Errorf("/readyz while ready = %d %q", code, body)
	}
	// The answer is a fixed word per check; the error's text (a host, a
	// user) goes to the log only.
	notReady = errors.New("dial tcp 10.1.2.3:3306: billing_app refused")
	if code, body := get("/readyz"); code != 503 || body != `{"broker":"ok","database":"down","status":"not ready"}`+"\n" {
		t.Errorf("/readyz while not ready = %d %q, want 503 with database down and nothing more", code, body)
	}
	if !strings.Contains(logs.String(), `"msg":"not ready","check":"database","error":"dial tcp 10.1.2.3:3306: billing_app refused"`) {
		t.Errorf("the probe's error is not in the log:\n%s", logs.String())
	}
}

// A check needs a name that is not the status key, and a probe.
func TestServerRefusesBadChecks(t *testing.T) {
	t.Parallel()
	reg, _ := setup(t)
	probe := func(context.Context) error { return nil }
	for _, checks := range [][]metrics.Check{nil, {{Name: "", Probe: probe}}, {{Name: "status", Probe: probe}}, {{Name: "broker"}}} {
		if _, err := metrics.NewServer(metrics.ServerConfig{Addr: "127.0.0.1:0", Registry: reg, Checks: checks}, nil); err == nil {
			t.Errorf("NewServer with checks %+v = nil error", checks)
		}
	}
}

func TestServerRunStopsOnCancel(t *testing.T) {
	t.Parallel()
	reg, _ := setup(t)
	srv, err := metrics.NewServer(metrics.ServerConfig{Addr: "127.0.0.1:0", Registry: reg, Checks: []metrics.Check{{Name: "database", Probe: func(context.Context) error { return nil }}}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return")
	}
}

type fixedConn struct{ c *amqp.Connection }

func (f fixedConn) Connection() (*amqp.Connection, error) { return f.c, nil }

func TestQueueDepthsReadsTheBroker(t *testing.T) {
	t.Parallel()
	topo := broker.NewTopology(testenv.Namespace(t), []time.Duration{time.Minute}, 20)
	conn, err := amqp.Dial(testenv.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := topo.Declare(context.Background(), ch, testenv.ManagementClient(t)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := ch.Publish("", topo.DLQ, false, false, amqp.Publishing{Body: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	depths := metrics.QueueDepths(fixedConn{conn}, topo.Queues())
	testenv.Eventually(t, 5*time.Second, func() bool {
		d, err := depths(context.Background())
		return err == nil && d[topo.DLQ] == 3 && d[topo.Work] == 0 && d[topo.Notify] == 0 && len(d) == 4
	}, "depths of work, DLQ, notify and the tier")
	if _, err := metrics.QueueDepths(fixedConn{conn}, []string{topo.Namespace + ".missing"})(context.Background()); err == nil {
		t.Error("a missing queue gave no error")
	}
}
