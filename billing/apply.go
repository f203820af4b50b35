package billing

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/stripe-billing/billing/models"
)

// kind is one table of Stripe objects as events write it: which of its
// model's fields an event carries (the model's stripe tags say from which
// payload keys), which are references, which only grow. mustKind
// resolves it from the table's model (package models) once, at start-up:
// a field the model lacks stops the program before any event is applied. The statements are the
// store's (models.WriteObjects): a kind names fields, never columns.
type kind struct {
	objectType string // payment_status_history.object_type and Stripe's "object"
	rank       rankFunc
	object     string   // payments.object of a stub row; "" for other tables
	requires   []string // payload fields besides id without which an event is a schema failure
	refs       []string // model fields of references: set when known, never cleared
	deletable  bool     // a deleting event sets the model's Deleted

	// Resolved by mustKind.
	grows      []string // carried model fields that only grow (growing)
	model      reflect.Type
	f          fields
	carried    []carried
	refFields  []*modelField
	growFields []*modelField
	simple     []reflect.StructField       // the carried fields decode fills itself (isSimple)
	with       *atomic.Pointer[withSimple] // made at its first decode
	writes     []string                    // the model fields an applied event or a link may change
	// For the change feed (changes.go): the fields of an Amount change and
	// those a Created or Deleted change carries.
	amountFields, storedFields []*modelField
}

// modelField is a field of a model, by its index (through an embedded
// struct, such as models.Ordering, when it is promoted from one).
type modelField struct {
	name   string
	column string // from the model's gorm tag: the payload key it is named after
	index  []int
}

// of is the field in row, a pointer to the model.
func (f *modelField) of(row reflect.Value) reflect.Value { return row.Elem().FieldByIndex(f.index) }

// carried is a model field and the payload keys that carry it.
type carried struct {
	field *modelField
	keys  []string
}

// fields are the model fields the fold names; nil for one the table does
// not have.
type fields struct {
	stripeID, livemode, account, lastEventID, lastEventCreated, createdAt, updatedAt *modelField
	status, customer, deleted, object, changeSeq                                     *modelField
}

// growing are the fields that only grow, each with Stripe's reason: the
// one list of them. Within one second the larger value is the later
// state (growth), and an event of the same second or older never lowers
// one; an event newer in time, or Stripe's own object, carries Stripe's
// figure, and a refund that fails lowers its charge's (lowerRefunded).
var growing = []struct{ objectType, field, why string }{
	{"charge", "AmountRefunded", "each refund adds its amount, from its creation (pending included); " +
		"only a refund that fails or is canceled takes it back"},
	{"charge", "AmountCaptured", "a charge is captured once, or in parts that add up (multicapture); nothing uncaptures"},
	{"charge", "AmountReleased", "a hold is released once, at capture, cancellation or expiry, and never taken back"},
	{"invoice", "AmountPaid", "payments add up; a refund or a credit note lowers the charge's or the note's amounts, not this"},
	{"invoice", "AttemptCount", "Stripe counts each payment attempt and takes none back"},
	{"payment_intent", "AmountReceived", "funds received add up (a capture, a bank transfer funded in parts)"},
}

