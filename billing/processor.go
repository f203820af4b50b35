package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/models"
)

// Result is what Process did with an event.
type Result string

const (
	// Processed: the event was applied (or was stale and only recorded).
	Processed Result = "processed"
	// Ignored: no handler for the type; recorded in the ledger only.
	Ignored Result = "ignored"
	// Duplicate: the event id was already done; nothing changed.
	Duplicate Result = "duplicate"
	// Preview: the event carries an object without an id, a preview such
	// as invoice.upcoming's: there is no row to write. Recorded in the
	// ledger as ignored and counted under this result.
	Preview Result = "preview"
)

// Processor applies Stripe events to the database, each exactly once.
type Processor struct {
	store   *models.Store
	logger  *slog.Logger
	mux     *Mux
	now     func() time.Time
	fetcher ObjectFetcher // nil: ties are settled by event id
}

// Option configures a Processor.
type Option func(*Processor)

// WithObjectFetcher settles same-second ties with the object fetched from
// Stripe (see ObjectFetcher); without it they are settled by event id.
func WithObjectFetcher(f ObjectFetcher) Option {
	return func(p *Processor) { p.fetcher = f }
}

// NewProcessor returns a Processor with every handler registered.
func NewProcessor(store *models.Store, logger *slog.Logger, opts ...Option) *Processor {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	now := func() time.Time { return time.Now().UTC() }
	mux := NewMux()
	handlers{now: now}.register(mux)
	p := &Processor{store: store, logger: logger, mux: mux, now: now}
	for _, opt := range opts {
		opt(p)
	}
	return p
}

// Handled lists the event types the Processor applies; others are ignored.
func (p *Processor) Handled() []string { return p.mux.Types() }

// Process parses raw and, in one transaction, records it in the ledger and
// applies it. Errors from Parse and malformed objects are marked permanent
// (failure.Of); database outages wrap models.ErrUnavailable; anything
// else is worth retrying.
func (p *Processor) Process(ctx context.Context, raw []byte) (Result, error) {
	return p.ProcessSigned(ctx, raw, "")
}

// ProcessSigned is Process of raw with signature, the Stripe-Signature
// that signs it ("" for Stripe's copy fetched by id), which the ledger
// keeps beside the payload.
func (p *Processor) ProcessSigned(ctx context.Context, raw []byte, signature string) (Result, error) {
	ev, err := Parse(raw)
	if err != nil {
		return "", err
	}
	ev.Signature = signature
	var result Result
	err = p.withTieObjects(ctx, nil, func(objs tieObjects) error {
		return p.inTx(ctx, func(tx *gorm.DB) error {
			var applied bool
			var err error
			result, applied, err = p.apply(ctx, tx, ev, objs)
			if err != nil || result != Processed || applied {
				return err
			}
			// The row was claimed applied, as most events are: a stale one
			// costs this one statement more.
			return models.StampProcessed(tx, []string{ev.ID}, nil, p.now())
		})
	})
	if err != nil {
		return "", err
	}
	p.logger.DebugContext(ctx, "billing: event done", "event_id", ev.ID, "event_type", ev.Type, "result", result)
	return result, nil
}

// apply records ev in the ledger and applies it within tx, settling a
// tie with the object objs holds for it (handle); applied says whether it
// changed its object's row. The ledger row of a Processed event is
// claimed applied: when it was stale, the caller says so
// (StampProcessed).
func (p *Processor) apply(ctx context.Context, tx *gorm.DB, ev Event, objs tieObjects) (result Result, applied bool, err error) {
	// The outcome is known before the handler runs (a handler's error rolls
	// the ledger row back with the rest), so the row is inserted final:
	// one ledger statement per event. processed_at is the time of applying
	// (ProcessBatch stamps its events again just before its commit).
	h, known := p.mux.Handler(ev.Type)
	result = p.resultOf(ev)
	known = known && result == Processed
	row := ledgerRow(ev, result, p.now())
	claim, err := models.ClaimEvent(tx, &row)
	if err != nil {
		return "", false, err
	}
	if claim == models.ClaimDuplicate {
		return Duplicate, false, nil
	}
	if known {
		if applied, err = p.handle(ctx, tx, h, ev, objs); err != nil {
			return "", false, err
		}
	}
	return result, applied, nil
}

// resultOf is what processing ev comes to, known before its handler runs.
func (p *Processor) resultOf(ev Event) Result {
	_, known := p.mux.Handler(ev.Type)
	switch {
	case !known:
		return Ignored
	case isPreview(ev):
		return Preview
	default:
		return Processed
	}
}

