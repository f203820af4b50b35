package billing

import (
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/models"
)

// fold folds raws, a batch in delivery order, into rows none of which
// exists yet, as the ledger does around the store: what Fold says, and
// the stubs ToEnsure asked for.
func fold(t *testing.T, ties Ties, raws ...[]byte) (Folded, [][]any, error) {
	t.Helper()
	return foldPlanned(ties, plans(t, raws...))
}

// plans parses and plans raws.
func plans(t *testing.T, raws ...[]byte) []Planned {
	t.Helper()
	var events []Planned
	for _, raw := range raws {
		ev, err := Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		p, err := PlanOf(ev)
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, p)
	}
	return events
}

// foldPlanned is fold of planned events.
func foldPlanned(ties Ties, events []Planned) (Folded, [][]any, error) {
	return foldBatch(NewBatch(events, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)), ties)
}

// foldBatch folds b into rows none of which exists yet.
func foldBatch(b *Batch, ties Ties) (Folded, [][]any, error) {
	for _, r := range b.ToLock() {
		b.Locked(r, nil)
	}
	ensure := b.ToEnsure()
	f, err := b.Fold(ties)
	return f, ensure, err
}

// rowOf is the row of stripeID that f writes, as a *T.
func rowOf[T any](t *testing.T, f Folded, stripeID string) *T {
	t.Helper()
	for _, w := range f.Writes {
		for _, r := range w.Fresh {
			if row, ok := r.(*T); ok && (*stubID(r)) == stripeID {
				return row
			}
		}
	}
	t.Fatalf("no %T row %s written", new(T), stripeID)
	return nil
}

// stubID points to a model row's StripeID.
func stubID(row any) *string {
	switch r := row.(type) {
	case *models.Customer:
		return &r.StripeID
	case *models.Invoice:
		return &r.StripeID
	case *models.Payment:
		return &r.StripeID
	case *models.Subscription:
		return &r.StripeID
	}
	panic("stubID: no such model")
}

func deref[T any](p *T) (v T) {
	if p != nil {
		v = *p
	}
	return v
}

