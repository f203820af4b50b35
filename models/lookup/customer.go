package lookup

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/stripe-billing/billing/models"
)

// CustomerObject is a Stripe object of a customer, as `billing history
// cus_...` lists it.
type CustomerObject struct {
	// ObjectType is Stripe's name of the object (subscription, invoice,
	// payment_intent, charge, refund, dispute, checkout.session,
	// credit_note): the object_type of its status history.
	ObjectType string     `gorm:"column:object_type"`
	StripeID   string     `gorm:"column:stripe_id"`
	Status     *string    `gorm:"column:status"`
	Created    *time.Time `gorm:"column:stripe_created"`
}

// CustomerObjectTypes are the kinds CustomerObjects returns, in its order.
var CustomerObjectTypes = []string{"subscription", "invoice", models.ObjectPaymentIntent, models.ObjectCharge, "refund", "dispute",
	"checkout.session", "credit_note", "subscription_schedule", "payment_method"}

// CustomerObjects returns the objects of customer customerID: its
// subscriptions, invoices, payment intents and charges, checkout sessions,
// subscription schedules and attached payment methods (which have no
// status) (each by its customer_id), the refunds and disputes of its charges and
// the credit notes of its invoices; by kind (CustomerObjectTypes), newest
// first. Every read goes through an index (customer_id, charge_id,
// invoice_id).
func (r Reader) CustomerObjects(ctx context.Context, customerID string) ([]CustomerObject, error) {
	db := r.db.WithContext(ctx)
	var out []CustomerObject
	status := "status"
	read := func(objectType, table, where string, args ...any) error {
		var rows []CustomerObject
		err := db.Table(table).Select("? AS object_type, stripe_id, "+status+" AS status, stripe_created", objectType).
			Where(where, args...).Order("stripe_created DESC, id DESC").Scan(&rows).Error
		out = append(out, rows...)
		return models.Translate("objects of "+customerID+" in "+table, err)
	}
	for _, q := range []struct{ objectType, table string }{{"subscription", "subscriptions"}, {"invoice", "invoices"}} {
		if err := read(q.objectType, q.table, "customer_id = ?", customerID); err != nil {
			return nil, err
		}
	}
	for _, object := range []string{models.ObjectPaymentIntent, models.ObjectCharge} {
		if err := read(object, "payments", "customer_id = ? AND object = ?", customerID, object); err != nil {
			return nil, err
		}
	}
	ids := func(objectType string) []string {
		var found []string
		for _, o := range out {
			if o.ObjectType == objectType {
				found = append(found, o.StripeID)
			}
		}
		return found
	}
	charges, invoices := ids(models.ObjectCharge), ids("invoice")
	if len(charges) > 0 {
		for _, q := range []struct{ objectType, table string }{{"refund", "refunds"}, {"dispute", "disputes"}} {
			if err := read(q.objectType, q.table, "charge_id IN ?", charges); err != nil {
				return nil, err
			}
		}
	}
	if err := read("checkout.session", "checkout_sessions", "customer_id = ?", customerID); err != nil {
		return nil, err
	}
	if len(invoices) > 0 {
		if err := read("credit_note", "credit_notes", "invoice_id IN ?", invoices); err != nil {
			return nil, err
		}
	}
	if err := read("subscription_schedule", "subscription_schedules", "customer_id = ?", customerID); err != nil {
		return nil, err
	}
	status = "NULL"
	if err := read("payment_method", "payment_methods", "customer_id = ?", customerID); err != nil {
		return nil, err
	}
	return out, nil
}

// StatusChangesOf returns the status history of objects, newest first:
// one read of the history's (object_type, object_id) index per kind.
func (r Reader) StatusChangesOf(ctx context.Context, objects []CustomerObject) ([]models.StatusChange, error) {
	byType := map[string][]string{}
	for _, o := range objects {
		byType[o.ObjectType] = append(byType[o.ObjectType], o.StripeID)
	}
	var out []models.StatusChange
	for _, t := range CustomerObjectTypes {
		if len(byType[t]) == 0 {
			continue
		}
		var rows []models.StatusChange
		err := r.db.WithContext(ctx).Where("object_type = ? AND object_id IN ?", t, byType[t]).Find(&rows).Error
		if err != nil {
			return nil, models.Translate("status history of "+t+"s", err)
		}
		out = append(out, rows...)
	}
	slices.SortStableFunc(out, func(a, b models.StatusChange) int {
		if c := b.OccurredAt.Compare(a.OccurredAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return out, nil
}
