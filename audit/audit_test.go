package audit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe-billing/billing/audit"
	"github.com/stripe-billing/billing/backfill"
	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/lookup"
	"github.com/stripe-billing/billing/reconcile"
)

// objects is a Stripe that serves objects by id from memory.
type objects struct {
	mu   sync.Mutex
	byID map[string]map[string]any
	gets int
	// refuse is the prefix of the ids answered 403, as Stripe answers a
	// key without read rights on their kind.
	refuse string
}

func (o *objects) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.gets++
	id := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
	if o.refuse != "" && strings.HasPrefix(id, o.refuse) {
		http.Error(w, `{"error":{"message":"The provided key does not have the required permissions for this endpoint"}}`, http.StatusForbidden)
		return
	}
	obj := o.byID[id]
	if obj == nil {
		http.Error(w, `{"error":{"message":"No such object"}}`, http.StatusNotFound)
		return
	}
	json.NewEncoder(w).Encode(obj)
}

// setup imports customers and invoices as a backfill would, and returns
// the store and a fetcher of a Stripe that holds the same objects.
func setup(t *testing.T, n int) (*models.Store, *objects, *reconcile.Fetcher) {
	t.Helper()
	stripe := &objects{byID: map[string]map[string]any{}}
	srv := httptest.NewServer(stripe)
	t.Cleanup(srv.Close)
	fetcher, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_audit", APIBase: srv.URL, Limits: reconcile.Limits{Rate: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	store := testenv.Store(t)
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var snaps []billing.Event
	for i := range n {
		c := billingtest.Customer(fmt.Sprintf("cus_%d", i), fmt.Sprintf("c%d@example.com", i))
		inv := billingtest.Invoice(fmt.Sprintf("in_%d", i), c["id"].(string), "", "paid", 500, 500)
		for _, o := range []map[string]any{c, inv} {
			stripe.byID[o["id"].(string)] = o
			raw, _ := json.Marshal(o)
			ev, err := billing.Snapshot(raw, billing.Fetched{At: at})
			if err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps, ev)
		}
	}
	if _, err := ledger.NewProcessor(store, nil).ApplySnapshots(context.Background(), snaps, ledger.Cursor{}); err != nil {
		t.Fatal(err)
	}
	return store, stripe, fetcher
}

func byKind(t *testing.T, reports []audit.KindReport) map[string]audit.KindReport {
	t.Helper()
	out := map[string]audit.KindReport{}
	for _, r := range reports {
		out[r.Kind] = r
	}
	return out
}

