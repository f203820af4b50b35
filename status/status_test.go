package status_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"gorm.io/gorm"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/status"
)

// env is one test's namespace and database: a supervised reading
// connection as `billing status` has, and a raw channel to set the scene.
type env struct {
	topo  broker.Topology
	store *models.Store
	conn  *broker.Conn
	ch    *amqp.Channel
	now   time.Time
}

func setup(t *testing.T) env {
	t.Helper()
	// One tier of an hour: a message put there stays for the test.
	topo := testenv.Declare(t, broker.NewTopology(testenv.Namespace(t), []time.Duration{time.Hour}, 20))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn := broker.NewConn(broker.ConnConfig{URL: testenv.AMQPURL(), Name: topo.Namespace + "-status", Topology: topo}, logger)
	wg.Add(1)
	go func() { defer wg.Done(); _ = conn.Run(ctx) }()
	actx, acancel := context.WithTimeout(ctx, 10*time.Second)
	defer acancel()
	if _, err := conn.Await(actx); err != nil {
		t.Fatal(err)
	}
	ch := testenv.Channel(t)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	return env{topo: topo, store: testenv.Store(t), conn: conn, ch: ch, now: time.Now()}
}

func (e env) dlq(t *testing.T) *dlq.Queue {
	t.Helper()
	q, err := dlq.New(dlq.Config{Topology: e.topo, Idle: 500 * time.Millisecond, Now: func() time.Time { return e.now }}, nil, e.conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func (e env) report(t *testing.T) status.Report {
	t.Helper()
	return e.reportWith(t, status.Config{})
}

// publish puts a message into queue through the default exchange, with a
// confirm.
func (e env) publish(t *testing.T, queue string, msg amqp.Publishing) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conf, err := e.ch.PublishWithDeferredConfirmWithContext(ctx, "", queue, true, false, msg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := conf.WaitContext(ctx); !ok || err != nil {
		t.Fatalf("publish to %s: confirmed %v, %v", queue, ok, err)
	}
}

// park puts id in the DLQ with the headers the router writes.
func (e env) park(t *testing.T, id string, class failure.Class, parkedAt time.Time) {
	t.Helper()
	e.publish(t, e.topo.DLQ, amqp.Publishing{
		MessageId: id, Type: "invoice.paid", DeliveryMode: amqp.Persistent,
		Body: []byte(`{"id":"` + id + `","object":"event","type":"invoice.paid"}`),
		Headers: amqp.Table{
			broker.HeaderErrorClass: string(class),
			broker.HeaderError:      "billing: boom",
			broker.HeaderParkedAt:   parkedAt.UTC().Format(time.RFC3339Nano),
		},
	})
}

func (e env) waitReady(t *testing.T, queue string, n int) {
	t.Helper()
	ready := func() int {
		q, err := e.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("inspect %s: %v", queue, err)
		}
		return q.Messages
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return ready() == n }, "%s to hold %d ready messages", queue, n)
}

