package status_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/status"
)

func (e env) reportWith(t *testing.T, cfg status.Config) status.Report {
	t.Helper()
	cfg.Topology, cfg.Window, cfg.Now = e.topo, 5*time.Minute, func() time.Time { return e.now }
	r, err := status.New(cfg, e.conn, e.dlq(t), e.store)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Report(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// consume puts a consumer on the work queue for the rest of the test.
func (e env) consume(t *testing.T) {
	t.Helper()
	if _, err := testenv.Channel(t).Consume(e.topo.Work, "", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
}

func (e env) saveSweep(t *testing.T, sum maintenance.Summary) {
	t.Helper()
	b, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetCheckpoint(context.Background(), maintenance.LastPassCheckpoint, string(b)); err != nil {
		t.Fatal(err)
	}
}

// checks lists the findings as "severity check" in rep's order.
func checks(rep status.Report) string {
	var out []string
	for _, f := range rep.Findings {
		out = append(out, f.Severity+" "+f.Check)
	}
	return strings.Join(out, ", ")
}

func management(t *testing.T, base string) status.QueueLister {
	t.Helper()
	m, err := broker.NewManagement(base, "/")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestFindings sets up each finding alone, on a namespace and database of
// its own, and checks the report's findings, in order, and severity.
func TestFindings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// scene sets the finding up and returns the report's settings.
		scene        func(t *testing.T, e env) status.Config
		want         string // checks(rep)
		wantSeverity string
		wantInText   string
	}{
		{"Healthy", func(t *testing.T, e env) status.Config {
			e.consume(t)
			e.saveSweep(t, maintenance.Summary{At: e.now, LastSuccess: e.now.Add(-time.Minute), EverySeconds: 300})
			return status.Config{Queues: management(t, testenv.ManagementURL())}
		}, "", status.OK, ""},
		{"NoConsumer", func(t *testing.T, e env) status.Config {
			return status.Config{}
		}, "critical no_consumer", status.Critical, "no consumer on "},
		{"DLQGrowing", func(t *testing.T, e env) status.Config {
			e.consume(t)
			e.park(t, billingtest.NewEventID(), failure.Unverified, e.now.Add(-time.Minute))
			e.park(t, billingtest.NewEventID(), failure.Unverified, e.now.Add(-time.Hour)) // before the window
			e.waitReady(t, e.topo.DLQ, 2)
			return status.Config{}
		}, "warning dlq_growing", status.Warning, "DLQ growing: 1 event(s) parked in the last 5m0s"},
		{"LostForCertain", func(t *testing.T, e env) status.Config {
			e.consume(t)
			id := billingtest.NewEventID()
			if err := e.store.MarkDead(context.Background(), models.DeadEvent{ID: id, Type: "invoice.paid", Attempts: 1, LastError: "boom"}); err != nil {
				t.Fatal(err)
			}
			return status.Config{}
		}, "critical lost", status.Critical, "1 event(s) dead in the ledger are in no queue of the topology, deleted from the DLQ or moved out of the namespace: evt_"},
		{"LostPerhapsOnTheWayBack", func(t *testing.T, e env) status.Config {
			e.consume(t)
			if err := e.store.MarkDead(context.Background(), models.DeadEvent{ID: billingtest.NewEventID(), Type: "invoice.paid", Attempts: 1, LastError: "boom"}); err != nil {
				t.Fatal(err)
			}
			e.publish(t, e.topo.TierQueue(0), amqp.Publishing{MessageId: billingtest.NewEventID(), Body: []byte(`{}`)})
			e.waitReady(t, e.topo.TierQueue(0), 1)
			return status.Config{}
		}, "warning lost", status.Warning, "may be on their way back"},
		{"SweepLateByItsSavedPeriod", func(t *testing.T, e env) status.Config {
			e.consume(t)
			e.saveSweep(t, maintenance.Summary{At: e.now.Add(-time.Minute), LastSuccess: e.now.Add(-11 * time.Minute), EverySeconds: 300})
			return status.Config{}
		}, "warning sweep_late", status.Warning, "the last successful sweep ended 11m0s ago, more than twice its period of 5m0s"},
		{"SweepLateByCronsPeriod", func(t *testing.T, e env) status.Config {
			e.consume(t)
			e.saveSweep(t, maintenance.Summary{At: e.now.Add(-3 * time.Hour), LastSuccess: e.now.Add(-3 * time.Hour)})
			return status.Config{SweepPeriod: time.Hour}
		}, "warning sweep_late", status.Warning, "more than twice its period of 1h0m0s"},
		{"SweepNeverSucceeded", func(t *testing.T, e env) status.Config {
			e.consume(t)
			return status.Config{SweepPeriod: time.Hour}
		}, "warning sweep_late", status.Warning, "no sweep pass has succeeded"},
		{"StrayQueueHoldsTheLost", func(t *testing.T, e env) status.Config {
			e.consume(t)
			id := billingtest.NewEventID()
			if err := e.store.MarkDead(context.Background(), models.DeadEvent{ID: id, Type: "invoice.paid", Attempts: 1, LastError: "boom"}); err != nil {
				t.Fatal(err)
			}
			typo := e.topo.DLQ + "x"
			if _, err := e.ch.QueueDeclare(typo, true, false, false, false, nil); err != nil {
				t.Fatal(err)
			}
			e.publish(t, typo, amqp.Publishing{MessageId: id, Body: []byte(`{}`)})
			testenv.Eventually(t, 10*time.Second, func() bool { n, _ := testenv.QueueDepth(typo); return n == 1 }, "the management API to count %s", typo)
			return status.Config{Queues: management(t, testenv.ManagementURL())}
		}, "critical lost, warning stray_queue", status.Critical, ".events.dlqx holds 1 message(s)"},
		{"StraysUnchecked", func(t *testing.T, e env) status.Config {
			e.consume(t)
			return status.Config{Queues: management(t, "http://guest:guest@127.0.0.1:1/")}
		}, "warning stray_queues_unchecked", status.Warning, "stray queues not checked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			cfg := tt.scene(t, e)
			rep := e.reportWith(t, cfg)
			if got := checks(rep); got != tt.want || rep.Severity != tt.wantSeverity {
				t.Errorf("findings %q, severity %s; want %q, %s\n%+v", got, rep.Severity, tt.want, tt.wantSeverity, rep.Findings)
			}
			var text []string
			for _, f := range rep.Findings {
				text = append(text, f.Message)
			}
			if !strings.Contains(strings.Join(text, "\n"), tt.wantInText) {
				t.Errorf("findings say %q, want %q in them", text, tt.wantInText)
			}
		})
	}
}