var (
	customerKind     = mustKind(models.Customer{}, kind{objectType: "customer", rank: noRank, deletable: true})
	subscriptionKind = mustKind(models.Subscription{}, kind{objectType: "subscription", rank: subscriptionRank,
		requires: []string{"status"},
		refs:     []string{"CustomerID"}})
	invoiceKind = mustKind(models.Invoice{}, kind{objectType: "invoice", rank: invoiceRank, deletable: true,
		requires: []string{"status"},
		refs:     []string{"CustomerID", "SubscriptionID", "PaymentIntentID", "ChargeID"}})
	invoicePaymentKind = mustKind(models.InvoicePayment{}, kind{objectType: "invoice_payment", rank: invoicePaymentRank,
		requires: []string{"status", "invoice"},
		refs:     []string{"InvoiceID", "PaymentIntentID", "ChargeID"}})
	paymentIntentKind = mustKind(models.Payment{}, kind{objectType: models.ObjectPaymentIntent, rank: paymentIntentRank,
		object:   models.ObjectPaymentIntent,
		requires: []string{"status"},
		refs:     []string{"CustomerID", "InvoiceID", "ChargeID"}})
	chargeKind = mustKind(models.Payment{}, kind{objectType: models.ObjectCharge, rank: chargeRank,
		object:   models.ObjectCharge,
		requires: []string{"status"},
		refs:     []string{"CustomerID", "InvoiceID", "PaymentIntentID"}})
	refundKind = mustKind(models.Refund{}, kind{objectType: "refund", rank: refundRank,
		requires: []string{"status"},
		refs:     []string{"ChargeID", "PaymentIntentID"}})
	disputeKind = mustKind(models.Dispute{}, kind{objectType: "dispute", rank: disputeRank,
		requires: []string{"status"},
		refs:     []string{"ChargeID", "PaymentIntentID"}})
	checkoutSessionKind = mustKind(models.CheckoutSession{}, kind{objectType: "checkout.session", rank: checkoutSessionRank,
		requires: []string{"status"},
		refs:     []string{"CustomerID", "SubscriptionID", "PaymentIntentID", "InvoiceID"}})
	creditNoteKind = mustKind(models.CreditNote{}, kind{objectType: "credit_note", rank: creditNoteRank,
		requires: []string{"status"},
		refs:     []string{"InvoiceID", "CustomerID"}})
	paymentMethodKind = mustKind(models.PaymentMethod{}, kind{objectType: "payment_method", rank: noRank})
	productKind       = mustKind(models.Product{}, kind{objectType: "product", rank: noRank, deletable: true})
	priceKind         = mustKind(models.Price{}, kind{objectType: "price", rank: noRank, deletable: true,
		refs: []string{"ProductID"}})
	subscriptionScheduleKind = mustKind(models.SubscriptionSchedule{}, kind{objectType: "subscription_schedule",
		rank: subscriptionScheduleRank, requires: []string{"status"},
		refs: []string{"CustomerID", "SubscriptionID"}})
)

// kinds are every kind of object the worker stores.
var kinds = []kind{customerKind, subscriptionKind, invoiceKind, invoicePaymentKind, paymentIntentKind,
	chargeKind, refundKind, disputeKind, checkoutSessionKind, creditNoteKind,
	paymentMethodKind, productKind, priceKind, subscriptionScheduleKind}

// ObjectTypes lists the Stripe objects the worker stores, by Stripe's
// "object" name: those whose same-second tie may need the object from
// Stripe (ObjectRef.Type).
func ObjectTypes() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.objectType
	}
	return out
}

