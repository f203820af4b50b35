package billing

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"github.com/stripe-billing/billing/models"
)

// kind is one table of Stripe objects as events write it. mustKind
// resolves it from the table's model (package models) once, at start-up:
// a field the model lacks stops the program before any event is applied,
// and every statement below names only columns of the model.
type kind struct {
	objectType string // payment_status_history.object_type and Stripe's "object"
	rank       rankFunc
	object     string   // payments.object of a stub row; "" for other tables
	requires   []string // payload fields besides id without which an event is a schema failure
	carries    []string // model fields an applied event sets when its payload carries their source
	// sources names the payload keys a carried field comes from (any of
	// them, space-separated) when they are not its column's name;
	// StripeCreated comes from "created".
	sources   map[string]string
	refs      []string // model fields of references: set when known, never cleared
	grows     []string // carried model fields that only grow: they order a tie and never go down
	deletable bool     // markDeleted sets the model's Deleted

	// Resolved by mustKind.
	model           reflect.Type
	table           string
	col             columns
	carried         []carried
	refFields       []*schema.Field
	growFields      []*schema.Field
	lockSQL         string // the row's ordering state (grows included), FOR UPDATE
	lockCustomerSQL string // lockSQL and the row's customer
	stubSQL         string // a row that only knows its id
}

// carried is a model field and the payload keys that carry it.
type carried struct {
	field *schema.Field
	keys  []string
}

// columns are the columns of a kind's table that this file names; "" for
// one the table does not have.
type columns struct {
	stripeID, livemode, account, lastEventID, lastEventCreated, createdAt, updatedAt string
	status, customer, deleted, object, invoice, paymentIntent, charge                string
}

