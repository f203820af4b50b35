package main

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/feed"
)

func TestSweepCommand(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q := newParkedQueues(t, ns)
	getenv := dlqCmdEnv(ns, map[string]string{
		"MYSQL_DSN":       testenv.Database(t),
		"SWEEP_MIN_AGE":   "15m",
		"STRIPE_API_KEY":  "sk_test_123",
		"STRIPE_API_BASE": testenv.StripeMock(t),
	})
	now := time.Now()
	q.park(t, "evt_old", "invoice.paid", failure.Transient, now.Add(-time.Hour))
	q.park(t, "evt_perm", "invoice.paid", failure.Permanent, now.Add(-time.Hour))
	q.park(t, "evt_young", "invoice.paid", failure.Transient, now)
	q.waitReady(t, q.topo.DLQ, 3)

	out, err := runCmd(t, getenv, "sweep")
	if err != nil {
		t.Fatal(err)
	}
	// stripe-mock's one event is from 2009, outside the 30 days.
	want := "sweep: re-driven 1, left for a person 1 (permanent 1, out of re-drives 0), waiting 1, reconciled 0 missing of 1 listed since "
	if !strings.Contains(out, "re-driven evt_old invoice.paid (re-drive 1)") || !strings.Contains(out, want) || !strings.Contains(out, "errors 0") {
		t.Errorf("sweep output:\n%s\nwant %q", out, want)
	}
	q.waitReady(t, q.topo.DLQ, 2)
	if got := q.ids(t, q.topo.Work); strings.Join(got, ",") != "evt_old" {
		t.Errorf("work queue holds %v, want evt_old", got)
	}
}

func TestSweepCommandFailsWithoutMySQL(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	_, err := runCmd(t, dlqCmdEnv(ns, map[string]string{"MYSQL_DSN": "root@tcp(127.0.0.1:1)/billing?parseTime=true&timeout=1s"}), "sweep")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "MYSQL_DSN") {
		t.Fatalf("sweep without MySQL = %v, want exit 1 naming MYSQL_DSN", err)
	}
}

// Two sweeps at once, as two cron hosts would start them: every parked
// event is re-driven exactly once.
func TestSweepCommandTwoAtOnceMoveEachMessageOnce(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q := newParkedQueues(t, ns)
	getenv := dlqCmdEnv(ns, map[string]string{"MYSQL_DSN": testenv.Database(t), "SWEEP_MIN_AGE": "1m"})
	const n = 30
	for i := range n {
		q.park(t, fmt.Sprintf("evt_%02d", i), "invoice.paid", failure.Transient, time.Now().Add(-time.Hour))
	}
	q.waitReady(t, q.topo.DLQ, n)
	outs := make([]string, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() { outs[i], errs[i] = runCmd(t, getenv, "sweep") })
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Fatalf("sweep %d: %v", i+1, errs[i])
		}
	}
	q.waitReady(t, q.topo.Work, n)
	seen := map[string]int{}
	for _, id := range q.ids(t, q.topo.Work) {
		seen[id]++
	}
	for i := range n {
		if id := fmt.Sprintf("evt_%02d", i); seen[id] != 1 {
			t.Errorf("%s is %d times in the work queue, want once", id, seen[id])
		}
	}
	if d := q.ready(t, q.topo.DLQ); d != 0 {
		t.Errorf("DLQ still holds %d", d)
	}
	t.Logf("sweep 1: %s\nsweep 2: %s", outs[0], outs[1])
}

