package reconcile_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
		for _, typ := range billing.ObjectTypes() {
			ref := billing.ObjectRef{Type: typ, ID: "obj_Fetch1"}
			switch typ {
			case "charge":
				ref.APIVersion = "2023-10-16"
			case "dispute":
				ref.Account = "acct_Fetch1"
			}
			raw, err := f.FetchObject(ctx, ref)
			if err != nil {
				t.Fatalf("FetchObject(%+v): %v", ref, err)
			}
			if raw == nil && typ == "invoice_payment" {
				continue // stripe-mock v0.183.0 serves 2023-10-16, before InvoicePayments: 404, settled by event id
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

// fakeStripe answers each GET by the last part of its path (the id):
// with the status the id names after its last _ (evt_x_404), or with
// the event when none does; it counts the calls per id and keeps the
// Stripe-Account headers it saw.
type fakeStripe struct {
	*httptest.Server
	mu       sync.Mutex
	calls    map[string]int
	accounts []string
}

func newFakeStripe(t *testing.T) *fakeStripe {
	f := &fakeStripe{calls: map[string]int{}}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := path.Base(r.URL.Path)
		f.mu.Lock()
		f.calls[id]++
		f.accounts = append(f.accounts, r.Header.Get("Stripe-Account"))
		f.mu.Unlock()
		if strings.Contains(id, "retry") {
			w.Header().Set("Stripe-Should-Retry", "true")
		}
		if code, err := strconv.Atoi(id[strings.LastIndex(id, "_")+1:]); err == nil {
			w.WriteHeader(code)
			_, _ = fmt.Fprintf(w, `{"error":{"type":"invalid_request_error","message":"answered %d"}}`, code)
			return
		}
		_, _ = fmt.Fprintf(w, `{"id":%q,"object":"event","type":"invoice.paid"}`, id)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeStripe) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

// outcomes records what a Fetcher observes.
type outcomes struct {
	mu  sync.Mutex
	got map[string]int
}

func (o *outcomes) observe(purpose, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.got == nil {
		o.got = map[string]int{}
	}
	o.got[purpose+" "+outcome]++
}

func (o *outcomes) n(purpose, outcome string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.got[purpose+" "+outcome]
}

// observedFetcher is a Fetcher of base within limits, and what it observes.
func observedFetcher(t *testing.T, base string, limits reconcile.Limits) (*reconcile.Fetcher, *outcomes) {
	t.Helper()
	seen := &outcomes{}
	f, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: base, Observe: seen.observe, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	return f, seen
}

// TestFetchEventClasses: Stripe's 400, 403 or 404 for an id or a claimed
// account is unverified; 429, 5xx and a 404 Stripe says to retry are
// transient; an account not of Stripe's form is unverified without a
// call, and never a header.
func TestFetchEventClasses(t *testing.T) {
	t.Parallel()
	stripe := newFakeStripe(t)
	f, seen := observedFetcher(t, stripe.URL, reconcile.Limits{Rate: 1e6})
	tests := []struct {
		id, account string
		want        failure.Class
		outcome     string
		calls       int
	}{
		{"evt_ok", "", "", reconcile.OutcomeOK, 1},
		{"evt_ok_acct", "acct_1Abc", "", reconcile.OutcomeOK, 1},
		{"evt_x_404", "", failure.Unverified, reconcile.OutcomeNotFound, 1},
		{"evt_x_400", "acct_1Abc", failure.Unverified, reconcile.OutcomeRefused, 1},
		{"evt_x_403", "acct_stranger", failure.Unverified, reconcile.OutcomeRefused, 1},
		{"evt_x_429", "", failure.Transient, reconcile.OutcomeRateLimited, 1},
		{"evt_x_500", "", failure.Transient, reconcile.OutcomeError, 1},
		{"evt_x_503", "", failure.Transient, reconcile.OutcomeError, 1},
		{"evt_x_401", "", failure.Transient, reconcile.OutcomeError, 1},
		{"evt_retry_404", "", failure.Transient, reconcile.OutcomeError, 1},
		{"evt_crlf", "acct_1\r\nStripe-Account: acct_2", failure.Unverified, "", 0},
		{"evt_dash", "acct_1-2", failure.Unverified, "", 0},
		{"evt_prefix", "acct_", failure.Unverified, "", 0},
		{"evt_other", "cus_1", failure.Unverified, "", 0},
	}
	for _, tt := range tests {
		body, err := f.FetchEvent(context.Background(), tt.id, tt.account)
		switch {
		case tt.want == "" && (err != nil || !strings.Contains(string(body), tt.id)):
			t.Errorf("FetchEvent(%s, %q) = %s, %v; want the event", tt.id, tt.account, body, err)
		case tt.want != "" && (err == nil || failure.Of(err) != tt.want):
			t.Errorf("FetchEvent(%s, %q) = %v (class %s), want class %s", tt.id, tt.account, err, failure.Of(err), tt.want)
		}
		if n := stripe.count(tt.id); n != tt.calls {
			t.Errorf("FetchEvent(%s, %q): %d calls, want %d", tt.id, tt.account, n, tt.calls)
		}
		if tt.outcome != "" && seen.n(reconcile.PurposeVerify, tt.outcome) == 0 {
			t.Errorf("FetchEvent(%s, %q): outcome %s not observed (%v)", tt.id, tt.account, tt.outcome, seen.got)
		}
	}
	for _, a := range stripe.accounts {
		if a != "" && a != "acct_1Abc" && a != "acct_stranger" {
			t.Errorf("Stripe-Account %q reached Stripe", a)
		}
	}
	// A tie's object: Stripe's refusal is no object (settled by event id),
	// an outage an error to retry.
	for id, wantErr := range map[string]bool{"ch_x_404": false, "ch_x_403": false, "ch_x_400": false, "ch_x_500": true, "ch_x_429": true} {
		obj, err := f.FetchObject(context.Background(), billing.ObjectRef{Type: "charge", ID: id})
		if obj != nil || (err != nil) != wantErr || (err != nil && failure.Of(err) != failure.Transient) {
			t.Errorf("FetchObject(%s) = %s, %v; want no object, error %v", id, obj, err, wantErr)
		}
	}
	if seen.n(reconcile.PurposeTie, reconcile.OutcomeRefused) != 2 || seen.n(reconcile.PurposeTie, reconcile.OutcomeNotFound) != 1 {
		t.Errorf("tie outcomes %v, want 2 refused and 1 not_found", seen.got)
	}
}

// TestFetcherNegativeCache: a failed or refused lookup is not repeated
// within the TTL (the same class of error, answered from memory), on the
// same account only; a success is not remembered; after the TTL Stripe
// is asked again.
func TestFetcherNegativeCache(t *testing.T) {
	t.Parallel()
	stripe := newFakeStripe(t)
	const ttl = time.Second
	f, seen := observedFetcher(t, stripe.URL, reconcile.Limits{Rate: 1e6, NegativeTTL: ttl})
	ctx := context.Background()
	start := time.Now()
	for range 5 {
		if _, err := f.FetchEvent(ctx, "evt_forged_404", ""); failure.Of(err) != failure.Unverified {
			t.Fatalf("FetchEvent of an unknown id: %v, want unverified", err)
		}
		if _, err := f.FetchEvent(ctx, "evt_down_500", ""); err == nil || failure.Of(err) != failure.Transient {
			t.Fatalf("FetchEvent during an outage: %v, want transient", err)
		}
		if _, err := f.FetchEvent(ctx, "evt_fine", ""); err != nil {
			t.Fatal(err)
		}
		if obj, err := f.FetchObject(ctx, billing.ObjectRef{Type: "invoice", ID: "in_gone_404"}); obj != nil || err != nil {
			t.Fatalf("FetchObject of a missing invoice = %s, %v", obj, err)
		}
	}
	if time.Since(start) < ttl {
		for id, want := range map[string]int{"evt_forged_404": 1, "evt_down_500": 1, "evt_fine": 5, "in_gone_404": 1} {
			if n := stripe.count(id); n != want {
				t.Errorf("%s: %d calls within the TTL, want %d", id, n, want)
			}
		}
		if n := seen.n(reconcile.PurposeVerify, reconcile.OutcomeCacheHit); n != 8 {
			t.Errorf("%d verify cache hits, want 8", n)
		}
		if n := seen.n(reconcile.PurposeTie, reconcile.OutcomeCacheHit); n != 4 {
			t.Errorf("%d tie cache hits, want 4", n)
		}
	} else {
		t.Logf("the loop outlasted the TTL (%s): counts within it not checked", time.Since(start))
	}
	if _, err := f.FetchEvent(ctx, "evt_forged_404", "acct_1Abc"); failure.Of(err) != failure.Unverified {
		t.Fatal(err)
	}
	if n := stripe.count("evt_forged_404"); n != 2 {
		t.Errorf("another account: %d calls in all, want 2 (its own lookup)", n)
	}
	time.Sleep(ttl)
	if _, err := f.FetchEvent(ctx, "evt_forged_404", ""); failure.Of(err) != failure.Unverified {
		t.Fatal(err)
	}
	if n := stripe.count("evt_forged_404"); n != 3 {
		t.Errorf("after the TTL: %d calls in all, want 3", n)
	}
}

// TestFetcherLimits: fetches of events at once beyond the concurrency
// cap, or beyond what the rate allows now, are refused as limited
// (transient) without a call; a tie's fetch waits for its turn; the calls
// made stay within rate × elapsed + burst.
func TestFetcherLimits(t *testing.T) {
	t.Parallel()
	t.Run("Concurrency", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		var inFlight, most atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n := inFlight.Add(1)
			defer inFlight.Add(-1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			<-release
			_, _ = fmt.Fprintf(w, `{"id":%q}`, path.Base(r.URL.Path))
		}))
		defer srv.Close()
		f, seen := observedFetcher(t, srv.URL, reconcile.Limits{Rate: 1000, Concurrency: 2})
		var wg sync.WaitGroup
		errs := make(chan error, 6)
		for i := range 6 {
			wg.Go(func() {
				_, err := f.FetchEvent(context.Background(), fmt.Sprintf("evt_c%d", i), "")
				errs <- err
			})
		}
		testenv.Eventually(t, 10*time.Second, func() bool {
			return seen.n(reconcile.PurposeVerify, reconcile.OutcomeLimited) == 4 && inFlight.Load() == 2
		}, "2 fetches at Stripe, 4 limited")
		close(release)
		wg.Wait()
		close(errs)
		failed := 0
		for err := range errs {
			if err != nil {
				failed++
				if failure.Of(err) != failure.Transient {
					t.Errorf("limited: %v (class %s), want transient", err, failure.Of(err))
				}
			}
		}
		if most.Load() != 2 || failed != 4 || seen.n(reconcile.PurposeVerify, reconcile.OutcomeOK) != 2 {
			t.Errorf("%d in flight at most, %d failed, outcomes %v; want 2, 4, 2 ok", most.Load(), failed, seen.got)
		}
	})
	t.Run("Rate", func(t *testing.T) {
		t.Parallel()
		stripe := newFakeStripe(t)
		const rate, burst = 20, 4
		f, seen := observedFetcher(t, stripe.URL, reconcile.Limits{Rate: rate, Concurrency: burst})
		start := time.Now()
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Go(func() { _, _ = f.FetchEvent(context.Background(), fmt.Sprintf("evt_r%d", i), "") })
		}
		wg.Wait()
		elapsed := time.Since(start)
		ok, limited := seen.n(reconcile.PurposeVerify, reconcile.OutcomeOK), seen.n(reconcile.PurposeVerify, reconcile.OutcomeLimited)
		if bound := burst + int(rate*elapsed.Seconds()); ok > bound || ok+limited != 40 || limited == 0 {
			t.Errorf("%d calls, %d limited in %s; want at most %d calls, the rest limited", ok, limited, elapsed, bound)
		}
	})
	t.Run("TiesWait", func(t *testing.T) {
		t.Parallel()
		stripe := newFakeStripe(t)
		const rate, burst = 20, 2
		f, seen := observedFetcher(t, stripe.URL, reconcile.Limits{Rate: rate, Concurrency: burst, Wait: 10 * time.Second})
		start := time.Now()
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				if _, err := f.FetchObject(context.Background(), billing.ObjectRef{Type: "charge", ID: fmt.Sprintf("ch_w%d", i)}); err != nil {
					t.Errorf("FetchObject: %v", err)
				}
			})
		}
		wg.Wait()
		elapsed := time.Since(start)
		if ok := seen.n(reconcile.PurposeTie, reconcile.OutcomeOK); ok != 10 || ok > burst+int(rate*elapsed.Seconds()) {
			t.Errorf("%d calls in %s (outcomes %v); want all 10, within %d a second + %d", ok, elapsed, seen.got, rate, burst)
		}
	})
}