// mustKind resolves k's fields from model, the table's model; it panics,
// as regexp.MustCompile does, on a field the model does not have.
func mustKind(model any, k kind) kind {
	t := reflect.TypeOf(model)
	optional := func(name string) *modelField {
		sf, ok := t.FieldByName(name)
		if !ok {
			return nil
		}
		return &modelField{name: name, column: columnOf(sf), index: sf.Index}
	}
	field := func(name string) *modelField {
		f := optional(name)
		if f == nil || f.column == "" {
			panic(fmt.Sprintf("billing: %s kind: model %s has no column for field %s", k.objectType, t.Name(), name))
		}
		return f
	}
	k.model, k.with = t, new(atomic.Pointer[withSimple])
	for _, g := range growing {
		if g.objectType == k.objectType {
			k.grows = append(k.grows, g.field)
		}
	}
	k.f = fields{
		stripeID:         field("StripeID"),
		livemode:         field("Livemode"),
		account:          field("Account"),
		lastEventID:      field("LastEventID"),
		lastEventCreated: field("LastEventCreated"),
		createdAt:        field("CreatedAt"),
		updatedAt:        field("UpdatedAt"),
		changeSeq:        field("ChangeSeq"),
		status:           optional("Status"),
		customer:         optional("CustomerID"),
	}
	if k.deletable {
		k.f.deleted = field("Deleted")
	}
	if k.object != "" {
		k.f.object = field("Object")
	}
	for i := range t.NumField() {
		sf := t.Field(i)
		if keys := carriedKeys(sf.Tag.Get("stripe"), k.objectType); len(keys) > 0 {
			k.carried = append(k.carried, carried{field: field(sf.Name), keys: keys})
			if isSimple(sf, keys) {
				k.simple = append(k.simple, sf)
			}
		}
	}
	if len(k.carried) == 0 {
		panic(fmt.Sprintf("billing: %s kind: model %s has no stripe tag for it", k.objectType, t.Name()))
	}
	for _, name := range k.refs {
		k.refFields = append(k.refFields, field(name))
	}
	for _, name := range k.grows {
		if !slices.ContainsFunc(k.carried, func(c carried) bool { return c.field.name == name }) {
			panic(fmt.Sprintf("billing: %s kind: growing field %s is not carried", k.objectType, name))
		}
		k.growFields = append(k.growFields, field(name))
	}
	for _, name := range amountFields {
		if f := optional(name); f != nil && slices.ContainsFunc(k.carried, func(c carried) bool { return c.field.name == name }) {
			k.amountFields = append(k.amountFields, f)
		}
	}
	if k.f.status != nil {
		k.storedFields = append(k.storedFields, k.f.status)
	}
	k.storedFields = append(k.storedFields, k.refFields...)
	for _, c := range k.carried {
		k.storedFields = append(k.storedFields, c.field)
	}
	for _, f := range []*modelField{k.f.livemode, k.f.account, k.f.updatedAt, k.f.lastEventID, k.f.lastEventCreated, k.f.status, k.f.deleted, k.f.changeSeq} {
		if f != nil {
			k.writes = append(k.writes, f.name)
		}
	}
	for _, c := range k.carried {
		k.writes = append(k.writes, c.field.name)
	}
	k.writes = append(k.writes, k.refs...)
	return k
}

// carriedKeys are the payload keys a model field's stripe tag names for
// objects of objectType: the tag lists keys, any of which carries the
// field (space-separated); a key written "<object>:<key>" is only that
// object type's, for a table two types share (payments).
func carriedKeys(tag, objectType string) []string {
	var keys []string
	for key := range strings.FieldsSeq(tag) {
		if ot, k, scoped := strings.Cut(key, ":"); !scoped {
			keys = append(keys, key)
		} else if ot == objectType {
			keys = append(keys, k)
		}
	}
	return keys
}

// isSimple reports whether the carried field sf, carried by keys, is one
// that decode fills from its object by itself (withSimple), with no shape
// field nor handler: one top-level key, named as its column, holding a
// string, an integer, a boolean or, for a time, Stripe's Unix seconds.
// Anything else (a reference, a nested object, a field that moved between
// API versions, a JSON column) is the handler's.
func isSimple(sf reflect.StructField, keys []string) bool {
	switch sf.Type {
	case reflect.TypeFor[*string](), reflect.TypeFor[*int64](), reflect.TypeFor[*int](), reflect.TypeFor[*bool](),
		reflect.TypeFor[*time.Time]():
		return len(keys) == 1 && keys[0] == columnOf(sf) && !strings.Contains(sf.Tag.Get("gorm"), "type:")
	}
	return false
}

// columnOf reads the column a model field is stored in from its gorm
// tag ("column:name"); "" for a field with none.
func columnOf(sf reflect.StructField) string {
	for part := range strings.SplitSeq(sf.Tag.Get("gorm"), ";") {
		if c, ok := strings.CutPrefix(part, "column:"); ok {
			return c
		}
	}
	return ""
}

// change is what one event says about one object.
type change struct {
	kind     kind
	id       string
	status   string
	present  payload // the fields the object carries: a carried field outside it is left alone
	row      any     // a pointer to the kind's model holding its carries and refs
	customer ref     // the object's customer, whose row must exist (a stub if new)
	deletes  bool    // the event deletes the object: sticky and order-free, once deleted always deleted
	items    *items
	// stripes: the object is Stripe's, fetched for another object of the
	// event (Planned.WithFetched): its latest state.
	stripes bool
}

