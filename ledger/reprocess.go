package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"encoding/json"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/verify"
)

// No event is final for want of a handler: the ledger keeps every event's
// payload, ignored ones included, for the payload retention (dead events'
// for ever), and a Reprocessor applies ledger events
// again through today's handlers. Applying is idempotent (the state order
// refuses what a row already reflects, history rows are keyed by event),
// so reprocessing twice changes nothing, and events are applied in
// Stripe's order (created, then id; the tie rules settle the rest).
//
// Nothing is applied on the ledger's word: each payload is checked again
// before it is applied (verify.Verifier: the stored signature with the
// webhook secrets, else Stripe's copy fetched by id), and an event that
// fails the check is skipped, with the reason.

// Reprocessing outcomes of one event.
const (
	ReprocessApplied   = "applied"
	ReprocessNoHandler = "no handler" // still none: left as it is
	ReprocessFailed    = "failed"     // rolled back; the error says why
	// ReprocessSkipped: its payload could not be proved Stripe's (Err says
	// why); nothing was applied, in a dry run too.
	ReprocessSkipped = "skipped"
	// ReprocessPreview: a preview (invoice.upcoming without an id): no row
	// to write, left as it is, in a dry run too.
	ReprocessPreview = "preview"
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
	Err      error // with ReprocessFailed, ReprocessWouldFail and ReprocessSkipped
}

// ReprocessReport counts a run's outcomes (Failed: or would fail, in a
// dry run).
type ReprocessReport struct {
	Matched, Applied, NoHandler, Previews, Skipped, Failed int
}

// PayloadVerifier says which payload of a ledger event may be applied:
// *verify.Verifier, with the webhook secrets and, given STRIPE_API_KEY,
// a fetcher of Stripe's copies.
type PayloadVerifier interface {
	Verify(ctx context.Context, m verify.Message) (verify.Event, error)
}

// Reprocessor applies ledger events again by a Processor's fold and
// write.
type Reprocessor struct {
	proc     *Processor
	verifier PayloadVerifier
	pageSize int
}

// NewReprocessor returns a Reprocessor applying events with proc's
// handlers and store (and its ObjectFetcher, for ties), each once
// verifier trusts its payload.
func NewReprocessor(proc *Processor, verifier PayloadVerifier) (*Reprocessor, error) {
	if verifier == nil {
		return nil, errors.New("ledger: reprocess: no verifier: the ledger's payloads are checked again before they are applied")
	}
	return &Reprocessor{proc: proc, verifier: verifier, pageSize: 500}, nil
}

