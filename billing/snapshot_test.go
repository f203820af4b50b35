package billing

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/verify"
)

// snapshotOf is obj, fetched at at, planned.
func snapshotOf(t *testing.T, obj map[string]any, at time.Time) Planned {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return plannedOf(t)(Snapshot(raw, Fetched{At: at, APIVersion: billingtest.APIVersion}))
}

// eventOf is the event raw, planned.
func eventOf(t *testing.T, raw []byte) Planned {
	t.Helper()
	return plannedOf(t)(Parse(raw))
}

// plannedOf plans what Parse or Snapshot made.
func plannedOf(t *testing.T) func(Event, error) Planned {
	return func(ev Event, err error) Planned {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		p, err := PlanOf(ev)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
}

// foldOnto folds events onto the invoice row in_1 (nil: none yet).
func foldOnto(t *testing.T, row *models.Invoice, events ...Planned) Folded {
	t.Helper()
	b := NewBatch(events, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC))
	for _, r := range b.ToLock() {
		found := map[string]*models.Locked{}
		if _, ok := r.Model.(*models.Invoice); ok && row != nil {
			found["in_1"] = &models.Locked{Row: row}
		}
		b.Locked(r, found)
	}
	b.ToEnsure()
	f, err := b.Fold(Ties{Fetch: true}) // a tie with a snapshot never asks Stripe
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// writtenInvoice is the invoice row f writes, fresh or changed; nil when
// it writes none.
func writtenInvoice(f Folded) *models.Invoice {
	for _, w := range f.Writes {
		for _, r := range w.Fresh {
			if inv, ok := r.(*models.Invoice); ok {
				return inv
			}
		}
		for _, l := range w.Changed {
			if inv, ok := l.Row.(*models.Invoice); ok {
				return inv
			}
		}
	}
	return nil
}

// TestSnapshot holds the merge rule of snapshots and events as tables of
// what is folded, in every order, and the row and history it makes.
func TestSnapshot(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	invoice := func(status string, due, paid int64) map[string]any {
		return billingtest.Invoice("in_1", "cus_1", "", status, due, paid)
	}
	event := func(typ string, at time.Time, obj map[string]any) func(*testing.T) Planned {
		id := billingtest.NewEventID()
		return func(t *testing.T) Planned { return eventOf(t, billingtest.Event(id, typ, at, obj)) }
	}
	snapshot := func(at time.Time, obj map[string]any) func(*testing.T) Planned {
		return func(t *testing.T) Planned { return snapshotOf(t, obj, at) }
	}

	for _, tc := range []struct {
		name         string
		a, b         func(*testing.T) Planned
		status       string
		due          int64
		fromSnapshot bool
	}{
		{name: "AnEventCreatedAfterTheFetchWins",
			a: snapshot(t0, invoice("open", 900, 0)), b: event("invoice.updated", t0.Add(time.Minute), invoice("open", 1200, 0)),
			status: "open", due: 1200},
		{name: "ASnapshotIsNeverOverwrittenByAnOlderEvent",
			a: event("invoice.updated", t0, invoice("open", 900, 0)), b: snapshot(t0.Add(time.Minute), invoice("open", 1200, 0)),
			status: "open", due: 1200, fromSnapshot: true},
		{name: "TheEventWinsTheSecondOfTheFetch",
			a: event("invoice.updated", t0, invoice("open", 900, 0)), b: snapshot(t0.Add(300*time.Millisecond), invoice("open", 1200, 0)),
			status: "open", due: 900},
		{name: "TheRankStillRules",
			a: snapshot(t0.Add(time.Minute), invoice("open", 900, 0)), b: event("invoice.paid", t0, invoice("paid", 900, 900)),
			status: "paid", due: 900},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a, b := tc.a(t), tc.b(t)
			for _, order := range [][]Planned{{a, b}, {b, a}} {
				f := foldOnto(t, nil, order...)
				inv := writtenInvoice(f)
				if inv == nil {
					t.Fatal("no invoice written")
				}
				if deref(inv.Status) != tc.status || deref(inv.AmountDue) != tc.due || isSnapshotID(deref(inv.LastEventID)) != tc.fromSnapshot {
					t.Errorf("order %s first: invoice %s due %d by %s; want %s due %d (from a snapshot: %v)", order[0].Event.ID,
						deref(inv.Status), deref(inv.AmountDue), deref(inv.LastEventID), tc.status, tc.due, tc.fromSnapshot)
				}
			}
		})
	}

	t.Run("TheHistoryRecordsASnapshotAsSuch", func(t *testing.T) {
		t.Parallel()
		snap := snapshotOf(t, invoice("open", 900, 0), t0)
		f := foldOnto(t, nil, snap)
		if len(f.History) != 1 || f.History[0].Source != models.SourceBackfill || f.History[0].EventID != snap.Event.ID ||
			f.History[0].Status != "open" || !f.History[0].OccurredAt.Equal(t0) {
			t.Errorf("history %+v; want open from the snapshot %s at %s, source backfill", f.History, snap.Event.ID, t0)
		}
		ev := eventOf(t, billingtest.Event(billingtest.NewEventID(), "invoice.paid", t0.Add(time.Hour), invoice("paid", 900, 900)))
		if f := foldOnto(t, nil, ev); len(f.History) != 1 || f.History[0].Source != models.SourceEvent {
			t.Errorf("history %+v; want one change, source event", f.History)
		}
	})
	t.Run("AStaleOrSameStatusSnapshotRecordsNoHistory", func(t *testing.T) {
		t.Parallel()
		paid := eventOf(t, billingtest.Event(billingtest.NewEventID(), "invoice.paid", t0.Add(time.Hour), invoice("paid", 900, 900)))
		f := foldOnto(t, nil, paid, snapshotOf(t, invoice("open", 900, 0), t0))
		if len(f.History) != 1 || f.History[0].Source != models.SourceEvent {
			t.Errorf("history %+v; want only the event's paid", f.History)
		}
		row := writtenInvoice(foldOnto(t, nil, eventOf(t, billingtest.Event(billingtest.NewEventID(), "invoice.updated", t0, invoice("open", 900, 0)))))
		f = foldOnto(t, row, snapshotOf(t, invoice("open", 1000, 0), t0.Add(time.Hour)))
		if inv := writtenInvoice(f); inv == nil || deref(inv.AmountDue) != 1000 || len(f.History) != 0 {
			t.Errorf("invoice %+v, history %+v; want due 1000 written and no history (the status did not move)", inv, f.History)
		}
	})
	t.Run("ASecondImportWritesNothing", func(t *testing.T) {
		t.Parallel()
		row := writtenInvoice(foldOnto(t, nil, snapshotOf(t, invoice("open", 900, 0), t0)))
		first := deref(row.LastEventID)
		f := foldOnto(t, row, snapshotOf(t, invoice("open", 900, 0), t0.Add(time.Hour)))
		if len(f.Writes) != 0 || len(f.History) != 0 || len(f.Applied) != 0 || deref(row.LastEventID) != first {
			t.Errorf("writes %+v, history %+v, applied %v, row by %s; want nothing written, the row still by %s",
				f.Writes, f.History, f.Applied, deref(row.LastEventID), first)
		}
	})
	t.Run("ASnapshotIDIsNoEventID", func(t *testing.T) {
		t.Parallel()
		snap := snapshotOf(t, invoice("open", 900, 0), t0)
		if err := verify.Form(snap.Event.ID, "invoice.updated"); err == nil || !strings.Contains(snap.Event.ID, "in_1") {
			t.Errorf("snapshot id %q passes as an event id or does not name its object", snap.Event.ID)
		}
		if !IsSnapshot(snap.Event) || IsSnapshot(eventOf(t, billingtest.Event(billingtest.NewEventID(), "invoice.paid", t0, invoice("paid", 9, 9))).Event) {
			t.Error("IsSnapshot does not tell a snapshot from an event")
		}
	})
	t.Run("AnObjectTheWorkerDoesNotStoreIsRefused", func(t *testing.T) {
		t.Parallel()
		for _, obj := range []string{`{"id":"tr_1","object":"transfer"}`, `{"object":"invoice"}`} {
			if _, err := Snapshot([]byte(obj), Fetched{At: t0}); failure.Of(err) != failure.Permanent {
				t.Errorf("Snapshot(%s) = %v; want a permanent error", obj, err)
			}
		}
	})
	t.Run("ARefundTakesTheKeysMode", func(t *testing.T) {
		t.Parallel()
		raw, _ := json.Marshal(billingtest.Refund("re_1", "ch_1", "", "succeeded", 100))
		ev, err := Snapshot(raw, Fetched{At: t0, Livemode: true, Account: "acct_1"})
		if err != nil || !ev.Livemode || ev.Account != "acct_1" {
			t.Errorf("Snapshot(refund) = livemode %v account %q, %v; want the key's live mode and the account", ev.Livemode, ev.Account, err)
		}
	})
}

