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

	t.Run("WalksOneStatusInOrderOfReceiptTiesByInsertion", func(t *testing.T) {
		t.Parallel()
		s := testenv.Store(t)
		// Three rows of one microsecond, an older one inserted after them,
		// a younger one, another status.
		for _, id := range []string{"evt_c", "evt_a", "evt_b"} {
			claimAt(t, s, id, models.EventProcessed, old)
		}
		claimAt(t, s, "evt_older", models.EventProcessed, old.Add(-time.Minute))
		claimAt(t, s, "evt_young", models.EventProcessed, cutoff)
		claimAt(t, s, "evt_ignored", models.EventIgnored, old)
		var cur models.PruneCursor
		var order []string
		for range 5 {
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
			var id string
			if err := s.DB().Model(&models.StripeEvent{}).Where("seq = ?", cur.Seq).Pluck("id", &id).Error; err != nil {
				t.Fatal(err)
			}
			order = append(order, id)
		}
		if got := strings.Join(order, ","); got != "evt_older,evt_c,evt_a,evt_b" {
			t.Errorf("pruned %s, want evt_older,evt_c,evt_a,evt_b", got)
		}
		for id, kept := range map[string]bool{"evt_a": false, "evt_b": false, "evt_c": false, "evt_older": false, "evt_young": true, "evt_ignored": true} {
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

// TestLedgerRetentionMigration: 00005 moves the ledger's clustered key
// from the event id to seq and back, keeping the rows, and the id stays
// unique either way.
func TestLedgerRetentionMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, p := emptyMigrator(t)
	primary := func() string {
		t.Helper()
		var cols []string
		rows, err := db.QueryContext(ctx, `SELECT column_name FROM information_schema.statistics
			WHERE table_schema = DATABASE() AND table_name = 'stripe_events' AND index_name = 'PRIMARY' ORDER BY seq_in_index`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				t.Fatal(err)
			}
			cols = append(cols, c)
		}
		return strings.Join(cols, ",")
	}
	insert := func(id string) error {
		_, err := db.ExecContext(ctx, "INSERT INTO stripe_events (id, status, received_at) VALUES (?, 'processed', NOW(6))", id)
		return err
	}
	if _, err := p.UpTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if err := insert("evt_before"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if got := primary(); got != "seq" {
		t.Errorf("primary key after 00005: %q, want seq", got)
	}
	if err := insert("evt_after"); err != nil {
		t.Fatal(err)
	}
	if err := insert("evt_before"); err == nil {
		t.Error("a second row for evt_before was inserted: the id is not unique")
	}
	if _, err := p.DownTo(ctx, 4); err != nil {
		t.Fatal(err)
	}
	if got := primary(); got != "id" {
		t.Errorf("primary key after 00005 down: %q, want id", got)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM stripe_events WHERE id IN ('evt_before', 'evt_after')").Scan(&n); err != nil || n != 2 {
		t.Errorf("rows after down: %d, %v; want both", n, err)
	}
}
