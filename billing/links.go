package billing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/models"
)

// Links between an invoice, its payment intent and the intent's charges.
// Before 2025-03-31.basil each object names the others (invoice.charge,
// charge.invoice, ...) and the handlers store what they read. From basil
// only the payment intent and its charges name each other; an invoice is
// tied to what paid it by InvoicePayment objects. settleLinks fills, from
// whichever of these arrived, the same columns the older versions fill, so
// that the records do not depend on the API version: payments.invoice_id
// of the intent and its charges, invoices.payment_intent_id, and
// invoices.charge_id (the intent's latest charge, as invoice.charge was).
// It runs after every InvoicePayment, and after a payment intent or charge
// whose payload has no invoice field (basil and later).

// linkStatements are settleLinks' statements, resolved from the kinds.
// Each names its rows by a unique key or an index: an UPDATE that scanned
// the table would wait on every row another transaction holds.
type linkStatements struct {
	intent        string // a payment intent's invoice and latest charge
	intentInvoice string // an invoice an InvoicePayment of the intent pays
	intentLink    string // sets the intent's invoice
	chargesLink   string // sets the invoice of the intent's charges
	invoiceLinks  string // sets the invoice's payment intent and charge
}

var links = func() linkStatements {
	p, inv, ip := paymentIntentKind, invoiceKind, invoicePaymentKind
	return linkStatements{
		intent: "SELECT " + p.col.invoice + ", " + p.col.charge + " FROM " + p.table +
			" WHERE " + p.col.stripeID + " = ? AND " + p.col.object + " = ?",
		intentInvoice: "SELECT " + ip.col.invoice + " FROM " + ip.table + " WHERE " + ip.col.paymentIntent + " = ? AND " +
			ip.col.invoice + " IS NOT NULL ORDER BY " + ip.col.invoice + " LIMIT 1",
		intentLink: "UPDATE " + p.table + " SET " + p.col.invoice + " = ? WHERE " + p.col.stripeID + " = ? AND " +
			p.col.invoice + " IS NULL",
		chargesLink: "UPDATE " + p.table + " SET " + p.col.invoice + " = ? WHERE " + p.col.paymentIntent + " = ? AND " +
			p.col.invoice + " IS NULL",
		invoiceLinks: "UPDATE " + inv.table + " SET " + inv.col.paymentIntent + " = IFNULL(" + inv.col.paymentIntent + ", ?), " +
			inv.col.charge + " = IFNULL(?, " + inv.col.charge + ") WHERE " + inv.col.stripeID + " = ?",
	}
}()

// settleLinks carries payment intent pi's invoice (its own, from versions
// before basil, or an InvoicePayment's) to the intent and its charges, and
// the intent and its latest charge to the invoice. It reads rows, not the
// event, so that any delivery order ends in the same links.
func settleLinks(tx *gorm.DB, pi ref) error {
	if pi == "" {
		return nil
	}
	var invoice, charge sql.NullString
	err := tx.Raw(links.intent, string(pi), models.ObjectPaymentIntent).Row().Scan(&invoice, &charge)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("billing: links of payment intent %s: %w", pi, err)
	}
	if !invoice.Valid {
		err := tx.Raw(links.intentInvoice, string(pi)).Row().Scan(&invoice)
		if errors.Is(err, sql.ErrNoRows) {
			return nil // no invoice known yet: a later event settles it
		}
		if err != nil {
			return fmt.Errorf("billing: invoice of payment intent %s: %w", pi, err)
		}
	}
	for _, q := range []string{links.intentLink, links.chargesLink} {
		if err := tx.Exec(q, invoice.String, string(pi)).Error; err != nil {
			return fmt.Errorf("billing: link payment intent %s and its charges to invoice %s: %w", pi, invoice.String, err)
		}
	}
	if err := tx.Exec(links.invoiceLinks, string(pi), charge, invoice.String).Error; err != nil {
		return fmt.Errorf("billing: link invoice %s to payment intent %s: %w", invoice.String, pi, err)
	}
	return nil
}

// linkInvoicePayment ties invoice to what an InvoicePayment says paid it:
// a payment intent, or a charge without one. The invoice gets a row if it
// has none yet, so that the link waits for its own events.
func linkInvoicePayment(ctx context.Context, tx *gorm.DB, ev Event, now time.Time, invoice, pi, charge ref) error {
	if err := ensureStub(tx, invoiceKind, invoice, envelopeOf(ev), now); err != nil {
		return err
	}
	if err := link(ctx, tx, invoiceKind, invoice, &models.Invoice{PaymentIntentID: pi.ptr(), ChargeID: charge.ptr()}); err != nil {
		return err
	}
	if err := link(ctx, tx, chargeKind, charge, &models.Payment{InvoiceID: invoice.ptr()}); err != nil {
		return err
	}
	return settleLinks(tx, pi)
}

