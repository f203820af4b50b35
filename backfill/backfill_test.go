package backfill_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/backfill"
	"github.com/stripe-billing/billing/backfill/backfilltest"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/reconcile"
)

type env struct {
	base   string // the fake's URL
	store  *models.Store
	fake   *backfilltest.Stripe
	lister *reconcile.Fetcher
	apply  *ledger.Processor
	logger *slog.Logger
}

func setup(t *testing.T) *env {
	t.Helper()
	fake := backfilltest.New()
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	lister, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: backfilltest.Key, APIBase: srv.URL,
		Limits: reconcile.Limits{Rate: 1000, Concurrency: 2}})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	store := testenv.Store(t)
	return &env{base: srv.URL, store: store, fake: fake, lister: lister, apply: ledger.NewProcessor(store, logger), logger: logger}
}

func (e *env) backfill(t *testing.T, cfg backfill.Config) *backfill.Backfill {
	t.Helper()
	cfg.Backoff, cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
	b, err := backfill.New(cfg, e.logger, e.lister, e.apply, e.store)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkImported checks every object of the fake has its row, once, with
// Stripe's values, and one history row of source backfill.
func (e *env) checkImported(t *testing.T) {
	t.Helper()
	db := e.store.DB()
	var customers []models.Customer
	if err := db.Order("stripe_id").Find(&customers).Error; err != nil {
		t.Fatal(err)
	}
	want := e.fake.Lists["/v1/customers"]
	if len(customers) != len(want) {
		t.Fatalf("%d customer rows; want %d", len(customers), len(want))
	}
	byID := func(list []map[string]any) map[string]map[string]any {
		m := map[string]map[string]any{}
		for _, o := range list {
			m[o["id"].(string)] = o
		}
		return m
	}
	wantCus := byID(want)
	for _, c := range customers {
		o := wantCus[c.StripeID]
		if o == nil || *c.Email != o["email"] || c.StripeCreated.Unix() != o["created"] {
			t.Errorf("customer %s %s created %s; want Stripe's %v %v %v", c.StripeID, *c.Email, c.StripeCreated, o["id"], o["email"], o["created"])
		}
	}
	var invoices []models.Invoice
	if err := db.Order("stripe_id").Find(&invoices).Error; err != nil {
		t.Fatal(err)
	}
	wantInv := e.fake.Lists["/v1/invoices"]
	if len(invoices) != len(wantInv) {
		t.Fatalf("%d invoice rows; want %d", len(invoices), len(wantInv))
	}
	wantInvByID := byID(wantInv)
	for _, inv := range invoices {
		o := wantInvByID[inv.StripeID]
		if o == nil || *inv.Status != "paid" || *inv.AmountPaid != o["amount_paid"] || *inv.CustomerID != o["customer"] {
			t.Errorf("invoice %s %s paid %d of %s; want Stripe's %v", inv.StripeID, *inv.Status, *inv.AmountPaid, *inv.CustomerID, o)
		}
	}
	var perObject []struct {
		ObjectID string
		N        int
	}
	err := db.Model(&models.StatusChange{}).Select("object_id, COUNT(*) AS n").Where("source = ?", models.SourceBackfill).
		Group("object_id").Having("COUNT(*) <> 1").Scan(&perObject).Error
	if err != nil || len(perObject) != 0 {
		t.Errorf("objects with other than one history row: %v, %v", perObject, err)
	}
	var history int64
	if err := db.Model(&models.StatusChange{}).Where("object_type = 'invoice'").Count(&history).Error; err != nil || history != int64(len(wantInv)) {
		t.Errorf("%d invoice history rows, %v; want one per invoice (%d)", history, err, len(wantInv))
	}
	var ledgerRows int64
	if err := db.Model(&models.StripeEvent{}).Count(&ledgerRows).Error; err != nil || ledgerRows != 0 {
		t.Errorf("%d ledger rows, %v; want none: snapshots are no events", ledgerRows, err)
	}
}

func TestBackfill(t *testing.T) {
	t.Parallel()

	t.Run("ImportsEveryPageThrough429sAnd5xxAndCutPages", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.fake.Populate(250, 320)
		e.fake.Fault = func(r *http.Request, try int) (int, string, bool) {
			switch try { // every page fails three times, one way after the other
			case 1:
				return http.StatusTooManyRequests, `{"error":{"message":"Too many requests","type":"rate_limit_error"}}`, true
			case 2:
				return http.StatusInternalServerError, `{"error":{"message":"An unknown error occurred","type":"api_error"}}`, true
			case 3:
				return http.StatusOK, `{"object":"list","data":[{"id":"cus_0`, true // cut off on its way
			}
			return 0, "", false
		}
		reports, err := e.backfill(t, backfill.Config{}).Run(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]backfill.KindReport{}
		for _, r := range reports {
			got[r.Kind] = r
			if !r.Finished {
				t.Errorf("%s not finished: %+v", r.Kind, r)
			}
		}
		if c, i := got["customers"], got["invoices"]; c.Fetched != 250 || c.Written != 250 || c.Pages != 3 || i.Fetched != 320 || i.Written != 320 || i.Pages != 4 {
			t.Errorf("customers %+v, invoices %+v; want 250 in 3 pages and 320 in 4, all written", c, i)
		}
		e.checkImported(t)
		if total, most := e.fake.ServedPages(); total != 3+4+10 || most != 1 {
			t.Errorf("%d whole pages served, one up to %d times; want each of the 17 once", total, most)
		}
		if n := e.fake.Requests(); n != 17*4 {
			t.Errorf("%d requests; want 4 per page: a 429, a 500, a cut page, the page", n)
		}
	})

	t.Run("AKillResumesFromTheSavedCursor", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.fake.Populate(250, 320)
		// Killed while customers' second page is on its way (the first may
		// be half written), then once invoices' first page is written.
		for run := range 2 {
			ctx, cancel := context.WithCancel(context.Background())
			e.fake.OnPage(func(n int) {
				if run == 0 && n == 2 {
					cancel() // the page is on its way: its transaction never commits
				}
			})
			progress := func(r backfill.KindReport) {
				if run == 1 && r.Kind == "invoices" && r.Pages == 1 {
					cancel() // the next page is fetched ahead: it is not kept
				}
			}
			_, err := e.backfill(t, backfill.Config{Concurrency: 1}).Run(ctx, progress) // one kind at a time: the kills fall where planned
			cancel()
			if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "stopped") || !strings.Contains(err.Error(), "run again to resume") {
				t.Fatalf("killed in run %d: %v; want the run stopped, and what to do", run, err)
			}
			e.fake.OnPage(nil)
		}
		plan, err := e.backfill(t, backfill.Config{}).Plan(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if plan[0].Done != true || plan[2].Kind != "invoices" || plan[2].After == "" {
			t.Errorf("saved cursors %+v; want customers done, invoices part way", plan)
		}
		if _, err := e.backfill(t, backfill.Config{}).Run(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		e.checkImported(t)
		// Only the pages fetched and not written at each kill are fetched
		// again: the one being written and the one ahead at the first, the
		// one ahead at the second.
		if total, most := e.fake.ServedPages(); total > 17+3 || most > 2 {
			t.Errorf("%d whole pages served, one %d times; want at most the 17 and the 3 not written at the kills", total, most)
		}
	})

	t.Run("ASecondRunChangesNothing", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.fake.Populate(30, 40)
		if _, err := e.backfill(t, backfill.Config{PageSize: 7}).Run(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		before := e.fake.Requests()
		reports, err := e.backfill(t, backfill.Config{PageSize: 7}).Run(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		after := e.fake.Requests()
		for _, r := range reports {
			if !r.Done || r.Pages != 0 {
				t.Errorf("%s: %+v; want done before, nothing fetched", r.Kind, r)
			}
		}
		if after != before {
			t.Errorf("%d requests in the second run; want none", after-before)
		}
		e.checkImported(t)
	})

	t.Run("ARefusalNamesTheKindAndKeepsWhatCameBefore", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.fake.Populate(5, 5)
		e.fake.Refuse = "/v1/invoices"
		reports, err := e.backfill(t, backfill.Config{}).Run(context.Background(), nil)
		if err == nil || !strings.Contains(err.Error(), "invoices") || !strings.Contains(err.Error(), "read rights") || strings.Contains(err.Error(), "customers") {
			t.Fatalf("Run = %v; want a refusal naming invoices, and only them, and what to check", err)
		}
		for _, r := range reports {
			if r.Finished == (r.Kind == "invoices") {
				t.Errorf("%+v; want every kind but invoices imported", r)
			}
		}
		if reports[0].Written != 5 {
			t.Errorf("customers %+v; want 5 written", reports[0])
		}
	})

	t.Run("AnAccountThatRefusesIsNamedWithEachKind", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.fake.Populate(5, 5)
		e.fake.RefuseAccount = "acct_1Gone"
		reports, err := e.backfill(t, backfill.Config{Account: "acct_1Gone"}).Run(context.Background(), nil)
		for _, k := range backfill.KindNames() {
			if err == nil || !strings.Contains(err.Error(), "backfill: "+k+" on acct_1Gone: Stripe refused the list") {
				t.Errorf("Run = %v; want a line naming %s and the account", err, k)
			}
		}
		if err != nil && (!strings.Contains(err.Error(), "check that acct_1Gone is still connected to the platform") || !strings.Contains(err.Error(), "does not have access to account")) {
			t.Errorf("Run = %v; want what to check, and Stripe's words", err)
		}
		for _, r := range reports {
			if r.Pages != 0 || r.Finished {
				t.Errorf("%+v; want nothing imported", r)
			}
		}
	})

	t.Run("APageAlwaysCutOffNamesTheKindAndThePage", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.fake.Populate(150, 0)
		e.fake.Fault = func(r *http.Request, try int) (int, string, bool) {
			if r.URL.Query().Get("starting_after") == "cus_0050" { // the second page, every try
				return http.StatusOK, `{"object":"list","data":[{"id":"cus_0`, true
			}
			return 0, "", false
		}
		reports, err := e.backfill(t, backfill.Config{Kinds: []string{"customers"}, Attempts: 3}).Run(context.Background(), nil)
		if err == nil || !strings.Contains(err.Error(), `backfill: customers: 3 tries of the page after "cus_0050" failed`) ||
			!strings.Contains(err.Error(), "not a whole list page") || !strings.Contains(err.Error(), "run again later to resume from it") {
			t.Fatalf("Run = %v; want the kind, the page and what to do", err)
		}
		if reports[0].Written != 100 || reports[0].Finished {
			t.Errorf("%+v; want the first page kept", reports[0])
		}
		if v, _ := e.store.Checkpoint(context.Background(), backfill.CheckpointName("", "customers")); v != "after:cus_0050" {
			t.Errorf("cursor %q; want after the first page", v)
		}
	})

	t.Run("ARestartStartsFromTheNewestAgain", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.fake.Populate(30, 0)
		cfg := backfill.Config{Kinds: []string{"customers"}, PageSize: 7}
		if _, err := e.backfill(t, cfg).Run(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		cfg.Restart = true
		plan, err := e.backfill(t, cfg).Plan(context.Background())
		if err != nil || plan[0].Done || plan[0].After != "" {
			t.Errorf("Plan = %+v, %v; want customers from the start", plan, err)
		}
		reports, err := e.backfill(t, cfg).Run(context.Background(), nil)
		if err != nil || reports[0].Fetched != 30 || reports[0].Written != 0 || !reports[0].Finished || !reports[0].Oldest.Equal(backfilltest.T0) {
			t.Errorf("Run = %+v, %v; want all 30 fetched again, none written twice, back to the oldest", reports, err)
		}
		if v, _ := e.store.Checkpoint(context.Background(), backfill.CheckpointName("", "customers")); v != "done" {
			t.Errorf("cursor %q; want done", v)
		}
		if got := e.backfill(t, cfg).Origin(context.Background()); !got.Equal(backfilltest.T0) {
			t.Errorf("Origin = %s; want the account's creation, %s", got, backfilltest.T0)
		}
	})

	t.Run("SlicedKindsImportTheirRangesSideBySideAndResume", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		// A minute apart from T0, the fake account's creation, and one
		// from before the account: the first range takes it.
		e.fake.Populate(250, 320)
		old := billingtest.Customer("cus_old", "old@example.com")
		old["created"] = backfilltest.T0.Add(-24 * time.Hour).Unix()
		e.fake.Lists["/v1/customers"] = append(e.fake.Lists["/v1/customers"], old)
		cfg := backfill.Config{Slices: 4, PageSize: 30, CreatedUntil: backfilltest.T0.Add(6 * time.Hour)}
		ctx, cancel := context.WithCancel(context.Background())
		pages := 0
		_, err := e.backfill(t, cfg).Run(ctx, func(r backfill.KindReport) {
			if pages++; pages == 8 {
				cancel()
			}
		})
		cancel()
		if !errors.Is(err, context.Canceled) || strings.Count(err.Error(), "backfill: customers: stopped") > 1 {
			t.Fatalf("killed: %v; want the run stopped, said once a kind", err)
		}
		name := backfill.CheckpointName("", "customers") + "/created:0-" + strconv.FormatInt(cfg.CreatedUntil.Unix(), 10)
		t0 := backfilltest.T0.Unix()
		want := fmt.Sprintf("slices:%d,%d,%d,%d,%d", t0, t0+5400, t0+10800, t0+16200, t0+21600)
		if v, _ := e.store.Checkpoint(context.Background(), name); v != want {
			t.Errorf("customers' cursor %q; want its ranges %q", v, want)
		}
		whole := cfg // a rerun without --slices keeps the saved ranges
		whole.Slices = 1
		reports, err := e.backfill(t, whole).Run(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		e.checkImported(t)
		for _, r := range reports {
			if !r.Finished && !r.Done { // done: its ranges were, before the kill
				t.Errorf("%+v; want finished", r)
			}
		}
		if v, _ := e.store.Checkpoint(context.Background(), name); v != "done" {
			t.Errorf("customers' cursor %q; want done", v)
		}
		// customers 4+3+3+1 pages, invoices 3+3+3+2, the 7 others 4 each;
		// and what each range under way lost at the kill.
		if total, most := e.fake.ServedPages(); total > 50+2*4*4 || most > 2 {
			t.Errorf("%d whole pages served, one %d times; want at most the 50 and two a range at the kill", total, most)
		}
		again, err := e.backfill(t, cfg).Run(context.Background(), nil)
		if err != nil || !again[0].Done || again[0].Pages != 0 {
			t.Errorf("a third run: %+v, %v; want nothing fetched", again, err)
		}
	})

	t.Run("AnAccountsObjectsAndCursorsAreItsOwn", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.fake.Populate(3, 0)
		if _, err := e.backfill(t, backfill.Config{Account: "acct_1Test", Kinds: []string{"customers"}}).Run(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		var c models.Customer
		if err := e.store.DB().Where("stripe_id = ?", "cus_0001").Take(&c).Error; err != nil || c.Account == nil || *c.Account != "acct_1Test" {
			t.Errorf("customer account %v, %v; want acct_1Test", c.Account, err)
		}
		if v, err := e.store.Checkpoint(context.Background(), backfill.CheckpointName("acct_1Test", "customers")); err != nil || v != "done" {
			t.Errorf("the account's cursor %q, %v; want done", v, err)
		}
		if v, _ := e.store.Checkpoint(context.Background(), backfill.CheckpointName("", "customers")); v != "" {
			t.Errorf("the platform's cursor %q; want none", v)
		}
		for _, a := range e.fake.Accounts() {
			if a != "acct_1Test" {
				t.Errorf("a request on account %q; want every one on acct_1Test", a)
			}
		}
	})

	t.Run("TheConnectedAccountsAreListedPageByPage", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		for _, id := range []string{"acct_3", "acct_2", "acct_1"} {
			e.fake.Lists["/v1/accounts"] = append(e.fake.Lists["/v1/accounts"], map[string]any{"id": id, "object": "account"})
		}
		e.fake.Fault = func(r *http.Request, try int) (int, string, bool) {
			if try == 1 {
				return http.StatusTooManyRequests, `{"error":{"message":"Too many requests"}}`, true
			}
			return 0, "", false
		}
		ids, err := e.backfill(t, backfill.Config{PageSize: 2}).Accounts(context.Background())
		if err != nil || !slices.Equal(ids, []string{"acct_3", "acct_2", "acct_1"}) {
			t.Errorf("Accounts = %v, %v; want the three", ids, err)
		}
		if total, _ := e.fake.ServedPages(); total != 2 {
			t.Errorf("%d pages served; want 2 of 2", total)
		}
		if _, err := e.backfill(t, backfill.Config{Account: "acct_1"}).Accounts(context.Background()); err == nil {
			t.Error("a connected account listed accounts")
		}
	})
	t.Run("ACreatedRangeHasCursorsOfItsOwn", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.fake.Populate(30, 0) // created a minute apart from 2024-01-01
		t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
		cfg := backfill.Config{Kinds: []string{"customers"}, PageSize: 4, CreatedFrom: t0.Add(10 * time.Minute), CreatedUntil: t0.Add(20 * time.Minute)}
		reports, err := e.backfill(t, cfg).Run(context.Background(), nil)
		if err != nil || reports[0].Fetched != 10 || reports[0].Pages != 3 {
			t.Fatalf("Run = %+v, %v; want the 10 customers of the range in 3 pages", reports, err)
		}
		var ids []string
		if err := e.store.DB().Model(&models.Customer{}).Order("stripe_id").Pluck("stripe_id", &ids).Error; err != nil || len(ids) != 10 || ids[0] != "cus_0010" || ids[9] != "cus_0019" {
			t.Errorf("customers %v, %v; want cus_0010 to cus_0019", ids, err)
		}
		// The whole history is another import: its cursor is not the range's.
		reports, err = e.backfill(t, backfill.Config{Kinds: []string{"customers"}}).Run(context.Background(), nil)
		if err != nil || reports[0].Done || reports[0].Fetched != 30 || reports[0].Written != 20 {
			t.Errorf("the whole history: %+v, %v; want all 30 fetched, the 20 new written", reports, err)
		}
	})
	t.Run("FromBasilInvoicesComeWithTheirPayments", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		inv := billingtest.Invoice("in_1", "cus_1", "", "paid", 500, 500)
		payment := func(id, invoice string, created int64) map[string]any {
			return map[string]any{"id": id, "object": "invoice_payment", "invoice": invoice, "status": "paid", "currency": "usd", "amount_paid": 100,
				"amount_requested": 100, "created": created, "payment": map[string]any{"type": "payment_intent", "payment_intent": "pi_" + id}}
		}
		// Five payments, of which the invoice's own list holds the first:
		// the others come from the InvoicePayments' list, page by page.
		inv["payments"] = map[string]any{"object": "list", "has_more": true, "data": []any{payment("inpay_5", "in_1", 1700000005)}}
		for i := 5; i >= 1; i-- {
			e.fake.Lists["/v1/invoice_payments"] = append(e.fake.Lists["/v1/invoice_payments"], payment(fmt.Sprintf("inpay_%d", i), "in_1", int64(1700000000+i)))
			if i == 3 {
				e.fake.Lists["/v1/invoice_payments"] = append(e.fake.Lists["/v1/invoice_payments"], payment("inpay_other", "in_2", 1700000003))
			}
		}
		e.fake.Lists["/v1/invoices"] = []map[string]any{inv}
		b := e.backfill(t, backfill.Config{Kinds: []string{"invoices"}, APIVersion: "2025-05-28.basil", PageSize: 2})
		query := b.Request(backfill.KindReport{Kind: "invoices"}).Params.Encode()
		if !strings.Contains(query, "expand%5B%5D=data.payments") {
			t.Errorf("invoices' query %s; want their payments expanded", query)
		}
		if _, err := b.Run(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		var ids []string
		if err := e.store.DB().Model(&models.InvoicePayment{}).Where("invoice_id = ?", "in_1").Order("stripe_id").Pluck("stripe_id", &ids).Error; err != nil ||
			!slices.Equal(ids, []string{"inpay_1", "inpay_2", "inpay_3", "inpay_4", "inpay_5"}) {
			t.Errorf("in_1's payments %v, %v; want its five", ids, err)
		}
		if total, _ := e.fake.ServedPages(); total != 1+2 {
			t.Errorf("%d pages served; want the invoices' one and two of in_1's payments (of 2 each)", total)
		}
		if q := e.backfill(t, backfill.Config{Kinds: []string{"invoices"}}).Request(backfill.KindReport{Kind: "invoices"}).Params.Encode(); strings.Contains(q, "expand") {
			t.Errorf("2023-10-16 invoices' query %s; want no expansion: there are no InvoicePayments", q)
		}
	})
	t.Run("TheCatalogAndSchedulesAreImported", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		const v = "2026-08-26.dahlia"
		add := func(object, id string, set map[string]any) {
			o := stripefixture.Object(v, object)
			o["id"], o["created"] = id, backfilltest.T0.Unix()
			maps.Copy(o, set)
			path := "/v1/" + object + "s"
			e.fake.Lists[path] = append(e.fake.Lists[path], o)
		}
		add("product", "prod_pro", map[string]any{"name": "Pro"})
		add("price", "price_pro_monthly", map[string]any{"product": "prod_pro", "nickname": "Pro monthly", "unit_amount": 1500})
		add("subscription_schedule", "sub_sched_1", map[string]any{"customer": "cus_1", "status": "active"})
		cfg := backfill.Config{Kinds: []string{"products", "prices", "subscription_schedules"}, APIVersion: v}
		if _, err := e.backfill(t, cfg).Run(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		var got []string
		err := e.store.DB().Raw(`SELECT CONCAT(pr.stripe_id, ' ', pr.nickname, ' of ', p.name, ' ', pr.unit_amount, ' ', pr.recurring_interval)
			FROM prices pr JOIN products p ON p.stripe_id = pr.product_id
			UNION ALL SELECT CONCAT(stripe_id, ' ', status, ' ', customer_id) FROM subscription_schedules`).Scan(&got).Error
		if want := []string{"price_pro_monthly Pro monthly of Pro 1500 month", "sub_sched_1 active cus_1"}; err != nil || !slices.Equal(got, want) {
			t.Errorf("rows %q, %v; want %q", got, err, want)
		}
	})
	t.Run("AnUnknownKindIsRefused", func(t *testing.T) {
		t.Parallel()
		if _, err := backfill.New(backfill.Config{Kinds: []string{"payouts"}}, nil, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "customers") {
			t.Errorf("New = %v; want an error listing the kinds", err)
		}
	})
}