// sweep --every is the long-running form docker-compose uses: a pass on
// schedule and the results on /metrics.
func TestSweepEveryRunsPassesAndServesMetrics(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q := newParkedQueues(t, ns)
	getenv := dlqCmdEnv(ns, map[string]string{
		"MYSQL_DSN":     testenv.Database(t),
		"SWEEP_MIN_AGE": "1m",
		"METRICS_ADDR":  "127.0.0.1:0",
		"LOG_LEVEL":     "info",
	})
	now := time.Now()
	q.park(t, "evt_old", "invoice.paid", failure.Transient, now.Add(-time.Hour))
	q.park(t, "evt_perm", "invoice.paid", failure.Permanent, now.Add(-time.Hour))
	q.waitReady(t, q.topo.DLQ, 2)

	sweep := start(t, getenv, "sweep", "--every", "100ms")
	stdout := &sweep.stdout
	addr := metricsAddr(t, &sweep.stderr)

	testenv.Eventually(t, 10*time.Second, func() bool {
		return strings.Count(stdout.String(), "sweep: ") >= 3
	}, "three passes (stdout: %s)", stdout.String())
	_, body := httpGet("http://" + addr + "/metrics")
	for _, want := range []string{
		`billing_sweep_results_total{result="redriven"} 1`,
		`billing_sweep_results_total{result="error"} 0`,
		`billing_ledger_payloads_pruned_total 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The permanent event is looked at and left. Not necessarily on every
	// pass: a quorum queue requeues the previous pass's unacked message
	// asynchronously, so a pass right after may find the DLQ empty.
	passes := strings.Count(stdout.String(), "sweep: ")
	if got := metricValue(body, `billing_sweep_results_total{result="permanent"}`); got < 1 || got > float64(passes) {
		t.Errorf("permanent count = %v after %d passes, want between 1 and the passes", got, passes)
	}
	if code, _ := httpGet("http://" + addr + "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d, want 200", code)
	}
	if got := q.ids(t, q.topo.Work); strings.Join(got, ",") != "evt_old" {
		t.Errorf("work queue holds %v, want evt_old once", got)
	}

	sweep.stop(t, 5*time.Second)
}

func TestSweepEveryRejectsNegative(t *testing.T) {
	t.Parallel()
	_, err := runCmd(t, dlqCmdEnv(testenv.Namespace(t), nil), "sweep", "--every", "-1s")
	if err == nil || exitCode(err) != 2 {
		t.Fatalf("sweep --every -1s = %v, want a usage error (exit 2)", err)
	}
}

// metricValue returns the value of the series named exactly series in a
// Prometheus text exposition, or -1 when it is absent.
func metricValue(body, series string) float64 {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// LEDGER_PAYLOAD_RETENTION reaches the sweep: a processed event older
// than it loses its payload, a younger one keeps it, and the pass says
// how many it pruned; so CHANGE_FEED_RETENTION with published changes.
func TestSweepCommandPrunesOldPayloads(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	newParkedQueues(t, ns)
	dsn := testenv.Database(t)
	store, err := models.Open(context.Background(), dsn, models.PoolConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	now := time.Now()
	for id, at := range map[string]time.Time{"evt_old": now.Add(-3 * time.Hour), "evt_new": now.Add(-time.Hour)} {
		err := store.InTx(context.Background(), func(tx *gorm.DB) error {
			_, err := models.ClaimEvent(tx, &models.StripeEvent{ID: id, Type: "invoice.paid", Payload: []byte(`{}`), ReceivedAt: at, ProcessedAt: &at})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var changes []feed.Outbox
	for id, at := range map[string]time.Time{"chg_old": now.Add(-3 * time.Hour), "chg_new": now.Add(-time.Hour)} {
		changes = append(changes, feed.Outbox{ID: id, ObjectType: "customer", ObjectID: "cus_1", RoutingKey: "customer.created", Body: "{}", CreatedAt: at, PublishedAt: &at})
	}
	if err := store.DB().Create(&changes).Error; err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, dlqCmdEnv(ns, map[string]string{"MYSQL_DSN": dsn, "LEDGER_PAYLOAD_RETENTION": "2h", "CHANGE_FEED_RETENTION": "2h"}), "sweep")
	if err != nil || !strings.Contains(out, "payloads pruned 1, changes pruned 1, errors 0") {
		t.Fatalf("sweep = %v, output:\n%s\nwant payloads pruned 1, changes pruned 1", err, out)
	}
	var kept []string
	if err := store.DB().Model(&models.StripeEvent{}).Where("payload IS NOT NULL").Pluck("id", &kept).Error; err != nil {
		t.Fatal(err)
	}
	if strings.Join(kept, ",") != "evt_new" {
		t.Errorf("payloads kept by %v, want evt_new only", kept)
	}
}