// ledgerRow is ev's ledger row with its final status, applied at now. A
// Processed event is claimed applied: the stale ones are set so when
// their batch is stamped (StampProcessed); an ignored one stays NULL.
func ledgerRow(ev Event, result Result, now time.Time) models.StripeEvent {
	row := models.StripeEvent{
		ID:          ev.ID,
		Type:        ev.Type,
		APIVersion:  ev.APIVersion,
		Livemode:    ev.Livemode,
		Account:     ev.Account,
		Created:     &ev.Created,
		ObjectType:  ref(ev.ObjectType).ptr(),
		ObjectID:    ref(ev.ObjectID).ptr(),
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

// Outcome is what ProcessBatch did with one event of a batch: its Result,
// or the error that rolled it (and only it) back.
type Outcome struct {
	Result Result
	Err    error
}

// ProcessBatch applies raws in one transaction, as sets (writeSets): the
// batch's ledger rows in one insert, the rows of each table locked in one
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
	outcomes = make([]Outcome, len(raws))
	events := make([]Event, len(raws))
	parsed := 0
	for i, raw := range raws {
		if events[i], outcomes[i].Err = Parse(raw); outcomes[i].Err == nil {
			parsed++
		}
		if i < len(signatures) {
			events[i].Signature = signatures[i]
		}
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
		p.logger.InfoContext(ctx, "billing: batch applied event by event", "batch", len(raws), "error", err)
		err := p.withTieObjects(ctx, err, func(objs tieObjects) error {
			return p.processEach(ctx, events, outcomes, objs)
		})
		if err != nil {
			return nil, err
		}
	}
	for i, o := range outcomes {
		if o.Err == nil {
			p.logger.DebugContext(ctx, "billing: event done", "event_id", events[i].ID, "event_type", events[i].Type, "result", o.Result, "batch", len(raws))
		}
	}
	return outcomes, nil
}

// rerunAttempts bounds the runs of a transaction that met rows other
// transactions created meanwhile (errRerun).
const rerunAttempts = 3

// inTx runs fn in a transaction (Store.InTx), again when it met rows
// another transaction created meanwhile.
func (p *Processor) inTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var err error
	for range rerunAttempts {
		if err = p.store.InTx(ctx, fn); !errors.Is(err, errRerun) {
			break
		}
	}
	return err
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
func (p *Processor) processSets(ctx context.Context, events []Event, parsed []Outcome) ([]Outcome, error) {
	type entry struct {
		ev     Event
		result Result
		plan   plan
		err    error // the event cannot be read: it fails alone
		copies []int // its places in the batch
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
		e := &entry{ev: ev, copies: []int{i}}
		e.result = p.resultOf(ev)
		if e.result == Processed {
			h, _ := p.mux.Handler(ev.Type)
			pl, ok := h.(planner)
			if !ok {
				return nil, fmt.Errorf("billing: the handler of %s has no plan", ev.Type)
			}
			e.plan, e.err = pl.decode(ev)
		}
		entries = append(entries, e)
		byID[ev.ID] = e
	}
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ev.ID
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
			var writes []planned
			var done, takenOver []string
			for _, e := range entries {
				if e.err != nil {
					continue
				}
				if status, exists := existing[e.ev.ID]; exists {
					if status != models.EventDead {
						continue
					}
					row := ledgerRow(e.ev, e.result, now) // a parked event replayed: taken over, locked
					claim, err := models.ClaimEvent(tx, &row)
					if err != nil {
						return err
					}
					if claim == models.ClaimDuplicate {
						continue
					}
					takenOver = append(takenOver, e.ev.ID)
				}
				claimed[e.ev.ID] = true
				done = append(done, e.ev.ID)
				if e.plan != nil {
					writes = append(writes, planned{ev: e.ev, plan: e.plan})
				}
			}
			tie := withTieBreak(ctx, &tieBreak{logger: p.logger, fetch: p.fetcher != nil})
			history, applied, err := writeSets(tie, tx, writes, now)
			if err != nil {
				return err
			}
			if err := models.RecordStatuses(tx, history); err != nil {
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
				if _, exists := existing[e.ev.ID]; exists || e.err != nil {
					continue
				}
				row := ledgerRow(e.ev, e.result, now)
				row.ProcessedAt = &stamp
				if row.Applied != nil && !slices.Contains(applied, e.ev.ID) {
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
				return fmt.Errorf("billing: claim %d events: %w", len(rows), errRerun)
			}
			if err := models.StampProcessed(tx, takenOver, applied, stamp); err != nil {
				return err
			}
			for _, e := range entries {
				first := Outcome{Result: e.result}
				switch status, exists := existing[e.ev.ID]; {
				case e.err != nil && exists && status != models.EventDead:
					first = Outcome{Result: Duplicate}
				case e.err != nil:
					first = Outcome{Err: e.err}
				case !claimed[e.ev.ID]:
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
		if !errors.Is(err, errRerun) {
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
func (p *Processor) processEach(ctx context.Context, events []Event, outcomes []Outcome, objs tieObjects) error {
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
				res, changed, err = p.apply(ctx, tx, events[i], objs)
				return err
			})
			if _, tie := errors.AsType[*errTie](err); abort || tie || errors.Is(err, errRerun) {
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