func TestReport(t *testing.T) {
	t.Parallel()
	e := setup(t)
	ctx := context.Background()

	t.Run("Quiet", func(t *testing.T) {
		rep := e.report(t)
		var names []string
		for _, q := range rep.Queues {
			names = append(names, q.Name+"/"+q.Role)
			if q.Messages != 0 || q.Consumers != 0 {
				t.Errorf("queue %+v: want empty, no consumer", q)
			}
		}
		want := []string{e.topo.Work + "/work", e.topo.TierQueue(0) + "/retry", e.topo.DLQ + "/dlq"}
		if !slices.Equal(names, want) {
			t.Errorf("queues %v, want %v", names, want)
		}
		if len(rep.Lost) != 0 || !rep.LostCertain || rep.DeadInLedger != 0 || rep.OldestParked != nil || rep.LastSweep != nil || len(rep.ParkedByClass) != 0 {
			t.Errorf("report %+v: want nothing parked, lost or swept", rep)
		}
	})

	// Two events processed, two parked (dead in the ledger and in the
	// DLQ), one unverified message parked without a ledger row, and one
	// dead in the ledger that a mistyped "Move messages" took elsewhere.
	for _, id := range []string{"evt_done_1", "evt_done_2"} {
		err := e.store.InTx(ctx, func(tx *gorm.DB) error {
			now := time.Now()
			_, err := models.ClaimEvent(tx, &models.StripeEvent{ID: id, Type: "invoice.paid", ReceivedAt: now, ProcessedAt: &now})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"evt_perm", "evt_moved_away", "evt_transient"} {
		if err := e.store.MarkDead(ctx, models.DeadEvent{ID: id, Type: "invoice.paid", Attempts: 1, LastError: "boom"}); err != nil {
			t.Fatal(err)
		}
	}
	e.now = time.Now() // the report's clock, after the ledger's
	e.park(t, "evt_perm", failure.Permanent, e.now.Add(-time.Minute))
	e.park(t, "evt_transient", failure.Transient, e.now.Add(-2*time.Minute))
	e.park(t, "evt_unverified", failure.Unverified, e.now.Add(-time.Hour))
	e.waitReady(t, e.topo.DLQ, 3)
	// A worker on the work queue.
	consumer := testenv.Channel(t)
	if _, err := consumer.Consume(e.topo.Work, "", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	// The last sweep pass (maintenance.TestMaintainer/SavesWhatAPassDid checks that a pass saves it).
	saved, err := json.Marshal(maintenance.Report{RedriveResult: maintenance.RedriveResult{Permanent: 2, Waiting: 1}}.Summary(e.now))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.SetCheckpoint(ctx, maintenance.LastPassCheckpoint, string(saved)); err != nil {
		t.Fatal(err)
	}

	t.Run("ParkedAndLost", func(t *testing.T) {
		rep := e.report(t)
		work, dlqQ := rep.Queues[0], rep.Queues[2]
		if work.Consumers != 1 || work.Messages != 0 || dlqQ.Messages != 3 || dlqQ.Consumers != 0 {
			t.Errorf("work %+v, dlq %+v: want a consumer on the work queue and 3 messages in the DLQ", work, dlqQ)
		}
		if want := map[string]int{"permanent": 1, "transient": 1, "unverified": 1}; !maps.Equal(rep.ParkedByClass, want) {
			t.Errorf("parked by class %v, want %v", rep.ParkedByClass, want)
		}
		// Over 5 minutes: 5 ledger rows received, 2 processed, 2 messages
		// parked within the window (the unverified one an hour ago).
		if want := (status.Rates{Received: 1, Processed: 0.4, Parked: 0.4}); rep.PerMinute != want {
			t.Errorf("per minute %+v, want %+v", rep.PerMinute, want)
		}
		if rep.DeadInLedger != 3 || rep.OldestParked == nil || rep.OldestParked.EventID != "evt_perm" || rep.OldestParked.AgeSeconds <= 0 {
			t.Errorf("dead %d, oldest %+v: want 3 dead, evt_perm the oldest", rep.DeadInLedger, rep.OldestParked)
		}
		if !slices.Equal(rep.Lost, []string{"evt_moved_away"}) || !rep.LostCertain {
			t.Errorf("lost %v (certain %v), want [evt_moved_away] for certain", rep.Lost, rep.LostCertain)
		}
		if s := rep.LastSweep; s == nil || !s.At.Equal(e.now.UTC()) || s.Redriven != 0 || s.Permanent != 2 || s.Waiting != 1 {
			t.Errorf("last sweep %+v: want this test's pass, 2 for a person and 1 waiting", s)
		}
		e.waitReady(t, e.topo.DLQ, 3) // the report left every message parked
	})

	t.Run("RetryingMakesLostUncertain", func(t *testing.T) {
		e.publish(t, e.topo.TierQueue(0), amqp.Publishing{MessageId: "evt_retry", Body: []byte(`{}`)})
		e.waitReady(t, e.topo.TierQueue(0), 1)
		rep := e.report(t)
		if rep.Retrying != 1 || rep.LostCertain || !slices.Equal(rep.Lost, []string{"evt_moved_away"}) {
			t.Errorf("retrying %d, lost %v certain %v: want 1 retrying, evt_moved_away lost but not for certain", rep.Retrying, rep.Lost, rep.LostCertain)
		}
	})
}