var (
	customerKind = mustKind(models.Customer{}, kind{objectType: "customer", rank: noRank, deletable: true,
		carries: []string{"Email", "Name", "Currency", "Balance", "Metadata", "StripeCreated"}})
	subscriptionKind = mustKind(models.Subscription{}, kind{objectType: "subscription", rank: subscriptionRank,
		requires: []string{"status"},
		carries: []string{"Currency", "CurrentPeriodStart", "CurrentPeriodEnd", "CancelAtPeriodEnd",
			"CancelAt", "CanceledAt", "EndedAt", "TrialStart", "TrialEnd", "Metadata", "StripeCreated"},
		// From 2025-03-31.basil the period is on the items only.
		sources: map[string]string{"CurrentPeriodStart": "current_period_start items", "CurrentPeriodEnd": "current_period_end items"},
		refs:    []string{"CustomerID"}})
	invoiceKind = mustKind(models.Invoice{}, kind{objectType: "invoice", rank: invoiceRank, deletable: true,
		requires: []string{"status"},
		grows:    []string{"AmountPaid", "AttemptCount"},
		carries: []string{"Number", "Currency", "AmountDue", "AmountPaid", "AmountRemaining", "Subtotal", "Total",
			"AttemptCount", "HostedInvoiceURL", "DueDate", "PeriodStart", "PeriodEnd", "BilledPeriodStart", "BilledPeriodEnd",
			"PaidAt", "NextPaymentAttempt", "Tax", "TotalDiscountAmount", "Metadata", "StripeCreated"},
		sources: map[string]string{"BilledPeriodStart": "lines", "BilledPeriodEnd": "lines", "PaidAt": "status_transitions",
			"Tax": "tax total_taxes", "TotalDiscountAmount": "total_discount_amounts"},
		refs: []string{"CustomerID", "SubscriptionID", "PaymentIntentID", "ChargeID"}})
	invoicePaymentKind = mustKind(models.InvoicePayment{}, kind{objectType: "invoice_payment", rank: invoicePaymentRank,
		requires: []string{"status", "invoice"},
		carries:  []string{"Currency", "AmountPaid", "AmountRequested", "PaidAt", "StripeCreated"},
		sources:  map[string]string{"PaidAt": "status_transitions"},
		refs:     []string{"InvoiceID", "PaymentIntentID", "ChargeID"}})
	paymentIntentKind = mustKind(models.Payment{}, kind{objectType: models.ObjectPaymentIntent, rank: paymentIntentRank,
		object:   models.ObjectPaymentIntent,
		requires: []string{"status"},
		grows:    []string{"AmountReceived"},
		carries: []string{"Currency", "Amount", "AmountReceived", "Captured", "Paid", "FailureCode", "FailureMessage",
			"Metadata", "StripeCreated"},
		sources: map[string]string{"Captured": "status", "Paid": "status",
			"FailureCode": "last_payment_error", "FailureMessage": "last_payment_error"},
		refs: []string{"CustomerID", "InvoiceID", "ChargeID"}})
	chargeKind = mustKind(models.Payment{}, kind{objectType: models.ObjectCharge, rank: chargeRank,
		object:   models.ObjectCharge,
		requires: []string{"status"},
		grows:    []string{"AmountRefunded", "AmountCaptured"},
		carries: []string{"Currency", "Amount", "AmountCaptured", "AmountRefunded", "Captured", "Refunded", "Paid",
			"FailureCode", "FailureMessage", "PaymentMethodType", "PaymentMethodBrand", "PaymentMethodLast4",
			"PaymentMethodExpMonth", "PaymentMethodExpYear", "PaymentMethodWallet", "Metadata", "StripeCreated"},
		sources: map[string]string{"PaymentMethodType": "payment_method_details", "PaymentMethodBrand": "payment_method_details",
			"PaymentMethodLast4": "payment_method_details", "PaymentMethodExpMonth": "payment_method_details",
			"PaymentMethodExpYear": "payment_method_details", "PaymentMethodWallet": "payment_method_details"},
		refs: []string{"CustomerID", "InvoiceID", "PaymentIntentID"}})
	refundKind = mustKind(models.Refund{}, kind{objectType: "refund", rank: refundRank,
		requires: []string{"status"},
		carries:  []string{"Currency", "Amount", "Reason", "FailureReason", "Metadata", "StripeCreated"},
		refs:     []string{"ChargeID", "PaymentIntentID"}})
	disputeKind = mustKind(models.Dispute{}, kind{objectType: "dispute", rank: disputeRank,
		requires: []string{"status"},
		carries:  []string{"Currency", "Amount", "Reason", "IsChargeRefundable", "EvidenceDueBy", "Metadata", "StripeCreated"},
		sources:  map[string]string{"EvidenceDueBy": "evidence_details"},
		refs:     []string{"ChargeID", "PaymentIntentID"}})
	checkoutSessionKind = mustKind(models.CheckoutSession{}, kind{objectType: "checkout.session", rank: checkoutSessionRank,
		requires: []string{"status"},
		carries: []string{"Mode", "PaymentStatus", "ClientReferenceID", "Currency", "AmountTotal", "ExpiresAt",
			"Metadata", "StripeCreated"},
		refs: []string{"CustomerID", "SubscriptionID", "PaymentIntentID", "InvoiceID"}})
	creditNoteKind = mustKind(models.CreditNote{}, kind{objectType: "credit_note", rank: creditNoteRank,
		requires: []string{"status"},
		carries: []string{"Number", "Type", "Reason", "Currency", "Amount", "Total", "Memo", "VoidedAt",
			"Metadata", "StripeCreated"},
		refs: []string{"InvoiceID", "CustomerID"}})
)

