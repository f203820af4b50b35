package maintenance_test

import (
	"context"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe-billing/billing/audit"
	"github.com/stripe-billing/billing/dlq/dlqtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/models"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// sweepStore is what one sweep process uses of the database.
type sweepStore interface {
	maintenance.Store
	maintenance.RedriveStore
	maintenance.PruneStore
}

// newMaintainer is a sweep as `billing sweep` wires it, without Stripe:
// the re-drive (15 minutes, limit 100, 3 re-drives), no payload retention.
func newMaintainer(t *testing.T, e *dlqtest.Env, store sweepStore, now time.Time, every time.Duration) *maintenance.Maintainer {
	t.Helper()
	clock := func() time.Time { return now }
	redrive, err := maintenance.NewRedrive(maintenance.RedriveConfig{MinAge: 15 * time.Minute, Limit: 100, MaxRedrives: 3, Now: clock}, quietLogger(), store, e.Queue(t, now))
	if err != nil {
		t.Fatal(err)
	}
	prune, err := maintenance.NewPrune(maintenance.PruneConfig{Now: clock}, quietLogger(), store)
	if err != nil {
		t.Fatal(err)
	}
	m, err := maintenance.New(maintenance.Config{Every: every, Now: clock}, quietLogger(), store, redrive, nil, prune, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func savedSummary(t *testing.T, store *models.Store) maintenance.Summary {
	t.Helper()
	saved, err := store.Checkpoint(context.Background(), maintenance.LastPassCheckpoint)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := maintenance.ParseSummary(saved)
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// slowStore makes each re-drive take a while, so that two sweeps started
// together surely overlap.
type slowStore struct{ *models.Store }

func (s slowStore) IncrementRedrives(ctx context.Context, id string) (int, error) {
	time.Sleep(20 * time.Millisecond)
	return s.Store.IncrementRedrives(ctx, id)
}

func TestMaintainer(t *testing.T) {
	t.Parallel()

	// A pass saves its counts for `billing status` (status reads them).
	t.Run("SavesWhatAPassDid", func(t *testing.T) {
		t.Parallel()
		e := dlqtest.NewEnv(t, 20)
		store := testenv.Store(t)
		now := time.Now()
		e.Park(t, "evt_old", "invoice.paid", failure.Transient, now.Add(-time.Hour), nil)
		e.Park(t, "evt_perm", "invoice.paid", failure.Permanent, now.Add(-time.Hour), nil)
		e.Park(t, "evt_young", "invoice.paid", failure.Transient, now, nil)
		e.WaitReady(t, e.Topo.DLQ, 3)
		rep, err := newMaintainer(t, e, store, now, 0).Pass(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if rep.Skipped || len(rep.Redriven) != 1 || rep.Permanent != 1 || rep.Waiting != 1 || rep.Reconciled != nil || rep.Pruned != 0 {
			t.Errorf("report %+v: want 1 re-driven, 1 permanent, 1 waiting, no reconciliation", rep)
		}
		sum := savedSummary(t, store)
		if !sum.At.Equal(now.UTC()) || sum.Redriven != 1 || sum.Permanent != 1 || sum.OutOfRedrives != 0 || sum.Waiting != 1 ||
			sum.Reconciled != nil || len(sum.Errors) != 0 || !sum.LastSuccess.Equal(now.UTC()) || sum.EverySeconds != 0 {
			t.Errorf("saved summary %+v: want this pass's counts at %s", sum, now.UTC())
		}
		e.WaitReady(t, e.Topo.Work, 1)
	})

	// A pass reads what the last audit found, for its metric.
	t.Run("ReadsTheLastAudit", func(t *testing.T) {
		t.Parallel()
		e := dlqtest.NewEnv(t, 20)
		store := testenv.Store(t)
		now := time.Now()
		m := newMaintainer(t, e, store, now, 0)
		if rep, err := m.Pass(context.Background()); err != nil || rep.Audit != nil {
			t.Fatalf("before any audit: %+v, %v; want no audit", rep.Audit, err)
		}
		if err := store.SetCheckpoint(context.Background(), audit.LastCheckpoint, `{"at":"2026-03-01T12:00:00Z","compared":10,"differ":2}`); err != nil {
			t.Fatal(err)
		}
		rep, err := m.Pass(context.Background())
		if err != nil || rep.Audit == nil || rep.Audit.Differ != 2 || rep.Audit.Compared != 10 {
			t.Errorf("audit read %+v, %v; want 10 compared, 2 differing", rep.Audit, err)
		}
	})

	// Two sweeps at once (two cron hosts): the lock lets one run, the
	// other skips, and each parked event is re-driven once.
	t.Run("TwoAtOnceMoveEachMessageOnce", func(t *testing.T) {
		t.Parallel()
		e := dlqtest.NewEnv(t, 20)
		dsn := testenv.Database(t)
		now := time.Now()
		const n = 20
		var want []string
		for i := range n {
			id := "evt_" + string(rune('a'+i))
			want = append(want, id)
			e.Park(t, id, "invoice.paid", failure.Transient, now.Add(-time.Hour), nil)
		}
		e.WaitReady(t, e.Topo.DLQ, n)
		var sweeps []*maintenance.Maintainer
		for range 2 { // two processes: own store, own broker connections
			store, err := models.Open(context.Background(), dsn, models.PoolConfig{}, quietLogger())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { store.Close() })
			sweeps = append(sweeps, newMaintainer(t, dlqtest.NewEnvSharing(t, e), slowStore{store}, now, 0))
		}
		reps := make([]maintenance.Report, 2)
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
		e.WaitReady(t, e.Topo.Work, n)
		var got []string
		for _, d := range e.TakeAll(t, e.Topo.Work) {
			got = append(got, d.MessageId)
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("work queue holds %v, want each of %v once", got, want)
		}
		if d := e.Ready(t, e.Topo.DLQ); d != 0 {
			t.Errorf("DLQ still holds %d", d)
		}
	})

	// A pass saves its period and, when it failed, the end of the last
	// pass that did not, for `billing status`.
	t.Run("SavesItsLastSuccess", func(t *testing.T) {
		t.Parallel()
		e := dlqtest.NewEnv(t, 20)
		store := testenv.Store(t)
		ctx := context.Background()
		t1 := time.Now().UTC().Truncate(time.Millisecond)
		t2 := t1.Add(5 * time.Minute)
		retained := func(now time.Time) *maintenance.Maintainer {
			clock := func() time.Time { return now }
			redrive, err := maintenance.NewRedrive(maintenance.RedriveConfig{MinAge: time.Minute, Limit: 10, Now: clock}, quietLogger(), store, e.Queue(t, now))
			if err != nil {
				t.Fatal(err)
			}
			prune, err := maintenance.NewPrune(maintenance.PruneConfig{Retention: time.Hour, Now: clock}, quietLogger(), store)
			if err != nil {
				t.Fatal(err)
			}
			m, err := maintenance.New(maintenance.Config{Every: 5 * time.Minute, Now: clock}, quietLogger(), store, redrive, nil, prune, nil)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		if _, err := retained(t1).Pass(ctx); err != nil {
			t.Fatal(err)
		}
		if sum := savedSummary(t, store); !sum.LastSuccess.Equal(t1) || sum.EverySeconds != 300 {
			t.Errorf("after a good pass: %+v, want last success %s, every 300 s", sum, t1)
		}
		// A checkpoint the pruning cannot read fails the next pass.
		if err := store.SetCheckpoint(ctx, maintenance.PruneCheckpoint, "not json"); err != nil {
			t.Fatal(err)
		}
		if _, err := retained(t2).Pass(ctx); err == nil || !strings.Contains(err.Error(), "maintenance: prune: checkpoint") {
			t.Fatalf("pass with a broken prune checkpoint = %v, want the prune's error", err)
		}
		if sum := savedSummary(t, store); !sum.At.Equal(t2) || len(sum.Errors) != 1 || !sum.LastSuccess.Equal(t1) {
			t.Errorf("after a failed pass: %+v, want at %s, one error, last success still %s", sum, t2, t1)
		}
	})

	// `sweep --every`: a pass at once and then one each period, until
	// stopped; then Run returns nil.
	t.Run("RunPassesUntilStopped", func(t *testing.T) {
		t.Parallel()
		e := dlqtest.NewEnv(t, 20)
		m := newMaintainer(t, e, testenv.Store(t), time.Now(), 10*time.Millisecond)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var reports []maintenance.Report
		err := m.Run(ctx, func(rep maintenance.Report) {
			reports = append(reports, rep)
			if len(reports) == 3 {
				cancel()
			}
		})
		if err != nil || len(reports) != 3 {
			t.Fatalf("Run = %v after %d passes, want nil after 3", err, len(reports))
		}
		for i, rep := range reports {
			if rep.Skipped || len(rep.Errors) != 0 {
				t.Errorf("pass %d: %+v, want run without errors", i+1, rep)
			}
		}
	})

	t.Run("RunNeedsAPeriod", func(t *testing.T) {
		t.Parallel()
		e := dlqtest.NewEnv(t, 20)
		err := newMaintainer(t, e, testenv.Store(t), time.Now(), 0).Run(context.Background(), func(maintenance.Report) {})
		if err == nil || !strings.Contains(err.Error(), "maintenance: every 0s") {
			t.Errorf("Run without a period = %v, want refused", err)
		}
	})
}
