package retry

import (
	"errors"

	"github.com/stripe-billing/billing/models"
)

// Class is what the consumer does with a failed event. Every error is
// classified here and nowhere else.
type Class string

const (
	// Transient failures go to the next delay tier while attempts are left.
	Transient Class = "transient"
	// Permanent failures are parked in the DLQ at once.
	Permanent Class = "permanent"
	// Outage means a dependency is down: the worker pauses and retries the
	// same delivery later without spending an attempt.
	Outage Class = "outage"
)

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// MarkPermanent wraps err so that Classify reports Permanent: retrying will
// never help (a malformed event, a handler that says so, a recovered panic).
func MarkPermanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// Classify decides the class of a processing error.
func Classify(err error) Class {
	var p *permanentError
	switch {
	case errors.As(err, &p):
		return Permanent
	case errors.Is(err, models.ErrUnavailable):
		return Outage
	default:
		return Transient
	}
}
