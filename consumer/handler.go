package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/verify"
)

// Delivery is one event as a Handler sees it.
type Delivery struct {
	// ID and Type are the Stripe event's, from the message properties or
	// else the JSON body; empty when neither says.
	ID   string
	Type string
	// Body is the raw event, as Stripe sent it. Inside the pipeline,
	// past Verify, it is the event Verify trusts: the message body when
	// Stripe signed it, else Stripe's copy fetched by id.
	Body []byte
	// Signature is the Stripe-Signature the api forwarded
	// (broker.HeaderStripeSignature); empty when the message has none.
	// Past Verify, it is the one that signs Body: empty when Body is
	// Stripe's copy.
	Signature string
	// Envelope is Body's, read once by Verify (verify.Event); zero
	// before Verify.
	Envelope verify.Envelope
	// Attempt is the 1-based number of this try; retries through the delay
	// tiers count up, replays from the DLQ start again at 1.
	Attempt int
	// Replays counts how often the event was sent back from the DLQ.
	Replays int
	// Redelivered is the broker's flag: an earlier delivery was not acked.
	Redelivered bool

	report *Handled // Outcome.Handled of this delivery; nil outside a Consumer
}

// Handled is what a handler did with an event it handled without error,
// as it reports it (Delivery.Report): the outcome an acked event is
// counted under in the event metrics.
type Handled string

// What a handler reports of an event it handled.
const (
	// Processed: applied (or stale and only recorded); an acked event
	// whose handler reported nothing counts as processed.
	Processed Handled = "processed"
	// Ignored: no handler for the type; recorded only.
	Ignored Handled = "ignored"
	// Duplicate: the event was already done; nothing changed.
	Duplicate Handled = "duplicate"
	// Preview: an object without an id (invoice.upcoming); recorded only.
	Preview Handled = "preview"
)

// Report records what the handler did with an event it handled without
// error (such as Duplicate); the consumer hands it to its Observer as
// Outcome.Handled. A later call replaces an earlier one; on a Delivery
// that did not come from a Consumer it does nothing.
func (d Delivery) Report(result Handled) {
	if d.report != nil {
		*d.report = result
	}
}

// Handler applies one event. A nil error acks it; any other error is
// classified by failure.Of: permanent → DLQ, transient → a delay tier,
// outage → the worker pauses and tries the same delivery again.
type Handler interface {
	HandleEvent(ctx context.Context, d Delivery) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, d Delivery) error

// HandleEvent calls f.
func (f HandlerFunc) HandleEvent(ctx context.Context, d Delivery) error { return f(ctx, d) }

// BatchHandler applies several events at once, typically in one database
// transaction, done as sets.
type BatchHandler interface {
	// HandleBatch returns one error per delivery, in order: nil means the
	// event is applied and committed, whatever became of the others. A
	// non-nil err means nothing was committed.
	HandleBatch(ctx context.Context, ds []Delivery) (errs []error, err error)
}

// BatchHandlerFunc adapts a function to BatchHandler.
type BatchHandlerFunc func(ctx context.Context, ds []Delivery) ([]error, error)

// HandleBatch calls f.
func (f BatchHandlerFunc) HandleBatch(ctx context.Context, ds []Delivery) ([]error, error) {
	return f(ctx, ds)
}

// one runs a Handler as a batch of one, so that a single event takes the
// same delivery loop and middleware as a batch.
func one(h Handler) BatchHandler {
	return BatchHandlerFunc(func(ctx context.Context, ds []Delivery) ([]error, error) {
		errs := make([]error, len(ds))
		for i, d := range ds {
			errs[i] = h.HandleEvent(ctx, d)
		}
		return errs, nil
	})
}

// Middleware wraps the handling of events, one or a batch alike.
type Middleware func(BatchHandler) BatchHandler

// Chain wraps h in mws, the first one outermost.
func Chain(h BatchHandler, mws ...Middleware) BatchHandler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Pipeline is the middleware every handling of a Consumer runs through,
// outermost first: Recover, Log, Timeout, Verify. Verify is innermost so
// that a fetch from Stripe is bounded by the timeout and its failures are
// logged like any other.
func Pipeline(logger *slog.Logger, timeout time.Duration, v *verify.Verifier) []Middleware {
	return []Middleware{Recover(logger), Log(logger), Timeout(timeout), Verify(v)}
}

