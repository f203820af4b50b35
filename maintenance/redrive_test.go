package maintenance_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/dlq/dlqtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/retry"
)

func newRedrive(t *testing.T, e *dlqtest.Env, store maintenance.RedriveStore, now time.Time, limit, maxRedrives int) *maintenance.Redrive {
	t.Helper()
	r, err := maintenance.NewRedrive(maintenance.RedriveConfig{MinAge: 15 * time.Minute, Limit: limit, MaxRedrives: maxRedrives, Now: func() time.Time { return now }},
		quietLogger(), store, e.Queue(t, now))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRedrive(t *testing.T) {
	t.Parallel()

	t.Run("SendsBackTransientFailuresAndLeavesTheRestToAPerson", func(t *testing.T) {
		t.Parallel()
		e := dlqtest.NewEnv(t, 20)
		store := testenv.Store(t)
		ctx := context.Background()
		now := time.Now()
		old := now.Add(-time.Hour)
		sent := map[string]amqp.Publishing{
			"evt_old":       e.Park(t, "evt_old", "invoice.paid", failure.Transient, old, nil),
			"evt_perm":      e.Park(t, "evt_perm", "invoice.paid", failure.Permanent, old, nil),
			"evt_young":     e.Park(t, "evt_young", "invoice.paid", failure.Transient, now.Add(-time.Minute), nil),
			"evt_maxed":     e.Park(t, "evt_maxed", "invoice.paid", failure.Transient, old, amqp.Table{broker.HeaderRedrives: int32(2)}),
			"evt_exhausted": e.Park(t, "evt_exhausted", "invoice.paid", failure.Exhausted, old, amqp.Table{broker.HeaderRedrives: int32(1)}),
			// A planted message the worker could not verify: never laundered
			// back into the work queue.
			"evt_unverified": e.Park(t, "evt_unverified", "invoice.paid", failure.Unverified, old, nil),
		}
		e.WaitReady(t, e.Topo.DLQ, len(sent))
		if err := store.MarkDead(ctx, models.DeadEvent{ID: "evt_old", Type: "invoice.paid", Attempts: 3, LastError: "x"}); err != nil {
			t.Fatal(err)
		}

		res, err := newRedrive(t, e, store, now, 10, 2).Pass(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if g := strings.Join(dlqtest.EventIDs(res.Redriven), ","); g != "evt_old,evt_exhausted" {
			t.Errorf("re-driven %s, want evt_old,evt_exhausted", g)
		}
		if res.Permanent != 2 || res.OutOfRedrives != 1 || res.Waiting != 1 || res.LeftForPerson() != 3 {
			t.Errorf("result %+v: want 2 permanent (permanent, unverified), 1 out of re-drives, 1 waiting", res)
		}
		e.WaitReady(t, e.Topo.DLQ, 4)
		for _, d := range e.TakeAll(t, e.Topo.Work) {
			dlqtest.CheckReplayCopy(t, d, sent[d.MessageId], e.Topo, true)
		}
		var redrives int
		if err := store.DB().WithContext(ctx).Model(&models.StripeEvent{}).Where("id = ?", "evt_old").Pluck("redrives", &redrives).Error; err != nil || redrives != 1 {
			t.Errorf("ledger redrives of evt_old = %d, %v; want 1", redrives, err)
		}
		var left []string
		for _, d := range e.TakeAll(t, e.Topo.DLQ) {
			left = append(left, d.MessageId)
		}
		if g := strings.Join(left, ","); g != "evt_perm,evt_young,evt_maxed,evt_unverified" {
			t.Errorf("DLQ holds %s, want evt_perm,evt_young,evt_maxed,evt_unverified in order", g)
		}
	})

	// An event that keeps failing goes round: parked by the consumer's
	// router, re-driven, failing again; after MaxRedrives re-drives it is
	// left for a person.
	t.Run("RespectsMaxRedrives", func(t *testing.T) {
		t.Parallel()
		const maxRedrives = 2
		e := dlqtest.NewEnv(t, 20)
		store := testenv.Store(t)
		ctx := context.Background()
		router, err := dlq.NewRouter(dlq.RouterConfig{Topology: e.Topo, Policy: retry.Policy{Delays: e.Topo.Delays, MaxAttempts: 1}, Host: "worker-1"},
			quietLogger(), e.Pub, store)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Pub.Publish(ctx, e.Topo.Events, "invoice.paid", amqp.Publishing{MessageId: "evt_loop", Type: "invoice.paid", ContentType: "application/json", Body: dlqtest.ParkedBody("evt_loop", "invoice.paid")}); err != nil {
			t.Fatal(err)
		}
		later := time.Now().Add(time.Hour) // every parking is older than the min age
		for pass := 1; pass <= maxRedrives+1; pass++ {
			// The worker fails: the router parks the event.
			testenv.Eventually(t, 5*time.Second, func() bool { return e.Ready(t, e.Topo.Work) == 1 }, "the event in the work queue")
			d, ok, err := e.Ch.Get(e.Topo.Work, false)
			if err != nil || !ok {
				t.Fatalf("pass %d: get: %v", pass, err)
			}
			if _, err := router.Fail(ctx, d, errors.New("payment provider timeout")); err != nil {
				t.Fatal(err)
			}
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
			e.WaitReady(t, e.Topo.DLQ, 1)
			res, err := newRedrive(t, e, store, later, 10, maxRedrives).Pass(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if pass <= maxRedrives {
				if len(res.Redriven) != 1 || res.Redriven[0].Redrives != pass {
					t.Fatalf("pass %d: re-driven %+v, want evt_loop with %d re-drives", pass, res.Redriven, pass)
				}
				continue
			}
			if len(res.Redriven) != 0 || res.OutOfRedrives != 1 {
				t.Fatalf("pass %d: result %+v, want the event left for a person", pass, res)
			}
		}
		e.WaitReady(t, e.Topo.DLQ, 1)
		if n := e.Ready(t, e.Topo.Work); n != 0 {
			t.Errorf("work queue holds %d messages, want 0", n)
		}
		var ev models.StripeEvent
		if err := store.DB().WithContext(ctx).Where("id = ?", "evt_loop").Take(&ev).Error; err != nil || ev.Redrives != maxRedrives || ev.Status != models.EventDead {
			t.Errorf("ledger row %+v, %v; want dead with %d re-drives", ev, err, maxRedrives)
		}
	})

	t.Run("Limit", func(t *testing.T) {
		t.Parallel()
		e := dlqtest.NewEnv(t, 20)
		now := time.Now()
		for _, id := range []string{"evt_1", "evt_2", "evt_3"} {
			e.Park(t, id, "invoice.paid", failure.Transient, now.Add(-time.Hour), nil)
		}
		e.WaitReady(t, e.Topo.DLQ, 3)
		res, err := newRedrive(t, e, testenv.Store(t), now, 2, 3).Pass(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if g := strings.Join(dlqtest.EventIDs(res.Redriven), ","); g != "evt_1,evt_2" {
			t.Errorf("re-driven %s, want evt_1,evt_2", g)
		}
		e.WaitReady(t, e.Topo.DLQ, 1)
		e.WaitReady(t, e.Topo.Work, 2)
	})

	t.Run("RefusesBadSettings", func(t *testing.T) {
		t.Parallel()
		e := dlqtest.NewEnv(t, 20)
		store := testenv.Store(t)
		for _, cfg := range []maintenance.RedriveConfig{{Limit: 0}, {Limit: 1, MinAge: -time.Minute}, {Limit: 1, MaxRedrives: -1}} {
			if _, err := maintenance.NewRedrive(cfg, nil, store, e.Queue(t, time.Now())); err == nil || !strings.Contains(err.Error(), "maintenance: re-drive: min age") {
				t.Errorf("NewRedrive(%+v) = %v, want an error naming the settings", cfg, err)
			}
		}
	})
}
