package billing

import (
	"fmt"
	"maps"
	"slices"
)

// HandledTypes lists the event types the worker applies, sorted: those
// with a decoder. Every other type is recorded in the ledger as ignored.
func HandledTypes() []string { return slices.Sorted(maps.Keys(decoders)) }

// Handles reports whether the worker applies events of type t.
func Handles(t string) bool { return decoders[t] != nil }

// IsPreview reports whether ev carries a preview: an object without an id
// in an event of a preview type (invoice.upcoming). There is no row to
// write; any other object without an id is a schema failure.
func IsPreview(ev Event) bool { return ev.ObjectID == "" && previewTypes[ev.Type] }

// PlanOf decodes ev, of a type the worker applies (Handles) that carries
// no preview, into what it writes. An error is marked as its class says
// (failure.Of): a payload that does not fit its type's shape is
// permanent.
func PlanOf(ev Event) (Planned, error) {
	decode := decoders[ev.Type]
	if ev.snapshot {
		decode = objectPlans[ev.ObjectType]
	}
	if decode == nil {
		return Planned{}, fmt.Errorf("billing: no decoder for %s", ev.Type)
	}
	pl, err := decode(ev)
	if err != nil {
		return Planned{}, err
	}
	return Planned{Event: ev, plan: pl}, nil
}

// WithFetched is p with obj, Stripe's copy of the object tie asked for,
// and the Ties to fold it with: in place of the event's own object when
// the tie is on that (Ties.Fetched), else after the event's own plan,
// as Stripe's latest state of that object (a failed refund's charge).
func (p Planned) WithFetched(tie *Tie, obj []byte) (Planned, Ties, error) {
	ev := p.Event.WithObject(obj)
	if tie.Ref.Type == p.Event.ObjectType && tie.Ref.ID == p.Event.ObjectID {
		q, err := PlanOf(ev)
		return q, Ties{Fetched: tie}, err
	}
	decode := objectPlans[tie.Ref.Type]
	if decode == nil {
		return Planned{}, Ties{}, fmt.Errorf("billing: event %s: Stripe's %s %s: not an object this service stores", p.Event.ID, tie.Ref.Type, tie.Ref.ID)
	}
	extra, err := decode(ev)
	if err != nil {
		return Planned{}, Ties{}, err
	}
	for i, o := range extra {
		if o.change != nil && o.id == tie.Ref.ID {
			c := *o.change
			c.stripes = true
			extra[i].change = &c
		}
	}
	p.plan = append(slices.Clone(p.plan), extra...)
	return p, Ties{}, nil
}

// since names the event types Stripe sends only from an API version on:
// an endpoint of an older version needs no subscription to them.
var since = map[string]string{
	// InvoicePayment objects exist from 2025-03-31.basil, where an invoice
	// no longer names its payment intent and charge; before it the invoice
	// and charge events carry the links.
	"invoice_payment.paid": InvoicePaymentsSince,
	// Sent by Billing automations (due-date reminders) from
	// 2024-09-30.acacia: Stripe's changelog adds them there.
	"invoice.overdue": "2024-09-30.acacia", "invoice.will_be_due": "2024-09-30.acacia",
}

// NeededTypes lists, sorted, the event types an endpoint of apiVersion
// must send for the records to be whole: every handled type but previews
// (they store nothing) and the types of later versions. An empty
// apiVersion (the account's default, unknown here) needs them all.
func NeededTypes(apiVersion string) []string {
	var out []string
	for _, t := range HandledTypes() {
		if previewTypes[t] {
			continue
		}
		// Stripe's versions begin with their date, so they sort in time.
		if v, ok := since[t]; ok && apiVersion != "" && apiVersion < v {
			continue
		}
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}