// The API key travels in every request: each client refuses a base that
// would send it in the clear off this machine (plain http is for
// stripe-mock on loopback).
func TestAPIBaseHTTPSUnlessLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base string
		ok   bool
	}{
		{"", true},
		{"https://api.stripe.com", true},
		{"https://stripe.internal.example:8443", true},
		{"http://127.0.0.1:12111", true},
		{"http://127.8.9.10:12111", true},
		{"http://[::1]:12111", true},
		{"http://localhost:12111/", true},
		{"http://LocalHost", true},
		{"http://api.stripe.com", false},
		{"http://10.0.0.5:12111", false},
		{"http://[::ffff:10.0.0.5]:12111", false},
		{"http://localhost.example.com", false},
		{"http://127.0.0.1.nip.io", false},
		{"ftp://127.0.0.1", false},
	}
	for _, tt := range tests {
		_, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: tt.base})
		if tt.ok != (err == nil) {
			t.Errorf("NewFetcher(APIBase %q) = %v, want ok %v", tt.base, err, tt.ok)
		}
		if tt.ok {
			continue // CheckEndpoints would call Stripe
		}
		if _, err := reconcile.CheckEndpoints(context.Background(), reconcile.EndpointsConfig{APIKey: "sk_test_123", APIBase: tt.base}); err == nil || !strings.Contains(err.Error(), "API base must be") {
			t.Errorf("CheckEndpoints(APIBase %q) = %v, want refused for its base", tt.base, err)
		}
	}
}
