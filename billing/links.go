package billing

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
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
// the table would wait on every row another transaction holds. The CASE
// of an UPDATE is filled in per batch.
type linkStatements struct {
	intents        string // payment intents' invoice and latest charge
	intentInvoices string // the first invoice an InvoicePayment of each intent pays
	intentLinks    string // sets the intents' invoice
	chargesLinks   string // sets the invoice of the intents' charges
	invoiceLinks   string // sets the invoices' payment intent and charge
}

var links = func() linkStatements {
	p, inv, ip := paymentIntentKind, invoiceKind, invoicePaymentKind
	return linkStatements{
		intents: "SELECT " + p.col.stripeID + ", " + p.col.invoice + ", " + p.col.charge + " FROM " + p.table +
			" WHERE " + p.col.stripeID + " IN ? AND " + p.col.object + " = ?",
		intentInvoices: "SELECT " + ip.col.paymentIntent + ", MIN(" + ip.col.invoice + ") FROM " + ip.table + " WHERE " +
			ip.col.paymentIntent + " IN ? AND " + ip.col.invoice + " IS NOT NULL GROUP BY " + ip.col.paymentIntent,
		intentLinks: "UPDATE " + p.table + " SET " + p.col.invoice + " = CASE " + p.col.stripeID + "%s END WHERE " +
			p.col.stripeID + " IN ? AND " + p.col.invoice + " IS NULL",
		chargesLinks: "UPDATE " + p.table + " SET " + p.col.invoice + " = CASE " + p.col.paymentIntent + "%s END WHERE " +
			p.col.paymentIntent + " IN ? AND " + p.col.invoice + " IS NULL",
		invoiceLinks: "UPDATE " + inv.table + " SET " + inv.col.paymentIntent + " = IFNULL(" + inv.col.paymentIntent +
			", CASE " + inv.col.stripeID + "%s END), " + inv.col.charge + " = IFNULL(CASE " + inv.col.stripeID + "%s END, " +
			inv.col.charge + ") WHERE " + inv.col.stripeID + " IN ?",
	}
}()

// settleLinks carries each payment intent's invoice (its own, from
// versions before basil, or an InvoicePayment's) to the intent and its
// charges, and the intent and its latest charge to the invoice, for the
// intents pis in order. It reads rows, not events, so that any delivery
// order ends in the same links; a batch settles its intents once, after
// its rows are written, in five statements at most.
func settleLinks(tx *gorm.DB, pis []string) error {
	if len(pis) == 0 {
		return nil
	}
	type intent struct{ invoice, charge sql.NullString }
	found := make(map[string]intent, len(pis))
	rows, err := tx.Raw(links.intents, pis, models.ObjectPaymentIntent).Rows()
	if err != nil {
		return fmt.Errorf("billing: links of %d payment intents: %w", len(pis), err)
	}
	for rows.Next() {
		var id string
		var in intent
		if err := rows.Scan(&id, &in.invoice, &in.charge); err != nil {
			rows.Close()
			return fmt.Errorf("billing: links of %d payment intents: %w", len(pis), err)
		}
		found[id] = in
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return fmt.Errorf("billing: links of %d payment intents: %w", len(pis), err)
	}
	var without []string
	for _, pi := range pis {
		if !found[pi].invoice.Valid {
			without = append(without, pi)
		}
	}
	if len(without) > 0 {
		rows, err := tx.Raw(links.intentInvoices, without).Rows()
		if err != nil {
			return fmt.Errorf("billing: invoices of %d payment intents: %w", len(without), err)
		}
		for rows.Next() {
			var id string
			var invoice sql.NullString
			if err := rows.Scan(&id, &invoice); err != nil {
				rows.Close()
				return fmt.Errorf("billing: invoices of %d payment intents: %w", len(without), err)
			}
			in := found[id]
			in.invoice = invoice
			found[id] = in
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("billing: invoices of %d payment intents: %w", len(without), err)
		}
	}
	// What each statement sets, in the order the intents were settled:
	// an invoice keeps the first intent that reaches it and the last
	// charge known, as one statement per intent would leave them.
	var linked, invoices []string
	var byIntent, intentOf, chargeOf []any
	paid := map[string]int{} // invoice → its place in invoices
	for _, pi := range pis {
		in := found[pi]
		if !in.invoice.Valid {
			continue // no invoice known yet: a later event settles it
		}
		linked = append(linked, pi)
		byIntent = append(byIntent, pi, in.invoice.String)
		i, seen := paid[in.invoice.String]
		if !seen {
			paid[in.invoice.String] = len(invoices)
			invoices = append(invoices, in.invoice.String)
			intentOf = append(intentOf, in.invoice.String, pi)
			chargeOf = append(chargeOf, in.invoice.String, in.charge)
		} else if in.charge.Valid {
			chargeOf[2*i+1] = in.charge
		}
	}
	if len(linked) == 0 {
		return nil
	}
	when := func(n int) string { return strings.Repeat(" WHEN ? THEN ?", n) }
	for _, q := range []string{links.intentLinks, links.chargesLinks} {
		if err := tx.Exec(fmt.Sprintf(q, when(len(linked))), append(byIntent, linked)...).Error; err != nil {
			return fmt.Errorf("billing: link %d payment intents and their charges to invoices: %w", len(linked), err)
		}
	}
	q := fmt.Sprintf(links.invoiceLinks, when(len(invoices)), when(len(invoices)))
	args := append(append(intentOf, chargeOf...), invoices)
	if err := tx.Exec(q, args...).Error; err != nil {
		return fmt.Errorf("billing: link %d invoices to payment intents: %w", len(invoices), err)
	}
	return nil
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
	complete   bool // the list has every item (no has_more)
}

