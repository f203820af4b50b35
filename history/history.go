// Package history owns `billing history`: one Stripe object as support
// staff ask about it, "what happened to this invoice, and when?": its
// stored row and every ledger event of it in Stripe's order, each with the
// status it moved the object from and to, and whether it changed the row
// or came too late (stale), was ignored or is parked.
package history

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/lookup"
)

// Ledger is what a report reads (lookup.Reader).
type Ledger interface {
	FindObject(ctx context.Context, stripeID string) (lookup.ObjectRow, error)
	ObjectEvents(ctx context.Context, objectID string) ([]models.StripeEvent, error)
	StatusChanges(ctx context.Context, objectTypes []string, objectID string) ([]models.StatusChange, error)
	Discards(ctx context.Context, eventIDs []string) ([]models.EventDiscard, error)
	CustomerObjects(ctx context.Context, customerID string) ([]lookup.CustomerObject, error)
	StatusChangesOf(ctx context.Context, objects []lookup.CustomerObject) ([]models.StatusChange, error)
}

// Outcomes of an event, as Report.Events says them.
const (
	// Applied: the event changed the object's row.
	Applied = "applied"
	// Stale: the row already reflected a newer event; only the status
	// the event reported went to the history.
	Stale = "stale"
	// Processed: applied or stale, recorded before the ledger said which.
	Processed = "processed"
	// Ignored: no handler for its type (or a preview): in the ledger only.
	Ignored = "ignored"
	// Dead: parked in the DLQ; `billing dlq` says why.
	Dead = "dead"
	// Discarded: a person took it off the DLQ (`billing dlq discard`);
	// Event.Discards says who, when and why.
	Discarded = "discarded"
)

// Report is one object's history. Its JSON form is the stable schema of
// `billing history --json` (docs/runbook.md).
type Report struct {
	ID string `json:"id"`
	// Table holds the object's row; "" when no table does (the ledger
	// alone knows the object: events of types without a handler).
	Table string `json:"table"`
	// Row is the object's current row, column by column; null with Table "".
	Row map[string]any `json:"row"`
	// Columns is Row in the table's order, for people.
	Columns []lookup.Column `json:"-"`
	// Events are the object's own events, in Stripe's order: created,
	// then received.
	Events []Event `json:"events"`
	// Notes say what the row cannot tell (Unlinked); absent when none.
	Notes []string `json:"notes,omitempty"`
}

// Unlinked is the note on an unpaid invoice of 2025-03-31.basil or later
// whose attempts to pay it are linked to no payment: no event of those
// versions names them, and the worker fetches them from Stripe only with
// STRIPE_API_KEY (billing.PaymentsToFetch).
const Unlinked = "its payment attempts are unknown: from API version " + billing.InvoicePaymentsSince +
	" no event names an unpaid invoice's payments, and the worker fetches them from Stripe only with STRIPE_API_KEY"

// Event is one ledger event of the object.
type Event struct {
	ID       string     `json:"id"`
	Type     string     `json:"type"`
	Created  *time.Time `json:"created"` // null when the payload never parsed
	Received time.Time  `json:"received"`
	// Processed is when it was applied (or recorded ignored); null while dead.
	Processed *time.Time `json:"processed"`
	// Outcome is Applied, Stale, Processed, Ignored or Dead.
	Outcome string `json:"outcome"`
	// StatusBefore and StatusAfter are the object's status in Stripe's
	// story: the last one an earlier event reported, and the one this
	// event reported (StatusBefore when it reported none). null when
	// unknown, or for objects without a status (customers).
	StatusBefore *string `json:"status_before"`
	StatusAfter  *string `json:"status_after"`
	// Error is the last error of a dead event; null otherwise.
	Error *string `json:"error"`
	// Discards are the `billing dlq discard` runs on the event, oldest
	// first; absent when none.
	Discards []Discard `json:"discards,omitempty"`
}

