// Package ledger is the one protocol by which an event reaches its rows:
// claim its ledger row, fold it with the rest of its batch (billing), write
// the rows, stamp the ledger, all in one transaction of the store
// (models). A batch of any size takes this way, one event included; when
// a statement of the batch fails, it is run again event by event under
// savepoints, and `billing reprocess` applies ledger events by the same
// fold and write.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/changes"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/feed"
)

// Result is what the Processor did with an event.
type Result string

const (
	// Processed: the event was applied (or was stale and only recorded).
	Processed Result = "processed"
	// Ignored: no decoder for the type; recorded in the ledger only.
	Ignored Result = "ignored"
	// Duplicate: the event id was already done; nothing changed.
	Duplicate Result = "duplicate"
	// Preview: the event carries an object without an id, a preview such
	// as invoice.upcoming's: there is no row to write. Recorded in the
	// ledger as ignored and counted under this result.
	Preview Result = "preview"
)

// Outcome is what the Processor did with one event of a batch: its
// Result, or the error that rolled it (and only it) back.
type Outcome struct {
	Result Result
	Err    error
}

// ObjectFetcher fetches from Stripe (reconcile.Fetcher) an object's
// current state, its JSON as Stripe serializes it, or nil and no error
// when Stripe has no such object; and an invoice's InvoicePayments (none
// and no error when Stripe has no such invoice). An error is a failed
// attempt, to be retried.
type ObjectFetcher interface {
	FetchObject(ctx context.Context, ref billing.ObjectRef) (json.RawMessage, error)
	FetchInvoicePayments(ctx context.Context, invoice billing.ObjectRef) ([]json.RawMessage, error)
}

// Processor applies Stripe events to the database, each exactly once.
type Processor struct {
	store   *models.Store
	logger  *slog.Logger
	now     func() time.Time
	fetcher ObjectFetcher   // nil: ties are settled by event id
	skip    map[string]bool // types applied as if they had no decoder (tests of an older release)
	noFeed  bool            // WithoutChangeFeed
}

// Option configures a Processor.
type Option func(*Processor)

// WithObjectFetcher settles same-second ties with the object fetched from
// Stripe (see billing.Ties); without it they are settled by event id.
func WithObjectFetcher(f ObjectFetcher) Option {
	return func(p *Processor) { p.fetcher = f }
}

// WithoutChangeFeed writes no change to the outbox (CHANGE_FEED=off), and
// leaves the rows' change_seq as it is.
func WithoutChangeFeed() Option {
	return func(p *Processor) { p.noFeed = true }
}

// NewProcessor returns a Processor writing to store.
func NewProcessor(store *models.Store, logger *slog.Logger, opts ...Option) *Processor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Processor{store: store, logger: logger, now: func() time.Time { return time.Now().UTC() }}
	for _, opt := range opts {
		opt(p)
	}
	return p
}

// Handled lists the event types the Processor applies; others are ignored.
func (p *Processor) Handled() []string {
	return slices.DeleteFunc(billing.HandledTypes(), func(t string) bool { return p.skip[t] })
}

// Process parses raw and, in one transaction, records it in the ledger and
// applies it: ProcessBatch of one event. Errors from Parse and malformed
// objects are marked permanent (failure.Of); database outages wrap
// models.ErrUnavailable; anything else is worth retrying.
func (p *Processor) Process(ctx context.Context, raw []byte) (Result, error) {
	return p.ProcessSigned(ctx, raw, "")
}

// ProcessSigned is Process of raw with signature, the Stripe-Signature
// that signs it ("" for Stripe's copy fetched by id), which the ledger
// keeps beside the payload.
func (p *Processor) ProcessSigned(ctx context.Context, raw []byte, signature string) (Result, error) {
	outcomes, err := p.ProcessBatchSigned(ctx, [][]byte{raw}, []string{signature})
	if err != nil {
		return "", err
	}
	return outcomes[0].Result, outcomes[0].Err
}

// ProcessBatch applies raws in one transaction, as sets: the batch's
// ledger rows in one insert, the rows of each table locked in one
// statement and written in one, the history in one insert. An event that
// cannot be read fails alone before any statement; when a statement of
// the sets fails, or a same-second tie needs Stripe's object, the batch
// is applied again event by event, each under its own savepoint, so that
// an event that fails is rolled back alone. outcomes[i] is raws[i]'s
// result or error (classified as Process's are), and the other events
// commit. The same event twice in a batch is applied once (the second is
// a Duplicate).
//
// err is non-nil only when nothing was committed: a database outage
// (wrapping models.ErrUnavailable), a deadlock or lock wait timeout that
// persisted through InTx's retries of the whole batch, or ctx done.
func (p *Processor) ProcessBatch(ctx context.Context, raws [][]byte) (outcomes []Outcome, err error) {
	return p.ProcessBatchSigned(ctx, raws, nil)
}