// mustKind resolves k's fields and statements from model, the table's
// GORM model; it panics, as regexp.MustCompile does, on a field the model
// does not have.
func mustKind(model schema.Tabler, k kind) kind {
	s, err := models.Schema(model)
	if err != nil {
		panic(err)
	}
	field := func(name string) *schema.Field {
		f := s.FieldsByName[name]
		if f == nil || f.DBName == "" {
			panic(fmt.Sprintf("billing: %s kind: model %s has no column for field %s", k.objectType, s.Name, name))
		}
		return f
	}
	column := func(name string) string {
		if f := s.FieldsByName[name]; f != nil {
			return f.DBName
		}
		return ""
	}
	k.model, k.table = s.ModelType, s.Table
	k.col = columns{
		stripeID:         field("StripeID").DBName,
		livemode:         field("Livemode").DBName,
		account:          field("Account").DBName,
		lastEventID:      field("LastEventID").DBName,
		lastEventCreated: field("LastEventCreated").DBName,
		createdAt:        field("CreatedAt").DBName,
		updatedAt:        field("UpdatedAt").DBName,
		status:           column("Status"),
		customer:         column("CustomerID"),
		invoice:          column("InvoiceID"),
		paymentIntent:    column("PaymentIntentID"),
		charge:           column("ChargeID"),
	}
	if k.deletable {
		k.col.deleted = field("Deleted").DBName
	}
	stub := []string{k.col.stripeID, k.col.livemode, k.col.account, k.col.createdAt, k.col.updatedAt}
	if k.object != "" {
		k.col.object = field("Object").DBName
		stub = append(stub, k.col.object)
	}
	for _, name := range k.carries {
		f := field(name)
		keys := []string{f.DBName}
		switch {
		case k.sources[name] != "":
			keys = strings.Fields(k.sources[name])
		case name == "StripeCreated":
			keys = []string{"created"}
		}
		k.carried = append(k.carried, carried{field: f, keys: keys})
	}
	for name := range k.sources {
		if !slices.Contains(k.carries, name) {
			panic(fmt.Sprintf("billing: %s kind: source of %s, which it does not carry", k.objectType, name))
		}
	}
	for _, name := range k.refs {
		k.refFields = append(k.refFields, field(name))
	}
	grows := ""
	for _, name := range k.grows {
		if !slices.Contains(k.carries, name) {
			panic(fmt.Sprintf("billing: %s kind: growing field %s is not carried", k.objectType, name))
		}
		f := field(name)
		k.growFields = append(k.growFields, f)
		grows += ", " + f.DBName
	}
	state := "SELECT " + k.col.lastEventID + ", " + k.col.lastEventCreated + ", " + cmp.Or(k.col.status, "NULL")
	where := grows + " FROM " + k.table + " WHERE " + k.col.stripeID + " = ? FOR UPDATE"
	k.lockSQL = state + ", NULL" + where
	k.lockCustomerSQL = state + ", " + cmp.Or(k.col.customer, "NULL") + where
	k.stubSQL = "INSERT IGNORE INTO " + k.table + " (" + strings.Join(stub, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(stub)-1) + ")"
	return k
}

// change is what one event says about one object.
type change struct {
	kind     kind
	id       string
	status   string
	present  payload // the fields the object carries: a carried field outside it is left alone
	row      any     // a pointer to the kind's model holding its carries and refs
	customer ref     // the object's customer, whose row must exist (a stub if new)
}

// decode reads ev's data.object, a k, into dst (see decode).
func (k kind) decode(ev Event, dst any, c *common) (payload, error) {
	return decode(ev, ev.Object, k.objectType, k.objectType, dst, c, k.requires...)
}

// envelope is what an event says of every object it carries: whether it
// is live and the Connect account it belongs to (NULL for the platform's
// own).
type envelope struct {
	livemode bool
	account  *string
}

func envelopeOf(ev Event) envelope {
	return envelope{livemode: ev.Livemode, account: ref(ev.Account).ptr()}
}

