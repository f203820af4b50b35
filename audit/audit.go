// Package audit compares our rows with Stripe's objects (`billing
// audit`): for a sample of each kind's rows, or all of them, it fetches
// the object through the one rate-limited client (reconcile) and names
// every stored field whose value differs from what the fold would make
// of Stripe's object (billing.Drift). It writes nothing, unless told to
// fix: then each differing object goes through the ledger's fold as a
// correction.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"gorm.io/gorm/schema"

	"github.com/stripe-billing/billing/backfill"
	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/lookup"
)

// Kind is one kind of rows the audit compares.
type Kind struct {
	// Name names the kind in flags and reports (as backfill's kinds).
	Name string
	// ObjectType is Stripe's name of the object (lookup.CustomerObject).
	ObjectType string
	Model      schema.Tabler
	// Object keeps the payments rows of one object ("" for other tables).
	Object string
}

// Kinds are every kind the worker stores.
var Kinds = []Kind{
	{Name: "customers", ObjectType: "customer", Model: models.Customer{}},
	{Name: "subscriptions", ObjectType: "subscription", Model: models.Subscription{}},
	{Name: "invoices", ObjectType: "invoice", Model: models.Invoice{}},
	{Name: "payment_intents", ObjectType: models.ObjectPaymentIntent, Model: models.Payment{}, Object: models.ObjectPaymentIntent},
	{Name: "charges", ObjectType: models.ObjectCharge, Model: models.Payment{}, Object: models.ObjectCharge},
	{Name: "refunds", ObjectType: "refund", Model: models.Refund{}},
	{Name: "disputes", ObjectType: "dispute", Model: models.Dispute{}},
	{Name: "checkout_sessions", ObjectType: "checkout.session", Model: models.CheckoutSession{}},
	{Name: "credit_notes", ObjectType: "credit_note", Model: models.CreditNote{}},
	{Name: "products", ObjectType: "product", Model: models.Product{}},
	{Name: "prices", ObjectType: "price", Model: models.Price{}},
	{Name: "subscription_schedules", ObjectType: "subscription_schedule", Model: models.SubscriptionSchedule{}},
}

// Fetcher fetches an object as Stripe serves it now; nil and no error
// when Stripe does not know it (404), an error when it refuses to show
// it (reconcile.Fetcher).
type Fetcher interface {
	Lookup(ctx context.Context, ref billing.ObjectRef) (json.RawMessage, error)
}

// Rows reads the rows to compare (lookup.Reader).
type Rows interface {
	SampleObjects(ctx context.Context, model schema.Tabler, object string, ids []string, n int) ([]any, error)
	CustomerObjects(ctx context.Context, customerID string) ([]lookup.CustomerObject, error)
}

// Config configures an audit.
type Config struct {
	// Kinds names the kinds to compare; default all.
	Kinds []string
	// Sample is how many rows of each kind, picked at random; 0: all.
	Sample int
	// Customer, when set, keeps the customer and everything of theirs
	// (lookup.Reader.CustomerObjects).
	Customer string
	// Fix applies each differing object, as fetched, through the fold
	// (Applier) as a correction; the history records it as such.
	Fix bool
	// Concurrency is the most objects fetched at once; default
	// backfill.DefaultConcurrency. The Fetcher's own limits still apply.
	Concurrency int
}

// Applier folds objects fetched from Stripe into their rows by the rules
// events are folded by (ledger.Processor).
type Applier interface {
	ApplySnapshots(ctx context.Context, snaps []billing.Event, cursor ledger.Cursor) (ledger.SnapshotResult, error)
}

// Object is one object whose row differs from Stripe's.
type Object struct {
	Kind string
	Ref  billing.ObjectRef
	// Missing: Stripe does not know the object (404, or refused), and
	// our row does not mark it deleted.
	Missing bool
	Fields  []billing.FieldDrift
}

// KindReport is what the audit found of one kind.
type KindReport struct {
	Kind    string
	Checked int
	Drifted []Object
	// Failed are the objects not compared (Stripe unreachable, a shape
	// the decoders refuse), with why.
	Failed map[string]error
	// Fixed counts the differing objects a --fix wrote to their rows; the
	// others the order rules kept (a row ranked above Stripe's object,
	// or an event of the fetch's second), or Stripe does not know.
	Fixed int
}

// ByField counts the drifted objects of each field ("(missing)" for an
// object Stripe does not know), sorted by field.
func (r KindReport) ByField() []FieldCount {
	counts := map[string]int{}
	for _, o := range r.Drifted {
		if o.Missing {
			counts["(missing)"]++
		}
		for _, f := range o.Fields {
			counts[f.Field]++
		}
	}
	out := make([]FieldCount, 0, len(counts))
	for f, n := range counts {
		out = append(out, FieldCount{Field: f, Objects: n})
	}
	slices.SortFunc(out, func(a, b FieldCount) int { return strings.Compare(a.Field, b.Field) })
	return out
}

// FieldCount is how many objects of a kind differ in one field.
type FieldCount struct {
	Field   string
	Objects int
}