// Discard is one person's decision to drop a parked event.
type Discard struct {
	By     string    `json:"by"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	Copies int       `json:"copies"`
}

// ErrUnknown is returned for an id that neither a table nor the ledger knows.
var ErrUnknown = errors.New("no such object: no table holds it and no ledger event is about it")

// idForm is the form of a Stripe object id: a lower-case prefix, an
// underscore, then letters, digits and underscores (cs_test_a1B2...).
var idForm = regexp.MustCompile(`^[a-z]+_[A-Za-z0-9_]+$`)

// CheckID says why id cannot be a Stripe object's id, or nil.
func CheckID(id string) error {
	switch {
	case id == "":
		return errors.New("history: an object id is required (cus_..., sub_..., in_..., pi_..., ch_..., re_..., dp_...)")
	case len(id) > 255 || !idForm.MatchString(id):
		return fmt.Errorf("history: %q is not a Stripe object id (prefix_ then letters and digits, as cus_NffrFeUfNV2Hib)", id)
	case strings.HasPrefix(id, "evt_"):
		return fmt.Errorf("history: %s is an event id: give the id of the object it is about (its data.object.id)", id)
	}
	return nil
}

// Of builds the report of object id from ledger; ErrUnknown when nothing
// is known of it, an error from CheckID when id has not a Stripe id's
// form.
func Of(ctx context.Context, ledger Ledger, id string) (Report, error) {
	if err := CheckID(id); err != nil {
		return Report{}, err
	}
	rep := Report{ID: id, Events: []Event{}}
	row, err := ledger.FindObject(ctx, id)
	switch {
	case err == nil:
		rep.Table, rep.Columns = row.Table, row.Columns
		rep.Row = make(map[string]any, len(row.Columns))
		for _, c := range row.Columns {
			rep.Row[c.Name] = c.Value
		}
	case !errors.Is(err, models.ErrNotFound):
		return Report{}, fmt.Errorf("history: %s: %w", id, err)
	}
	events, err := ledger.ObjectEvents(ctx, id)
	if err != nil {
		return Report{}, fmt.Errorf("history: %s: %w", id, err)
	}
	if rep.Table == "" && len(events) == 0 {
		return Report{}, fmt.Errorf("history: %s: %w", id, ErrUnknown)
	}
	var types []string
	for _, ev := range events {
		if ev.ObjectType != nil && !slices.Contains(types, *ev.ObjectType) {
			types = append(types, *ev.ObjectType)
		}
	}
	changes, err := ledger.StatusChanges(ctx, types, id)
	if err != nil {
		return Report{}, fmt.Errorf("history: %s: %w", id, err)
	}
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	discards, err := ledger.Discards(ctx, ids)
	if err != nil {
		return Report{}, fmt.Errorf("history: %s: %w", id, err)
	}
	dropped := map[string][]Discard{}
	for _, d := range discards {
		dropped[d.EventID] = append(dropped[d.EventID], Discard{By: d.DiscardedBy, At: d.DiscardedAt.UTC(), Reason: d.Reason, Copies: d.Copies})
	}
	reported := make(map[string]string, len(changes))
	for _, c := range changes {
		reported[c.EventID] = c.Status
	}
	var status *string
	for _, ev := range events {
		e := Event{
			ID: ev.ID, Type: ev.Type, Created: ev.Created, Received: ev.ReceivedAt, Processed: ev.ProcessedAt,
			Outcome: outcome(ev), StatusBefore: status, StatusAfter: status,
			Error:    ev.LastError, // only a dead or discarded row keeps one
			Discards: dropped[ev.ID],
		}
		if s, ok := reported[ev.ID]; ok {
			e.StatusAfter, status = &s, &s
		}
		rep.Events = append(rep.Events, e)
	}
	if unlinked(rep, events) {
		rep.Notes = append(rep.Notes, Unlinked)
	}
	return rep, nil
}

// unlinked reports whether rep is an unpaid invoice with attempts and no
// payment intent, of whose events one at least is of
// billing.InvoicePaymentsSince or later (Unlinked).
func unlinked(rep Report, events []models.StripeEvent) bool {
	attempts, _ := rep.Row["attempt_count"].(int64)
	status, _ := rep.Row["status"].(string)
	if rep.Table != (models.Invoice{}).TableName() || attempts == 0 || rep.Row["payment_intent_id"] != nil || status == "paid" || status == "draft" {
		return false
	}
	return slices.ContainsFunc(events, func(ev models.StripeEvent) bool { return ev.APIVersion >= billing.InvoicePaymentsSince })
}

// outcome names what became of ev.
func outcome(ev models.StripeEvent) string {
	switch {
	case ev.Status == models.EventDead:
		return Dead
	case ev.Status == models.EventIgnored:
		return Ignored
	case ev.Status == models.EventDiscarded:
		return Discarded
	case ev.Applied == nil:
		return Processed
	case *ev.Applied:
		return Applied
	default:
		return Stale
	}
}

// CustomerReport is a customer's history: its own Report, then its
// objects. Its JSON form is Report's with "objects" added.
type CustomerReport struct {
	Report
	// Objects are the customer's subscriptions, invoices, payment intents,
	// charges, refunds, disputes, checkout sessions and credit notes, by
	// kind (lookup.CustomerObjectTypes), newest first.
	Objects []Object `json:"objects"`
}

// Object is one object of a customer and its status timeline.
type Object struct {
	// Type is Stripe's name of the object (invoice, charge, ...).
	Type    string     `json:"type"`
	ID      string     `json:"id"`
	Status  *string    `json:"status"`
	Created *time.Time `json:"created"`
	// Timeline is every status Stripe's events reported, newest first.
	Timeline []Step `json:"timeline"`
}

// Step is one status an event reported, when it occurred (the event's
// created).
type Step struct {
	Status  string    `json:"status"`
	At      time.Time `json:"at"`
	EventID string    `json:"event_id"`
	// Source is what reported it: event, backfill (EventID names the
	// snapshot) or correction (models.StatusChange.Source).
	Source string `json:"source"`
}

// IsCustomer reports whether id is a customer's id: its history lists
// the customer's objects too (OfCustomer).
func IsCustomer(id string) bool { return strings.HasPrefix(id, "cus_") }

// OfCustomer builds the history of customer id: Of, then every object of
// the customer with its status timeline.
func OfCustomer(ctx context.Context, ledger Ledger, id string) (CustomerReport, error) {
	rep, err := Of(ctx, ledger, id)
	if err != nil {
		return CustomerReport{}, err
	}
	out := CustomerReport{Report: rep, Objects: []Object{}}
	objects, err := ledger.CustomerObjects(ctx, id)
	if err != nil {
		return CustomerReport{}, fmt.Errorf("history: %s: %w", id, err)
	}
	changes, err := ledger.StatusChangesOf(ctx, objects)
	if err != nil {
		return CustomerReport{}, fmt.Errorf("history: %s: %w", id, err)
	}
	steps := map[[2]string][]Step{}
	for _, c := range changes {
		k := [2]string{c.ObjectType, c.ObjectID}
		steps[k] = append(steps[k], Step{Status: c.Status, At: c.OccurredAt.UTC(), EventID: c.EventID, Source: c.Source})
	}
	for _, o := range objects {
		timeline := steps[[2]string{o.ObjectType, o.StripeID}]
		if timeline == nil {
			timeline = []Step{}
		}
		var created *time.Time
		if o.Created != nil {
			t := o.Created.UTC()
			created = &t
		}
		out.Objects = append(out.Objects, Object{Type: o.ObjectType, ID: o.StripeID, Status: o.Status, Created: created, Timeline: timeline})
	}
	return out, nil
}
