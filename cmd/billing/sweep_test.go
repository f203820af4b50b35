package main

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/retry"
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
	q.park(t, "evt_old", "invoice.paid", retry.Transient, now.Add(-time.Hour))
	q.park(t, "evt_perm", "invoice.paid", retry.Permanent, now.Add(-time.Hour))
	q.park(t, "evt_young", "invoice.paid", retry.Transient, now)
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
		q.park(t, fmt.Sprintf("evt_%02d", i), "invoice.paid", retry.Transient, time.Now().Add(-time.Hour))
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
