// Package billing turns one Stripe event into rows: it parses the event,
// dispatches it by type through a Mux to a handler, and applies the object
// it carries only when the event is newer (by time, then by state order)
// than what the row already reflects, recording every status it reports.
package billing

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/stripe-billing/billing/failure"
)

// Event is a parsed Stripe event. Raw is the exact bytes received.
type Event struct {
	ID         string
	Type       string
	APIVersion string
	Livemode   bool
	Account    string
	Created    time.Time
	Object     json.RawMessage // data.object
	ObjectType string          // data.object's object: Stripe's name of its type
	ObjectID   string          // data.object's id; "" for a preview (invoice.upcoming)
	Raw        []byte
	// Signature is the Stripe-Signature that signs Raw, as the worker
	// verified it; "" for Stripe's copy fetched by id. The ledger keeps
	// it beside the payload, for `billing reprocess` to check again.
	Signature string

	keys payload // data.object's, from Parse; nil in an Event made otherwise
}

// envelopeJSON is the part of a Stripe event Parse reads; data.object is
// kept raw for the handler, which decodes it into its own struct.
type envelopeJSON struct {
	ID         string `json:"id"`
	Type       string `json:"type"`
	APIVersion string `json:"api_version"`
	Livemode   bool   `json:"livemode"`
	Account    string `json:"account"`
	Created    int64  `json:"created"`
	Data       *struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// Parse decodes a Stripe event. Anything that can never be processed (not
// JSON, no id, type or created, data.object not an object) is an error
// marked permanent for the retry package.
func Parse(raw []byte) (Event, error) {
	var se envelopeJSON
	// data.object is kept as a part of raw, not a copy: the Event holds
	// raw all the same, and nothing writes to either.
	rest, err := json.Parse(raw, &se, json.DontCopyRawMessage)
	if len(rest) != 0 && !errors.As(err, new(*json.SyntaxError)) {
		err = fmt.Errorf("invalid character %q after top-level value", rest[0]) // as json.Unmarshal
	}
	if err != nil {
		return Event{}, failure.MarkPermanent(fmt.Errorf("billing: parse event: %w", err))
	}
	var problem string
	var object []byte
	if se.Data != nil {
		object = bytes.TrimSpace(se.Data.Object)
	}
	switch {
	case se.ID == "":
		problem = "no id"
	case se.Type == "":
		problem = "no type"
	case se.Created <= 0:
		problem = "no created"
	case len(object) == 0 || bytes.Equal(object, []byte("null")):
		problem = "no data.object"
	case object[0] != '{':
		return Event{}, failure.MarkPermanent(fmt.Errorf("billing: parse event %q: data.object is not an object", se.ID))
	}
	if problem != "" {
		return Event{}, failure.MarkPermanent(fmt.Errorf("billing: parse event %q: %w", se.ID, errors.New(problem)))
	}
	// The object's type and id when they are strings (a preview has no
	// id), and its keys for the handler, in one pass.
	keys, objectType, objectID := scanObject(object)
	return Event{
		ID:         se.ID,
		Type:       se.Type,
		APIVersion: se.APIVersion,
		Livemode:   se.Livemode,
		Account:    se.Account,
		Created:    time.Unix(se.Created, 0).UTC(),
		Object:     object,
		ObjectType: objectType,
		ObjectID:   objectID,
		Raw:        raw,
		keys:       keys,
	}, nil
}

// WithObject is ev carrying obj, Stripe's current copy of its object (the
// same type and id, fetched to settle a tie), in place of its own.
func (ev Event) WithObject(obj []byte) Event {
	ev.Object, ev.keys = obj, payload{} // the keys are obj's: read again when decoded
	return ev
}