// Run applies every ledger event f selects, in Stripe's order, each in a
// transaction of its own that also marks it processed; with dryRun it
// only says what it would do. each is called once per event, in order. An
// event whose payload is not verified is skipped; one that fails is
// rolled back; both are reported and passed over. The error returned is
// for what stopped the run (the ledger could not be read, ctx ended).
func (r *Reprocessor) Run(ctx context.Context, f models.EventFilter, dryRun bool, each func(Reprocessed)) (ReprocessReport, error) {
	var rep ReprocessReport
	var after *models.StripeEvent
	for {
		page, err := r.proc.store.EventsInStripeOrder(ctx, f, after, r.pageSize)
		if err != nil {
			return rep, fmt.Errorf("ledger: reprocess: %w", err)
		}
		for i := range page {
			row := page[i]
			after = &page[i]
			got := Reprocessed{ID: row.ID, Type: row.Type, Status: row.Status}
			if row.Created != nil {
				got.Created = *row.Created
			}
			got.Outcome, got.Err = r.one(ctx, row, dryRun)
			if ctx.Err() != nil {
				return rep, ctx.Err()
			}
			rep.Matched++
			switch got.Outcome {
			case ReprocessApplied:
				rep.Applied++
			case ReprocessNoHandler:
				rep.NoHandler++
			case ReprocessPreview:
				rep.Previews++
			case ReprocessSkipped:
				rep.Skipped++
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

// one reprocesses the ledger event row and returns its outcome.
func (r *Reprocessor) one(ctx context.Context, row models.StripeEvent, dryRun bool) (string, error) {
	failed := ReprocessFailed
	if dryRun {
		failed = ReprocessWouldFail
	}
	if !r.proc.handles(row.Type) {
		return ReprocessNoHandler, nil
	}
	// Nothing of a preview is applied, so nothing needs its payload
	// verified or kept: the ledger's object id (none) says it all.
	if billing.IsPreview(billing.Event{Type: row.Type, ObjectID: deref(row.ObjectID)}) {
		return ReprocessPreview, nil
	}
	stored, err := r.proc.store.StoredEvent(ctx, row.ID)
	if err != nil {
		return failed, fmt.Errorf("ledger: reprocess: %w", err)
	}
	if stored.Payload == nil && stored.Status != models.EventDead {
		return failed, prunedError(row.ID)
	}
	// Verified outside the transaction: a fetch from Stripe holds no row
	// lock while it waits.
	ev, err := r.verify(ctx, stored)
	switch {
	case errors.Is(err, errNotVerified):
		return ReprocessSkipped, err
	case err != nil:
		return failed, err
	case dryRun:
		return ReprocessWouldApply, nil
	}
	handled, err := r.apply(ctx, row.ID, ev)
	switch {
	case err != nil:
		return ReprocessFailed, err
	case !handled:
		return ReprocessNoHandler, nil
	}
	return ReprocessApplied, nil
}

// errNotVerified marks the errors of a payload that could not be proved
// Stripe's: the event is skipped, not failed.
var errNotVerified = errors.New("not verified")

// verify returns the event that may be applied for the stored row: its
// payload when its stored signature signs it, else Stripe's copy. An
// error wrapping errNotVerified says why neither holds.
func (r *Reprocessor) verify(ctx context.Context, row models.StripeEvent) (billing.Event, error) {
	sig, body := string(row.Signature), row.Payload
	if body == nil {
		// Parked unverified: the row keeps only the id, what Stripe is
		// asked for, as for a message carrying its id alone.
		body, _ = json.Marshal(map[string]string{"id": row.ID})
	}
	v, err := r.verifier.Verify(ctx, verify.Message{ID: row.ID, Type: row.Type, Body: body, Signature: sig})
	if err != nil {
		return billing.Event{}, fmt.Errorf("%w: %w", errNotVerified, err)
	}
	ev, err := billing.Parse(v.Body)
	if err != nil {
		return billing.Event{}, err
	}
	if ev.ID != row.ID {
		return billing.Event{}, fmt.Errorf("ledger: reprocess %s: the verified payload is event %q", row.ID, ev.ID)
	}
	if !v.Fetched {
		ev.Signature = sig
	}
	return ev, nil
}

// apply applies ev, the verified event of ledger row id, and marks the
// row processed, applied or stale (processed_at then), unless it already
// was and is stale now. A verified payload other than the stored one
// (Stripe's copy of an event parked unverified, or recorded without its
// signature) replaces it, with its type, created and the rest.
//
// Stripe's copy may be of a type with no handler where the row, from a
// message nothing proved, claimed one: it is recorded as the worker
// records such an event, ignored, and handled is false.
func (r *Reprocessor) apply(ctx context.Context, id string, ev billing.Event) (handled bool, err error) {
	p := r.proc
	ev, err = p.paymentsOf(ctx, ev)
	if err != nil {
		return false, err
	}
	err = p.withTieObjects(ctx, nil, func(objs tieObjects) error {
		handled, err = r.applyIn(ctx, id, ev, objs)
		return err
	})
	return handled, err
}

// applyIn is apply's transaction, with the objects fetched for its ties.
func (r *Reprocessor) applyIn(ctx context.Context, id string, ev billing.Event, objs tieObjects) (handled bool, err error) {
	p := r.proc
	err = p.inTx(ctx, func(tx *gorm.DB) error {
		row, err := models.LockEvent(tx, id)
		if err != nil {
			return err
		}
		if handled = p.handles(ev.Type); !handled {
			ignored := ledgerRow(ev, Ignored, p.now())
			return models.ReplaceEvent(tx, &ignored)
		}
		applied, err := p.applyOne(ctx, tx, ev, objs)
		if err != nil {
			return err
		}
		if row.Status == models.EventProcessed && !applied {
			return nil // it stays as its first apply left it
		}
		now := p.now()
		if !bytes.Equal(row.Payload, ev.Raw) {
			verified := ledgerRow(ev, Processed, now)
			verified.Applied = &applied
			return models.ReplaceEvent(tx, &verified)
		}
		return models.SetEventStatus(tx, id, models.EventProcessed, &applied, now)
	})
	return handled, err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// prunedError says that event id cannot be applied from the ledger.
func prunedError(id string) error {
	return fmt.Errorf("ledger: reprocess %s: %w (LEDGER_PAYLOAD_RETENTION): the ledger keeps only its id, type, created and status", id, models.ErrPayloadPruned)
}
