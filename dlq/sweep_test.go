package dlq_test

import (
	"context"
	"errors"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/reconcile"
	"github.com/stripe-billing/billing/retry"
)

func newSweep(t *testing.T, e dlqEnv, store dlq.SweepStore, now time.Time, limit, maxRedrives int) *dlq.Sweep {
	t.Helper()
	s, err := dlq.NewSweep(dlq.SweepConfig{MinAge: 15 * time.Minute, Limit: limit, MaxRedrives: maxRedrives, Now: func() time.Time { return now }},
		quietLogger(), store, e.newDLQ(t, now), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSweepRedrivesTransientParkedEventsAndLeavesPermanentOnes(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 20)
	store := testenv.Store(t)
	ctx := context.Background()
	now := time.Now()
	old := now.Add(-time.Hour)
	sent := map[string]amqp.Publishing{
		"evt_old":       e.park(t, "evt_old", "invoice.paid", failure.Transient, old, nil),
		"evt_perm":      e.park(t, "evt_perm", "invoice.paid", failure.Permanent, old, nil),
		"evt_young":     e.park(t, "evt_young", "invoice.paid", failure.Transient, now.Add(-time.Minute), nil),
		"evt_maxed":     e.park(t, "evt_maxed", "invoice.paid", failure.Transient, old, amqp.Table{broker.HeaderRedrives: int32(2)}),
		"evt_exhausted": e.park(t, "evt_exhausted", "invoice.paid", failure.Exhausted, old, amqp.Table{broker.HeaderRedrives: int32(1)}),
		// A planted message the worker could not verify: never laundered
		// back into the work queue.
		"evt_unverified": e.park(t, "evt_unverified", "invoice.paid", failure.Unverified, old, nil),
	}
	e.waitReady(t, e.topo.DLQ, len(sent))
	if err := store.MarkDead(ctx, models.DeadEvent{ID: "evt_old", Type: "invoice.paid", Attempts: 3, LastError: "x"}); err != nil {
		t.Fatal(err)
	}

	rep, err := newSweep(t, e, store, now, 10, 2).Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(eventIDs(rep.Redriven), ","); g != "evt_old,evt_exhausted" {
		t.Errorf("re-driven %s, want evt_old,evt_exhausted", g)
	}
	if rep.Skipped || rep.Permanent != 2 || rep.OutOfRedrives != 1 || rep.Waiting != 1 || rep.LeftForPerson() != 3 {
		t.Errorf("report %+v: want 2 permanent (permanent, unverified), 1 out of re-drives, 1 waiting", rep)
	}
	saved, err := store.Checkpoint(ctx, dlq.LastSweepCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := dlq.ParseSweepSummary(saved)
	if err != nil || !sum.At.Equal(now.UTC()) || sum.Redriven != 2 || sum.Permanent != 2 || sum.OutOfRedrives != 1 || sum.Waiting != 1 || sum.Reconciled != nil || len(sum.Errors) != 0 {
		t.Errorf("saved summary %+v, %v: want this pass's counts at %s", sum, err, now.UTC())
	}
	e.waitReady(t, e.topo.DLQ, 4)
	for _, d := range e.takeAll(t, e.topo.Work) {
		checkReplayCopy(t, d, sent[d.MessageId], e.topo.Work, true)
	}
	var redrives int
	if err := store.DB().WithContext(ctx).Model(&models.StripeEvent{}).Where("id = ?", "evt_old").Pluck("redrives", &redrives).Error; err != nil || redrives != 1 {
		t.Errorf("ledger redrives of evt_old = %d, %v; want 1", redrives, err)
	}
	var left []string
	for _, d := range e.takeAll(t, e.topo.DLQ) {
		left = append(left, d.MessageId)
	}
	if g := strings.Join(left, ","); g != "evt_perm,evt_young,evt_maxed,evt_unverified" {
		t.Errorf("DLQ holds %s, want evt_perm,evt_young,evt_maxed,evt_unverified in order", g)
	}
}

// An event that keeps failing goes round: parked by the consumer's router,
// re-driven by the sweep, failing again; after SWEEP_MAX_REDRIVES re-drives
// the sweep leaves it for a person.
func TestSweepRespectsMaxRedrives(t *testing.T) {
	t.Parallel()
	const maxRedrives = 2
	e := newDLQEnv(t, 20)
	store := testenv.Store(t)
	ctx := context.Background()
	router, err := dlq.NewRouter(dlq.RouterConfig{Topology: e.topo, Policy: retry.Policy{Delays: e.topo.Delays, MaxAttempts: 1}, Host: "worker-1"},
		quietLogger(), e.pub, store)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.pub.Publish(ctx, e.topo.Events, "invoice.paid", amqp.Publishing{MessageId: "evt_loop", Type: "invoice.paid", ContentType: "application/json", Body: parkedBody("evt_loop", "invoice.paid")}); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour) // every parking is older than the min age
	for pass := 1; pass <= maxRedrives+1; pass++ {
		// The worker fails: the router parks the event.
		testenv.Eventually(t, 5*time.Second, func() bool { return e.ready(t, e.topo.Work) == 1 }, "the event in the work queue")
		d, ok, err := e.ch.Get(e.topo.Work, false)
		if err != nil || !ok {
			t.Fatalf("pass %d: get: %v", pass, err)
		}
		if _, err := router.Fail(ctx, d, errors.New("payment provider timeout")); err != nil {
			t.Fatal(err)
		}
		if err := d.Ack(false); err != nil {
			t.Fatal(err)
		}
		e.waitReady(t, e.topo.DLQ, 1)
		rep, err := newSweep(t, e, store, later, 10, maxRedrives).Pass(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if pass <= maxRedrives {
			if len(rep.Redriven) != 1 || rep.Redriven[0].Redrives != pass {
				t.Fatalf("pass %d: re-driven %+v, want evt_loop with %d re-drives", pass, rep.Redriven, pass)
			}
			continue
		}
		if len(rep.Redriven) != 0 || rep.OutOfRedrives != 1 {
			t.Fatalf("pass %d: report %+v, want the event left for a person", pass, rep)
		}
	}
	e.waitReady(t, e.topo.DLQ, 1)
	if n := e.ready(t, e.topo.Work); n != 0 {
		t.Errorf("work queue holds %d messages, want 0", n)
	}
	var ev models.StripeEvent
	if err := store.DB().WithContext(ctx).Where("id = ?", "evt_loop").Take(&ev).Error; err != nil || ev.Redrives != maxRedrives || ev.Status != models.EventDead {
		t.Errorf("ledger row %+v, %v; want dead with %d re-drives", ev, err, maxRedrives)
	}
}

func TestSweepLimit(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 20)
	now := time.Now()
	for _, id := range []string{"evt_1", "evt_2", "evt_3"} {
		e.park(t, id, "invoice.paid", failure.Transient, now.Add(-time.Hour), nil)
	}
	e.waitReady(t, e.topo.DLQ, 3)
	rep, err := newSweep(t, e, testenv.Store(t), now, 2, 3).Pass(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if g := strings.Join(eventIDs(rep.Redriven), ","); g != "evt_1,evt_2" {
		t.Errorf("re-driven %s, want evt_1,evt_2", g)
	}
	e.waitReady(t, e.topo.DLQ, 1)
	e.waitReady(t, e.topo.Work, 2)
}

// slowStore makes each re-drive take a while, so that two sweeps started
// together surely overlap.
type slowStore struct{ *models.Store }

func (s slowStore) IncrementRedrives(ctx context.Context, id string) (int, error) {
	time.Sleep(20 * time.Millisecond)
	return s.Store.IncrementRedrives(ctx, id)
}

func TestTwoConcurrentSweepsMoveEachMessageOnce(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 20)
	dsn := testenv.Database(t)
	now := time.Now()
	const n = 20
	var want []string
	for i := range n {
		id := "evt_" + string(rune('a'+i))
		want = append(want, id)
		e.park(t, id, "invoice.paid", failure.Transient, now.Add(-time.Hour), nil)
	}
	e.waitReady(t, e.topo.DLQ, n)
	var sweeps []*dlq.Sweep
	for range 2 { // two processes: own store, own broker connections
		store, err := models.Open(context.Background(), dsn, models.PoolConfig{}, quietLogger())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		sweeps = append(sweeps, newSweep(t, newDLQEnvSharing(t, e), slowStore{store}, now, 100, 3))
	}
	reps := make([]dlq.SweepReport, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, s := range sweeps {
		wg.Go(func() { reps[i], errs[i] = s.Pass(context.Background()) })
	}
	wg.Wait()
	if errs[0] != nil || errs[1] != nil {
		t.Fatalf("sweeps failed: %v; %v", errs[0], errs[1])
	}
	if reps[0].Skipped == reps[1].Skipped {
		t.Errorf("skipped: %v, %v; want exactly one sweep to find the lock held", reps[0].Skipped, reps[1].Skipped)
	}
	if total := len(reps[0].Redriven) + len(reps[1].Redriven); total != n {
		t.Errorf("re-driven %d + %d, want %d in all", len(reps[0].Redriven), len(reps[1].Redriven), n)
	}
	e.waitReady(t, e.topo.Work, n)
	var got []string
	for _, d := range e.takeAll(t, e.topo.Work) {
		got = append(got, d.MessageId)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("work queue holds %v, want each of %v once", got, want)
	}
	if d := e.ready(t, e.topo.DLQ); d != 0 {
		t.Errorf("DLQ still holds %d", d)
	}
}

type failingReconciler struct{}

func (failingReconciler) Reconcile(context.Context) (reconcile.Result, error) {
	return reconcile.Result{}, errors.New("stripe down")
}

// TestSweepSavesItsLastSuccess: a pass saves its period and, when it
// failed, the end of the last pass that did not, for `billing status`.
func TestSweepSavesItsLastSuccess(t *testing.T) {
	t.Parallel()
	e := newDLQEnv(t, 20)
	store := testenv.Store(t)
	ctx := context.Background()
	t1 := time.Now().UTC().Truncate(time.Millisecond)
	t2 := t1.Add(5 * time.Minute)
	pass := func(now time.Time, rec dlq.Reconciler) dlq.SweepSummary {
		t.Helper()
		s, err := dlq.NewSweep(dlq.SweepConfig{MinAge: time.Minute, Limit: 10, Every: 5 * time.Minute, Now: func() time.Time { return now }},
			quietLogger(), store, e.newDLQ(t, now), rec)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = s.Pass(ctx)
		saved, err := store.Checkpoint(ctx, dlq.LastSweepCheckpoint)
		if err != nil {
			t.Fatal(err)
		}
		sum, err := dlq.ParseSweepSummary(saved)
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	if sum := pass(t1, nil); !sum.LastSuccess.Equal(t1) || sum.EverySeconds != 300 {
		t.Errorf("after a good pass: %+v, want last success %s, every 300 s", sum, t1)
	}
	if sum := pass(t2, failingReconciler{}); !sum.At.Equal(t2) || len(sum.Errors) != 1 || !sum.LastSuccess.Equal(t1) {
		t.Errorf("after a failed pass: %+v, want at %s, one error, last success still %s", sum, t2, t1)
	}
}
