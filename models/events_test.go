package models_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

// TestEventsInStripeOrder pages through the ledger two events at a time:
// created, then id, an unknown created first; the filters hold.
func TestEventsInStripeOrder(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { v := t0.Add(d); return &v }
	rows := []models.StripeEvent{
		{ID: "evt_z", Type: "charge.refunded", Status: models.EventProcessed, Created: at(0)},
		{ID: "evt_a", Type: "charge.refunded", Status: models.EventIgnored, Created: at(0)},
		{ID: "evt_m", Type: "invoice.paid", Status: models.EventProcessed, Created: at(-time.Hour)},
		{ID: "evt_b", Type: "charge.refunded", Status: models.EventDead, Created: at(time.Hour)},
		{ID: "evt_c", Type: "invoice.paid", Status: models.EventProcessed, Created: at(time.Second)},
	}
	for i := range rows {
		rows[i].ReceivedAt = t0
	}
	if err := s.DB().Create(&rows).Error; err != nil {
		t.Fatal(err)
	}
	// A dead row whose created is unknown.
	if err := s.MarkDead(ctx, models.DeadEvent{ID: "evt_n", Type: "charge.refunded", Attempts: 1, LastError: "x"}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		filter models.EventFilter
		want   []string
	}{
		{"all", models.EventFilter{}, []string{"evt_n", "evt_m", "evt_a", "evt_z", "evt_c", "evt_b"}},
		{"by type", models.EventFilter{Types: []string{"charge.refunded"}}, []string{"evt_n", "evt_a", "evt_z", "evt_b"}},
		{"by status", models.EventFilter{Statuses: []string{models.EventIgnored, models.EventDead}}, []string{"evt_n", "evt_a", "evt_b"}},
		{"by time", models.EventFilter{Since: t0, Until: t0.Add(time.Hour)}, []string{"evt_a", "evt_z", "evt_c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var after *models.StripeEvent
			for pages := 0; ; pages++ {
				if pages > len(rows)+1 {
					t.Fatalf("paging does not end: %v", got)
				}
				page, err := s.EventsInStripeOrder(ctx, tt.filter, after, 2)
				if err != nil {
					t.Fatal(err)
				}
				for i := range page {
					got = append(got, page[i].ID)
					after = &page[i]
				}
				if len(page) < 2 {
					break
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("events = %v, want %v", got, tt.want)
			}
		})
	}
}
