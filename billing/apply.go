package billing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/models"
)

// kind describes one table of Stripe objects.
type kind struct {
	table      string
	objectType string // payment_status_history.object_type and Stripe's "object"
	hasStatus  bool
	rank       rankFunc
	object     string // payments.object of a stub row; "" for other tables
}

var (
	customerKind      = kind{table: "customers", objectType: "customer", rank: noRank}
	subscriptionKind  = kind{table: "subscriptions", objectType: "subscription", hasStatus: true, rank: subscriptionRank}
	invoiceKind       = kind{table: "invoices", objectType: "invoice", hasStatus: true, rank: invoiceRank}
	paymentIntentKind = kind{table: "payments", objectType: models.ObjectPaymentIntent, hasStatus: true, rank: paymentIntentRank,
		object: models.ObjectPaymentIntent}
	chargeKind = kind{table: "payments", objectType: models.ObjectCharge, hasStatus: true, rank: chargeRank,
		object: models.ObjectCharge}
	refundKind  = kind{table: "refunds", objectType: "refund", hasStatus: true, rank: refundRank}
	disputeKind = kind{table: "disputes", objectType: "dispute", hasStatus: true, rank: disputeRank}
)

// change is what one event says about one object.
type change struct {
	kind     kind
	id       string
	status   string
	livemode bool
	fields   map[string]any // columns to set when the event is applied
	refs     map[string]ref // reference columns: set when known, never cleared
	customer ref            // the object's customer, whose row must exist (a stub if new)
}

// decode reads data.object into dst and checks it is the object expected.
func decode(ev Event, want string, dst any, c *common) error {
	if err := json.Unmarshal(ev.Object, dst); err != nil {
		return failure.MarkPermanent(fmt.Errorf("billing: event %s: data.object is not a %s: %w", ev.ID, want, err))
	}
	if c.ID == "" {
		return failure.MarkPermanent(fmt.Errorf("billing: event %s: data.object has no id", ev.ID))
	}
	if c.Object != "" && c.Object != want {
		return failure.MarkPermanent(fmt.Errorf("billing: event %s (%s): data.object is a %s, want %s", ev.ID, ev.Type, c.Object, want))
	}
	return nil
}

// apply locks the object's row (creating a stub if it is new), writes the
// change when the event is newer than the row, and records the status the
// event reports even when it is stale.
func apply(ctx context.Context, tx *gorm.DB, ev Event, now time.Time, c change) (applied bool, err error) {
	cur, linked, err := lockRow(tx, c.kind, c.id, c.livemode, now, c.customer != "")
	if err != nil {
		return false, err
	}
	// A row that already references this customer was linked by an event
	// that made sure the customer's row exists (customers are never
	// deleted): the look-up is spared.
	if c.customer != "" && linked != string(c.customer) {
		if err := ensureStub(tx, customerKind, c.customer, c.livemode, nil, now); err != nil {
			return false, err
		}
	}
	in := state{Status: c.status, Created: ev.Created, EventID: ev.ID}
	if shouldApply(c.kind.rank, cur, in) {
		set := maps.Clone(c.fields)
		for col, r := range c.refs {
			if r != "" {
				set[col] = string(r)
			}
		}
		if c.kind.hasStatus {
			set["status"] = c.status
		}
		set["livemode"] = c.livemode
		set["last_event_id"] = ev.ID
		set["last_event_created"] = ev.Created
		set["updated_at"] = now
		if err := tx.Table(c.kind.table).Where("stripe_id = ?", c.id).Updates(set).Error; err != nil {
			return false, fmt.Errorf("billing: update %s %s: %w", c.kind.objectType, c.id, err)
		}
		applied = true
	}
	if c.kind.hasStatus && c.status != "" {
		sc := models.StatusChange{
			ObjectType: c.kind.objectType,
			ObjectID:   c.id,
			Status:     c.status,
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
// customer_id ("" when NULL or new). Under READ COMMITTED a missing row
// takes no gap lock, so two first events for one object meet on the
// unique key instead of deadlocking.
func lockRow(tx *gorm.DB, k kind, id string, livemode bool, now time.Time, withCustomer bool) (st state, customer string, err error) {
	cols := "last_event_id, last_event_created"
	if k.hasStatus {
		cols += ", status"
	} else {
		cols += ", NULL"
	}
	if withCustomer {
		cols += ", customer_id"
	} else {
		cols += ", NULL"
	}
	q := "SELECT " + cols + " FROM " + k.table + " WHERE stripe_id = ? FOR UPDATE"
	for range 2 {
		var (
			eventID, status, cust sql.NullString
			created               sql.NullTime
		)
		err := tx.Raw(q, id).Row().Scan(&eventID, &created, &status, &cust)
		if err == nil {
			st := state{Status: status.String, EventID: eventID.String}
			if created.Valid {
				st.Created = created.Time
			}
			return st, cust.String, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return state{}, "", fmt.Errorf("billing: lock %s %s: %w", k.objectType, id, err)
		}
		if err := insertStub(tx, k, id, livemode, nil, now); err != nil {
			return state{}, "", err
		}
	}
	return state{}, "", fmt.Errorf("billing: lock %s %s: row vanished", k.objectType, id)
}

// insertStub creates a row that only knows its id (and the given columns),
// unless one exists.
func insertStub(tx *gorm.DB, k kind, id string, livemode bool, extra map[string]any, now time.Time) error {
	row := map[string]any{"stripe_id": id, "livemode": livemode, "created_at": now, "updated_at": now}
	if k.object != "" {
		row["object"] = k.object
	}
	maps.Copy(row, extra)
	cols := slices.Sorted(maps.Keys(row))
	args := make([]any, len(cols))
	for i, c := range cols {
		args[i] = row[c]
	}
	q := "INSERT IGNORE INTO " + k.table + " (" + strings.Join(cols, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(cols)-1) + ")"
	if err := tx.Exec(q, args...).Error; err != nil {
		return fmt.Errorf("billing: insert %s %s: %w", k.objectType, id, err)
	}
	return nil
}

// ensureStub makes sure a referenced object has a row, without locking an
// existing one: an invoice may arrive before its customer.
func ensureStub(tx *gorm.DB, k kind, r ref, livemode bool, extra map[string]any, now time.Time) error {
	if r == "" {
		return nil
	}
	var n int64
	if err := tx.Table(k.table).Where("stripe_id = ?", string(r)).Count(&n).Error; err != nil {
		return fmt.Errorf("billing: find %s %s: %w", k.objectType, r, err)
	}
	if n > 0 {
		return nil
	}
	return insertStub(tx, k, string(r), livemode, extra, now)
}

// link sets a reference column that is still empty.
func link(tx *gorm.DB, k kind, id ref, col string, target ref) error {
	if id == "" || target == "" {
		return nil
	}
	err := tx.Table(k.table).Where("stripe_id = ? AND "+col+" IS NULL", string(id)).Update(col, string(target)).Error
	if err != nil {
		return fmt.Errorf("billing: link %s %s: %w", k.objectType, id, err)
	}
	return nil
}

// markDeleted is sticky and order-free: once deleted, always deleted.
func markDeleted(tx *gorm.DB, k kind, id string) error {
	if err := tx.Table(k.table).Where("stripe_id = ?", id).Update("deleted", true).Error; err != nil {
		return fmt.Errorf("billing: delete %s %s: %w", k.objectType, id, err)
	}
	return nil
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
