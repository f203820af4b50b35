// Package changes is the contract of the change feed: the messages that
// `billing relay` publishes to the <namespace>.changes topic exchange when
// a billing record really changed, their JSON, and their routing keys.
// It imports nothing of this module, so that another service can take it
// alone. docs/changes.md is the schema, for readers who do not use Go.
package changes

import (
	"strings"
	"time"
)

// Version is the message schema's version, each message's "version". A
// change that breaks a consumer (a field removed or its meaning changed)
// raises it; added fields do not.
const Version = 1

// Exchange is the topic exchange of namespace's change feed.
func Exchange(namespace string) string { return namespace + ".changes" }

// HeaderSequence is the AMQP header that carries Change.Sequence, so that
// a consumer can check the order of an object's changes before decoding.
// The AMQP message id is Change.ID.
const HeaderSequence = "x-change-sequence"

// ContentType is the AMQP content type of every message.
const ContentType = "application/json"

// Kind says what changed.
type Kind string

// The kinds of change. A record's first change is Created; later ones
// are a Status, an Amount, a customer's Updated fields, or Deleted.
const (
	Created Kind = "created"
	Status  Kind = "status"
	Amount  Kind = "amount"
	Updated Kind = "updated"
	Deleted Kind = "deleted"
)

// Sources of a change: what reported the state that changed the record.
const (
	SourceEvent      = "event"      // a Stripe event (webhook, replay, reconciliation)
	SourceBackfill   = "backfill"   // `billing backfill`'s snapshot of the object
	SourceCorrection = "correction" // `billing audit --fix`
)

// Change is one message of the feed: one change of one record.
type Change struct {
	Version int `json:"version"`
	// ID is the message id, the same on every delivery of this change:
	// a consumer drops a change whose id it has seen (Tracker).
	ID string `json:"id"`
	// Key is the routing key (RoutingKey).
	Key  string `json:"key"`
	Kind Kind   `json:"kind"`
	// ObjectType is Stripe's object type ("subscription", "invoice",
	// "charge", "payment_intent", "refund", "dispute", "customer",
	// "checkout.session", "credit_note", "invoice_payment", "payment_method",
	// "product", "price", "subscription_schedule").
	ObjectType string `json:"object_type"`
	ObjectID   string `json:"object_id"`
	// Sequence numbers the object's changes from 1 without a gap.
	Sequence uint64 `json:"sequence"`
	// Customer is the object's customer (the object itself for a
	// customer); empty when it has none.
	Customer string `json:"customer,omitempty"`
	// Account is the connected account; empty for the platform.
	Account  string `json:"account,omitempty"`
	Livemode bool   `json:"livemode"`
	Source   string `json:"source"`
	// EventID and EventCreated are the Stripe event that made the change
	// (for a snapshot, the snapshot's id and time).
	EventID      string    `json:"event_id"`
	EventCreated time.Time `json:"event_created"`
	// Before and After hold the record's stored fields this change is
	// about, by column name: the status, the amounts that moved, a
	// customer's changed fields; every field for Created (After only) and
	// Deleted (Before only).
	Before map[string]any `json:"before,omitempty"`
	After  map[string]any `json:"after,omitempty"`
}

// RoutingKey is the routing key of a change: "<type>.<kind>", and for a
// status "<type>.status.<status>" (subscription.status.active,
// invoice.status.paid, dispute.created, customer.updated). A dot in an
// object type becomes an underscore (checkout_session.created), so that
// a binding's words match the key's.
func RoutingKey(objectType string, kind Kind, status string) string {
	typ := strings.ReplaceAll(objectType, ".", "_")
	if kind == Status {
		return typ + ".status." + status
	}
	return typ + "." + string(kind)
}

// MessageID is the id of the change kind of object objectType/objectID
// that event eventID made: stable, whatever delivers it again.
func MessageID(eventID, objectType, objectID string, kind Kind) string {
	return eventID + "/" + objectType + "/" + objectID + "/" + string(kind)
}