// apply locks the object's row (creating a stub if it is new), writes the
// change when the event is newer than the row (compare; a tie is settled
// by settleTie), and records the status the event reports even when it is
// stale. Fields that only grow never go down, whatever the event carries.
func apply(ctx context.Context, tx *gorm.DB, ev Event, now time.Time, c change) (applied bool, err error) {
	k := c.kind
	row := reflect.ValueOf(c.row)
	if row.Type() != reflect.PointerTo(k.model) {
		return false, fmt.Errorf("billing: apply %s %s: row is a %T, want a *%s", k.objectType, c.id, c.row, k.model)
	}
	env := envelopeOf(ev)
	cur, linked, err := lockRow(tx, k, c.id, env, now, c.customer != "")
	if err != nil {
		return false, err
	}
	// A row that already references this customer was linked by an event
	// that made sure the customer's row exists (customers are never
	// deleted): the look-up is spared.
	if c.customer != "" && linked != string(c.customer) {
		if err := ensureStub(tx, customerKind, c.customer, env, now); err != nil {
			return false, err
		}
	}
	in := state{Status: c.status, Created: ev.Created, EventID: ev.ID, Grows: make([]sql.NullInt64, len(k.growFields))}
	for i, f := range k.growFields {
		v, _ := f.ValueOf(ctx, row)
		in.Grows[i] = int64Of(v)
	}
	v, reported, lastEventID := compare(k.rank, cur, in), c.status, ev.ID
	if v == tied {
		var fromStripe bool
		if v, reported, fromStripe, err = settleTie(ctx, k, c, cur, in); err != nil {
			return false, err
		}
		if fromStripe {
			// Stripe's object is neither event's: the row names the
			// larger id, so that it ends the same whatever the order.
			lastEventID = max(ev.ID, cur.EventID)
		}
	}
	if v == replace {
		set := make(map[string]any, len(k.carried)+len(k.refFields)+6)
		for _, f := range k.carried {
			if c.present.has(f.keys...) {
				set[f.field.DBName], _ = f.field.ValueOf(ctx, row)
			}
		}
		for i, f := range k.growFields {
			if n := in.Grows[i]; n.Valid {
				set[f.DBName] = gorm.Expr("GREATEST(COALESCE("+f.DBName+", ?), ?)", n.Int64, n.Int64)
			}
		}
		for _, f := range k.refFields {
			if v, unknown := f.ValueOf(ctx, row); !unknown {
				set[f.DBName] = v
			}
		}
		if k.col.status != "" {
			set[k.col.status] = c.status
		}
		set[k.col.livemode] = env.livemode
		set[k.col.account] = env.account
		set[k.col.lastEventID] = lastEventID
		set[k.col.lastEventCreated] = ev.Created
		set[k.col.updatedAt] = now
		if err := tx.Table(k.table).Where(k.col.stripeID+" = ?", c.id).Updates(set).Error; err != nil {
			return false, fmt.Errorf("billing: update %s %s: %w", k.objectType, c.id, err)
		}
		applied = true
		noteApplied(ctx, c.id)
	}
	if k.col.status != "" && reported != "" {
		sc := models.StatusChange{
			ObjectType: k.objectType,
			ObjectID:   c.id,
			Status:     reported,
			EventID:    ev.ID,
			OccurredAt: ev.Created,
			RecordedAt: now,
		}
		if w := deferredOf(ctx); w != nil {
			w.history = append(w.history, sc)
			return applied, nil
		}
		if err := models.RecordStatus(tx, sc); err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// lockRow returns the row's ordering state under FOR UPDATE, inserting a
// stub first when the object is new, and, when withCustomer, its
// customer ("" when NULL, new or the table has none). Under READ
// COMMITTED a missing row takes no gap lock, so two first events for one
// object meet on the unique key instead of deadlocking.
func lockRow(tx *gorm.DB, k kind, id string, env envelope, now time.Time, withCustomer bool) (st state, customer string, err error) {
	q := k.lockSQL
	if withCustomer {
		q = k.lockCustomerSQL
	}
	for range 2 {
		var (
			eventID, status, cust sql.NullString
			created               sql.NullTime
			grows                 = make([]sql.NullInt64, len(k.growFields))
		)
		dest := []any{&eventID, &created, &status, &cust}
		for i := range grows {
			dest = append(dest, &grows[i])
		}
		err := tx.Raw(q, id).Row().Scan(dest...)
		if err == nil {
			st := state{Status: status.String, EventID: eventID.String, Grows: grows}
			if created.Valid {
				st.Created = created.Time
			}
			return st, cust.String, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return state{}, "", fmt.Errorf("billing: lock %s %s: %w", k.objectType, id, err)
		}
		if err := insertStub(tx, k, id, env, now); err != nil {
			return state{}, "", err
		}
	}
	return state{}, "", fmt.Errorf("billing: lock %s %s: row vanished", k.objectType, id)
}

// int64Of reads an integer model value, a pointer to one included; not
// Valid for nil or another type.
func int64Of(v any) sql.NullInt64 {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return sql.NullInt64{}
		}
		rv = rv.Elem()
	}
	if rv.CanInt() {
		return sql.NullInt64{Int64: rv.Int(), Valid: true}
	}
	return sql.NullInt64{}
}

