package maintenance_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/reconcile"
)

func TestReportWriteText(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rep  maintenance.Report
		want string
	}{
		{"Skipped", maintenance.Report{Skipped: true}, "sweep: another sweep holds the lock; nothing done\n"},
		{"NoKey", maintenance.Report{RedriveResult: maintenance.RedriveResult{Permanent: 2, OutOfRedrives: 1, Waiting: 3}, Pruned: 4, ChangesPruned: 5},
			"sweep: re-driven 0, left for a person 3 (permanent 2, out of re-drives 1), waiting 3, reconciliation off (STRIPE_API_KEY not set), payloads pruned 4, changes pruned 5, errors 0\n"},
		{"RedrivenAndReconciled", maintenance.Report{
			RedriveResult: maintenance.RedriveResult{Redriven: []dlq.Parked{{EventID: "evt_1", Type: "invoice.paid\x1b", Redrives: 2}}},
			Reconciled:    &reconcile.Result{Since: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Listed: 9, Enqueued: 2, Unhandled: 1},
			Errors:        []error{errors.New("x")},
		}, "re-driven evt_1 \"invoice.paid\\x1b\" (re-drive 2)\n" +
			"sweep: re-driven 1, left for a person 0 (permanent 0, out of re-drives 0), waiting 0, reconciled 2 missing of 9 listed since 2026-03-01T12:00:00Z (1 of types the worker does not apply, not enqueued), payloads pruned 0, changes pruned 0, errors 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			tt.rep.WriteText(&b)
			if got := b.String(); got != tt.want {
				t.Errorf("WriteText:\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}
