package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/stripe-billing/billing/retry"
)

// Delivery is one event as a Handler sees it.
type Delivery struct {
	// ID and Type are the Stripe event's, from the message properties or
	// else the JSON body; empty when neither says.
	ID   string
	Type string
	// Body is the raw event, as Stripe sent it.
	Body []byte
	// Attempt is the 1-based number of this try; retries through the delay
	// tiers count up, replays from the DLQ start again at 1.
	Attempt int
	// Replays counts how often the event was sent back from the DLQ.
	Replays int
	// Redelivered is the broker's flag: an earlier delivery was not acked.
	Redelivered bool

	report *string // Outcome.Handled of this delivery; nil outside a Consumer
}

// Report records what the handler did with an event it handled without
// error (such as "duplicate"); the consumer hands it to its Observer as
// Outcome.Handled. A later call replaces an earlier one; on a Delivery
// that did not come from a Consumer it does nothing.
func (d Delivery) Report(result string) {
	if d.report != nil {
		*d.report = result
	}
}

// Handler applies one event. A nil error acks it; any other error is
// classified by retry.Classify: permanent → DLQ, transient → a delay tier,
// outage → the worker pauses and tries the same delivery again.
type Handler interface {
	HandleEvent(ctx context.Context, d Delivery) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, d Delivery) error

// HandleEvent calls f.
func (f HandlerFunc) HandleEvent(ctx context.Context, d Delivery) error { return f(ctx, d) }

// Middleware wraps a Handler.
type Middleware func(Handler) Handler

// Chain wraps h in mws, the first one outermost.
func Chain(h Handler, mws ...Middleware) Handler {
	for i := len(mws) - 1; i >= 0; i-- {
		h = mws[i](h)
	}
	return h
}

// Recover turns a panic into a permanent error: the event is parked at
// once instead of killing the worker on every redelivery.
func Recover(logger *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, d Delivery) (err error) {
			defer func() {
				if r := recover(); r != nil {
					logger.Error("event handler panicked", "event_id", d.ID, "event_type", d.Type,
						"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					err = retry.MarkPermanent(fmt.Errorf("consumer: handler panic: %v", r))
				}
			}()
			return next.HandleEvent(ctx, d)
		})
	}
}

// Log records each handled event with its id, type, attempt, duration and
// outcome; never the payload.
func Log(logger *slog.Logger) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, d Delivery) error {
			start := time.Now()
			err := next.HandleEvent(ctx, d)
			l := logger.With("event_id", d.ID, "event_type", d.Type, "attempt", d.Attempt, "duration_ms", time.Since(start).Milliseconds())
			if d.Replays > 0 {
				l = l.With("replays", d.Replays)
			}
			if err != nil {
				l.Warn("event failed", "error", err, "class", string(retry.Classify(err)))
				return err
			}
			l.Debug("event handled")
			return nil
		})
	}
}

// Timeout bounds one handling; a handler that overruns gets a canceled
// context and its error counts as transient.
func Timeout(d time.Duration) Middleware {
	return func(next Handler) Handler {
		return HandlerFunc(func(ctx context.Context, dl Delivery) error {
			ctx, cancel := context.WithTimeout(ctx, d)
			defer cancel()
			return next.HandleEvent(ctx, dl)
		})
	}
}
