package models

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
)

// Links between an invoice, its payment intent and the intent's charges.
// Before 2025-03-31.basil each object names the others (invoice.charge,
// charge.invoice, ...) and the handlers store what they read. From basil
// only the payment intent and its charges name each other; an invoice is
// tied to what paid it by InvoicePayment objects. SettleLinks fills, from
// whichever of these arrived, the same columns the older versions fill, so
// that the records do not depend on the API version: payments.invoice_id
// of the intent and its charges, invoices.payment_intent_id, and
// invoices.charge_id (the intent's latest charge, as invoice.charge was).
// A plan asks for it after an InvoicePayment, a payment intent or a
// charge whose payload has no invoice field (basil and later).

// linkStatements are SettleLinks' statements, resolved from the models.
// Each names its rows by a unique key or an index: an UPDATE that scanned
// the table would wait on every row another transaction holds. The CASE
// of an UPDATE is filled in per batch.
type linkStatements struct {
	intents        string // payment intents' invoice and latest charge
	intentInvoices string // the first invoice an InvoicePayment of each intent pays
	intentLinks    string // sets the intents' invoice
	chargesLinks   string // sets the invoice of the intents' charges
	lockInvoices   string // the invoices, FOR UPDATE in key order
	invoiceIntents string // each invoice's payment intents, the latest by Stripe's time first
	invoicePairs   string // sets the invoices' payment intent and charge
}

var links = func() linkStatements {
	p, inv, ip := mustTable(&Payment{}), mustTable(&Invoice{}), mustTable(&InvoicePayment{})
	return linkStatements{
		intents: "SELECT " + p.col("StripeID") + " AS id, " + p.col("InvoiceID") + " AS invoice, " + p.col("ChargeID") + " AS charge FROM " + p.table +
			" WHERE " + p.col("StripeID") + " IN ? AND " + p.col("Object") + " = ?",
		intentInvoices: "SELECT " + ip.col("PaymentIntentID") + " AS id, MIN(" + ip.col("InvoiceID") + ") AS invoice FROM " + ip.table + " WHERE " +
			ip.col("PaymentIntentID") + " IN ? AND " + ip.col("InvoiceID") + " IS NOT NULL GROUP BY " + ip.col("PaymentIntentID"),
		intentLinks: "UPDATE " + p.table + " SET " + p.col("InvoiceID") + " = CASE " + p.col("StripeID") + "%s END WHERE " +
			p.col("StripeID") + " IN ? AND " + p.col("InvoiceID") + " IS NULL",
		chargesLinks: "UPDATE " + p.table + " SET " + p.col("InvoiceID") + " = CASE " + p.col("PaymentIntentID") + "%s END WHERE " +
			p.col("PaymentIntentID") + " IN ? AND " + p.col("InvoiceID") + " IS NULL",
		lockInvoices: "SELECT " + inv.col("StripeID") + " FROM " + inv.table + " FORCE INDEX (" + StripeIDIndex(inv.table) + ") WHERE " +
			inv.col("StripeID") + " IN ? ORDER BY " + inv.col("StripeID") + " FOR UPDATE",
		invoiceIntents: "SELECT " + p.col("InvoiceID") + " AS invoice, " + p.col("StripeID") + " AS id, " + p.col("ChargeID") + " AS charge FROM " +
			p.table + " WHERE " + p.col("InvoiceID") + " IN ? AND " + p.col("Object") + " = ? ORDER BY " + p.col("InvoiceID") + ", " +
			p.col("StripeCreated") + " DESC, " + p.col("StripeID") + " DESC",
		invoicePairs: "UPDATE " + inv.table + " SET " + inv.col("PaymentIntentID") + " = CASE " + inv.col("StripeID") + "%s END, " +
			inv.col("ChargeID") + " = CASE " + inv.col("StripeID") + "%s END WHERE " + inv.col("StripeID") + " IN ?",
	}
}()

// SettleLinks carries each payment intent's invoice (its own, from
// versions before basil, or an InvoicePayment's) to the intent and its
// charges, and the intent and its latest charge to the invoice, for the
// intents pis in order. It reads rows, not events, so that any delivery
// order ends in the same links; a batch settles its intents once, after
// its rows are written, in five statements at most.
func SettleLinks(tx *gorm.DB, pis []string) error {
	if len(pis) == 0 {
		return nil
	}
	type intent struct {
		ID              string
		Invoice, Charge sql.NullString
	}
	var read []intent
	if err := tx.Raw(links.intents, pis, ObjectPaymentIntent).Scan(&read).Error; err != nil {
		return fmt.Errorf("models: links of %d payment intents: %w", len(pis), err)
	}
	found := make(map[string]intent, len(pis))
	for _, in := range read {
		found[in.ID] = in
	}
	var without []string
	for _, pi := range pis {
		if !found[pi].Invoice.Valid {
			without = append(without, pi)
		}
	}
	if len(without) > 0 {
		var paid []intent
		if err := tx.Raw(links.intentInvoices, without).Scan(&paid).Error; err != nil {
			return fmt.Errorf("models: invoices of %d payment intents: %w", len(without), err)
		}
		for _, p := range paid {
			in := found[p.ID]
			in.Invoice = p.Invoice
			found[p.ID] = in
		}
	}
	// The intents (and their charges) are tied to the invoice each pays.
	var linked, invoices []string
	var byIntent []any
	for _, pi := range pis {
		in := found[pi]
		if !in.Invoice.Valid {
			continue // no invoice known yet: a later event settles it
		}
		linked = append(linked, pi)
		byIntent = append(byIntent, pi, in.Invoice.String)
		if !slices.Contains(invoices, in.Invoice.String) {
			invoices = append(invoices, in.Invoice.String)
		}
	}
	if len(linked) == 0 {
		return nil
	}
	when := func(n int) string { return strings.Repeat(" WHEN ? THEN ?", n) }
	for _, q := range []string{links.intentLinks, links.chargesLinks} {
		if err := tx.Exec(fmt.Sprintf(q, when(len(linked))), append(byIntent, linked)...).Error; err != nil {
			return fmt.Errorf("models: link %d payment intents and their charges to invoices: %w", len(linked), err)
		}
	}
	return settlePairs(tx, invoices)
}