func TestAudit(t *testing.T) {
	t.Parallel()
	now := time.Now

	t.Run("RowsEqualToStripesHaveNoDrift", func(t *testing.T) {
		t.Parallel()
		store, _, fetcher := setup(t, 5)
		reports, err := audit.Run(context.Background(), audit.Config{}, lookup.New(store), fetcher, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		got := byKind(t, reports)
		if len(reports) != len(audit.Kinds) || got["customers"].Checked != 5 || got["invoices"].Checked != 5 {
			t.Fatalf("reports %+v; want every kind, 5 customers and 5 invoices checked", reports)
		}
		for _, r := range reports {
			if len(r.Drifted) != 0 || len(r.Failed) != 0 {
				t.Errorf("%s: drift %+v, failed %v; want none", r.Kind, r.Drifted, r.Failed)
			}
		}
	})
	t.Run("EachDriftNamesTheObjectAndTheField", func(t *testing.T) {
		t.Parallel()
		store, stripe, fetcher := setup(t, 5)
		// A row gone wrong, and an object Stripe no longer knows.
		if err := store.DB().Exec("UPDATE invoices SET amount_paid = 1, status = 'open' WHERE stripe_id = 'in_3'").Error; err != nil {
			t.Fatal(err)
		}
		delete(stripe.byID, "cus_2")
		reports, err := audit.Run(context.Background(), audit.Config{Kinds: []string{"invoices", "customers"}}, lookup.New(store), fetcher, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		got := byKind(t, reports)
		inv := got["invoices"]
		if len(inv.Drifted) != 1 || inv.Drifted[0].Ref.ID != "in_3" || !slices.Equal(inv.Drifted[0].Fields, []billing.FieldDrift{
			{Field: "status", Ours: "open", Stripes: "paid"}, {Field: "amount_paid", Ours: "1", Stripes: "500"},
		}) {
			t.Errorf("invoices drift %+v; want in_3's status and amount_paid", inv.Drifted)
		}
		if want := []audit.FieldCount{{Field: "amount_paid", Objects: 1}, {Field: "status", Objects: 1}}; !slices.Equal(inv.ByField(), want) {
			t.Errorf("by field %+v; want %+v", inv.ByField(), want)
		}
		cus := got["customers"]
		if len(cus.Drifted) != 1 || cus.Drifted[0].Ref.ID != "cus_2" || !cus.Drifted[0].Missing {
			t.Errorf("customers drift %+v; want cus_2 missing at Stripe", cus.Drifted)
		}
	})
	t.Run("AFixCorrectsTheRowAndTheHistorySaysSo", func(t *testing.T) {
		t.Parallel()
		store, _, fetcher := setup(t, 3)
		if err := store.DB().Exec("UPDATE invoices SET amount_paid = 1, status = 'open' WHERE stripe_id = 'in_1'").Error; err != nil {
			t.Fatal(err)
		}
		cfg := audit.Config{Kinds: []string{"invoices"}, Fix: true}
		reports, err := audit.Run(context.Background(), cfg, lookup.New(store), fetcher, ledger.NewProcessor(store, nil), now)
		if err != nil {
			t.Fatal(err)
		}
		if len(reports[0].Drifted) != 1 || reports[0].Fixed != 1 {
			t.Fatalf("report %+v; want in_1 differing and fixed", reports[0])
		}
		reports, err = audit.Run(context.Background(), audit.Config{Kinds: []string{"invoices"}}, lookup.New(store), fetcher, nil, now)
		if err != nil || len(reports[0].Drifted) != 0 {
			t.Errorf("after the fix: %+v, %v; want no drift", reports, err)
		}
		var h []models.StatusChange
		if err := store.DB().Where("object_id = ? AND source = ?", "in_1", models.SourceCorrection).Find(&h).Error; err != nil || len(h) != 1 || h[0].Status != "paid" {
			t.Errorf("in_1's corrections in the history: %+v, %v; want paid, once", h, err)
		}
		if _, err := audit.Run(context.Background(), cfg, lookup.New(store), fetcher, nil, now); err == nil {
			t.Error("a fix with nothing to apply with: no error")
		}
	})
	t.Run("ACustomerAndEverythingOfTheirs", func(t *testing.T) {
		t.Parallel()
		store, _, fetcher := setup(t, 5)
		if err := store.DB().Exec("UPDATE invoices SET amount_paid = 1 WHERE stripe_id IN ('in_1', 'in_3')").Error; err != nil {
			t.Fatal(err)
		}
		reports, err := audit.Run(context.Background(), audit.Config{Customer: "cus_3"}, lookup.New(store), fetcher, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		got := byKind(t, reports)
		if c, i := got["customers"], got["invoices"]; c.Checked != 1 || i.Checked != 1 || len(i.Drifted) != 1 || i.Drifted[0].Ref.ID != "in_3" {
			t.Errorf("customers %+v, invoices %+v; want cus_3 and its invoice in_3, which differs", c, i)
		}
		if got["charges"].Checked != 0 {
			t.Errorf("charges %+v; want none: cus_3 has none", got["charges"])
		}
	})
	t.Run("ASampleChecksThatMany", func(t *testing.T) {
		t.Parallel()
		store, stripe, fetcher := setup(t, 20)
		reports, err := audit.Run(context.Background(), audit.Config{Kinds: []string{"invoices"}, Sample: 7}, lookup.New(store), fetcher, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		stripe.mu.Lock()
		gets := stripe.gets
		stripe.mu.Unlock()
		if len(reports) != 1 || reports[0].Checked != 7 || gets != 7 {
			t.Errorf("reports %+v, %d fetches; want 7 invoices checked with 7 fetches", reports, gets)
		}
	})
	t.Run("ItsKindsAreBackfills", func(t *testing.T) {
		t.Parallel()
		var names []string
		for _, k := range audit.Kinds {
			names = append(names, k.Name)
		}
		if !slices.Equal(names, backfill.KindNames()) {
			t.Errorf("audit's kinds %v; want backfill's %v", names, backfill.KindNames())
		}
	})
	t.Run("AKindStripeRefusesIsNotComparedAndSaysWhatToCheck", func(t *testing.T) {
		t.Parallel()
		store, stripe, fetcher := setup(t, 3)
		stripe.refuse = "in_"
		reports, err := audit.Run(context.Background(), audit.Config{Kinds: []string{"customers", "invoices"}}, lookup.New(store), fetcher, nil, now)
		if err != nil {
			t.Fatal(err)
		}
		got := byKind(t, reports)
		if c := got["customers"]; c.Checked != 3 || len(c.Failed) != 0 {
			t.Errorf("customers %+v; want 3 compared", c)
		}
		inv := got["invoices"]
		if inv.Checked != 0 || len(inv.Drifted) != 0 || len(inv.Failed) != 3 {
			t.Fatalf("invoices %+v; want none compared, none taken for missing, 3 not compared", inv)
		}
		for id, err := range inv.Failed {
			if !strings.Contains(err.Error(), "Stripe refused") || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "check the key's read rights on invoices") {
				t.Errorf("%s: %v; want Stripe's refusal and what to check", id, err)
			}
		}
	})
	t.Run("AnUnknownKindIsRefused", func(t *testing.T) {
		t.Parallel()
		if _, err := audit.Run(context.Background(), audit.Config{Kinds: []string{"payouts"}}, nil, nil, nil, now); err == nil {
			t.Error("no error")
		}
	})
}
