package billing

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/models"
)

// No event is final for want of a handler: the ledger keeps every event's
// payload, ignored ones included, for the payload retention (dead events'
// for ever), and a Reprocessor applies ledger events
// again through today's handlers. Applying is idempotent (the state order
// refuses what a row already reflects, history rows are keyed by event),
// so reprocessing twice changes nothing, and events are applied in
// Stripe's order (created, then id; the tie rules settle the rest).

// Reprocessing outcomes of one event.
const (
	ReprocessApplied   = "applied"
	ReprocessNoHandler = "no handler" // still none: left as it is
	ReprocessFailed    = "failed"     // rolled back; the error says why
	// In a dry run, what would become of the event.
	ReprocessWouldApply = "would apply"
	ReprocessWouldFail  = "would fail" // its payload is pruned; Err says so
)

// Reprocessed is what a Reprocessor did, or would do, with one event.
type Reprocessed struct {
	ID, Type string
	Status   string    // the ledger status before
	Created  time.Time // zero when unknown
	Outcome  string
	Err      error // with ReprocessFailed
}

// ReprocessReport counts a run's outcomes (Failed: or would fail, in a
// dry run).
type ReprocessReport struct {
	Matched, Applied, NoHandler, Failed int
}

// Reprocessor applies ledger events again through a Processor's handlers.
type Reprocessor struct {
	proc     *Processor
	pageSize int
}

// NewReprocessor returns a Reprocessor applying events with proc's
// handlers and store (and its ObjectFetcher, for ties).
func NewReprocessor(proc *Processor) *Reprocessor {
	return &Reprocessor{proc: proc, pageSize: 500}
}

// Run applies every ledger event f selects, in Stripe's order, each in a
// transaction of its own that also marks it processed; with dryRun it
// only says what it would do. each is called once per event, in order. An
// event that fails is rolled back, reported and passed over; the error
// returned is for what stopped the run (the ledger could not be read, ctx
// ended).
func (r *Reprocessor) Run(ctx context.Context, f models.EventFilter, dryRun bool, each func(Reprocessed)) (ReprocessReport, error) {
	var rep ReprocessReport
	var after *models.StripeEvent
	for {
		page, err := r.proc.store.EventsInStripeOrder(ctx, f, after, r.pageSize)
		if err != nil {
			return rep, fmt.Errorf("billing: reprocess: %w", err)
		}
		var pruned map[string]bool // a dry run does not load the payloads
		if dryRun {
			ids := make([]string, len(page))
			for i, row := range page {
				ids[i] = row.ID
			}
			if pruned, err = r.proc.store.PrunedEventIDs(ctx, ids); err != nil {
				return rep, fmt.Errorf("billing: reprocess: %w", err)
			}
		}
		for i := range page {
			row := page[i]
			after = &page[i]
			got := Reprocessed{ID: row.ID, Type: row.Type, Status: row.Status}
			if row.Created != nil {
				got.Created = *row.Created
			}
			_, known := r.proc.mux.Handler(row.Type)
			switch {
			case !known:
				got.Outcome = ReprocessNoHandler
			case dryRun && pruned[row.ID]:
				got.Outcome, got.Err = ReprocessWouldFail, prunedError(row.ID)
			case dryRun:
				got.Outcome = ReprocessWouldApply
			default:
				if got.Err = r.apply(ctx, row.ID); got.Err != nil {
					got.Outcome = ReprocessFailed
				} else {
					got.Outcome = ReprocessApplied
				}
			}
			rep.Matched++
			switch got.Outcome {
			case ReprocessApplied:
				rep.Applied++
			case ReprocessNoHandler:
				rep.NoHandler++
			case ReprocessFailed, ReprocessWouldFail:
				rep.Failed++
			}
			if each != nil {
				each(got)
			}
		}
		if len(page) < r.pageSize {
			return rep, ctx.Err()
		}
	}
}

// apply applies the ledger event id from its stored payload and marks it
// processed, applied or stale (processed_at then), unless it already was
// and is stale now.
func (r *Reprocessor) apply(ctx context.Context, id string) error {
	p := r.proc
	return p.withTieObjects(ctx, nil, func(objs tieObjects) error {
		return r.applyIn(ctx, id, objs)
	})
}

// applyIn is apply's transaction, with the objects fetched for its ties.
func (r *Reprocessor) applyIn(ctx context.Context, id string, objs tieObjects) error {
	p := r.proc
	return p.inTx(ctx, func(tx *gorm.DB) error {
		row, err := models.LockEvent(tx, id)
		if err != nil {
			return err
		}
		if row.Payload == nil && row.Status != models.EventDead {
			return prunedError(id)
		}
		ev, err := Parse(row.Payload)
		if err != nil {
			return err
		}
		if ev.ID != id {
			return fmt.Errorf("billing: reprocess %s: the stored payload is event %q", id, ev.ID)
		}
		h, known := p.mux.Handler(ev.Type)
		if !known {
			return fmt.Errorf("billing: reprocess %s: no handler for %s", id, ev.Type)
		}
		applied, err := p.handle(ctx, tx, h, ev, objs)
		if err != nil {
			return err
		}
		if row.Status == models.EventProcessed && !applied {
			return nil // it stays as its first apply left it
		}
		return models.SetEventStatus(tx, id, models.EventProcessed, &applied, p.now())
	})
}

// prunedError says that event id cannot be applied from the ledger.
func prunedError(id string) error {
	return fmt.Errorf("billing: reprocess %s: %w (LEDGER_PAYLOAD_RETENTION): the ledger keeps only its id, type, created and status", id, models.ErrPayloadPruned)
}