// TestFold holds the order, tie and sticky rules as tables of events and
// the rows they fold into, with no database.
func TestFold(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	id := billingtest.NewEventID
	invoice := func(status string, due, paid int64) map[string]any {
		return billingtest.Invoice("in_1", "cus_1", "", status, due, paid)
	}

	t.Run("TheNewerEventWinsInAnyOrder", func(t *testing.T) {
		t.Parallel()
		open, paid := id(), id()
		f, _, err := fold(t, Ties{},
			billingtest.Event(paid, "invoice.paid", t0.Add(time.Second), invoice("paid", 900, 900)),
			billingtest.Event(open, "invoice.finalized", t0, invoice("open", 900, 0)))
		if err != nil {
			t.Fatal(err)
		}
		inv := rowOf[models.Invoice](t, f, "in_1")
		if deref(inv.Status) != "paid" || deref(inv.AmountPaid) != 900 || deref(inv.LastEventID) != paid {
			t.Errorf("invoice %s paid %d by %s; want paid 900 by %s", deref(inv.Status), deref(inv.AmountPaid), deref(inv.LastEventID), paid)
		}
		if len(f.History) != 2 || !slices.Equal(f.Applied, []string{paid}) {
			t.Errorf("history %v, applied %v; want both statuses recorded, only %s applied", f.History, f.Applied, paid)
		}
	})
	t.Run("APaidInvoiceNeverReopens", func(t *testing.T) {
		t.Parallel()
		f, _, err := fold(t, Ties{},
			billingtest.Event(id(), "invoice.paid", t0, invoice("paid", 900, 900)),
			billingtest.Event(id(), "invoice.updated", t0.Add(time.Hour), invoice("open", 900, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if inv := rowOf[models.Invoice](t, f, "in_1"); deref(inv.Status) != "paid" {
			t.Errorf("invoice %s; want paid: a later open is a regression", deref(inv.Status))
		}
	})
	t.Run("GrowingFieldsOrderASameSecondTie", func(t *testing.T) {
		t.Parallel()
		charge := func(refunded int64) map[string]any {
			c := billingtest.Charge("ch_1", "cus_1", "", "", "succeeded", 1000)
			c["amount_refunded"] = refunded
			return c
		}
		for _, order := range [][]int64{{0, 400}, {400, 0}} {
			f, _, err := fold(t, Ties{Fetch: true},
				billingtest.Event(id(), "charge.updated", t0, charge(order[0])),
				billingtest.Event(id(), "charge.updated", t0, charge(order[1])))
			if err != nil {
				t.Fatalf("order %v: %v (no call to Stripe is needed)", order, err)
			}
			if ch := rowOf[models.Payment](t, f, "ch_1"); deref(ch.AmountRefunded) != 400 {
				t.Errorf("order %v: refunded %d; want 400", order, deref(ch.AmountRefunded))
			}
		}
	})
	t.Run("ATieIsSettledByEventIDWithoutStripe", func(t *testing.T) {
		t.Parallel()
		a, b := id(), id()
		sub := func(cancelAtPeriodEnd bool) map[string]any {
			s := billingtest.Subscription("sub_1", "cus_1", "active", t0)
			s["cancel_at_period_end"] = cancelAtPeriodEnd
			return s
		}
		want := max(a, b)
		for _, order := range [][2]string{{a, b}, {b, a}} {
			f, _, err := fold(t, Ties{},
				billingtest.Event(order[0], "customer.subscription.updated", t0, sub(order[0] == want)),
				billingtest.Event(order[1], "customer.subscription.updated", t0, sub(order[1] == want)))
			if err != nil {
				t.Fatal(err)
			}
			s := rowOf[models.Subscription](t, f, "sub_1")
			if deref(s.LastEventID) != want || !deref(s.CancelAtPeriodEnd) || len(f.ByEventID) != 1 {
				t.Errorf("order %v: last event %s, cancel at period end %v, ties by id %v; want %s's, true, one", order,
					deref(s.LastEventID), deref(s.CancelAtPeriodEnd), f.ByEventID, want)
			}
		}
	})
	t.Run("ATieAsksForStripesObject", func(t *testing.T) {
		t.Parallel()
		second := id()
		_, _, err := fold(t, Ties{Fetch: true},
			billingtest.Event(id(), "customer.subscription.updated", t0, billingtest.Subscription("sub_1", "cus_1", "active", t0)),
			billingtest.Event(second, "customer.subscription.updated", t0, billingtest.Subscription("sub_1", "cus_1", "past_due", t0)))
		tie, ok := errors.AsType[*Tie](err)
		if !ok || tie.Ref.Type != "subscription" || tie.Ref.ID != "sub_1" || tie.Event != second {
			t.Errorf("Fold = %v; want a *Tie on subscription sub_1 met by %s", err, second)
		}
	})
	t.Run("PayloadsThatAgreeNeedNoCall", func(t *testing.T) {
		t.Parallel()
		a, b := id(), id()
		for _, order := range [][2]string{{a, b}, {b, a}} {
			f, _, err := fold(t, Ties{Fetch: true},
				billingtest.Event(order[0], "invoice.paid", t0, invoice("paid", 900, 900)),
				billingtest.Event(order[1], "invoice.payment_succeeded", t0, invoice("paid", 900, 900)))
			if err != nil {
				t.Fatalf("order %v: %v; want no call to Stripe", order, err)
			}
			if inv := rowOf[models.Invoice](t, f, "in_1"); deref(inv.LastEventID) != max(a, b) {
				t.Errorf("order %v: last event %s; want %s", order, deref(inv.LastEventID), max(a, b))
			}
		}
	})
	t.Run("ANewerEventLowersAGrowingField", func(t *testing.T) {
		t.Parallel()
		charge := func(refunded int64) map[string]any {
			c := billingtest.Charge("ch_1", "cus_1", "", "", "succeeded", 1000)
			c["amount_refunded"] = refunded
			return c
		}
		earlier := billingtest.Event(id(), "charge.refunded", t0, charge(800))
		later := billingtest.Event(id(), "charge.updated", t0.Add(time.Second), charge(300)) // a refund of 500 failed
		for _, order := range [][][]byte{{earlier, later}, {later, earlier}} {
			f, _, err := fold(t, Ties{}, order...)
			if err != nil {
				t.Fatal(err)
			}
			if ch := rowOf[models.Payment](t, f, "ch_1"); deref(ch.AmountRefunded) != 300 {
				t.Errorf("refunded %d; want the newer event's 300", deref(ch.AmountRefunded))
			}
		}
	})
	t.Run("AFailedRefundAsksForItsCharge", func(t *testing.T) {
		t.Parallel()
		charge := billingtest.Charge("ch_1", "cus_1", "", "", "succeeded", 1000)
		charge["amount_refunded"] = 500
		refund := billingtest.Refund("re_1", "ch_1", "", "succeeded", 500)
		failed := billingtest.Refund("re_1", "ch_1", "", "failed", 500)
		failedID := id()
		events := [][]byte{billingtest.Event(id(), "charge.refunded", t0, charge), billingtest.Event(id(), "refund.created", t0, refund),
			billingtest.Event(failedID, "refund.failed", t0.Add(time.Hour), failed)}
		_, _, err := fold(t, Ties{Fetch: true}, events...)
		tie, ok := errors.AsType[*Tie](err)
		if !ok || tie.Ref.Type != "charge" || tie.Ref.ID != "ch_1" || tie.Event != failedID {
			t.Fatalf("Fold = %v; want a *Tie on charge ch_1 met by %s", err, failedID)
		}
		// Stripe's charge, fetched, folds after the refund's own change.
		stripes := billingtest.Charge("ch_1", "cus_1", "", "", "succeeded", 1000)
		stripes["amount_refunded"] = 0
		raw, err := json.Marshal(stripes)
		if err != nil {
			t.Fatal(err)
		}
		planned := plans(t, events...)
		if planned[2], _, err = planned[2].WithFetched(tie, raw); err != nil {
			t.Fatal(err)
		}
		f, _, err := foldPlanned(Ties{}, planned)
		if err != nil {
			t.Fatal(err)
		}
		if ch := rowOf[models.Payment](t, f, "ch_1"); deref(ch.AmountRefunded) != 0 || deref(ch.LastEventID) != failedID {
			t.Errorf("charge refunded %d by %s; want Stripe's 0 by %s", deref(ch.AmountRefunded), deref(ch.LastEventID), failedID)
		}
	})
	t.Run("ADeletionIsSticky", func(t *testing.T) {
		t.Parallel()
		f, _, err := fold(t, Ties{},
			billingtest.Event(id(), "customer.deleted", t0, billingtest.Customer("cus_1", "a@example.com")),
			billingtest.Event(id(), "customer.updated", t0.Add(time.Hour), billingtest.Customer("cus_1", "b@example.com")))
		if err != nil {
			t.Fatal(err)
		}
		if c := rowOf[models.Customer](t, f, "cus_1"); !c.Deleted || deref(c.Email) != "b@example.com" {
			t.Errorf("customer deleted %v, email %s; want deleted, the newer email", c.Deleted, deref(c.Email))
		}
	})
	t.Run("AnAbsentFieldIsLeftAlone", func(t *testing.T) {
		t.Parallel()
		sparse := map[string]any{"id": "in_1", "object": "invoice", "status": "open"}
		f, _, err := fold(t, Ties{},
			billingtest.Event(id(), "invoice.finalized", t0, invoice("open", 900, 0)),
			billingtest.Event(id(), "invoice.updated", t0.Add(time.Second), sparse))
		if err != nil {
			t.Fatal(err)
		}
		if inv := rowOf[models.Invoice](t, f, "in_1"); deref(inv.AmountDue) != 900 {
			t.Errorf("amount due %d; want 900: the sparse event does not carry it", deref(inv.AmountDue))
		}
	})
	t.Run("AnObjectsCustomerIsMadeSureOf", func(t *testing.T) {
		t.Parallel()
		_, ensure, err := fold(t, Ties{}, billingtest.Event(id(), "invoice.finalized", t0, invoice("open", 900, 0)))
		if err != nil {
			t.Fatal(err)
		}
		var stubs []string
		for _, table := range ensure {
			for _, s := range table {
				stubs = append(stubs, *stubID(s))
			}
		}
		if !slices.Equal(stubs, []string{"cus_1"}) {
			t.Errorf("stubs %v; want the invoice's customer cus_1", stubs)
		}
	})
	t.Run("OneRowPerObjectWhateverItsEvents", func(t *testing.T) {
		t.Parallel()
		f, _, err := fold(t, Ties{},
			billingtest.Event(id(), "invoice.created", t0, invoice("draft", 900, 0)),
			billingtest.Event(id(), "invoice.finalized", t0.Add(time.Second), invoice("open", 900, 0)),
			billingtest.Event(id(), "invoice.paid", t0.Add(2*time.Second), invoice("paid", 900, 900)))
		if err != nil {
			t.Fatal(err)
		}
		rows := map[string]int{}
		for _, w := range f.Writes {
			for _, r := range w.Fresh {
				rows[*stubID(r)]++
			}
		}
		if !maps.Equal(rows, map[string]int{"in_1": 1}) {
			t.Errorf("rows written %v; want in_1 once", rows)
		}
	})
}