// settlePairs sets each invoice's payment intent and charge from one
// payment: its latest intent by Stripe's time (the larger id in a tie)
// and that intent's latest charge, never a pair of two payments. The
// invoices are locked first, so that a batch that settles one after
// another batch's intent committed reads that intent too: whatever the
// order the payments arrive in, the pair ends the latest's.
func settlePairs(tx *gorm.DB, invoices []string) error {
	slices.Sort(invoices)
	var locked []string
	if err := tx.Raw(links.lockInvoices, invoices).Scan(&locked).Error; err != nil {
		return fmt.Errorf("models: lock %d invoices: %w", len(invoices), err)
	}
	var intents []struct {
		Invoice, ID string
		Charge      sql.NullString
	}
	if err := tx.Raw(links.invoiceIntents, invoices, ObjectPaymentIntent).Scan(&intents).Error; err != nil {
		return fmt.Errorf("models: payment intents of %d invoices: %w", len(invoices), err)
	}
	var pairs, intentOf, chargeOf []any
	for i, in := range intents {
		if i > 0 && intents[i-1].Invoice == in.Invoice {
			continue // not its latest
		}
		pairs = append(pairs, in.Invoice)
		intentOf = append(intentOf, in.Invoice, in.ID)
		chargeOf = append(chargeOf, in.Invoice, in.Charge)
	}
	if len(pairs) == 0 {
		return nil
	}
	when := strings.Repeat(" WHEN ? THEN ?", len(pairs))
	err := tx.Exec(fmt.Sprintf(links.invoicePairs, when, when), append(append(intentOf, chargeOf...), pairs)...).Error
	if err != nil {
		return fmt.Errorf("models: link %d invoices to their latest payment: %w", len(pairs), err)
	}
	return nil
}

// ItemList is a subscription's items as one applied event lists them.
type ItemList struct {
	Subscription string
	Livemode     bool
	Account      *string
	Items        []ListedItem
	// Complete: the list has every item (no has_more); the items it does
	// not name are deleted.
	Complete bool
}

// ListedItem is one item of an ItemList; a field the payload does not
// carry (its Has* false) is left alone in the row.
type ListedItem struct {
	ID                     string
	Price                  *string
	HasPrice               bool
	Quantity               *int64
	HasQuantity            bool
	PeriodStart, PeriodEnd *time.Time
	HasPeriod              bool
}

var itemCols = mustTable(&SubscriptionItem{})

// WriteItems makes the subscription_items rows of each subscription those
// its applied events list (lists), in order, under the subscription's lock: an
// item's fields a payload does not carry are left alone. Items written
// alike go in one multi-row upsert. When a list is complete (no
// has_more), the items neither it nor a later list of the batch names
// are deleted, in one statement for the batch.
func WriteItems(tx *gorm.DB, lists []ItemList, now time.Time) error {
	c := itemCols
	type upsert struct {
		cols []string
		args []any
		rows int
	}
	var upserts []upsert
	kept := map[string][]string{} // a subscription whose list was complete: the items that stay
	var pruned []string
	for _, w := range lists {
		ids := make([]string, 0, len(w.Items))
		for _, it := range w.Items {
			cols := []string{c.col("StripeID"), c.col("SubscriptionID"), c.col("Livemode"), c.col("Account"), c.col("UpdatedAt")}
			args := []any{it.ID, w.Subscription, w.Livemode, w.Account, now}
			if it.HasPrice {
				cols, args = append(cols, c.col("PriceID")), append(args, it.Price)
			}
			if it.HasQuantity {
				cols, args = append(cols, c.col("Quantity")), append(args, it.Quantity)
			}
			if it.HasPeriod {
				cols = append(cols, c.col("CurrentPeriodStart"), c.col("CurrentPeriodEnd"))
				args = append(args, it.PeriodStart, it.PeriodEnd)
			}
			cols, args = append(cols, c.col("CreatedAt")), append(args, now)
			if n := len(upserts); n > 0 && slices.Equal(upserts[n-1].cols, cols) {
				upserts[n-1].args = append(upserts[n-1].args, args...)
				upserts[n-1].rows++
			} else {
				upserts = append(upserts, upsert{cols: cols, args: args, rows: 1})
			}
			ids = append(ids, it.ID)
		}
		switch _, listed := kept[w.Subscription]; {
		case w.Complete:
			if !listed {
				pruned = append(pruned, w.Subscription)
			}
			kept[w.Subscription] = ids
		case listed:
			kept[w.Subscription] = append(kept[w.Subscription], ids...)
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
			return fmt.Errorf("models: write %d subscription items: %w", u.rows, err)
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
	q, args := "DELETE "+c.table+" FROM "+c.table+" FORCE INDEX ("+SubscriptionItemsBySubscription+") WHERE "+
		c.col("SubscriptionID")+" IN ?", []any{pruned}
	if len(stay) > 0 {
		q, args = q+" AND "+c.col("StripeID")+" NOT IN ?", append(args, stay)
	}
	if err := tx.Exec(q, args...).Error; err != nil {
		return fmt.Errorf("models: delete items no longer in %d subscriptions: %w", len(pruned), err)
	}
	return nil
}
