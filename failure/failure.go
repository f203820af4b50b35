// Package failure owns every failure class of the system and the one
// decision made on a failed event: retry it in a delay tier, park it in
// the DLQ, or pause the worker for an outage. The domain marks an error
// permanent here, the store marks an outage and names its database
// conflicts here, and the consumer, the router and the sweep read the
// classes from here. It imports nothing of ours, so that marking an error
// costs the domain no transport.
package failure

import "errors"

// Class is the kind of a failure.
type Class string

// Classes of a failed event, as the consumer acts on them and as the DLQ's
// billing-error-class header shows them.
const (
	// Transient failures go to the next delay tier while attempts are left.
	Transient Class = "transient"
	// Permanent failures are parked in the DLQ at once: retrying will
	// never help (a malformed event, a handler that says so, a panic).
	Permanent Class = "permanent"
	// Schema failures are permanent ones of a payload whose shape the
	// handlers do not know: a field they cannot do without is missing or
	// of another type (the message names the field and the event's API
	// version). Parked at once, never retried: a new handler fixes them,
	// then a replay.
	Schema Class = "schema"
	// Outage means a dependency is down: the worker pauses and retries the
	// same delivery later without spending an attempt.
	Outage Class = "outage"
	// Exhausted names a transient failure that used up its attempts. The
	// router parks such an event with class Transient; a message may name
	// this class, and the sweep re-drives it alike.
	Exhausted Class = "exhausted"
	// Unverified failures are messages the worker cannot trust as Stripe's:
	// no valid signature and no copy from Stripe (no API key, or Stripe
	// does not know the id), or an id, type or created time Stripe would
	// never send. Parked at once; time cures none of them, so the sweep
	// never re-drives one.
	Unverified Class = "unverified"
	// DeliveryLimit is the class of a message the work queue's
	// x-delivery-limit backstop parked: it crashed (or hung up) the worker
	// on every delivery, so no reason headers were ever written. RabbitMQ
	// names it so in x-death.
	DeliveryLimit Class = "delivery_limit"
)

// Classes of a database error inside a transaction, besides Outage (the
// database is unreachable or the connection broke).
const (
	// Deadlock (MySQL 1213): the server rolled the transaction back.
	Deadlock Class = "deadlock"
	// LockWaitTimeout (MySQL 1205): a statement waited too long for a lock.
	LockWaitTimeout Class = "lock_wait_timeout"
)

// marked is an error with the class its maker gave it.
type marked struct {
	class Class
	err   error
}

func (e *marked) Error() string { return e.err.Error() }
func (e *marked) Unwrap() error { return e.err }

// Is lets errors.Is find a mark of a class anywhere in a chain: the probe
// is a mark of that class without an error.
func (e *marked) Is(target error) bool {
	t, ok := target.(*marked)
	return ok && t.err == nil && t.class == e.class
}

func mark(c Class, err error) error {
	if err == nil {
		return nil
	}
	return &marked{class: c, err: err}
}

// MarkPermanent wraps err so that Of reports Permanent. nil stays nil.
func MarkPermanent(err error) error { return mark(Permanent, err) }

// MarkSchema wraps err so that Of reports Schema. nil stays nil.
func MarkSchema(err error) error { return mark(Schema, err) }

// MarkOutage wraps err so that Of reports Outage (unless it is also marked
// otherwise). nil stays nil.
func MarkOutage(err error) error { return mark(Outage, err) }

// MarkUnverified wraps err so that Of reports Unverified (unless it is
// also marked schema or permanent). nil stays nil.
func MarkUnverified(err error) error { return mark(Unverified, err) }

// Of is the class of a processing error: the first of Schema, Permanent,
// Unverified and Outage marked anywhere in its chain, else Transient. nil
// has no class ("").
func Of(err error) Class {
	if err == nil {
		return ""
	}
	for _, c := range []Class{Schema, Permanent, Unverified, Outage} {
		if errors.Is(err, &marked{class: c}) {
			return c
		}
	}
	return Transient
}

// RerunsTransaction reports whether a database transaction that failed with
// class c is run again at once, in place: a conflict with another
// transaction clears in milliseconds.
func RerunsTransaction(c Class) bool { return c == Deadlock || c == LockWaitTimeout }

// EndsTransaction reports whether a failure of class c inside a database
// transaction leaves no transaction to go on with (a deadlock rolled it all
// back; after a lock wait timeout or a lost connection nothing can be
// trusted), so that a savepoint cannot contain it: the whole transaction
// is rerun or the outage reported.
func EndsTransaction(c Class) bool { return RerunsTransaction(c) || c == Outage }

// Decision is what becomes of a failed event.
type Decision struct {
	Class Class
	// Attempt is the number of failed attempts, this one included.
	Attempt int
	// Parked is true when the event goes to the DLQ; otherwise it waits in
	// delay tier Tier (-1 when parked).
	Parked bool
	Tier   int
}

// Schedule is the retry schedule Decide follows: retry.Policy.
type Schedule interface {
	// Exhausted reports whether the attempt-th failure is the last allowed.
	Exhausted(attempt int) bool
	// Tier is the delay tier after the attempt-th failure.
	Tier(attempt int) int
}

// Decide is the one decision on a failure of class c at the attempt-th
// failed attempt (1-based). An outage spends no attempt and is the
// caller's to wait out (the consumer pauses before it gets here); given
// one, Decide treats it as transient. An exhausted event is parked with
// class Transient and Attempt = the schedule's last: every parked
// transient event is an exhausted one, which the sweep may re-drive;
// permanent, schema and unverified ones are parked at once and wait for a
// person.
func Decide(c Class, attempt int, s Schedule) Decision {
	if c == Outage || c == "" {
		c = Transient
	}
	if c == Permanent || c == Schema || c == Unverified || s.Exhausted(attempt) {
		return Decision{Class: c, Attempt: attempt, Parked: true, Tier: -1}
	}
	return Decision{Class: c, Attempt: attempt, Tier: s.Tier(attempt)}
}

// Redrivable reports whether the sweep may send a parked event of class c
// back by itself: only failures that time may cure. Permanent, schema and
// unverified failures, delivery-limit parkings and unknown classes wait for
// a person.
func Redrivable(c Class) bool { return c == Transient || c == Exhausted }