// Verify hands on only the events v trusts, each with the body v says to
// apply (its own when Stripe signed it, else Stripe's copy) and the id
// and type of that body. A delivery v does not trust fails alone with v's
// error (unverified: parked at once; Stripe unreachable: transient); the
// others go on as one batch.
func Verify(v *verify.Verifier) Middleware {
	return func(next BatchHandler) BatchHandler {
		return BatchHandlerFunc(func(ctx context.Context, ds []Delivery) ([]error, error) {
			errs := make([]error, len(ds))
			trusted := make([]Delivery, 0, len(ds))
			at := make([]int, 0, len(ds))
			for i, d := range ds {
				ev, err := v.Verify(ctx, verify.Message{ID: d.ID, Type: d.Type, Body: d.Body, Signature: d.Signature})
				if err != nil {
					errs[i] = err
					continue
				}
				d.ID, d.Type, d.Body, d.Signature, d.Envelope = ev.ID, ev.Type, ev.Body, ev.Signature, ev.Envelope
				trusted = append(trusted, d)
				at = append(at, i)
			}
			if len(trusted) == 0 {
				return errs, nil
			}
			inner, err := next.HandleBatch(ctx, trusted)
			if err != nil {
				return nil, err
			}
			if len(inner) != len(trusted) {
				return nil, fmt.Errorf("consumer: handler returned %d results for %d events", len(inner), len(trusted))
			}
			for j, i := range at {
				errs[i] = inner[j]
			}
			return errs, nil
		})
	}
}

// Recover turns a panic into a permanent error of the whole call: a single
// event is parked at once instead of killing the worker on every
// redelivery; a batch is handled again one event at a time, which finds
// the event to blame.
func Recover(logger *slog.Logger) Middleware {
	return func(next BatchHandler) BatchHandler {
		return BatchHandlerFunc(func(ctx context.Context, ds []Delivery) (errs []error, err error) {
			defer func() {
				if r := recover(); r != nil {
					l := logger.With("events", len(ds))
					if len(ds) == 1 {
						l = l.With("event_id", ds[0].ID, "event_type", ds[0].Type)
					}
					l.Error("event handler panicked", "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					errs, err = nil, failure.MarkPermanent(fmt.Errorf("consumer: handler panic: %v", r))
				}
			}()
			return next.HandleBatch(ctx, ds)
		})
	}
}

// Log records each handled event with its id, type, attempt, duration and
// outcome (and the batch size when it was one of several); never the
// payload. A batch that failed as a whole is one line.
func Log(logger *slog.Logger) Middleware {
	return func(next BatchHandler) BatchHandler {
		return BatchHandlerFunc(func(ctx context.Context, ds []Delivery) ([]error, error) {
			start := time.Now()
			errs, err := next.HandleBatch(ctx, ds)
			ms := time.Since(start).Milliseconds()
			if err != nil && len(ds) > 1 {
				l := logger
				// A replay must show on the batch path too: its events are
				// handled again one at a time, but this line comes first.
				if n := replayed(ds); n > 0 {
					l = l.With("replayed", n)
				}
				l.Warn("batch failed", "events", len(ds), "duration_ms", ms, "error", err, "class", string(failure.Of(err)))
				return errs, err
			}
			for i, d := range ds {
				e := err
				if e == nil && i < len(errs) {
					e = errs[i]
				}
				// A replay is rare and someone waits for it: at Info.
				level, msg := slog.LevelDebug, "event handled"
				switch {
				case e != nil:
					level, msg = slog.LevelWarn, "event failed"
				case d.Replays > 0:
					level = slog.LevelInfo
				}
				// The line's attributes are built only when it is
				// written: at the worker's usual level most are not.
				if !logger.Enabled(ctx, level) {
					continue
				}
				attrs := []any{"event_id", d.ID, "event_type", d.Type, "attempt", d.Attempt, "duration_ms", ms}
				if d.Replays > 0 {
					attrs = append(attrs, "replays", d.Replays)
				}
				if len(ds) > 1 {
					attrs = append(attrs, "batch", len(ds))
				}
				if e != nil {
					attrs = append(attrs, "error", e, "class", string(failure.Of(e)))
				}
				logger.Log(ctx, level, msg, attrs...)
			}
			return errs, err
		})
	}
}

// replayed counts the events of ds sent back from the DLQ.
func replayed(ds []Delivery) int {
	n := 0
	for _, d := range ds {
		if d.Replays > 0 {
			n++
		}
	}
	return n
}

// Timeout bounds one handling; a handler that overruns gets a canceled
// context and its error counts as transient.
func Timeout(d time.Duration) Middleware {
	return func(next BatchHandler) BatchHandler {
		return BatchHandlerFunc(func(ctx context.Context, ds []Delivery) ([]error, error) {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return next.HandleBatch(ctx, ds)
		})
	}
}
