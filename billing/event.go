// Package billing turns one Stripe event into rows: it parses the event,
// dispatches it by type through a Mux to a handler, and applies the object
// it carries only when the event is newer (by time, then by state order)
// than what the row already reflects, recording every status it reports.
package billing

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76"

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
}

// Parse decodes a Stripe event. Anything that can never be processed (not
// JSON, no id, type or created, data.object not an object) is an error
// marked permanent for the retry package.
func Parse(raw []byte) (Event, error) {
	var se stripe.Event
	if err := json.Unmarshal(raw, &se); err != nil {
		return Event{}, failure.MarkPermanent(fmt.Errorf("billing: parse event: %w", err))
	}
	var problem string
	switch {
	case se.ID == "":
		problem = "no id"
	case se.Type == "":
		problem = "no type"
	case se.Created <= 0:
		problem = "no created"
	case se.Data == nil || se.Data.Object == nil:
		problem = "no data.object"
	}
	if problem != "" {
		return Event{}, failure.MarkPermanent(fmt.Errorf("billing: parse event %q: %w", se.ID, errors.New(problem)))
	}
	objectType, _ := se.Data.Object["object"].(string)
	objectID, _ := se.Data.Object["id"].(string)
	return Event{
		ID:         se.ID,
		Type:       string(se.Type),
		APIVersion: se.APIVersion,
		Livemode:   se.Livemode,
		Account:    se.Account,
		Created:    time.Unix(se.Created, 0).UTC(),
		Object:     se.Data.Raw,
		ObjectType: objectType,
		ObjectID:   objectID,
		Raw:        raw,
	}, nil
}