// insertStub creates a row that only knows its id, unless one exists.
func insertStub(tx *gorm.DB, k kind, id string, env envelope, now time.Time) error {
	args := []any{id, env.livemode, env.account, now, now}
	if k.object != "" {
		args = append(args, k.object)
	}
	if err := tx.Exec(k.stubSQL, args...).Error; err != nil {
		return fmt.Errorf("billing: insert %s %s: %w", k.objectType, id, err)
	}
	return nil
}

// ensureStub makes sure a referenced object has a row, without locking an
// existing one: an invoice may arrive before its customer.
func ensureStub(tx *gorm.DB, k kind, r ref, env envelope, now time.Time) error {
	if r == "" {
		return nil
	}
	var n int64
	if err := tx.Table(k.table).Where(k.col.stripeID+" = ?", string(r)).Count(&n).Error; err != nil {
		return fmt.Errorf("billing: find %s %s: %w", k.objectType, r, err)
	}
	if n > 0 {
		return nil
	}
	return insertStub(tx, k, string(r), env, now)
}

// link sets those references of the row id that are still empty to the
// ones refs (a pointer to the kind's model) holds; its other fields are
// not read.
func link(ctx context.Context, tx *gorm.DB, k kind, id ref, refs any) error {
	if id == "" {
		return nil
	}
	row := reflect.ValueOf(refs)
	set := map[string]any{}
	for _, f := range k.refFields {
		if v, unknown := f.ValueOf(ctx, row); !unknown {
			set[f.DBName] = gorm.Expr("IFNULL("+f.DBName+", ?)", v)
		}
	}
	if len(set) == 0 {
		return nil
	}
	if err := tx.Table(k.table).Where(k.col.stripeID+" = ?", string(id)).Updates(set).Error; err != nil {
		return fmt.Errorf("billing: link %s %s: %w", k.objectType, id, err)
	}
	return nil
}

// markDeleted is sticky and order-free: once deleted, always deleted. A
// stale deletion still changes the row the first time.
func markDeleted(ctx context.Context, tx *gorm.DB, k kind, id string) error {
	res := tx.Table(k.table).Where(k.col.stripeID+" = ?", id).Update(k.col.deleted, true)
	if res.Error != nil {
		return fmt.Errorf("billing: delete %s %s: %w", k.objectType, id, res.Error)
	}
	if res.RowsAffected > 0 { // MySQL counts the rows changed, not those matched
		noteApplied(ctx, id)
	}
	return nil
}

// ownObject is the object of the event a handler runs on, which the
// context carries so that apply can say whether its row changed: the
// ledger's applied. The rows of other objects the event carries (an
// invoice's payments, references) do not count.
type ownObject struct {
	id      string
	applied bool
}

type ownObjectKey struct{}

func withOwnObject(ctx context.Context, o *ownObject) context.Context {
	return context.WithValue(ctx, ownObjectKey{}, o)
}

// noteApplied records that the row of object id changed, if it is the
// event's own object.
func noteApplied(ctx context.Context, id string) {
	if o, _ := ctx.Value(ownObjectKey{}).(*ownObject); o != nil && o.id == id {
		o.applied = true
	}
}

// deferred holds an event's writes that a batch makes in one statement
// for all its events at the end, after the last savepoint: history rows
// are append-only and nothing in the transaction reads them back.
type deferred struct {
	history []models.StatusChange
}

type deferredKey struct{}

// withDeferred returns ctx carrying w: apply then queues history rows in
// w instead of inserting each one.
func withDeferred(ctx context.Context, w *deferred) context.Context {
	return context.WithValue(ctx, deferredKey{}, w)
}

// deferredOf returns the writes ctx carries, nil outside a batch.
func deferredOf(ctx context.Context) *deferred {
	w, _ := ctx.Value(deferredKey{}).(*deferred)
	return w
}