// decodeObject reads ev's data.object, a k, into a new T, k's shape, and
// k's simple fields into row (decodeAs).
func decodeObject[T any](ev Event, k *kind, row any) (*T, payload, error) {
	return decodeAs[T](ev, ev.Object, ev.keys, k.objectType, k, row, k.requires...)
}

// kindOf is each kind by its objectType.
var kindOf = func() map[string]*kind {
	m := make(map[string]*kind, len(kinds))
	for i := range kinds {
		m[kinds[i].objectType] = &kinds[i]
	}
	return m
}()

// envelope is what an event says of every object it carries: whether it
// is live and the Connect account it belongs to (NULL for the platform's
// own).
type envelope struct {
	livemode bool
	account  *string
}

func envelopeOf(ev Event) envelope {
	return envelope{livemode: ev.Livemode, account: ref(ev.Account).Ptr()}
}

// stateOf is the ordering state of row, a pointer to k's model.
func (k kind) stateOf(row reflect.Value) state {
	st := state{Grows: k.growsOf(row)}
	if k.f.status != nil {
		if s, ok := k.f.status.of(row).Interface().(*string); ok && s != nil {
			st.Status = *s
		}
	}
	if s, ok := k.f.lastEventID.of(row).Interface().(*string); ok && s != nil {
		st.EventID = *s
	}
	if t, ok := k.f.lastEventCreated.of(row).Interface().(*time.Time); ok && t != nil {
		st.Created = *t
	}
	return st
}

// growsOf reads the fields that only grow of row, a pointer to k's model.
func (k kind) growsOf(row reflect.Value) []grown {
	grows := make([]grown, len(k.growFields))
	for i, f := range k.growFields {
		grows[i] = int64Of(f.of(row))
	}
	return grows
}

// applyChange writes change c of event ev into row, the object's locked
// row (a stub if it was new), when the event is newer than the row
// (compare; a tie is settled by settleTie), and says whether it did
// (replaced), whether it newly deleted the object (a deletion is sticky
// and order-free: a stale one still deletes the first time) and which
// status the history records for the event, even when it is stale (a
// snapshot's only when it moved the row's status: snapshot.go).
// Fields that only grow (growing) go down only to Stripe's figure: that
// of an event newer in time, or of Stripe's object.
func applyChange(row reflect.Value, ev Event, now time.Time, c change, t *tieRule) (replaced, deleted bool, reported string, err error) {
	k := c.kind
	src := reflect.ValueOf(c.row)
	if src.Type() != reflect.PointerTo(k.model) {
		return false, false, "", fmt.Errorf("billing: apply %s %s: row is a %T, want a *%s", k.objectType, c.id, c.row, k.model)
	}
	cur := k.stateOf(row)
	in := state{Status: c.status, Created: ev.Created, EventID: ev.ID, Grows: k.growsOf(src)}
	v, reported, lastEventID := compare(k.rank, cur, in), c.status, ev.ID
	// Stripe's figure: an event newer in time, or Stripe's own object.
	figure, lastCreated := in.Created.After(cur.Created), ev.Created
	switch {
	case c.stripes:
		// The latest state, unless our order says it went back, which
		// Stripe's objects never do; no status of the event's own.
		v, reported, figure = cond(cur.Created.IsZero() || k.rank(c.status) >= k.rank(cur.Status)), "", true
		if cur.Created.After(ev.Created) {
			lastEventID, lastCreated = cur.EventID, cur.Created // the row stays as new as it was
		}
	case v == tied:
		var fromStripe bool
		if v, reported, fromStripe, err = t.settle(k, c, ev, cur, in, k.agrees(row, c, cur)); err != nil {
			return false, false, "", err
		}
		figure = fromStripe
		if fromStripe {
			// Stripe's object is neither event's: the row names the
			// larger id, so that it ends the same whatever the order.
			lastEventID = max(ev.ID, cur.EventID)
		}
	}
	if v == replace && ev.snapshot && !cur.Created.IsZero() && k.agrees(row, c, cur) {
		v = keep // nothing to write: a second import changes nothing
	}
	if v == replace {
		for _, f := range k.carried {
			if c.present.Has(f.keys...) {
				f.field.of(row).Set(f.field.of(src))
			}
		}
		for i, f := range k.growFields {
			if n := in.Grows[i]; n.known {
				if was := cur.Grows[i]; was.known && !figure {
					n.n = max(n.n, was.n)
				}
				assign(f, row, n.n)
			}
		}
		for _, f := range k.refFields {
			if v := f.of(src); !v.IsZero() {
				f.of(row).Set(v)
			}
		}
		if k.f.status != nil {
			assign(k.f.status, row, c.status)
		}
		env := envelopeOf(ev)
		assign(k.f.livemode, row, env.livemode)
		assign(k.f.account, row, env.account)
		assign(k.f.lastEventID, row, lastEventID)
		assign(k.f.lastEventCreated, row, lastCreated)
		assign(k.f.updatedAt, row, now)
		replaced = true
	}
	if c.deletes {
		deleted = !k.f.deleted.of(row).Bool()
		assign(k.f.deleted, row, true)
	}
	if k.f.status == nil || ev.snapshot && (!replaced || c.status == cur.Status && !ev.correction) {
		reported = "" // a snapshot records only a status it moved the row to, a correction any it wrote
	}
	return replaced, deleted, reported, nil
}

