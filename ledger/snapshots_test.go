package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
)

// snapshotOf is obj as a backfill fetched it at at.
func snapshotOf(t *testing.T, obj map[string]any, at time.Time) billing.Event {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := billing.Snapshot(raw, billing.Fetched{At: at, APIVersion: billingtest.APIVersion})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func applySnapshots(t *testing.T, p *ledger.Processor, cursor ledger.Cursor, snaps ...billing.Event) ledger.SnapshotResult {
	t.Helper()
	res, err := p.ApplySnapshots(context.Background(), snaps, cursor)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestApplySnapshots: a backfill's objects and live events, in any
// order, make the rows the events alone make; a snapshot claims no
// ledger row and is recorded in the history as a snapshot.
func TestApplySnapshots(t *testing.T) {
	t.Parallel()
	inv := func(status string, paid int64) map[string]any {
		return billingtest.Invoice("in_1", "cus_1", "", status, 900, paid)
	}
	draft := billingtest.Event(billingtest.NewEventID(), "invoice.created", start, inv("draft", 0))
	open := billingtest.Event(billingtest.NewEventID(), "invoice.finalized", start.Add(time.Minute), inv("open", 0))
	paid := billingtest.Event(billingtest.NewEventID(), "invoice.paid", start.Add(2*time.Minute), inv("paid", 900))
	// Fetched between the invoice's finalization and its payment: it
	// shows the invoice open.
	fetchedAt := start.Add(90 * time.Second)

	invoiceRow := func(t *testing.T, s *models.Store) []string {
		t.Helper()
		_, rows := dump[models.Invoice](t, s, "stripe_id")
		return rows
	}
	s0, p0 := setup(t)
	for _, raw := range [][]byte{draft, open, paid} {
		process(t, p0, raw, ledger.Processed)
	}
	want := invoiceRow(t, s0)

	t.Run("ConvergesInAnyOrder", func(t *testing.T) {
		t.Parallel()
		events := [][]byte{draft, open, paid}
		for at := range len(events) + 1 { // the snapshot's place among the deliveries
			for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}} {
				s, p := setup(t)
				for i, n := range order {
					if i == at {
						applySnapshots(t, p, ledger.Cursor{}, snapshotOf(t, inv("open", 0), fetchedAt))
					}
					process(t, p, events[n], ledger.Processed)
				}
				if at == len(events) {
					applySnapshots(t, p, ledger.Cursor{}, snapshotOf(t, inv("open", 0), fetchedAt))
				}
				if got := invoiceRow(t, s); !slices.Equal(got, want) {
					t.Errorf("snapshot at %d, events %v: invoice\n%v\nwant the events' own\n%v", at, order, got, want)
				}
				var ledgerRows int64
				if err := s.DB().Model(&models.StripeEvent{}).Count(&ledgerRows).Error; err != nil || ledgerRows != 3 {
					t.Errorf("ledger rows %d, %v; want the 3 events', none for the snapshot", ledgerRows, err)
				}
			}
		}
	})
	t.Run("AnOlderEventNeverOverwritesIt", func(t *testing.T) {
		t.Parallel()
		s, p := setup(t)
		snap := snapshotOf(t, inv("open", 0), fetchedAt)
		if res := applySnapshots(t, p, ledger.Cursor{}, snap); res.Written != 1 {
			t.Fatalf("written %d; want the invoice", res.Written)
		}
		process(t, p, draft, ledger.Processed)
		process(t, p, open, ledger.Processed)
		var row models.Invoice
		if err := s.DB().Where("stripe_id = ?", "in_1").Take(&row).Error; err != nil {
			t.Fatal(err)
		}
		if *row.Status != "open" || *row.LastEventID != snap.ID {
			t.Errorf("invoice %s by %s; want open by the snapshot %s", *row.Status, *row.LastEventID, snap.ID)
		}
		var history []models.StatusChange
		if err := s.DB().Order("occurred_at, id").Find(&history).Error; err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, h := range history {
			got = append(got, h.Status+"/"+h.Source)
		}
		if want := []string{"draft/event", "open/event", "open/backfill"}; !slices.Equal(got, want) {
			t.Errorf("history %v; want %v", got, want)
		}
	})
	t.Run("ASecondImportChangesNothingAndTheCursorCommitsWithThePage", func(t *testing.T) {
		t.Parallel()
		s, p := setup(t)
		page := func(at time.Time) []billing.Event {
			return []billing.Event{
				snapshotOf(t, billingtest.Customer("cus_1", "a@example.com"), at),
				snapshotOf(t, inv("paid", 900), at),
			}
		}
		if res := applySnapshots(t, p, ledger.Cursor{Name: "backfill/test/invoices", Value: "in_1"}, page(fetchedAt)...); res.Written != 2 {
			t.Fatalf("first import wrote %d; want 2", res.Written)
		}
		before := snapshot(t, s)
		if res := applySnapshots(t, p, ledger.Cursor{}, page(fetchedAt.Add(time.Hour))...); res.Written != 0 || len(res.Failed) != 0 {
			t.Errorf("second import: %+v; want nothing written", res)
		}
		if after := snapshot(t, s); !equalTables(before, after) {
			t.Errorf("a second import changed the tables:\n%v\nwas\n%v", after, before)
		}
		if v, err := s.Checkpoint(context.Background(), "backfill/test/invoices"); err != nil || v != "in_1" {
			t.Errorf("checkpoint %q, %v; want in_1", v, err)
		}
	})
	t.Run("AnUnreadableObjectFailsAlone", func(t *testing.T) {
		t.Parallel()
		s, p := setup(t)
		bad := inv("open", 0)
		bad["amount_due"] = "nine hundred"
		bad["id"] = "in_bad"
		res := applySnapshots(t, p, ledger.Cursor{}, snapshotOf(t, bad, fetchedAt), snapshotOf(t, billingtest.Customer("cus_2", "b@example.com"), fetchedAt))
		if res.Written != 1 || res.Failed["in_bad"] == nil {
			t.Errorf("%+v; want cus_2 written and in_bad failed", res)
		}
		var n int64
		if err := s.DB().Model(&models.Invoice{}).Where("stripe_id = ?", "in_bad").Count(&n).Error; err != nil || n != 0 {
			t.Errorf("in_bad rows %d, %v; want none", n, err)
		}
	})
}

