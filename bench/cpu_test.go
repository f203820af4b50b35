package bench_test

import (
	"os/exec"
	"testing"
	"time"

	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/internal/testenv"
)

// TestMeasureCountsProcessesStartedInside: a process the measured
// function starts (as the scaling rows start their workers) counts from
// its start; one gone before the second read is left out, not an error.
func TestMeasureCountsProcessesStartedInside(t *testing.T) {
	t.Parallel()
	gone := exec.Command("sh", "-c", "exit 0")
	if err := gone.Start(); err != nil {
		t.Fatal(err)
	}
	var procs bench.Procs
	procs.Add("gone", gone.Process.Pid)
	const spun = 50 * time.Millisecond
	use, err := procs.Measure(func() error {
		if err := gone.Wait(); err != nil {
			return err
		}
		spin := exec.Command("sh", "-c", "while :; do :; done")
		if err := spin.Start(); err != nil {
			return err
		}
		t.Cleanup(func() { _ = spin.Process.Kill(); _ = spin.Wait() })
		procs.Add("spin", spin.Process.Pid)
		testenv.Eventually(t, 30*time.Second, func() bool {
			d, err := bench.CPUTime(spin.Process.Pid)
			return err == nil && d >= spun
		}, "the spinning process used no CPU")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if use.Spent["spin"] < spun {
		t.Errorf("the process started inside spent %s, want at least %s", use.Spent["spin"], spun)
	}
	if use.Spent["gone"] != 0 {
		t.Errorf("the process gone by the second read spent %s, want it left out", use.Spent["gone"])
	}
}

// TestSettle: Settle reports a process at rest settled,
// and waits out its limit while a process keeps spinning.
func TestSettle(t *testing.T) {
	t.Parallel()
	start := func(script string) int {
		c := exec.Command("sh", "-c", script)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		return c.Process.Pid
	}
	var rest, spin bench.Procs
	rest.Add("rest", start("sleep 60"))
	spin.Add("spin", start("while :; do :; done"))
	const step, limit = 100 * time.Millisecond, 500 * time.Millisecond
	// 1% of a core: a spinning process keeps more even on a loaded machine.
	if waited, ok, err := rest.Settle(0.01, step, limit); err != nil || !ok {
		t.Errorf("a process at rest: settled %v after %s (%v), want settled", ok, waited, err)
	}
	if waited, ok, err := spin.Settle(0.01, step, limit); err != nil || ok || waited < limit {
		t.Errorf("a spinning process: settled %v after %s (%v), want not settled, after at least %s", ok, waited, err, limit)
	}
}
