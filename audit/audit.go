// Package audit compares our rows with Stripe's objects (`billing
// audit`): for a sample of each kind's rows, or all of them, it fetches
// the object through the one rate-limited client (reconcile) and names
// every stored field whose value differs from what the fold would make
// of Stripe's object (billing.Drift). It writes nothing.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm/schema"

	"github.com/stripe-billing/billing/backfill"
	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/models"
)

// Kind is one kind of rows the audit compares.
type Kind struct {
	// Name names the kind in flags and reports (as backfill's kinds).
	Name  string
	Model schema.Tabler
	// Object keeps the payments rows of one object ("" for other tables).
	Object string
}

// Kinds are every kind the worker stores.
var Kinds = []Kind{
	{Name: "customers", Model: models.Customer{}},
	{Name: "subscriptions", Model: models.Subscription{}},
	{Name: "invoices", Model: models.Invoice{}},
	{Name: "payment_intents", Model: models.Payment{}, Object: models.ObjectPaymentIntent},
	{Name: "charges", Model: models.Payment{}, Object: models.ObjectCharge},
	{Name: "refunds", Model: models.Refund{}},
	{Name: "disputes", Model: models.Dispute{}},
	{Name: "checkout_sessions", Model: models.CheckoutSession{}},
	{Name: "credit_notes", Model: models.CreditNote{}},
}

// Fetcher fetches an object as Stripe serves it now; nil and no error
// when Stripe does not know it (reconcile.Fetcher).
type Fetcher interface {
	FetchObject(ctx context.Context, ref billing.ObjectRef) (json.RawMessage, error)
}

// Rows reads the rows to compare (models.Store).
type Rows interface {
	SampleObjects(ctx context.Context, model schema.Tabler, object string, n int) ([]any, error)
}

// Config configures an audit.
type Config struct {
	// Kinds names the kinds to compare; default all.
	Kinds []string
	// Sample is how many rows of each kind, picked at random; 0: all.
	Sample int
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

// Run compares the rows of cfg's kinds with Stripe's objects, one fetch
// at a time. An error is one of reading the rows; a fetch that fails is
// counted in the kind's Failed.
func Run(ctx context.Context, cfg Config, rows Rows, fetcher Fetcher, now func() time.Time) ([]KindReport, error) {
	kinds, err := backfill.Select(Kinds, cfg.Kinds, func(k Kind) string { return k.Name })
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var out []KindReport
	for _, k := range kinds {
		sample, err := rows.SampleObjects(ctx, k.Model, k.Object, cfg.Sample)
		if err != nil {
			return out, fmt.Errorf("audit: %s: %w", k.Name, err)
		}
		r := KindReport{Kind: k.Name, Failed: map[string]error{}}
		for _, row := range sample {
			if ctx.Err() != nil {
				return append(out, r), fmt.Errorf("audit: %s: stopped: %w", k.Name, ctx.Err())
			}
			ref, deleted, err := billing.RowOf(row)
			if err != nil {
				return out, fmt.Errorf("audit: %s: %w", k.Name, err)
			}
			at := now()
			obj, err := fetcher.FetchObject(ctx, ref)
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
			fields, err := billing.Drift(row, obj, billing.Fetched{At: at, APIVersion: ref.APIVersion, Account: ref.Account})
			if err != nil {
				r.Checked--
				r.Failed[ref.ID] = err
				continue
			}
			if len(fields) > 0 {
				r.Drifted = append(r.Drifted, Object{Kind: k.Name, Ref: ref, Fields: fields})
			}
		}
		out = append(out, r)
	}
	return out, nil
}
