package history_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/history"
	"github.com/stripe-billing/billing/models/lookup"
)

func TestWriteText(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	paid, open := "paid", "open"
	bad := "db down\x1b[31m"
	tests := []struct {
		name  string
		write func(io.Writer)
		want  string
	}{
		{"LedgerOnly", history.Report{ID: "ic_1", Events: []history.Event{}}.WriteText,
			"ic_1: no row in any table (the ledger alone knows it)\n\n0 event(s), in Stripe's order (created, then received):\n"},
		{"RowEventsDeadAndDiscarded", history.Report{
			ID: "in_1", Table: "invoices",
			Columns: []lookup.Column{{Name: "id", Value: uint64(7)}, {Name: "status", Value: "paid"}, {Name: "stripe_created", Value: at}, {Name: "number", Value: nil}},
			Notes:   []string{"a note"},
			Events: []history.Event{
				{ID: "evt_1", Type: "invoice.paid", Created: &at, Received: at, Outcome: history.Applied, StatusBefore: &open, StatusAfter: &paid},
				{ID: "evt_2", Type: "invoice.paid", Received: at, Outcome: history.Dead, Error: &bad,
					Discards: []history.Discard{{By: "support", At: at, Reason: "sent twice", Copies: 2}}},
			},
		}.WriteText, "in_1: row in invoices\n" +
			"  status          paid\n" +
			"  stripe_created  2026-03-01T12:00:00Z\n" +
			"  number          -\n" +
			"note: a note\n\n" +
			"2 event(s), in Stripe's order (created, then received):\n" +
			"CREATED               RECEIVED              EVENT  TYPE          STATUS        OUTCOME\n" +
			"2026-03-01T12:00:00Z  2026-03-01T12:00:00Z  evt_1  invoice.paid  open -> paid  applied\n" +
			"-                     2026-03-01T12:00:00Z  evt_2  invoice.paid  -             dead\n\n" +
			"parked (dead) events, with their last error; replay them as the runbook says:\n" +
			"  evt_2: \"db down\\x1b[31m\"\n\n" +
			"discarded events (taken off the DLQ by a person):\n" +
			"  evt_2: discarded 2026-03-01T12:00:00Z by support (2 cop(ies)): sent twice\n"},
		{"CustomerObjects", history.CustomerReport{
			Report: history.Report{ID: "cus_1", Table: "customers", Events: []history.Event{}},
			Objects: []history.Object{
				{Type: "invoice", ID: "in_1", Status: &paid, Created: &at, Timeline: []history.Step{{Status: "paid", At: at, Source: "event"}, {Status: "open", At: at, Source: "backfill"}}},
				{Type: "invoice", ID: "in_2", Timeline: []history.Step{}},
			},
		}.WriteText, "cus_1: row in customers\n\n0 event(s), in Stripe's order (created, then received):\n\n" +
			"2 object(s) of the customer, newest first, each with its statuses (newest first):\n\n" +
			"INVOICE  CREATED               STATUS  TIMELINE\n" +
			"in_1     2026-03-01T12:00:00Z  paid    paid 2026-03-01T12:00:00Z <- open 2026-03-01T12:00:00Z (backfill)\n" +
			"in_2     -                     -       -\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			tt.write(&b)
			if got := b.String(); got != tt.want {
				t.Errorf("WriteText:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
