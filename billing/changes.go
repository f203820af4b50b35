package billing

import (
	"maps"
	"reflect"
	"slices"

	"github.com/stripe-billing/billing/changes"
)

// The change feed (package changes): Fold says, as values, each change
// of a row that matters to another service, for the store to write to the
// outbox with the rows. Only a row an event changed has one: a stale,
// duplicate or ignored event, a link or a stub made for a reference has
// none. Each change takes the row's next ChangeSeq, written with the row.

// amountFields are the model fields whose change is an Amount change: the
// money that moved on the object (paid, still due or remaining on an
// invoice or an invoice payment; captured, received, refunded on a charge
// or a payment intent, and of the refunded, released). Totals, subtotals
// and a refund's, a dispute's or a credit note's amount are the object's
// terms, written once, not money that moved: a change of them is no
// Amount.
var amountFields = []string{"AmountDue", "AmountPaid", "AmountRemaining", "AmountCaptured", "AmountReceived", "AmountRefunded", "AmountReleased"}

// fieldsOf is row's fs by column name, JSON-ready.
func fieldsOf(row reflect.Value, fs []*modelField) map[string]any {
	m := make(map[string]any, len(fs))
	for _, f := range fs {
		m[f.column] = fieldValue(f.of(row))
	}
	return m
}

// fieldValue is a field's value as JSON takes it: what a pointer points
// to, nil for nil.
func fieldValue(v reflect.Value) any {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	return v.Interface()
}

// diff is the fields of fs whose value differs between before and after
// (pointers to one model): nil maps when none does.
func diff(before, after reflect.Value, fs []*modelField) (b, a map[string]any) {
	for _, f := range fs {
		was, is := f.of(before), f.of(after)
		if sameValue(was, is) {
			continue
		}
		if b == nil {
			b, a = map[string]any{}, map[string]any{}
		}
		b[f.column], a[f.column] = fieldValue(was), fieldValue(is)
	}
	return b, a
}

// changesOf appends to out the changes event ev made of row (a pointer to
// k's model) of object id, which was before (a copy of it taken before
// the change): Created when the event is the first to fill the row, else
// a Status, an Amount and a customer's Updated for what differs; Deleted
// when the event deleted it. An event that changes the same object twice
// (its own copy and Stripe's) makes one change of each kind: the later's
// fields are merged into the first's. from is where ev's changes start
// in out.
func changesOf(out []changes.Change, from int, k kind, id string, row, before reflect.Value, ev Event, replaced, deleted bool) []changes.Change {
	type made struct {
		kind          changes.Kind
		before, after map[string]any
	}
	var ms [4]made
	n := 0
	add := func(kd changes.Kind, b, a map[string]any) {
		ms[n] = made{kd, b, a}
		n++
	}
	if replaced {
		switch {
		case k.f.lastEventCreated.of(before).IsNil():
			add(changes.Created, nil, fieldsOf(row, k.storedFields))
		default:
			if k.f.status != nil {
				if b, a := diff(before, row, k.storedFields[:1]); b != nil {
					add(changes.Status, b, a)
				}
			}
			if b, a := diff(before, row, k.amountFields); b != nil {
				add(changes.Amount, b, a)
			}
			if k.objectType == customerKind.objectType {
				if b, a := diff(before, row, k.storedFields); b != nil {
					add(changes.Updated, b, a)
				}
			}
		}
	}
	if deleted {
		add(changes.Deleted, fieldsOf(row, k.storedFields), nil)
	}
	if n == 0 {
		return out
	}
	base := changes.Change{Version: changes.Version, ObjectType: k.objectType, ObjectID: id, Livemode: k.f.livemode.of(row).Bool(),
		Source: sourceOf(ev), EventID: ev.ID, EventCreated: ev.Created}
	base.Account, _ = fieldValue(k.f.account.of(row)).(string)
	switch {
	case k.objectType == customerKind.objectType:
		base.Customer = id
	case k.f.customer != nil:
		base.Customer, _ = fieldValue(k.f.customer.of(row)).(string)
	}
	status := ""
	if k.f.status != nil {
		status, _ = fieldValue(k.f.status.of(row)).(string)
	}
	seq := k.f.changeSeq.of(row)
	for _, m := range ms[:n] {
		c := base
		c.Kind, c.Before, c.After = m.kind, m.before, m.after
		c.ID = changes.MessageID(ev.ID, k.objectType, id, m.kind)
		c.Key = changes.RoutingKey(k.objectType, m.kind, status)
		if i := slices.IndexFunc(out[from:], func(o changes.Change) bool { return o.ID == c.ID }); i >= 0 {
			d := &out[from+i] // a Status, an Amount or an Updated again: one change, from the first's before
			for col, v := range c.Before {
				if _, ok := d.Before[col]; !ok {
					d.Before[col] = v
				}
			}
			maps.Copy(d.After, c.After)
			d.Key = c.Key
			continue
		}
		seq.SetUint(seq.Uint() + 1)
		c.Sequence = seq.Uint()
		out = append(out, c)
	}
	return out
}
