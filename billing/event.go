// Package billing is the domain: it decodes Stripe's objects per API
// version (with presence: a field absent, null or empty kept apart) and
// folds a batch's events into the rows they make by the order, tie and
// sticky rules (Batch). It reads and writes no database: the ledger
// package runs the transaction and the models package its statements.
package billing

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/stripe-billing/billing/billing/stripejson"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/verify"
)

// Event is a Stripe event as verification read it. Raw is the exact bytes
// received.
type Event struct {
	ID         string
	Type       string
	APIVersion string
	Livemode   bool
	Account    string
	Created    time.Time
	Object     []byte // data.object, a part of Raw
	ObjectType string // data.object's object: Stripe's name of its type
	ObjectID   string // data.object's id; "" for a preview (invoice.upcoming)
	Raw        []byte
	// Signature is the Stripe-Signature that signs Raw, as the worker
	// verified it; "" for Stripe's copy fetched by id. The ledger keeps
	// it beside the payload, for `billing reprocess` to check again.
	Signature string

	keys payload // data.object's; nil in an Event made otherwise (read when decoded)
	// snapshot: an object fetched from Stripe, not an event (Snapshot).
	snapshot bool
	// correction: a snapshot `billing audit --fix` applies (Fetched).
	correction bool
	// payments are the InvoicePayments Stripe listed for the event's
	// invoice (WithPayments); nil when none were fetched.
	payments []json.RawMessage
}

// NewEvent is the event v, as the Verifier handed it on: its envelope was
// read once, there, and is not read again; only data.object's top-level
// keys are, here, for the decoders.
func NewEvent(v verify.Event) Event {
	env := v.Envelope
	keys, objectType, objectID := stripejson.Scan(env.Object)
	return Event{
		ID:         env.ID,
		Type:       env.Type,
		APIVersion: env.APIVersion,
		Livemode:   env.Livemode,
		Account:    env.Account,
		Created:    time.Unix(env.Created, 0).UTC(),
		Object:     env.Object,
		ObjectType: objectType,
		ObjectID:   objectID,
		Raw:        v.Body,
		Signature:  v.Signature,
		keys:       keys,
	}
}

// Parse reads raw as the api and the Verifier do (verify.ReadEnvelope and
// the form of verify.CheckForm), for a payload that did not come through
// a Verifier: the ledger's, a test's. Anything that can never be
// processed is an error marked permanent for the retry package.
func Parse(raw []byte) (Event, error) {
	env, err := verify.ReadEnvelope(raw)
	if err == nil {
		err = verify.CheckForm(env)
	}
	if err != nil {
		return Event{}, failure.MarkPermanent(fmt.Errorf("billing: parse event: %w", err))
	}
	return NewEvent(verify.Event{Envelope: env, Body: raw}), nil
}

// WithObject is ev carrying obj, Stripe's current copy of its object (the
// same type and id, fetched to settle a tie), in place of its own.
func (ev Event) WithObject(obj []byte) Event {
	ev.Object, ev.keys = obj, payload{} // the keys are obj's: read again when decoded
	return ev
}