// Run compares the rows of cfg's kinds with Stripe's objects, fetched
// cfg.Concurrency at a time. An error is one of reading the rows; a
// fetch that fails or Stripe refuses is counted in the kind's Failed.
// With cfg.Fix, each kind's differing objects are then applied by apply
// in one transaction.
func Run(ctx context.Context, cfg Config, rows Rows, fetcher Fetcher, apply Applier, now func() time.Time) ([]KindReport, error) {
	if cfg.Fix && apply == nil {
		return nil, errors.New("audit: fix: nothing to apply the objects with")
	}
	kinds, err := backfill.Select(Kinds, cfg.Kinds, func(k Kind) string { return k.Name })
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = backfill.DefaultConcurrency
	}
	var of map[string][]string // the customer's objects' ids by object type
	if cfg.Customer != "" {
		objs, err := rows.CustomerObjects(ctx, cfg.Customer)
		if err != nil {
			return nil, fmt.Errorf("audit: %s: %w", cfg.Customer, err)
		}
		of = map[string][]string{"customer": {cfg.Customer}}
		for _, o := range objs {
			of[o.ObjectType] = append(of[o.ObjectType], o.StripeID)
		}
	}
	var out []KindReport
	for _, k := range kinds {
		var ids []string
		if of != nil {
			if ids = of[k.ObjectType]; ids == nil {
				out = append(out, KindReport{Kind: k.Name, Failed: map[string]error{}})
				continue
			}
		}
		sample, err := rows.SampleObjects(ctx, k.Model, k.Object, ids, cfg.Sample)
		if err != nil {
			return out, fmt.Errorf("audit: %s: %w", k.Name, err)
		}
		r := KindReport{Kind: k.Name, Failed: map[string]error{}}
		var fixes []billing.Event
		looked, err := lookUp(ctx, fetcher, sample, cfg.Concurrency, now)
		if err != nil {
			return out, fmt.Errorf("audit: %s: %w", k.Name, err)
		}
		for i, row := range sample {
			if ctx.Err() != nil {
				return append(out, r), fmt.Errorf("audit: %s: stopped: %w", k.Name, ctx.Err())
			}
			ref, deleted, at, obj, err := looked[i].ref, looked[i].deleted, looked[i].at, looked[i].obj, looked[i].err
			if failure.Of(err) == failure.Permanent {
				r.Failed[ref.ID] = fmt.Errorf("%w (check the key's read rights on %s%s)", err, k.Name, accountHint(ref.Account))
				continue
			}
			if err != nil {
				r.Failed[ref.ID] = err
				continue
			}
			r.Checked++
			if obj == nil {
				if !deleted {
					r.Drifted = append(r.Drifted, Object{Kind: k.Name, Ref: ref, Missing: true})
				}
				continue
			}
			from := billing.Fetched{At: at, APIVersion: ref.APIVersion, Account: ref.Account, Correction: true}
			fields, err := billing.Drift(row, obj, from)
			if err != nil {
				r.Checked--
				r.Failed[ref.ID] = err
				continue
			}
			if len(fields) == 0 {
				continue
			}
			r.Drifted = append(r.Drifted, Object{Kind: k.Name, Ref: ref, Fields: fields})
			if cfg.Fix {
				snap, err := billing.Snapshot(obj, from)
				if err != nil {
					return append(out, r), fmt.Errorf("audit: %s %s: %w", k.Name, ref.ID, err)
				}
				fixes = append(fixes, snap)
			}
		}
		if len(fixes) > 0 {
			res, err := apply.ApplySnapshots(ctx, fixes, ledger.Cursor{})
			if err != nil {
				return append(out, r), fmt.Errorf("audit: %s: fix %d objects: %w", k.Name, len(fixes), err)
			}
			r.Fixed = res.Written
		}
		out = append(out, r)
	}
	return out, nil
}

// lookedUp is one row's object as Stripe serves it, fetched at at.
type lookedUp struct {
	ref     billing.ObjectRef
	deleted bool
	at      time.Time
	obj     json.RawMessage
	err     error
}

// lookUp fetches the object of each of rows, concurrency at a time, in
// rows' order; an error is a row that names no object.
func lookUp(ctx context.Context, fetcher Fetcher, rows []any, concurrency int, now func() time.Time) ([]lookedUp, error) {
	out := make([]lookedUp, len(rows))
	for i, row := range rows {
		ref, deleted, err := billing.RowOf(row)
		if err != nil {
			return nil, err
		}
		out[i] = lookedUp{ref: ref, deleted: deleted}
	}
	slots := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i := range out {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			out[i].err = ctx.Err()
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			out[i].at = now()
			out[i].obj, out[i].err = fetcher.Lookup(ctx, out[i].ref)
		})
	}
	wg.Wait()
	return out, nil
}

// accountHint names a connected account among what to check.
func accountHint(account string) string {
	if account == "" {
		return ""
	}
	return ", and that " + account + " is still connected to the platform"
}

// LastCheckpoint is the sweep_checkpoints row where `billing audit` saves
// the Summary of its last run: the sweep reads it into
// billing_audit_drift_objects, which an alert watches.
const LastCheckpoint = "audit-last"

// Summary is what one audit found, as saved under LastCheckpoint.
type Summary struct {
	At       time.Time `json:"at"`
	Compared int       `json:"compared"`
	// Differ counts the objects left differing (a --fix's fixed ones
	// aside); NotCompared those that could not be.
	Differ      int `json:"differ"`
	NotCompared int `json:"not_compared"`
}

// SummaryOf sums reports, an audit that ended at at.
func SummaryOf(reports []KindReport, at time.Time) Summary {
	s := Summary{At: at.UTC()}
	for _, r := range reports {
		s.Compared += r.Checked
		s.Differ += len(r.Drifted) - r.Fixed
		s.NotCompared += len(r.Failed)
	}
	return s
}

// ParseSummary reads a value saved under LastCheckpoint.
func ParseSummary(value string) (Summary, error) {
	var s Summary
	if err := json.Unmarshal([]byte(value), &s); err != nil {
		return s, fmt.Errorf("audit: parse summary: %w", err)
	}
	return s, nil
}