// TestDrift compares stored rows with Stripe's objects field by field.
func TestDrift(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	stored := writtenInvoice(foldOnto(t, nil, snapshotOf(t, billingtest.Invoice("in_1", "cus_1", "", "open", 900, 0), t0)))
	drift := func(t *testing.T, obj map[string]any) []FieldDrift {
		t.Helper()
		raw, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Drift(stored, raw, Fetched{At: t0.Add(time.Hour), APIVersion: billingtest.APIVersion})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, tc := range []struct {
		name string
		obj  map[string]any
		want []FieldDrift
	}{
		{"TheSameObjectHasNone", billingtest.Invoice("in_1", "cus_1", "", "open", 900, 0), nil},
		{"EachFieldThatDiffersIsNamed", billingtest.Invoice("in_1", "cus_1", "", "paid", 900, 900), []FieldDrift{
			{Field: "status", Ours: "open", Stripes: "paid"},
			{Field: "amount_paid", Ours: "0", Stripes: "900"},
			{Field: "amount_remaining", Ours: "900", Stripes: "0"},
		}},
		{"AFieldStripeLeavesOutIsNotCompared", map[string]any{"id": "in_1", "object": "invoice", "status": "open"}, nil},
		{"AReferenceIsCompared", billingtest.Invoice("in_1", "cus_2", "", "open", 900, 0), []FieldDrift{
			{Field: "customer_id", Ours: "cus_1", Stripes: "cus_2"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := drift(t, tc.obj); !slices.Equal(got, tc.want) {
				t.Errorf("drift %+v; want %+v", got, tc.want)
			}
		})
	}
	t.Run("AnotherKindsRowIsAnError", func(t *testing.T) {
		t.Parallel()
		raw, _ := json.Marshal(billingtest.Customer("cus_1", "a@example.com"))
		if _, err := Drift(stored, raw, Fetched{At: t0}); err == nil {
			t.Error("Drift of a customer against an invoice row: no error")
		}
	})
}

// TestSnapshotOfEveryVersion: Stripe's object of every stored kind, in
// every supported API version (stripe-mock's fixtures), imports as a
// snapshot into a fresh row, and the audit of that row against the same
// object finds nothing that differs.
func TestSnapshotOfEveryVersion(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, v := range stripefixture.Versions() {
		for _, objectType := range ObjectTypes() {
			if !stripefixture.Has(v, objectType) {
				continue
			}
			t.Run(v+"/"+objectType, func(t *testing.T) {
				t.Parallel()
				raw := stripefixture.Raw(v, objectType)
				from := Fetched{At: at, APIVersion: v}
				snap, err := Snapshot(raw, from)
				if err != nil {
					t.Fatal(err)
				}
				b := NewBatch([]Planned{plannedOf(t)(snap, nil)}, at)
				for _, r := range b.ToLock() {
					b.Locked(r, nil)
				}
				b.ToEnsure()
				f, err := b.Fold(Ties{})
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(f.Applied, []string{snap.ID}) {
					t.Fatalf("applied %v; want the snapshot %s to write its row", f.Applied, snap.ID)
				}
				var row any
				for _, w := range f.Writes {
					for _, r := range w.Fresh {
						if ref, _, err := RowOf(r); err == nil && ref.Type == objectType && ref.ID == snap.ObjectID {
							row = r
						}
					}
				}
				if row == nil {
					t.Fatalf("no %s row %s written", objectType, snap.ObjectID)
				}
				if d, err := Drift(row, raw, from); err != nil || len(d) != 0 {
					t.Errorf("the audit of the row it wrote: %+v, %v; want no drift", d, err)
				}
			})
		}
	}
}