// ProcessBatchSigned is ProcessBatch of raws with their signatures
// (signatures[i] signs raws[i]; nil or "": none), which the ledger keeps
// beside the payloads.
func (p *Processor) ProcessBatchSigned(ctx context.Context, raws [][]byte, signatures []string) (outcomes []Outcome, err error) {
	events := make([]billing.Event, len(raws))
	failed := make([]error, len(raws))
	for i, raw := range raws {
		events[i], failed[i] = billing.Parse(raw)
		if i < len(signatures) {
			events[i].Signature = signatures[i]
		}
	}
	return p.Apply(ctx, events, failed)
}

// Apply is ProcessBatch of parsed events; failed[i], when not nil, is why
// events[i] could not be read: its outcome, with nothing applied (nil:
// every event was read).
func (p *Processor) Apply(ctx context.Context, events []billing.Event, failed []error) (outcomes []Outcome, err error) {
	events, failed = p.withPayments(ctx, events, failed)
	outcomes = make([]Outcome, len(events))
	parsed := 0
	for i := range events {
		if i < len(failed) && failed[i] != nil {
			outcomes[i].Err = failed[i]
			continue
		}
		parsed++
	}
	if parsed == 0 {
		return outcomes, nil
	}
	sets, err := p.processSets(ctx, events, outcomes)
	switch {
	case err == nil:
		outcomes = sets
	case errors.Is(err, models.ErrUnavailable) || ctx.Err() != nil:
		return nil, err
	default:
		p.logger.InfoContext(ctx, "ledger: batch applied event by event", "batch", len(events), "error", err)
		err := p.withTieObjects(ctx, err, func(objs tieObjects) error {
			return p.processEach(ctx, events, outcomes, objs)
		})
		if err != nil {
			return nil, err
		}
	}
	for i, o := range outcomes {
		if o.Err == nil {
			p.logger.DebugContext(ctx, "ledger: event done", "event_id", events[i].ID, "event_type", events[i].Type, "result", o.Result, "batch", len(events))
		}
	}
	return outcomes, nil
}

// resultOf is what processing ev comes to, known before it is folded.
func (p *Processor) resultOf(ev billing.Event) Result {
	switch {
	case !p.handles(ev.Type):
		return Ignored
	case billing.IsPreview(ev):
		return Preview
	default:
		return Processed
	}
}

// handles reports whether the Processor applies events of type t.
func (p *Processor) handles(t string) bool { return billing.Handles(t) && !p.skip[t] }

// ledgerRow is ev's ledger row with its final status, applied at now. A
// Processed event is claimed applied: the stale ones are set so when
// their batch is stamped (StampProcessed); an ignored one stays NULL.
func ledgerRow(ev billing.Event, result Result, now time.Time) models.StripeEvent {
	row := models.StripeEvent{
		ID:          ev.ID,
		Type:        ev.Type,
		APIVersion:  ev.APIVersion,
		Livemode:    ev.Livemode,
		Account:     ev.Account,
		Created:     &ev.Created,
		ObjectType:  nonEmpty(ev.ObjectType),
		ObjectID:    nonEmpty(ev.ObjectID),
		Status:      models.EventIgnored,
		Payload:     ev.Raw,
		Signature:   models.StoredSignature(ev.Signature),
		ReceivedAt:  now,
		ProcessedAt: &now,
	}
	if result == Processed {
		applied := true
		row.Status, row.Applied = models.EventProcessed, &applied
	}
	return row
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// rerunAttempts bounds the runs of a transaction that met rows other
// transactions created meanwhile (models.ErrRerun).
const rerunAttempts = 3

// inTx runs fn in a transaction (Store.InTx), again when it met rows
// another transaction created meanwhile.
func (p *Processor) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var err error
	for range rerunAttempts {
		if err = p.store.InTx(ctx, fn); !errors.Is(err, models.ErrRerun) {
			break
		}
	}
	return err
}

