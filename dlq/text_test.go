package dlq_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/failure"
)

func TestText(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	parked := []dlq.Parked{
		{EventID: "evt_1", Type: "invoice.paid", Class: failure.Transient, Attempts: 8, ParkedAt: at, AgeSeconds: 90, Error: "db\ndown"},
		{EventID: "evt_1", Type: "invoice.paid", Class: failure.Transient, Attempts: 8, ParkedAt: at.Add(time.Hour)},
		{EventID: "evt_2", Type: "charge.refunded\x1b", Class: failure.Permanent, Attempts: 1, Copies: 2},
	}
	t.Run("WriteList", func(t *testing.T) {
		var b strings.Builder
		dlq.WriteList(&b, parked[:1])
		want := "EVENT ID  COPIES  TYPE          CLASS      ATTEMPTS  REPLAYS  FIRST FAILED  PARKED AT             AGE    ERROR\n" +
			"evt_1     1       invoice.paid  transient  8         0        -             2026-03-01T12:00:00Z  1m30s  db down\n"
		if got := b.String(); got != want {
			t.Errorf("WriteList:\n%q\nwant\n%q", got, want)
		}
	})
	t.Run("Selector", func(t *testing.T) {
		tests := []struct {
			name string
			sel  dlq.Selector
			want []bool
		}{
			{"Zero", dlq.Selector{}, []bool{true, true, true}},
			{"Event", dlq.Selector{EventID: "evt_2"}, []bool{false, false, true}},
			{"ClassAndSince", dlq.Selector{Class: "transient", Since: at.Add(time.Minute)}, []bool{false, true, false}},
			{"TypeAndClass", dlq.Selector{Type: "invoice.paid", Class: "permanent"}, []bool{false, false, false}},
		}
		for _, tt := range tests {
			for i, p := range parked {
				if got, err := tt.sel.Match(t.Context(), p); err != nil || got != tt.want[i] {
					t.Errorf("%s: Match(%s #%d) = %v, %v; want %v", tt.name, p.EventID, i, got, err, tt.want[i])
				}
			}
		}
	})
	t.Run("MoveResult", func(t *testing.T) {
		var b strings.Builder
		dlq.MoveResult{Moved: parked, Left: 4}.WriteText(&b, false, "w", "d")
		want := "moved evt_1 invoice.paid (class transient, attempts 8)\n" +
			"moved evt_1 invoice.paid (class transient, attempts 8)\n" +
			"moved evt_2 \"charge.refunded\\x1b\" (class permanent, attempts 1)\n" +
			"moved 3 message(s) of 2 event(s) (by class: transient 2, permanent 1; by type: invoice.paid 2, \"charge.refunded\\x1b\" 1) to w; 4 message(s) looked at and left in d\n"
		if got := b.String(); got != want {
			t.Errorf("WriteText:\n%s\nwant\n%s", got, want)
		}
		b.Reset()
		dlq.MoveResult{}.WriteText(&b, true, "w", "d")
		if got, want := b.String(), "dry run: would move 0 message(s) of 0 event(s) to w; nothing was moved\n"; got != want {
			t.Errorf("dry WriteText = %q, want %q", got, want)
		}
	})
}