// agrees reports whether change c would leave row (a pointer to k's
// model, in state cur) as it is, but for the event that names it: the
// same status, every carried field the payload carries equal to the
// row's, no reference the row lacks or names otherwise. Then a tie
// between them settles the same way whichever wins. A subscription's
// items are not in its row: a change that carries them never agrees.
func (k kind) agrees(row reflect.Value, c change, cur state) bool {
	if c.status != cur.Status || c.items != nil {
		return false
	}
	src := reflect.ValueOf(c.row)
	for _, f := range k.carried {
		if c.present.Has(f.keys...) && !sameValue(f.field.of(row), f.field.of(src)) {
			return false
		}
	}
	for _, f := range k.refFields {
		if v := f.of(src); !v.IsZero() && !sameValue(f.of(row), v) {
			return false
		}
	}
	return true
}

// sameValue reports whether a and b, fields of one model, hold the same
// value: pointers by what they point to (nil only equals nil), times by
// the instant.
func sameValue(a, b reflect.Value) bool {
	for a.Kind() == reflect.Pointer {
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		a, b = a.Elem(), b.Elem()
	}
	if ta, ok := a.Interface().(time.Time); ok {
		return ta.Equal(b.Interface().(time.Time))
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// fillRefs sets those references of row (a pointer to k's model) that
// are still empty to the ones refs (another pointer to it) holds; its
// other fields are not read. It says whether it changed any.
func fillRefs(k kind, row reflect.Value, refs any) (changed bool) {
	src := reflect.ValueOf(refs)
	for _, f := range k.refFields {
		v := f.of(src)
		if v.IsZero() {
			continue
		}
		if dst := f.of(row); dst.IsZero() {
			dst.Set(v)
			changed = true
		}
	}
	return changed
}

// assign sets field f of row to v, allocating when f is a pointer and v
// is not, converting between integer widths.
func assign(f *modelField, row reflect.Value, v any) {
	fv, val := f.of(row), reflect.ValueOf(v)
	switch {
	case fv.Kind() == reflect.Pointer && val.Kind() != reflect.Pointer:
		p := reflect.New(fv.Type().Elem())
		p.Elem().Set(val.Convert(fv.Type().Elem()))
		fv.Set(p)
	default:
		fv.Set(val.Convert(fv.Type()))
	}
}

// int64Of reads an integer field, a pointer to one included; not Valid
// for nil or another type.
func int64Of(rv reflect.Value) grown {
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return grown{}
		}
		rv = rv.Elem()
	}
	if rv.CanInt() {
		return grown{n: rv.Int(), known: true}
	}
	return grown{}
}