// writeSets folds the planned events, in order, and writes what they
// make of their rows within tx: the rows of each table locked in one
// statement, the missing ones made sure of, the rows written in one
// upsert per table, the items, the links, the history and the changes
// (the outbox). It returns the events that changed their own object's
// row.
func (p *Processor) writeSets(ctx context.Context, tx *gorm.DB, events []billing.Planned, ties billing.Ties) (applied []string, err error) {
	now := p.now()
	b := billing.NewBatch(events, now)
	if p.noFeed {
		b.OmitChanges()
	}
	for _, r := range b.ToLock() {
		found, err := models.LockObjects(tx, r.Model, r.IDs)
		if err != nil {
			return nil, err
		}
		b.Locked(r, found)
	}
	for _, stubs := range b.ToEnsure() {
		if err := models.EnsureObjects(tx, stubs); err != nil {
			return nil, err
		}
	}
	f, err := b.Fold(ties)
	if err != nil {
		return nil, err
	}
	for _, t := range f.ByEventID {
		p.logger.DebugContext(ctx, "ledger: same-second tie settled by event id, without Stripe's object",
			"object_type", t.Ref.Type, "object_id", t.Ref.ID, "event_id", t.Event, "row_event_id", t.RowEvent)
	}
	for _, w := range f.Writes {
		if err := models.WriteObjects(tx, w); err != nil {
			return nil, err
		}
	}
	if err := models.WriteItems(tx, f.Items, now); err != nil {
		return nil, err
	}
	if err := models.SettleLinks(tx, f.Intents); err != nil {
		return nil, err
	}
	if err := models.RecordStatuses(tx, f.History); err != nil {
		return nil, err
	}
	if err := writeChanges(tx, f.Changes, now); err != nil {
		return nil, err
	}
	return f.Applied, nil
}

// writeChanges writes cs to the outbox, each as its message's JSON.
func writeChanges(tx *gorm.DB, cs []changes.Change, now time.Time) error {
	if len(cs) == 0 {
		return nil
	}
	rows := make([]feed.Outbox, len(cs))
	for i, c := range cs {
		body, err := json.Marshal(c)
		if err != nil {
			return fmt.Errorf("ledger: change %s: %w", c.ID, err)
		}
		rows[i] = feed.Outbox{ID: c.ID, ObjectType: c.ObjectType, ObjectID: c.ObjectID, ObjectSeq: c.Sequence,
			RoutingKey: c.Key, Body: string(body), CreatedAt: now}
	}
	return feed.Write(tx, rows)
}

// processSets applies the parsed events as sets and returns their
// outcomes; parsed holds the outcomes of parsing. An error means nothing
// was committed.
//
// The ledger rows are inserted last, final (status, applied,
// processed_at), in one statement: a batch that inserted as many rows as
// it gave owns every one of its events (an event another transaction
// holds makes the insert wait for it, then skip it), and one that did not
// commits nothing. It runs again, reading the ledger first: those done
// are duplicates, those parked dead are taken over (and stamped once
// applied).
func (p *Processor) processSets(ctx context.Context, events []billing.Event, parsed []Outcome) ([]Outcome, error) {
	type entry struct {
		planned billing.Planned
		result  Result
		err     error // the event cannot be read: it fails alone
		copies  []int // its places in the batch
	}
	var entries []*entry
	byID := map[string]*entry{}
	for i, ev := range events {
		if parsed[i].Err != nil {
			continue
		}
		if e := byID[ev.ID]; e != nil {
			e.copies = append(e.copies, i)
			continue
		}
		e := &entry{planned: billing.Planned{Event: ev}, copies: []int{i}, result: p.resultOf(ev)}
		if e.result == Processed {
			if planned, err := billing.PlanOf(ev); err != nil {
				e.err = err // the event stays, for its ledger row and its outcome
			} else {
				e.planned = planned
			}
		}
		entries = append(entries, e)
		byID[ev.ID] = e
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.planned.Event.ID
	}
	// An event that cannot be read is still a duplicate when it is done:
	// the ledger is read first.
	unreadable := slices.ContainsFunc(entries, func(e *entry) bool { return e.err != nil })

	outcomes := make([]Outcome, len(events))
	attempt := func(preread bool) error {
		return p.store.InTx(ctx, func(tx *gorm.DB) error {
			copy(outcomes, parsed) // InTx may run this again after a deadlock
			now := p.now()
			existing := map[string]string{}
			var err error
			if preread || unreadable {
				if existing, err = models.EventStatuses(tx, ids); err != nil {
					return err
				}
			}
			claimed := map[string]bool{}
			var writes []billing.Planned
			var takenOver []string
			for _, e := range entries {
				ev := e.planned.Event
				if e.err != nil {
					continue
				}
				if status, exists := existing[ev.ID]; exists {
					if status != models.EventDead {
						continue
					}
					row := ledgerRow(ev, e.result, now) // a parked event replayed: taken over, locked
					claim, err := models.ClaimEvent(tx, &row)
					if err != nil {
						return err
					}
					if claim == models.ClaimDuplicate {
						continue
					}
					takenOver = append(takenOver, ev.ID)
				}
				claimed[ev.ID] = true
				if e.result == Processed {
					writes = append(writes, e.planned)
				}
			}
			applied, err := p.writeSets(ctx, tx, writes, billing.Ties{Fetch: p.fetcher != nil})
			if err != nil {
				return err
			}
			// The new ledger rows go last, final: processed_at is the
			// commit's time, not the claim's, and a stale event is told
			// from an applied one, with no UPDATE of the rows afterwards.
			// They are still the claim: an event another transaction
			// holds makes the insert wait for it, then skip it, and
			// nothing of this run commits.
			stamp := p.now()
			var rows []models.StripeEvent
			for _, e := range entries {
				ev := e.planned.Event
				if _, exists := existing[ev.ID]; exists || e.err != nil {
					continue
				}
				row := ledgerRow(ev, e.result, now)
				row.ProcessedAt = &stamp
				if row.Applied != nil && !slices.Contains(applied, ev.ID) {
					*row.Applied = false
				}
				rows = append(rows, row)
			}
			// In key order, so that two batches sharing events wait for
			// each other instead of deadlocking.
			slices.SortFunc(rows, func(a, b models.StripeEvent) int { return strings.Compare(a.ID, b.ID) })
			n, err := models.InsertEvents(tx, rows)
			if err != nil {
				return err
			}
			if n != int64(len(rows)) {
				return fmt.Errorf("ledger: claim %d events: %w", len(rows), models.ErrRerun)
			}
			if err := models.StampProcessed(tx, takenOver, applied, stamp); err != nil {
				return err
			}
			for _, e := range entries {
				first := Outcome{Result: e.result}
				switch status, exists := existing[e.planned.Event.ID]; {
				case e.err != nil && exists && status != models.EventDead:
					first = Outcome{Result: Duplicate}
				case e.err != nil:
					first = Outcome{Err: e.err}
				case !claimed[e.planned.Event.ID]:
					first = Outcome{Result: Duplicate}
				}
				for n, i := range e.copies {
					outcomes[i] = first
					if n > 0 && first.Err == nil {
						outcomes[i] = Outcome{Result: Duplicate}
					}
				}
			}
			return nil
		})
	}
	err := attempt(false)
	for range rerunAttempts {
		if !errors.Is(err, models.ErrRerun) {
			break
		}
		err = attempt(true)
	}
	if err != nil {
		return nil, err
	}
	return outcomes, nil
}

