package billing

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/changes"
	"github.com/stripe-billing/billing/models"
)

// changeLines are f's changes, one "<key> <object id> #<sequence>
// <event id>" each, in order.
func changeLines(f Folded) []string {
	out := make([]string, len(f.Changes))
	for i, c := range f.Changes {
		out[i] = fmt.Sprintf("%s %s #%d %s", c.Key, c.ObjectID, c.Sequence, c.EventID)
	}
	return out
}

// changeOf is f's change of kind k of object id by event.
func changeOf(t *testing.T, f Folded, id string, k changes.Kind, event string) changes.Change {
	t.Helper()
	for _, c := range f.Changes {
		if c.ObjectID == id && c.Kind == k && c.EventID == event {
			return c
		}
	}
	t.Fatalf("no %s change of %s by %s in %q", k, id, event, changeLines(f))
	return changes.Change{}
}

// TestFoldChanges holds what the fold says of the change feed: one
// change per change of a row that matters, with the fields before and
// after, numbered per object without a gap; none for an event that
// changes no row.
func TestFoldChanges(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	id := billingtest.NewEventID
	invoice := func(status string, due, paid int64) map[string]any {
		return billingtest.Invoice("in_1", "cus_1", "", status, due, paid)
	}

	t.Run("ACreatedRowCarriesItsFields", func(t *testing.T) {
		t.Parallel()
		ev := id()
		f, stubs, err := fold(t, Ties{}, billingtest.Event(ev, "invoice.finalized", t0, invoice("open", 900, 0)))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"invoice.created in_1 #1 " + ev}
		if got := changeLines(f); !slices.Equal(got, want) {
			t.Fatalf("changes %q; want %q (the customer is a stub for the reference: no change)", got, want)
		}
		if len(stubs) != 1 {
			t.Fatalf("stubs %v; want the invoice's customer", stubs)
		}
		c := f.Changes[0]
		if c.ID != changes.MessageID(ev, "invoice", "in_1", changes.Created) || c.Customer != "cus_1" || c.Livemode ||
			c.Source != changes.SourceEvent || !c.EventCreated.Equal(t0) || c.Version != changes.Version || c.Before != nil {
			t.Errorf("change %+v; want its message id, customer cus_1, test mode, source event, created %s, no before", c, t0)
		}
		if c.After["status"] != "open" || c.After["amount_due"] != int64(900) || c.After["customer_id"] != "cus_1" || c.After["number"] == nil && len(c.After) < 10 {
			t.Errorf("after %v; want every stored field by column", c.After)
		}
		if inv := rowOf[models.Invoice](t, f, "in_1"); inv.ChangeSeq != 1 {
			t.Errorf("invoice change_seq %d; want 1, written with the row", inv.ChangeSeq)
		}
		if _, err := json.Marshal(c); err != nil {
			t.Errorf("marshal: %v", err)
		}
	})
	t.Run("StatusAndAmountsAreChangesNumberedInFoldOrder", func(t *testing.T) {
		t.Parallel()
		open, paid, void := id(), id(), id()
		f, _, err := fold(t, Ties{},
			billingtest.Event(open, "invoice.finalized", t0, invoice("open", 900, 0)),
			billingtest.Event(paid, "invoice.paid", t0.Add(time.Second), invoice("paid", 900, 900)),
			billingtest.Event(void, "invoice.updated", t0.Add(2*time.Second), invoice("paid", 900, 900)))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"invoice.created in_1 #1 " + open,
			"invoice.status.paid in_1 #2 " + paid,
			"invoice.amount in_1 #3 " + paid,
		}
		if got := changeLines(f); !slices.Equal(got, want) {
			t.Fatalf("changes %q; want %q (the last event changes neither status nor amount)", got, want)
		}
		st := changeOf(t, f, "in_1", changes.Status, paid)
		if !reflect.DeepEqual(st.Before, map[string]any{"status": "open"}) || !reflect.DeepEqual(st.After, map[string]any{"status": "paid"}) {
			t.Errorf("status before %v after %v; want open to paid alone", st.Before, st.After)
		}
		am := changeOf(t, f, "in_1", changes.Amount, paid)
		if am.Before["amount_paid"] != int64(0) || am.After["amount_paid"] != int64(900) || am.Before["amount_due"] != nil ||
			am.After["amount_remaining"] != int64(0) || am.Before["amount_remaining"] != int64(900) {
			t.Errorf("amount before %v after %v; want amount_paid 0 to 900 and amount_remaining 900 to 0, not amount_due", am.Before, am.After)
		}
		if inv := rowOf[models.Invoice](t, f, "in_1"); inv.ChangeSeq != 3 {
			t.Errorf("invoice change_seq %d; want 3", inv.ChangeSeq)
		}
	})
	t.Run("AStaleEventChangesNothing", func(t *testing.T) {
		t.Parallel()
		open, paid := id(), id()
		f, _, err := fold(t, Ties{},
			billingtest.Event(paid, "invoice.paid", t0.Add(time.Second), invoice("paid", 900, 900)),
			billingtest.Event(open, "invoice.finalized", t0, invoice("open", 900, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if got, want := changeLines(f), []string{"invoice.created in_1 #1 " + paid}; !slices.Equal(got, want) {
			t.Errorf("changes %q; want %q", got, want)
		}
	})
	t.Run("ADuplicateEventChangesNothing", func(t *testing.T) {
		t.Parallel()
		ev := id()
		raw := billingtest.Event(ev, "invoice.paid", t0, invoice("paid", 900, 900))
		f, _, err := fold(t, Ties{}, raw, raw)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := changeLines(f), []string{"invoice.created in_1 #1 " + ev}; !slices.Equal(got, want) {
			t.Errorf("changes %q; want %q", got, want)
		}
	})
	t.Run("ACustomersFieldsAreUpdatedAndItsDeletionDeleted", func(t *testing.T) {
		t.Parallel()
		created, updated, same, deleted := id(), id(), id(), id()
		f, _, err := fold(t, Ties{},
			billingtest.Event(created, "customer.created", t0, billingtest.Customer("cus_1", "a@example.com")),
			billingtest.Event(updated, "customer.updated", t0.Add(time.Second), billingtest.Customer("cus_1", "b@example.com")),
			billingtest.Event(same, "customer.updated", t0.Add(2*time.Second), billingtest.Customer("cus_1", "b@example.com")),
			billingtest.Event(deleted, "customer.deleted", t0.Add(3*time.Second), billingtest.Customer("cus_1", "b@example.com")))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{
			"customer.created cus_1 #1 " + created,
			"customer.updated cus_1 #2 " + updated,
			"customer.deleted cus_1 #3 " + deleted,
		}
		if got := changeLines(f); !slices.Equal(got, want) {
			t.Fatalf("changes %q; want %q", got, want)
		}
		up := changeOf(t, f, "cus_1", changes.Updated, updated)
		if !reflect.DeepEqual(up.Before, map[string]any{"email": "a@example.com"}) || !reflect.DeepEqual(up.After, map[string]any{"email": "b@example.com"}) || up.Customer != "cus_1" {
			t.Errorf("updated %+v; want the email alone, a@ to b@, customer itself", up)
		}
		del := changeOf(t, f, "cus_1", changes.Deleted, deleted)
		if del.Before["email"] != "b@example.com" || del.After != nil {
			t.Errorf("deleted before %v after %v; want its fields before, none after", del.Before, del.After)
		}
	})
	t.Run("AStaleDeletionStillDeletes", func(t *testing.T) {
		t.Parallel()
		created, deleted := id(), id()
		f, _, err := fold(t, Ties{},
			billingtest.Event(created, "customer.created", t0.Add(time.Hour), billingtest.Customer("cus_1", "a@example.com")),
			billingtest.Event(deleted, "customer.deleted", t0, billingtest.Customer("cus_1", "a@example.com")))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"customer.created cus_1 #1 " + created, "customer.deleted cus_1 #2 " + deleted}
		if got := changeLines(f); !slices.Equal(got, want) {
			t.Errorf("changes %q; want %q", got, want)
		}
	})
	t.Run("AnExistingRowsSequenceGoesOn", func(t *testing.T) {
		t.Parallel()
		was, paid := id(), id()
		b := NewBatch(plans(t, billingtest.Event(paid, "invoice.paid", t0.Add(time.Second), invoice("paid", 900, 900))), t0)
		for _, r := range b.ToLock() {
			found := map[string]*models.Locked{}
			if _, ok := r.Model.(*models.Invoice); ok {
				row := &models.Invoice{StripeID: "in_1", Status: ptr("open"), AmountDue: ptr[int64](900), AmountPaid: ptr[int64](0),
					AmountRemaining: ptr[int64](900), CustomerID: ptr("cus_1")}
				row.LastEventID, row.LastEventCreated, row.ChangeSeq = &was, &t0, 7
				found["in_1"] = &models.Locked{Row: row}
			}
			b.Locked(r, found)
		}
		b.ToEnsure()
		f, err := b.Fold(Ties{})
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"invoice.status.paid in_1 #8 " + paid, "invoice.amount in_1 #9 " + paid}
		if got := changeLines(f); !slices.Equal(got, want) {
			t.Errorf("changes %q; want %q", got, want)
		}
		if len(f.Writes) != 1 || len(f.Writes[0].Changed) != 1 || f.Writes[0].Changed[0].Row.(*models.Invoice).ChangeSeq != 9 ||
			!slices.Contains(f.Writes[0].Fields, "ChangeSeq") {
			t.Errorf("writes %+v; want the invoice with change_seq 9, ChangeSeq among the fields written", f.Writes)
		}
	})
	t.Run("OmittedChangesLeaveTheSequence", func(t *testing.T) {
		t.Parallel()
		b := NewBatch(plans(t, billingtest.Event(id(), "invoice.paid", t0, invoice("paid", 900, 900))), t0)
		b.OmitChanges()
		f, _, err := foldBatch(b, Ties{})
		if err != nil {
			t.Fatal(err)
		}
		if len(f.Changes) != 0 || rowOf[models.Invoice](t, f, "in_1").ChangeSeq != 0 {
			t.Errorf("changes %q, change_seq %d; want none, 0", changeLines(f), rowOf[models.Invoice](t, f, "in_1").ChangeSeq)
		}
	})
	t.Run("EveryObjectOfALifecycleIsNumberedWithoutAGap", func(t *testing.T) {
		t.Parallel()
		for _, version := range SupportedVersions() {
			lc := billingtest.VersionLifecycle(version, 1)
			f, _, err := fold(t, Ties{}, lc.Events...)
			if err != nil {
				t.Fatalf("%s: %v", version, err)
			}
			next := map[string]uint64{}
			ids := map[string]bool{}
			for _, c := range f.Changes {
				key := c.ObjectType + "/" + c.ObjectID
				if next[key]++; c.Sequence != next[key] {
					t.Errorf("%s: %s change %s is #%d; want #%d", version, key, c.Kind, c.Sequence, next[key])
				}
				if ids[c.ID] {
					t.Errorf("%s: message id %s twice", version, c.ID)
				}
				ids[c.ID] = true
				if c.Sequence == 1 && c.Kind != changes.Created {
					t.Errorf("%s: %s's first change is %s; want created", version, key, c.Kind)
				}
			}
			for _, kind := range []string{"customer", "subscription", "invoice", "charge", "payment_intent", "refund", "dispute"} {
				if !slices.ContainsFunc(f.Changes, func(c changes.Change) bool { return c.ObjectType == kind }) {
					t.Errorf("%s: no change of a %s in %q", version, kind, changeLines(f))
				}
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }
