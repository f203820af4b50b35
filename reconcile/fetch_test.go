package reconcile_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/reconcile"
)

func TestFetcher(t *testing.T) {
	t.Parallel()
	base := testenv.StripeMock(t)
	f, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: base})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("EveryStoredKind", func(t *testing.T) {
		for _, ref := range []billing.ObjectRef{
			{Type: "customer", ID: "cus_Fetch1"}, {Type: "subscription", ID: "sub_Fetch1"},
			{Type: "invoice", ID: "in_Fetch1"}, {Type: "payment_intent", ID: "pi_Fetch1"},
			{Type: "charge", ID: "ch_Fetch1", APIVersion: "2023-10-16"}, {Type: "refund", ID: "re_Fetch1"},
			{Type: "dispute", ID: "dp_Fetch1", Account: "acct_Fetch1"},
		} {
			raw, err := f.FetchObject(ctx, ref)
			if err != nil {
				t.Fatalf("FetchObject(%+v): %v", ref, err)
			}
			var obj struct{ ID, Object string }
			if err := json.Unmarshal(raw, &obj); err != nil {
				t.Fatalf("FetchObject(%+v) = %.200s: %v", ref, raw, err)
			}
			if obj.ID != ref.ID || obj.Object != ref.Type {
				t.Errorf("FetchObject(%+v) = id %q object %q", ref, obj.ID, obj.Object)
			}
		}
	})
	t.Run("UnknownKind", func(t *testing.T) {
		if _, err := f.FetchObject(ctx, billing.ObjectRef{Type: "issuing.card", ID: "ic_1"}); err == nil {
			t.Error("FetchObject of an issuing.card: no error")
		}
	})
}

// TestFetcherHeadersAndFailures: the event's API version and Connect
// account reach Stripe; a 404 is no object; an outage is a failure worth
// retrying, never a permanent one.
func TestFetcherHeadersAndFailures(t *testing.T) {
	t.Parallel()
	var gotVersion, gotAccount, gotPath string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotVersion, gotAccount, gotPath = r.Header.Get("Stripe-Version"), r.Header.Get("Stripe-Account"), r.URL.EscapedPath()
		switch r.URL.Path {
		case "/v1/charges/ch_gone":
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such charge"}}`))
		case "/v1/charges/ch_down":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"type":"api_error","message":"down"}}`))
		default:
			_, _ = w.Write([]byte(`{"id":"ch_1","object":"charge","amount_refunded":1000,"new_field":{"kept":true}}`))
		}
	}))
	defer srv.Close()
	f, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	raw, err := f.FetchObject(ctx, billing.ObjectRef{Type: "charge", ID: "ch_1", APIVersion: "2025-03-31.basil", Account: "acct_1"})
	if err != nil {
		t.Fatal(err)
	}
	if gotVersion != "2025-03-31.basil" || gotAccount != "acct_1" || gotPath != "/v1/charges/ch_1" {
		t.Errorf("request: Stripe-Version %q, Stripe-Account %q, path %q", gotVersion, gotAccount, gotPath)
	}
	if string(raw) != `{"id":"ch_1","object":"charge","amount_refunded":1000,"new_field":{"kept":true}}` {
		t.Errorf("object = %s, want Stripe's bytes", raw)
	}
	if _, _ = f.FetchObject(ctx, billing.ObjectRef{Type: "charge", ID: "ch_/../x"}); gotPath != "/v1/charges/ch_%2F..%2Fx" {
		t.Errorf("path = %q, want the id escaped", gotPath)
	}
	if raw, err := f.FetchObject(ctx, billing.ObjectRef{Type: "charge", ID: "ch_gone"}); raw != nil || err != nil {
		t.Errorf("404: %s, %v; want no object and no error", raw, err)
	}
	if _, err := f.FetchObject(ctx, billing.ObjectRef{Type: "charge", ID: "ch_down"}); err == nil || failure.Of(err) != failure.Transient {
		t.Errorf("503: %v (class %v), want a transient error", err, failure.Of(err))
	}
	srv.Close()
	if _, err := f.FetchObject(ctx, billing.ObjectRef{Type: "charge", ID: "ch_1"}); err == nil || failure.Of(err) != failure.Transient {
		t.Errorf("Stripe unreachable: %v (class %v), want a transient error", err, failure.Of(err))
	}
}
