package billing

import (
	"context"
	"fmt"
	"log/slog"
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
	ev, err := Parse(raw)
	if err != nil {
		return "", err
	}
	var result Result
	err = p.store.InTx(ctx, func(tx *gorm.DB) error {
		var applied bool
		var err error
		result, applied, err = p.apply(ctx, tx, ev)
		if err != nil || result != Processed || applied {
			return err
		}
		// The row was claimed applied, as most events are: a stale one
		// costs this one statement more.
		return models.StampProcessed(tx, []string{ev.ID}, nil, p.now())
	})
	if err != nil {
		return "", err
	}
	p.logger.DebugContext(ctx, "billing: event done", "event_id", ev.ID, "event_type", ev.Type, "result", result)
	return result, nil
}

// apply records ev in the ledger and applies it within tx; applied says
// whether it changed its object's row. The ledger row of a Processed
// event is claimed applied: when it was stale, the caller says so
// (StampProcessed).
func (p *Processor) apply(ctx context.Context, tx *gorm.DB, ev Event) (result Result, applied bool, err error) {
	// The outcome is known before the handler runs (a handler's error rolls
	// the ledger row back with the rest), so the row is inserted final:
	// one ledger statement per event. processed_at is the time of applying
	// (ProcessBatch stamps its events again just before its commit).
	h, known := p.mux.Handler(ev.Type)
	result, status := Processed, models.EventProcessed
	switch {
	case !known:
		result, status = Ignored, models.EventIgnored
	case isPreview(ev):
		result, status, known = Preview, models.EventIgnored, false
	}
	now := p.now()
	row := &models.StripeEvent{
		ID:          ev.ID,
		Type:        ev.Type,
		APIVersion:  ev.APIVersion,
		Livemode:    ev.Livemode,
		Account:     ev.Account,
		Created:     &ev.Created,
		ObjectType:  ref(ev.ObjectType).ptr(),
		ObjectID:    ref(ev.ObjectID).ptr(),
		Status:      status,
		Payload:     ev.Raw,
		ReceivedAt:  now,
		ProcessedAt: &now,
	}
	if known {
		row.Applied = &known // until the handler finds it stale
	}
	claim, err := models.ClaimEvent(tx, row)
	if err != nil {
		return "", false, err
	}
	if claim == models.ClaimDuplicate {
		return Duplicate, false, nil
	}
	if known {
		if applied, err = p.handle(ctx, tx, h, ev); err != nil {
			return "", false, err
		}
	}
	return result, applied, nil
}

// Outcome is what ProcessBatch did with one event of a batch: its Result,
// or the error that rolled it (and only it) back.
type Outcome struct {
	Result Result
	Err    error
}

// ProcessBatch applies raws in one transaction, each event under its own
// savepoint, so that the batch shares one commit while an event that
// fails is rolled back alone: outcomes[i] is raws[i]'s result or error
// (classified as Process's are), and the other events commit. The same
// event twice in a batch is applied once (the second is a Duplicate).
//
// err is non-nil only when nothing was committed: a database outage
// (wrapping models.ErrUnavailable), a deadlock or lock wait timeout that
// persisted through InTx's retries of the whole batch, or ctx done.
func (p *Processor) ProcessBatch(ctx context.Context, raws [][]byte) (outcomes []Outcome, err error) {
	outcomes = make([]Outcome, len(raws))
	events := make([]Event, len(raws))
	parsed := 0
	for i, raw := range raws {
		if events[i], outcomes[i].Err = Parse(raw); outcomes[i].Err == nil {
			parsed++
		}
	}
	if parsed == 0 {
		return outcomes, nil
	}
	err = p.store.InTx(ctx, func(tx *gorm.DB) error {
		// History rows of the events that stand are inserted in one
		// statement after the last savepoint; an event rolled back to its
		// savepoint drops its own.
		var history []models.StatusChange
		var done, applied []string
		for i := range events {
			if events[i].ID == "" && outcomes[i].Err != nil {
				continue // unparsable: nothing to redo
			}
			outcomes[i] = Outcome{} // InTx may run this again after a deadlock
			var res Result
			var changed bool
			var w deferred
			abort, err := models.Savepoint(tx, fmt.Sprintf("ev%d", i), func(tx *gorm.DB) error {
				var err error
				res, changed, err = p.apply(withDeferred(ctx, &w), tx, events[i])
				return err
			})
			if abort {
				return err
			}
			outcomes[i] = Outcome{Result: res, Err: err}
			if err == nil {
				history = append(history, w.history...)
				if res != Duplicate {
					done = append(done, events[i].ID)
				}
				if changed {
					applied = append(applied, events[i].ID)
				}
			}
		}
		if err := models.RecordStatuses(tx, history); err != nil {
			return err
		}
		// processed_at is the commit's time, not the claim's, for every
		// event of the batch, and applied is set: one statement.
		return models.StampProcessed(tx, done, applied, p.now())
	})
	if err != nil {
		return nil, err
	}
	for i, o := range outcomes {
		if o.Err == nil {
			p.logger.DebugContext(ctx, "billing: event done", "event_id", events[i].ID, "event_type", events[i].Type, "result", o.Result, "batch", len(raws))
		}
	}
	return outcomes, nil
}
