package failure_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"testing"

	"github.com/stripe-billing/billing/failure"
)

func TestOf(t *testing.T) {
	t.Parallel()
	outage := failure.MarkOutage(errors.New("db down"))
	tests := []struct {
		name string
		err  error
		want failure.Class
	}{
		{"nil has no class", nil, ""},
		{"plain error is transient", errors.New("lock wait"), failure.Transient},
		{"permanent", failure.MarkPermanent(errors.New("bad event")), failure.Permanent},
		{"permanent wrapped", fmt.Errorf("billing: %w", failure.MarkPermanent(errors.New("bad"))), failure.Permanent},
		{"outage wrapped", fmt.Errorf("models: tx: %w: %w", outage, errors.New("EOF")), failure.Outage},
		{"permanent wins over outage", failure.MarkPermanent(outage), failure.Permanent},
		{"unverified wrapped", fmt.Errorf("consumer: %w", failure.MarkUnverified(errors.New("not signed"))), failure.Unverified},
		{"unverified wins over outage", failure.MarkUnverified(outage), failure.Unverified},
		{"permanent wins over unverified", failure.MarkPermanent(failure.MarkUnverified(errors.New("x"))), failure.Permanent},
		{"schema", failure.MarkSchema(errors.New("invoice.status missing")), failure.Schema},
		{"schema wrapped in permanent", failure.MarkPermanent(fmt.Errorf("billing: %w", failure.MarkSchema(errors.New("x")))), failure.Schema},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := failure.Of(tt.err); got != tt.want {
				t.Errorf("Of = %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("MarkNilIsNil", func(t *testing.T) {
		if failure.MarkPermanent(nil) != nil || failure.MarkOutage(nil) != nil || failure.MarkUnverified(nil) != nil || failure.MarkSchema(nil) != nil {
			t.Error("marking nil gave an error")
		}
	})
	t.Run("MarkKeepsTheCause", func(t *testing.T) {
		cause := errors.New("cause")
		if err := failure.MarkPermanent(cause); !errors.Is(err, cause) || err.Error() != "cause" {
			t.Errorf("marked error %q does not wrap its cause", err)
		}
	})
}

// schedule is a retry.Policy of 4 attempts and 2 tiers.
type schedule struct{}

func (schedule) Exhausted(attempt int) bool { return attempt >= 4 }
func (schedule) Tier(attempt int) int       { return min(max(attempt, 1), 2) - 1 }

func TestDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		class   failure.Class
		attempt int
		want    failure.Decision
	}{
		{"first transient failure: first tier", failure.Transient, 1, failure.Decision{Class: failure.Transient, Attempt: 1, Tier: 0}},
		{"third: the last tier repeats", failure.Transient, 3, failure.Decision{Class: failure.Transient, Attempt: 3, Tier: 1}},
		{"exhausted: parked as transient", failure.Transient, 4, failure.Decision{Class: failure.Transient, Attempt: 4, Parked: true, Tier: -1}},
		{"permanent: parked at once", failure.Permanent, 1, failure.Decision{Class: failure.Permanent, Attempt: 1, Parked: true, Tier: -1}},
		{"unverified: parked at once", failure.Unverified, 1, failure.Decision{Class: failure.Unverified, Attempt: 1, Parked: true, Tier: -1}},
		{"schema: parked at once", failure.Schema, 1, failure.Decision{Class: failure.Schema, Attempt: 1, Parked: true, Tier: -1}},
		{"outage given: transient", failure.Outage, 2, failure.Decision{Class: failure.Transient, Attempt: 2, Tier: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := failure.Decide(tt.class, tt.attempt, schedule{}); got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRules(t *testing.T) {
	t.Parallel()
	all := []failure.Class{failure.Transient, failure.Permanent, failure.Schema, failure.Outage, failure.Exhausted,
		failure.Unverified, failure.DeliveryLimit, failure.Deadlock, failure.LockWaitTimeout, "unknown"}
	redrive := map[failure.Class]bool{failure.Transient: true, failure.Exhausted: true}
	rerun := map[failure.Class]bool{failure.Deadlock: true, failure.LockWaitTimeout: true}
	ends := map[failure.Class]bool{failure.Deadlock: true, failure.LockWaitTimeout: true, failure.Outage: true}
	for _, c := range all {
		if got := failure.Redrivable(c); got != redrive[c] {
			t.Errorf("Redrivable(%q) = %v", c, got)
		}
		if got := failure.RerunsTransaction(c); got != rerun[c] {
			t.Errorf("RerunsTransaction(%q) = %v", c, got)
		}
		if got := failure.EndsTransaction(c); got != ends[c] {
			t.Errorf("EndsTransaction(%q) = %v", c, got)
		}
	}
}

// TestLeaf holds failure to the standard library: every package may import
// it without dragging anything along.
func TestLeaf(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	n := 0
	for dec.More() {
		var p struct {
			ImportPath string
			Standard   bool
		}
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		n++
		if !p.Standard && p.ImportPath != "github.com/stripe-billing/billing/failure" {
			t.Errorf("failure depends on %s", p.ImportPath)
		}
	}
	if n < 2 {
		t.Fatalf("go list listed %d packages; want failure and errors at least", n)
	}
}
