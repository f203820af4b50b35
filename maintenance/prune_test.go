package maintenance_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe-billing/billing/ledger"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/models"
)

// countingStore records every prune statement pair a pass runs: the
// limit it asked for and the rows it looked at.
type countingStore struct {
	*models.Store
	mu      sync.Mutex
	batches []models.PruneBatch
	limits  []int
}

func (s *countingStore) PrunePayloads(ctx context.Context, status string, after models.PruneCursor, cutoff time.Time, limit int) (models.PruneBatch, error) {
	b, err := s.Store.PrunePayloads(ctx, status, after, cutoff, limit)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches, s.limits = append(s.batches, b), append(s.limits, limit)
	return b, err
}

// reset returns the batches and limits so far and forgets them.
func (s *countingStore) reset() ([]models.PruneBatch, []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, l := s.batches, s.limits
	s.batches, s.limits = nil, nil
	return b, l
}

// pruneLedger is a ledger of processed, ignored, dead and young events.
type pruneLedger struct {
	store *countingStore
	proc  *ledger.Processor
	// raws are the processed and ignored events, by id, as Stripe sent them.
	raws           map[string][]byte
	dead, young    string
	pruneAt        time.Time
	oldN, ignoredN int
}

const retention = 90 * 24 * time.Hour

func newPruneLedger(t *testing.T) *pruneLedger {
	t.Helper()
	ctx := context.Background()
	s := &countingStore{Store: testenv.Store(t)}
	l := &pruneLedger{store: s, proc: ledger.NewProcessor(s.Store, nil), raws: map[string][]byte{}, oldN: 7, ignoredN: 2}
	created := time.Now().Add(-time.Hour)
	for i := range l.oldN + l.ignoredN {
		typ := "customer.created"
		if i >= l.oldN {
			typ = "issuing_card.created" // no handler: ignored
		}
		id := billingtest.NewEventID()
		raw := billingtest.Event(id, typ, created, billingtest.Customer(fmt.Sprintf("cus_prune_%d", i), "a@example.com"))
		if _, err := l.proc.Process(ctx, raw); err != nil {
			t.Fatal(err)
		}
		l.raws[id] = raw
	}
	// Parked as long ago as the others were processed: kept for a replay.
	l.dead = billingtest.NewEventID()
	deadRaw := []byte(`{"id":"` + l.dead + `"}`)
	if err := s.MarkDead(ctx, models.DeadEvent{ID: l.dead, Type: "invoice.paid", Payload: deadRaw, Signature: testenv.Sign(deadRaw, testenv.WebhookSecret, time.Now()), Attempts: 8, LastError: "boom"}); err != nil {
		t.Fatal(err)
	}
	// The pruning runs as if 91 days had passed; one event is younger.
	l.pruneAt = time.Now().Add(retention + 24*time.Hour)
	l.young = billingtest.NewEventID()
	youngAt := l.pruneAt.Add(-time.Hour)
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		_, err := models.ClaimEvent(tx, &models.StripeEvent{ID: l.young, Type: "customer.created", Payload: []byte(`{}`), ReceivedAt: youngAt, ProcessedAt: &youngAt})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *pruneLedger) prune(t *testing.T, batch, limit int) *maintenance.Prune {
	t.Helper()
	p, err := maintenance.NewPrune(maintenance.PruneConfig{
		Retention: retention, Batch: batch, Limit: limit, Pause: time.Millisecond, Now: func() time.Time { return l.pruneAt },
	}, quietLogger(), l.store)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (l *pruneLedger) row(t *testing.T, id string) models.StripeEvent {
	t.Helper()
	var ev models.StripeEvent
	if err := l.store.DB().Where("id = ?", id).Take(&ev).Error; err != nil {
		t.Fatalf("ledger row %s: %v", id, err)
	}
	return ev
}

func TestPrune(t *testing.T) {
	t.Parallel()

	t.Run("OldPayloads", func(t *testing.T) {
		t.Parallel()
		l := newPruneLedger(t)
		ctx := context.Background()
		const batch = 2
		pruned, err := l.prune(t, batch, 1000).Pass(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if pruned != l.oldN+l.ignoredN {
			t.Errorf("pruned %d, want %d", pruned, l.oldN+l.ignoredN)
		}

		t.Run("InBatchesOfAtMostTheBatchSize", func(t *testing.T) {
			batches, limits := l.store.reset()
			// processed: 2, 2, 2, 1 (fewer than asked: done); ignored: 2, 0.
			if len(batches) != 6 {
				t.Errorf("%d prune batches %+v, want 6", len(batches), batches)
			}
			for i, b := range batches {
				if limits[i] > batch || b.Looked > batch || b.Pruned > b.Looked {
					t.Errorf("batch %d asked for %d rows and looked at %d, pruned %d: want at most %d", i, limits[i], b.Looked, b.Pruned, batch)
				}
			}
		})

		t.Run("KeepsEveryRowWithoutItsPayload", func(t *testing.T) {
			for id := range l.raws {
				row := l.row(t, id)
				if row.Payload != nil || row.Type == "" || row.Created == nil || (row.Status != models.EventProcessed && row.Status != models.EventIgnored) {
					t.Errorf("%s after pruning: %+v; want its row without the payload", id, row)
				}
			}
		})

		t.Run("LeavesDeadAndYoungEventsAlone", func(t *testing.T) {
			for _, id := range []string{l.dead, l.young} {
				if row := l.row(t, id); row.Payload == nil {
					t.Errorf("%s (%s) lost its payload", id, row.Status)
				}
			}
		})

		t.Run("StillFindsDuplicates", func(t *testing.T) {
			for id, raw := range l.raws {
				got, err := l.proc.Process(ctx, raw)
				if err != nil || got != ledger.Duplicate {
					t.Errorf("%s again after pruning = %q, %v; want %q", id, got, err, ledger.Duplicate)
				}
			}
		})

		t.Run("NextPassGoesOnFromItsCheckpoint", func(t *testing.T) {
			pruned, err := l.prune(t, batch, 1000).Pass(ctx)
			if err != nil || pruned != 0 {
				t.Fatalf("second pass pruned %d, %v; want 0", pruned, err)
			}
			batches, _ := l.store.reset()
			for _, b := range batches {
				if b.Looked != 0 {
					t.Errorf("second pass looked at %d rows again, want none: %+v", b.Looked, batches)
				}
			}
		})
	})

	// A pass looks at no more than Limit rows; the passes after it go on
	// where it stopped until every old payload is gone.
	t.Run("LimitPerPass", func(t *testing.T) {
		t.Parallel()
		l := newPruneLedger(t)
		p := l.prune(t, 2, 3)
		var passes []int
		for range 4 {
			pruned, err := p.Pass(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			passes = append(passes, pruned)
			looked := 0
			batches, _ := l.store.reset()
			for _, b := range batches {
				looked += b.Looked
			}
			if looked > 3 {
				t.Errorf("a pass looked at %d rows, want at most 3", looked)
			}
		}
		if fmt.Sprint(passes) != "[3 3 3 0]" {
			t.Errorf("pruned per pass %v, want [3 3 3 0]", passes)
		}
		if row := l.row(t, l.dead); row.Payload == nil {
			t.Error("the dead event lost its payload")
		}
	})

	// With no retention a pass leaves every payload.
	t.Run("WithoutRetentionPrunesNothing", func(t *testing.T) {
		t.Parallel()
		l := newPruneLedger(t)
		p, err := maintenance.NewPrune(maintenance.PruneConfig{Now: func() time.Time { return l.pruneAt }}, quietLogger(), l.store)
		if err != nil {
			t.Fatal(err)
		}
		pruned, err := p.Pass(context.Background())
		if err != nil || pruned != 0 {
			t.Fatalf("pass pruned %d, %v; want 0", pruned, err)
		}
		if batches, _ := l.store.reset(); len(batches) != 0 {
			t.Errorf("%d prune statements ran, want none", len(batches))
		}
		for id := range l.raws {
			if l.row(t, id).Payload == nil {
				t.Errorf("%s lost its payload", id)
			}
		}
	})

	t.Run("RefusesNegativeSettings", func(t *testing.T) {
		t.Parallel()
		store := testenv.Store(t)
		for _, cfg := range []maintenance.PruneConfig{
			{Retention: -time.Hour},
			{Retention: time.Hour, Batch: -1},
			{Retention: time.Hour, Limit: -1},
			{Retention: time.Hour, Pause: -time.Millisecond},
		} {
			_, err := maintenance.NewPrune(cfg, nil, store)
			if err == nil || !strings.Contains(err.Error(), "maintenance: prune: payload retention") {
				t.Errorf("NewPrune(%+v) = %v, want an error naming the prune settings", cfg, err)
			}
		}
	})
}
