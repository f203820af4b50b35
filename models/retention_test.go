package models_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

// claimAt inserts a ledger row of status received and done at at, with a
// payload.
func claimAt(t *testing.T, s *models.Store, id, status string, at time.Time) {
	t.Helper()
	err := s.InTx(context.Background(), func(tx *gorm.DB) error {
		_, err := models.ClaimEvent(tx, &models.StripeEvent{ID: id, Type: "invoice.paid", Status: status, Created: &at,
			Payload: []byte(`{"id":"` + id + `"}`), ReceivedAt: at, ProcessedAt: &at})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPrunePayloads(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cutoff := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	old := cutoff.Add(-time.Hour)

	t.Run("WalksOneStatusInOrderOfReceiptTiesByID", func(t *testing.T) {
		t.Parallel()
		s := testenv.Store(t)
		// Three rows of one microsecond, a younger one, another status.
		for _, id := range []string{"evt_c", "evt_a", "evt_b"} {
			claimAt(t, s, id, models.EventProcessed, old)
		}
		claimAt(t, s, "evt_young", models.EventProcessed, cutoff)
		claimAt(t, s, "evt_ignored", models.EventIgnored, old)
		var cur models.PruneCursor
		var order []string
		for range 4 {
			b, err := s.PrunePayloads(ctx, models.EventProcessed, cur, cutoff, 1)
			if err != nil {
				t.Fatal(err)
			}
			if b.Looked == 0 {
				break
			}
			if b.Looked != 1 || b.Pruned != 1 {
				t.Fatalf("batch %+v: want one row looked at and pruned", b)
			}
			cur = b.Next
			order = append(order, cur.ID)
		}
		if got := strings.Join(order, ","); got != "evt_a,evt_b,evt_c" {
			t.Errorf("pruned %s, want evt_a,evt_b,evt_c", got)
		}
		for id, kept := range map[string]bool{"evt_a": false, "evt_b": false, "evt_c": false, "evt_young": true, "evt_ignored": true} {
			row := ledgerRow(t, s, id)
			if (row.Payload != nil) != kept || row.Type != "invoice.paid" || row.Created == nil {
				t.Errorf("%s: payload %q, type %q, created %v; want payload kept %v and the rest as it was", id, row.Payload, row.Type, row.Created, kept)
			}
		}
	})

	t.Run("CountsOnlyPayloadsItEmptied", func(t *testing.T) {
		t.Parallel()
		s := testenv.Store(t)
		claimAt(t, s, "evt_1", models.EventIgnored, old)
		claimAt(t, s, "evt_2", models.EventIgnored, old)
		first, err := s.PrunePayloads(ctx, models.EventIgnored, models.PruneCursor{}, cutoff, 10)
		if err != nil || first.Looked != 2 || first.Pruned != 2 {
			t.Fatalf("first = %+v, %v; want 2 looked at, 2 pruned", first, err)
		}
		// From the start again (a lost checkpoint): nothing left to empty.
		again, err := s.PrunePayloads(ctx, models.EventIgnored, models.PruneCursor{}, cutoff, 10)
		if err != nil || again.Looked != 2 || again.Pruned != 0 {
			t.Errorf("again = %+v, %v; want 2 looked at, 0 pruned", again, err)
		}
		// From the cursor: nothing to look at.
		next, err := s.PrunePayloads(ctx, models.EventIgnored, first.Next, cutoff, 10)
		if err != nil || next.Looked != 0 || next.Next != first.Next {
			t.Errorf("from the cursor = %+v, %v; want nothing looked at, the cursor kept", next, err)
		}
	})

	t.Run("RefusesDeadRowsAndBadLimits", func(t *testing.T) {
		t.Parallel()
		s := testenv.Store(t)
		for _, tt := range []struct {
			status string
			limit  int
			want   string
		}{
			{models.EventDead, 10, `status "dead": only processed or ignored events are pruned`},
			{"", 10, `status "": only processed or ignored events are pruned`},
			{models.EventProcessed, 0, "limit 0, want positive"},
		} {
			_, err := s.PrunePayloads(ctx, tt.status, models.PruneCursor{}, cutoff, tt.limit)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("PrunePayloads(%q, limit %d) = %v, want %q", tt.status, tt.limit, err, tt.want)
			}
		}
	})
}