// decodeItems reads the items of subscription o, whose payload is p, from
// ev.
func decodeItems(ev Event, o subscriptionObject, p payload) (items, error) {
	its := items{start: o.CurrentPeriodStart.t, end: o.CurrentPeriodEnd.t, hasPeriod: p.has("current_period_start")}
	if o.Items == nil {
		return its, nil
	}
	its.complete = !o.Items.HasMore
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

// writeItems makes the subscription_items rows of each subscription those
// its applied events list, in order, under the subscription's lock: an
// item's fields a payload does not carry are left alone. Items written
// alike go in one multi-row upsert. When a list is complete (no
// has_more), the items neither it nor a later list of the batch names
// are deleted, in one statement for the batch.
func writeItems(tx *gorm.DB, writes []itemWrite, now time.Time) error {
	c := itemCols
	type upsert struct {
		cols []string
		args []any
		rows int
	}
	var upserts []upsert
	kept := map[string][]string{} // a subscription whose list was complete: the items that stay
	var pruned []string
	for _, w := range writes {
		its := w.items
		ids := make([]string, 0, len(its.list))
		for _, it := range its.list {
			cols := []string{c.stripeID, c.subscription, c.livemode, c.account, c.updatedAt}
			args := []any{it.ID, w.sub, w.env.livemode, w.env.account, now}
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
			cols, args = append(cols, c.createdAt), append(args, now)
			if n := len(upserts); n > 0 && slices.Equal(upserts[n-1].cols, cols) {
				upserts[n-1].args = append(upserts[n-1].args, args...)
				upserts[n-1].rows++
			} else {
				upserts = append(upserts, upsert{cols: cols, args: args, rows: 1})
			}
			ids = append(ids, it.ID)
		}
		switch _, listed := kept[w.sub]; {
		case its.complete:
			if !listed {
				pruned = append(pruned, w.sub)
			}
			kept[w.sub] = ids
		case listed:
			kept[w.sub] = append(kept[w.sub], ids...)
		}
	}
	for _, u := range upserts {
		update := make([]string, 0, len(u.cols))
		for _, col := range u.cols[1 : len(u.cols)-1] { // neither the key nor created_at
			update = append(update, col+" = VALUES("+col+")")
		}
		row := "(?" + strings.Repeat(", ?", len(u.cols)-1) + ")"
		q := "INSERT INTO " + c.table + " (" + strings.Join(u.cols, ", ") + ") VALUES " + strings.Repeat(row+", ", u.rows-1) + row +
			" ON DUPLICATE KEY UPDATE " + strings.Join(update, ", ")
		if err := tx.Exec(q, u.args...).Error; err != nil {
			return fmt.Errorf("billing: write %d subscription items: %w", u.rows, err)
		}
	}
	if len(pruned) == 0 {
		return nil
	}
	var stay []string
	for _, sub := range pruned {
		stay = append(stay, kept[sub]...) // an item belongs to one subscription
	}
	// Through the subscription's index: a DELETE that scanned the table
	// would lock, and wait for, the items other batches are writing under
	// their own subscriptions' locks, and deadlock with them.
	q, args := "DELETE "+c.table+" FROM "+c.table+" FORCE INDEX ("+models.SubscriptionItemsBySubscription+") WHERE "+
		c.subscription+" IN ?", []any{pruned}
	if len(stay) > 0 {
		q, args = q+" AND "+c.stripeID+" NOT IN ?", append(args, stay)
	}
	if err := tx.Exec(q, args...).Error; err != nil {
		return fmt.Errorf("billing: delete items no longer in %d subscriptions: %w", len(pruned), err)
	}
	return nil
}
