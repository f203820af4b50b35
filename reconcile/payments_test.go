package reconcile_test

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

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/reconcile"
)

// TestFetchInvoicePayments: an invoice's payments are listed 100 a page,
// page after page (starting_after the last), in the event's version and
// on its account; Stripe's 404 is none and no error, a 5xx or a page cut
// off an error, an account not of Stripe's form none without a call.
func TestFetchInvoicePayments(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var asked []string
	calls := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(asked)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, fmt.Sprintf("%s invoice=%s limit=%s after=%s version=%s account=%s", r.URL.Path, q.Get("invoice"),
			q.Get("limit"), q.Get("starting_after"), r.Header.Get("Stripe-Version"), r.Header.Get("Stripe-Account")))
		page := func(more bool, ids ...string) {
			var data []any
			for _, id := range ids {
				data = append(data, map[string]any{"id": id, "object": "invoice_payment"})
			}
			_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "has_more": more})
		}
		switch inv := q.Get("invoice"); {
		case inv == "in_two" && q.Get("starting_after") == "":
			page(true, "inpay_1", "inpay_2")
		case inv == "in_two":
			page(false, "inpay_3")
		case inv == "in_gone":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"message":"No such invoice"}}`))
		case inv == "in_down":
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte(`{"object":"list","data":[`))
		}
	}))
	t.Cleanup(srv.Close)
	f, seen := observedFetcher(t, srv.URL, reconcile.Limits{})
	ctx := context.Background()
	ref := func(id string) billing.ObjectRef {
		return billing.ObjectRef{Type: "invoice", ID: id, APIVersion: "2025-05-28.basil", Account: "acct_1"}
	}

	got, err := f.FetchInvoicePayments(ctx, ref("in_two"))
	var ids []string
	for _, raw := range got {
		var o struct{ ID string }
		_ = json.Unmarshal(raw, &o)
		ids = append(ids, o.ID)
	}
	if err != nil || strings.Join(ids, ",") != "inpay_1,inpay_2,inpay_3" {
		t.Errorf("payments of in_two = %v, %v; want inpay_1 to 3", ids, err)
	}
	want := []string{
		"/v1/invoice_payments invoice=in_two limit=100 after= version=2025-05-28.basil account=acct_1",
		"/v1/invoice_payments invoice=in_two limit=100 after=inpay_2 version=2025-05-28.basil account=acct_1",
	}
	if got := strings.Join(calls(), "\n"); got != strings.Join(want, "\n") {
		t.Errorf("asked\n%s\nwant\n%s", got, strings.Join(want, "\n"))
	}
	if got, err := f.FetchInvoicePayments(ctx, ref("in_gone")); got != nil || err != nil {
		t.Errorf("payments of an invoice Stripe does not know = %v, %v; want none, no error", got, err)
	}
	for _, id := range []string{"in_down", "in_cut"} {
		if got, err := f.FetchInvoicePayments(ctx, ref(id)); got != nil || err == nil || !strings.Contains(err.Error(), id) {
			t.Errorf("payments of %s = %v, %v; want an error naming it", id, got, err)
		}
	}
	n := len(calls())
	bad := ref("in_two")
	bad.Account = "acct_1; drop"
	if got, err := f.FetchInvoicePayments(ctx, bad); got != nil || err != nil || len(calls()) != n {
		t.Errorf("payments on account %q = %v, %v after %d calls; want none, no error, no call", bad.Account, got, err, len(calls())-n)
	}
	if ok := seen.n(reconcile.PurposeLinks, reconcile.OutcomeOK); ok != 3 {
		t.Errorf("%d calls observed ok for links, want 3 (two pages, the page cut off)", ok)
	}
}
