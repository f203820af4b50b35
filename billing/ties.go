package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"gorm.io/gorm"
)

// Two events of one object in one second that nothing in their payloads
// orders (same status rank, same values of the fields that only grow: two
// customer.subscription.updated, say) are a tie. Stripe's event ids are not
// ordered in time, so the only source of the latest state is Stripe: with
// an ObjectFetcher the Processor fetches the object and applies it through
// the same handler; without one, the larger event id wins, which is
// arbitrary but the same in every delivery order.
//
// A tie shows only once the object's row is read under its lock, but the
// fetch is never made with a transaction open: the transaction that meets
// the tie ends (rolled back, its locks released), the object is fetched,
// and the transaction runs again with it (withTieObjects). A call to
// Stripe is slow and rate-limited; row locks held meanwhile would stall
// every other event of those objects.

// ObjectRef names a Stripe object to fetch, with the event's API version
// (the shape the handlers expect) and its Connect account, if any.
type ObjectRef struct {
	Type       string // Stripe's "object": charge, invoice, subscription, ...
	ID         string
	APIVersion string
	Account    string
}

// ObjectFetcher fetches an object's current state from Stripe
// (reconcile.Fetcher). It returns the object's JSON as Stripe serializes
// it, or nil and no error when Stripe has no such object. An error is a
// failed attempt, to be retried.
type ObjectFetcher interface {
	FetchObject(ctx context.Context, ref ObjectRef) (json.RawMessage, error)
}

// tieBreak is how apply settles a tie during one handler run; the
// Processor puts it in the context.
type tieBreak struct {
	logger *slog.Logger
	// fetch: a tie asks the Processor for Stripe's object (errTie)
	// instead of settling by event id.
	fetch bool
	// fetched is set on the run that applies Stripe's object for this tie.
	fetched *errTie
}

type tieKey struct{}

func withTieBreak(ctx context.Context, t *tieBreak) context.Context {
	return context.WithValue(ctx, tieKey{}, t)
}

// errTie is what apply returns when a tie needs Stripe's object: the
// handler's run ends, and the Processor runs it again on the fetched
// object. When the object has not been fetched yet, it ends the whole
// transaction (handle); withTieObjects fetches it and runs the
// transaction again. It is never returned by the Processor.
type errTie struct {
	ref      ObjectRef
	event    string // the id of the event whose handler met the tie
	reported string // the status the event itself carries, for the history
}

func (e *errTie) Error() string {
	return fmt.Sprintf("billing: tie on %s %s needs the object from Stripe", e.ref.Type, e.ref.ID)
}

// settleTie decides a tie between current and incoming (event ev) for the
// object of change c, names the status the history records for the
// event, and says whether c is Stripe's own object.
func settleTie(ctx context.Context, k kind, c change, ev Event, current, incoming state) (v verdict, reported string, fromStripe bool, err error) {
	t, _ := ctx.Value(tieKey{}).(*tieBreak)
	switch {
	case t != nil && t.fetched != nil && t.fetched.ref.Type == k.objectType && t.fetched.ref.ID == c.id:
		// c is Stripe's object now: the latest state, unless our order
		// says it went back, which Stripe's objects never do.
		return cond(k.rank(c.status) >= k.rank(current.Status)), t.fetched.reported, true, nil
	case t != nil && t.fetch:
		ref := ObjectRef{Type: k.objectType, ID: c.id, APIVersion: ev.APIVersion, Account: ev.Account}
		return keep, c.status, false, &errTie{ref: ref, event: ev.ID, reported: c.status}
	default:
		if t != nil {
			t.logger.DebugContext(ctx, "billing: same-second tie settled by event id, without Stripe's object",
				"object_type", k.objectType, "object_id", c.id, "event_id", incoming.EventID, "row_event_id", current.EventID)
		}
		return byEventID(current, incoming), c.status, false, nil
	}
}

// tieObjects are what Stripe answered for the ties of one unit of work,
// asked before its transaction.
type tieObjects map[ObjectRef]tieObject

// tieObject is Stripe's object (nil: Stripe has none), or why it could
// not be fetched.
type tieObject struct {
	obj json.RawMessage
	err error
}

// withTieObjects runs run, a unit of work that opens its own transaction,
// and each time it ends on a tie whose object it lacks (errTie), fetches
// that object, with no transaction open, and runs it again with every
// answer so far. A failed fetch is kept as the answer: the event of the
// tie fails with it (alone, in a batch). It ends because each run either
// finishes or names an object not asked for yet, and a batch has finitely
// many. met is what an earlier attempt of the same work ended with (the
// batch's sets): when it is a tie, its object is fetched before the first
// run.
func (p *Processor) withTieObjects(ctx context.Context, met error, run func(objs tieObjects) error) error {
	objs := tieObjects{}
	err := met
	if _, tie := errors.AsType[*errTie](met); !tie {
		err = run(objs)
	}
	for {
		var tie *errTie
		if !errors.As(err, &tie) {
			return err
		}
		if _, done := objs[tie.ref]; done || p.fetcher == nil {
			return fmt.Errorf("billing: event %s: %s %s from Stripe did not settle the tie", tie.event, tie.ref.Type, tie.ref.ID)
		}
		var got tieObject
		got.obj, got.err = p.fetcher.FetchObject(ctx, tie.ref)
		switch {
		case got.err != nil:
			got.err = fmt.Errorf("fetch %s %s to settle a same-second tie: %w", tie.ref.Type, tie.ref.ID, got.err)
		case got.obj == nil:
			p.logger.WarnContext(ctx, "billing: same-second tie settled by event id: Stripe has no such object",
				"event_id", tie.event, "object_type", tie.ref.Type, "object_id", tie.ref.ID)
		}
		objs[tie.ref] = got
		err = run(objs)
	}
}

// handle runs h on ev and, when a tie needs Stripe's object, runs h again
// on the object objs holds for it, in the same transaction. When objs has
// no answer for it, the errTie ends the transaction: withTieObjects asks
// Stripe. applied says whether either run changed the row of ev's own
// object.
func (p *Processor) handle(ctx context.Context, tx *gorm.DB, h Handler, ev Event, objs tieObjects) (applied bool, err error) {
	own := &ownObject{id: ev.ObjectID}
	ctx = withOwnObject(ctx, own)
	err = h.Handle(withTieBreak(ctx, &tieBreak{logger: p.logger, fetch: p.fetcher != nil}), tx, ev)
	var tie *errTie
	if !errors.As(err, &tie) {
		return own.applied, err
	}
	got, asked := objs[tie.ref]
	switch {
	case !asked:
		return false, tie
	case got.err != nil:
		return false, fmt.Errorf("billing: event %s: %w", ev.ID, got.err)
	}
	again := &tieBreak{logger: p.logger, fetched: tie}
	if got.obj == nil {
		again.fetched = nil
	} else {
		ev.Object = got.obj
	}
	err = h.Handle(withTieBreak(ctx, again), tx, ev)
	if errors.As(err, &tie) {
		return false, fmt.Errorf("billing: event %s: %s %s from Stripe did not settle the tie", ev.ID, tie.ref.Type, tie.ref.ID)
	}
	return own.applied, err
}
