package e2e

import (
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/testenv"
)

// TestSIGTERMUnderLoad stops a loaded api and worker with SIGTERM: both
// exit with code 0 within their SHUTDOWN_TIMEOUT bound, and nothing is
// lost: a new worker applies every event that got a 200, once.
func TestSIGTERMUnderLoad(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	const shutdown = 3 * time.Second // SHUTDOWN_TIMEOUT of s.env
	api := s.start("api", nil)
	worker := s.start("worker", nil)
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(api.url("/readyz")); return c == 200 }, "api ready")
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(worker.url("/readyz")); return c == 200 }, "worker ready")

	l := startLoad(api, 2000, 300, 21)
	// Under load: the worker has applied some events and more come. A
	// count, not a time: a busy machine takes longer to get there.
	testenv.Eventually(t, 60*time.Second, func() bool { return len(s.ledger(t)) >= 150 }, "150 events applied")
	// The worker first, under load, with events in flight.
	took, code := worker.stop(t, shutdown+5*time.Second)
	t.Logf("worker exited %d after %s", code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("worker exit code %d, want 0", code)
	}
	// The queue fills while no worker runs: twenty more events.
	queued := s.ready(s.topo.Work)
	testenv.Eventually(t, 10*time.Second, func() bool { return s.ready(s.topo.Work) >= queued+20 }, "events queue up while no worker runs")
	took, code = api.stop(t, shutdown+5*time.Second)
	t.Logf("api exited %d after %s", code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("api exit code %d, want 0", code)
	}
	sum := l.wait(t, 60*time.Second)
	t.Logf("simulate: sent %d, 2xx %d, non-2xx %v, transport errors %d", sum.Sent, sum.OK, sum.NotOK, sum.TransportErrors)
	if sum.OK < 100 {
		t.Fatalf("only %d events accepted before the SIGTERM: no load", sum.OK)
	}
	if n := s.ready(s.topo.Work); n == 0 {
		t.Error("the work queue is empty after the worker stopped: the test did not stop it under load")
	}
	if worker.count("worker stopped") > 0 || worker.count("shutdown timeout: events still in flight are left for redelivery") > 0 {
		t.Log("note: the worker hit its shutdown bound")
	}

	// A new worker drains what is left.
	s.start("worker", nil)
	s.checkApplied(t, sum.Accepted, sum.AcceptedPoison, 30*time.Second)
}
