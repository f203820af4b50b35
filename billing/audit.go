package billing

import (
	"fmt"
	"reflect"
	"time"
)

// FieldDrift is a stored field whose value differs from what Stripe's
// object says, by its column's name, both values printed.
type FieldDrift struct {
	Field   string
	Ours    string
	Stripes string
}

// Drift compares row, an object's row as stored (a pointer to its kind's
// model), with obj, the object as Stripe serves it now (from says where
// it was fetched): the fields the object carries that the row stores,
// its status and its references, each as the fold would write it. A
// field Stripe's object leaves out is not compared. No drift is nil.
func Drift(row any, obj []byte, from Fetched) ([]FieldDrift, error) {
	ev, err := Snapshot(obj, from)
	if err != nil {
		return nil, err
	}
	pl, err := PlanOf(ev)
	if err != nil {
		return nil, err
	}
	var c *change
	for _, o := range pl.plan {
		if o.change != nil && o.id == ev.ObjectID {
			c = o.change
			break
		}
	}
	if c == nil {
		return nil, fmt.Errorf("billing: drift of %s %s: no change of its own", ev.ObjectType, ev.ObjectID)
	}
	k := c.kind
	ours := reflect.ValueOf(row)
	if ours.Type() != reflect.PointerTo(k.model) {
		return nil, fmt.Errorf("billing: drift of %s %s: row is a %T, want a *%s", k.objectType, c.id, row, k.model.Name())
	}
	// What the object makes of a row that knows nothing yet.
	theirs := reflect.New(k.model)
	if _, _, _, err := applyChange(theirs, ev, time.Time{}, *c, &tieRule{}); err != nil {
		return nil, err
	}
	var out []FieldDrift
	differ := func(f *modelField) {
		if a, b := f.of(ours), f.of(theirs); !sameValue(a, b) {
			out = append(out, FieldDrift{Field: f.column, Ours: printed(a), Stripes: printed(b)})
		}
	}
	if k.f.status != nil {
		differ(k.f.status)
	}
	for _, f := range k.carried {
		if c.present.Has(f.keys...) {
			differ(f.field)
		}
	}
	for _, f := range k.refFields {
		if !f.of(theirs).IsZero() {
			differ(f)
		}
	}
	return out, nil
}

// printed is a field's value as a person reads it: null for nil, a
// time in RFC 3339.
func printed(v reflect.Value) string {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "null"
		}
		v = v.Elem()
	}
	if t, ok := v.Interface().(time.Time); ok {
		return t.UTC().Format(time.RFC3339)
	}
	return fmt.Sprint(v.Interface())
}

// RowOf names the object row (a pointer to a kind's model, as stored)
// is the row of, on its Connect account, and says whether the row marks
// it deleted.
func RowOf(row any) (ref ObjectRef, deleted bool, err error) {
	v := reflect.ValueOf(row)
	for _, k := range kinds {
		if v.Type() != reflect.PointerTo(k.model) {
			continue
		}
		if k.f.object != nil && printed(k.f.object.of(v)) != k.object {
			continue
		}
		ref = ObjectRef{Type: k.objectType, ID: printed(k.f.stripeID.of(v))}
		if a := printed(k.f.account.of(v)); a != "null" && a != "" {
			ref.Account = a
		}
		return ref, k.f.deleted != nil && k.f.deleted.of(v).Bool(), nil
	}
	return ObjectRef{}, false, fmt.Errorf("billing: %T is not the row of an object the worker stores", row)
}
