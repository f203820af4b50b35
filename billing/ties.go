package billing

import (
	"fmt"
)

// Two events of one object in one second that nothing in their payloads
// orders (same status rank, same values of the fields that only grow: two
// customer.subscription.updated, say) are a tie. When the incoming
// payload agrees with the row on every stored field (invoice.paid beside
// invoice.payment_succeeded), either order makes the same row: the larger
// event id wins, with no call. Otherwise Stripe's event ids are not
// ordered in time, so the only source of the latest state is Stripe: the
// ledger fetches the object and folds it in the event's place; without
// Stripe (or for an object Stripe does not serve), the larger event id
// wins, which is arbitrary but the same in every delivery order.
//
// A tie shows only once the object's row is read under its lock, but the
// fetch is never made with a transaction open: the fold that meets the
// tie ends with a *Tie, the ledger ends its transaction (rolled back, its
// locks released), fetches the object, and runs the transaction again
// with it. A call to Stripe is slow and rate-limited; row locks held
// meanwhile would stall every other event of those objects.

// ObjectRef names a Stripe object to fetch, with the event's API version
// (the shape the decoders expect) and its Connect account, if any.
type ObjectRef struct {
	Type       string // Stripe's "object": charge, invoice, subscription, ...
	ID         string
	APIVersion string
	Account    string
}

// Ties says how a fold settles a tie.
type Ties struct {
	// Fetch: a tie ends the fold with a *Tie, asking for Stripe's object,
	// instead of being settled by event id.
	Fetch bool
	// Fetched is the tie whose object Stripe answered: the batch's event
	// Tie.Event carries that object in place of its own.
	Fetched *Tie
}

// Tie is what a fold ends with when it needs Stripe's object: for a tie,
// or for a figure no event carries (the charge of a refund that failed).
type Tie struct {
	Ref      ObjectRef
	Event    string // the id of the event whose change met the tie
	Reported string // the status the event itself carries, for the history
}

func (e *Tie) Error() string {
	return fmt.Sprintf("billing: tie on %s %s needs the object from Stripe", e.Ref.Type, e.Ref.ID)
}

// TieByEventID is a tie a fold settled by event id, without Stripe's
// object: the ledger logs it.
type TieByEventID struct {
	Ref             ObjectRef
	Event, RowEvent string
}

// tieRule is Ties during one fold, with the ties it settled by id.
type tieRule struct {
	Ties
	byEventID []TieByEventID
}

// settle decides a tie between current and incoming (event ev) for the
// object of change c, which agrees with the row on every stored field or
// not, names the status the history records for the event, and says
// whether c is Stripe's own object.
func (t *tieRule) settle(k kind, c change, ev Event, current, incoming state, agree bool) (v verdict, reported string, fromStripe bool, err error) {
	ref := ObjectRef{Type: k.objectType, ID: c.id, APIVersion: ev.APIVersion, Account: ev.Account}
	switch {
	case t.Fetched != nil && t.Fetched.Ref.Type == k.objectType && t.Fetched.Ref.ID == c.id:
		// c is Stripe's object now: the latest state, unless our order
		// says it went back, which Stripe's objects never do.
		return cond(k.rank(c.status) >= k.rank(current.Status)), t.Fetched.Reported, true, nil
	case agree:
		// Whichever wins, the row holds the same: nothing to ask.
		return byEventID(current, incoming), c.status, false, nil
	case t.Fetch:
		return keep, c.status, false, &Tie{Ref: ref, Event: ev.ID, Reported: c.status}
	default:
		t.byEventID = append(t.byEventID, TieByEventID{Ref: ref, Event: incoming.EventID, RowEvent: current.EventID})
		return byEventID(current, incoming), c.status, false, nil
	}
}
