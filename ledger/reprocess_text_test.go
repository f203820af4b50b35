package ledger_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/ledger"
)

func TestReprocessText(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	ledger.Reprocessed{ID: "evt_1", Type: "invoice.paid", Status: "dead", Outcome: "applied", Created: time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("x", 3600))}.WriteText(&b)
	ledger.Reprocessed{ID: "evt_2", Type: "invoice.paid", Status: "processed", Outcome: "failed", Err: errors.New("payload\npruned")}.WriteText(&b)
	rep := ledger.ReprocessReport{Matched: 6, Applied: 1, NoHandler: 1, Previews: 1, Skipped: 1, Failed: 2}
	rep.WriteText(&b, false)
	rep.WriteText(&b, true)
	want := "applied evt_1 invoice.paid (was dead, created 2026-03-01T11:00:00Z)\n" +
		"failed evt_2 invoice.paid (was processed, created -): payload pruned\n" +
		"reprocessed 6 event(s): 1 applied, 1 without a handler, 1 skipped (not verified), 2 failed, 1 previews (nothing to store)\n" +
		"dry run: 6 event(s) match, 1 would be applied, 1 have no handler, 1 skipped (not verified), 2 would fail (payload pruned), 1 previews (nothing to store); nothing was applied\n"
	if got := b.String(); got != want {
		t.Errorf("WriteText:\n%s\nwant\n%s", got, want)
	}
	tests := []struct {
		name string
		rep  ledger.ReprocessReport
		dry  bool
		want string
	}{
		{"Failed", rep, false, "reprocess: 2 event(s) failed"},
		{"WouldFail", rep, true, "reprocess: 2 event(s) would fail"},
		{"Skipped", ledger.ReprocessReport{Matched: 1, Skipped: 1}, false, "reprocess: 1 event(s) skipped: their payloads are not verified"},
		{"Clean", ledger.ReprocessReport{Matched: 1, Applied: 1}, false, ""},
	}
	for _, tt := range tests {
		got := ""
		if err := tt.rep.Problem(tt.dry); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: Problem = %q, want %q", tt.name, got, tt.want)
		}
	}
}