func equalTables(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestSnapshotsConvergeWithLiveEvents: a backfill's pages, fetched in the
// middle of the customers' lifecycles, applied while the lifecycles'
// events arrive shuffled, leave every object's row as the events alone
// leave it (which event or snapshot a row names aside: that depends on
// the order).
func TestSnapshotsConvergeWithLiveEvents(t *testing.T) {
	t.Parallel()
	events := billingtest.Lifecycle(8, start)
	parsed := make([]billing.Event, len(events))
	for i, raw := range events {
		ev, err := billing.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		parsed[i] = ev
	}
	// Fetched at a second in the middle: each object as its latest event
	// up to then left it.
	fetchedAt := parsed[len(parsed)/2].Created.Add(500 * time.Millisecond)
	latest := map[string]billing.Event{}
	var order []string
	for _, ev := range parsed {
		if ev.ObjectID == "" || ev.Created.After(fetchedAt) {
			continue
		}
		key := ev.ObjectType + "/" + ev.ObjectID
		if _, ok := latest[key]; !ok {
			order = append(order, key)
		}
		if l, ok := latest[key]; !ok || !ev.Created.Before(l.Created) {
			latest[key] = ev
		}
	}
	var snaps []billing.Event
	for _, key := range order {
		snap, err := billing.Snapshot(latest[key].Object, billing.Fetched{At: fetchedAt, APIVersion: billingtest.APIVersion})
		if err != nil {
			t.Fatal(err)
		}
		snaps = append(snaps, snap)
	}

	rows := func(t *testing.T, s *models.Store) map[string][]string {
		t.Helper()
		out := map[string][]string{}
		ordering := []string{"last_event_id", "last_event_created"}
		for _, d := range []func() (string, []string){
			func() (string, []string) { return dump[models.Customer](t, s, "stripe_id", ordering...) },
			func() (string, []string) { return dump[models.Subscription](t, s, "stripe_id", ordering...) },
			func() (string, []string) { return dump[models.SubscriptionItem](t, s, "stripe_id") },
			func() (string, []string) { return dump[models.Invoice](t, s, "stripe_id", ordering...) },
			func() (string, []string) { return dump[models.Payment](t, s, "stripe_id", ordering...) },
			func() (string, []string) { return dump[models.Refund](t, s, "stripe_id", ordering...) },
		} {
			table, r := d()
			out[table] = r
		}
		return out
	}
	s0, p0 := setup(t)
	for _, raw := range events {
		process(t, p0, raw, ledger.Processed)
	}
	want := rows(t, s0)

	for seed := range uint64(3) {
		t.Run(fmt.Sprint("Seed", seed), func(t *testing.T) {
			t.Parallel()
			s, p := setup(t)
			shuffled := slices.Clone(events)
			rand.New(rand.NewPCG(seed, 24)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
			var wg sync.WaitGroup
			wg.Go(func() {
				for _, raw := range shuffled {
					if _, err := p.Process(context.Background(), raw); err != nil {
						t.Error(err)
					}
				}
			})
			wg.Go(func() {
				for page := range slices.Chunk(snaps, 5) {
					if _, err := p.ApplySnapshots(context.Background(), page, ledger.Cursor{}); err != nil {
						t.Error(err)
					}
				}
			})
			wg.Wait()
			got := rows(t, s)
			for table, w := range want {
				if !slices.Equal(got[table], w) {
					t.Errorf("%s:\n%v\nwant the events' own\n%v", table, got[table], w)
				}
			}
		})
	}
}