// processEach applies events one by one in one transaction, each under
// its own savepoint: the way of a batch whose sets failed. outcomes holds
// the outcomes of parsing and receives the others. A tie whose object
// objs lacks ends the whole transaction (withTieObjects fetches it).
func (p *Processor) processEach(ctx context.Context, events []billing.Event, outcomes []Outcome, objs tieObjects) error {
	parsed := slices.Clone(outcomes)
	return p.inTx(ctx, func(tx *gorm.DB) error {
		copy(outcomes, parsed) // InTx may run this again after a deadlock
		var done, applied []string
		for i := range events {
			if parsed[i].Err != nil {
				continue // unparsable: nothing to redo
			}
			var res Result
			var changed bool
			abort, err := models.Savepoint(tx, fmt.Sprintf("ev%d", i), func(tx *gorm.DB) error {
				var err error
				res, changed, err = p.claimAndApply(ctx, tx, events[i], objs)
				return err
			})
			if _, tie := errors.AsType[*billing.Tie](err); abort || tie || errors.Is(err, models.ErrRerun) {
				return err
			}
			outcomes[i] = Outcome{Result: res, Err: err}
			if err == nil && res != Duplicate {
				done = append(done, events[i].ID)
			}
			if err == nil && changed {
				applied = append(applied, events[i].ID)
			}
		}
		// processed_at is the commit's time, not the claim's, for every
		// event of the batch, and applied is set: one statement.
		return models.StampProcessed(tx, done, applied, p.now())
	})
}

// claimAndApply records ev in the ledger and applies it within tx,
// settling a tie with the object objs holds for it; applied says whether
// it changed its object's row. The ledger row of a Processed event is
// claimed applied: when it was stale, the caller says so
// (StampProcessed).
func (p *Processor) claimAndApply(ctx context.Context, tx *gorm.DB, ev billing.Event, objs tieObjects) (result Result, applied bool, err error) {
	// The outcome is known before the event is folded (an error rolls the
	// ledger row back with the rest), so the row is inserted final: one
	// ledger statement per event.
	result = p.resultOf(ev)
	row := ledgerRow(ev, result, p.now())
	claim, err := models.ClaimEvent(tx, &row)
	if err != nil {
		return "", false, err
	}
	if claim == models.ClaimDuplicate {
		return Duplicate, false, nil
	}
	if result == Processed {
		if applied, err = p.applyOne(ctx, tx, ev, objs); err != nil {
			return "", false, err
		}
	}
	return result, applied, nil
}