// item is one subscription item of a payload and the fields it carries.
type item struct {
	subscriptionItemObject
	present payload
}

// items are a subscription payload's items; start and end are the
// subscription's own period (before basil), which every item shares.
type items struct {
	list       []item
	start, end *time.Time
	hasPeriod  bool // the subscription payload carries its period
}

// decodeItems reads the items of subscription o, whose payload is p, from
// ev.
func decodeItems(ev Event, o subscriptionObject, p payload) (items, error) {
	its := items{start: o.CurrentPeriodStart.t, end: o.CurrentPeriodEnd.t, hasPeriod: p.has("current_period_start")}
	if o.Items == nil {
		return its, nil
	}
	for i, raw := range o.Items.Data {
		var it item
		p, err := decode(ev, raw, fmt.Sprintf("subscription.items.data[%d]", i), "subscription_item",
			&it.subscriptionItemObject, &it.common)
		if err != nil {
			return items{}, err
		}
		it.present = p
		its.list = append(its.list, it)
	}
	return its, nil
}

// span is the earliest start and latest end of the items' own periods.
func (its items) span() (start, end *time.Time) {
	for _, it := range its.list {
		if s := it.CurrentPeriodStart.t; s != nil && (start == nil || s.Before(*start)) {
			start = s
		}
		if e := it.CurrentPeriodEnd.t; e != nil && (end == nil || e.After(*end)) {
			end = e
		}
	}
	return start, end
}

// itemColumns are subscription_items' table and columns, from its model.
type itemColumns struct {
	table, stripeID, subscription, price, quantity, periodStart, periodEnd, livemode, account, createdAt, updatedAt string
}

var itemCols = func() itemColumns {
	s, err := models.Schema(models.SubscriptionItem{})
	if err != nil {
		panic(err)
	}
	col := func(name string) string {
		f := s.FieldsByName[name]
		if f == nil || f.DBName == "" {
			panic(fmt.Sprintf("billing: model %s has no column for field %s", s.Name, name))
		}
		return f.DBName
	}
	return itemColumns{
		table: s.Table, stripeID: col("StripeID"), subscription: col("SubscriptionID"), price: col("PriceID"),
		quantity: col("Quantity"), periodStart: col("CurrentPeriodStart"), periodEnd: col("CurrentPeriodEnd"),
		livemode: col("Livemode"), account: col("Account"), createdAt: col("CreatedAt"), updatedAt: col("UpdatedAt"),
	}
}()

// writeItems makes the subscription_items rows of subscription sub those
// its payload lists, under the subscription's lock and only for an event
// that was applied to it: an item's fields the payload does not carry are
// left alone. When the list is complete (no has_more), items it no longer
// lists are deleted.
func writeItems(tx *gorm.DB, ev Event, now time.Time, sub string, its items, complete bool) error {
	c, env := itemCols, envelopeOf(ev)
	ids := make([]string, 0, len(its.list))
	for _, it := range its.list {
		cols := []string{c.stripeID, c.subscription, c.livemode, c.account, c.updatedAt}
		args := []any{it.ID, sub, env.livemode, env.account, now}
		if it.present.has("price") {
			cols, args = append(cols, c.price), append(args, it.Price.ptr())
		}
		if it.present.has("quantity") {
			cols, args = append(cols, c.quantity), append(args, it.Quantity)
		}
		switch {
		case it.present.has("current_period_start"):
			cols = append(cols, c.periodStart, c.periodEnd)
			args = append(args, it.CurrentPeriodStart.t, it.CurrentPeriodEnd.t)
		case its.hasPeriod:
			cols = append(cols, c.periodStart, c.periodEnd)
			args = append(args, its.start, its.end)
		}
		update := make([]string, 0, len(cols))
		for _, col := range cols[1:] {
			update = append(update, col+" = VALUES("+col+")")
		}
		cols, args = append(cols, c.createdAt), append(args, now)
		q := "INSERT INTO " + c.table + " (" + strings.Join(cols, ", ") + ") VALUES (?" + strings.Repeat(", ?", len(cols)-1) +
			") ON DUPLICATE KEY UPDATE " + strings.Join(update, ", ")
		if err := tx.Exec(q, args...).Error; err != nil {
			return fmt.Errorf("billing: write item %s of subscription %s: %w", it.ID, sub, err)
		}
		ids = append(ids, it.ID)
	}
	if !complete {
		return nil
	}
	q, args := "DELETE FROM "+c.table+" WHERE "+c.subscription+" = ?", []any{sub}
	if len(ids) > 0 {
		q, args = q+" AND "+c.stripeID+" NOT IN ?", append(args, ids)
	}
	if err := tx.Exec(q, args...).Error; err != nil {
		return fmt.Errorf("billing: delete items no longer in subscription %s: %w", sub, err)
	}
	return nil
}
