// Package backfilltest is a Stripe that keeps state, for the tests and
// the benchmark of the backfill and the audit: its list endpoints served
// from memory with Stripe's pagination (newest first, limit,
// starting_after, has_more, created[gte], created[lt]), its objects by
// id, and the faults a test asks for.
package backfilltest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
)

// Key is the one API key the fake takes; any other is answered 401.
const Key = "sk_test_backfill"

// Stripe is the fake. Set Lists, Fault, Refuse and Latency before the
// first request; OnPage at any time.
type Stripe struct {
	// Lists holds each list's objects by path, newest first.
	Lists map[string][]map[string]any
	// Fault, when set, may answer r, the try-th request of its page
	// (1-based), in place of the page: it returns the status and body.
	Fault func(r *http.Request, try int) (status int, body string, ok bool)
	// Refuse is a path answered 403, as Stripe answers a key without
	// read rights on it.
	Refuse string
	// RefuseAccount is a Connect account whose requests are answered
	// 403, as Stripe answers for an account that left the platform.
	RefuseAccount string
	// Latency is how long each answer takes, as Stripe's round trip.
	Latency time.Duration

	mu       sync.Mutex
	onPage   func(n int)
	requests int
	served   map[string]int // whole pages served, by pageKey
	tries    map[string]int // requests, by pageKey
	times    []time.Time    // when each request came
	accounts []string
}

// New returns an empty fake.
func New() *Stripe {
	return &Stripe{Lists: map[string][]map[string]any{}, served: map[string]int{}, tries: map[string]int{}}
}

// OnPage sets what is told of each page served whole, with the count of
// requests since OnPage was last called; nil for nothing.
func (f *Stripe) OnPage(fn func(n int)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.onPage, f.requests = fn, 0
}

func (f *Stripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests++
	f.times = append(f.times, time.Now())
	n := f.requests
	f.accounts = append(f.accounts, r.Header.Get("Stripe-Account"))
	key := pageKey(r)
	f.tries[key]++
	try := f.tries[key]
	onPage := f.onPage
	f.mu.Unlock()
	if f.Latency > 0 {
		time.Sleep(f.Latency)
	}
	if r.Header.Get("Authorization") != "Bearer "+Key {
		http.Error(w, `{"error":{"message":"Invalid API Key provided"}}`, http.StatusUnauthorized)
		return
	}
	if r.URL.Path == f.Refuse {
		http.Error(w, `{"error":{"message":"The provided key does not have the required permissions for this endpoint","type":"invalid_request_error"}}`, http.StatusForbidden)
		return
	}
	if a := r.Header.Get("Stripe-Account"); a != "" && a == f.RefuseAccount {
		http.Error(w, `{"error":{"message":"The provided key does not have access to account '`+a+`' (or that account does not exist). Application access may have been revoked.","type":"invalid_request_error"}}`, http.StatusForbidden)
		return
	}
	if f.Fault != nil {
		if status, body, ok := f.Fault(r, try); ok {
			w.WriteHeader(status)
			fmt.Fprint(w, body)
			return
		}
	}
	if r.URL.Path == "/v1/account" {
		_ = json.NewEncoder(w).Encode(map[string]any{"id": "acct_fake", "object": "account", "created": T0.Unix()})
		return
	}
	all, ok := f.Lists[r.URL.Path]
	if !ok { // an object by id: /v1/<list>/<id>
		list, id := r.URL.Path[:strings.LastIndex(r.URL.Path, "/")], r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		if i := slices.IndexFunc(f.Lists[list], func(o map[string]any) bool { return o["id"] == id }); i >= 0 {
			_ = json.NewEncoder(w).Encode(f.Lists[list][i])
			return
		}
	}
	q := r.URL.Query()
	if q.Has("created[gte]") || q.Has("created[lt]") {
		gte, _ := strconv.ParseInt(q.Get("created[gte]"), 10, 64)
		lt, err := strconv.ParseInt(q.Get("created[lt]"), 10, 64)
		if err != nil {
			lt = 1 << 62
		}
		var kept []map[string]any
		for _, o := range all {
			if c := o["created"].(int64); c >= gte && c < lt {
				kept = append(kept, o)
			}
		}
		all = kept
	}
	if inv := q.Get("invoice"); inv != "" { // the payments of one invoice
		var kept []map[string]any
		for _, o := range all {
			if o["invoice"] == inv {
				kept = append(kept, o)
			}
		}
		all = kept
	}
	limit, _ := strconv.Atoi(q.Get("limit"))
	start := 0
	if after := q.Get("starting_after"); after != "" {
		i := slices.IndexFunc(all, func(o map[string]any) bool { return o["id"] == after })
		if i < 0 {
			http.Error(w, `{"error":{"message":"No such object"}}`, http.StatusBadRequest)
			return
		}
		start = i + 1
	}
	end := min(start+limit, len(all))
	body, err := json.Marshal(map[string]any{"object": "list", "url": r.URL.Path, "data": all[start:end], "has_more": end < len(all)})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	f.mu.Lock()
	f.served[key]++
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
	if onPage != nil {
		onPage(n)
	}
}

// pageKey names the page r asks for: its list, created range and
// starting_after.
func pageKey(r *http.Request) string {
	q := r.URL.Query()
	return r.URL.Path + "?" + q.Get("created[gte]") + "-" + q.Get("created[lt]") + "&" + q.Get("starting_after")
}

// Requests is how many requests the fake had since OnPage was called.
func (f *Stripe) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests
}

// Times is when each request came, in order.
func (f *Stripe) Times() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.times)
}

// Accounts is each request's Stripe-Account header, in order.
func (f *Stripe) Accounts() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.accounts)
}

// ServedPages is how many whole pages were served, and the most times
// any one was.
func (f *Stripe) ServedPages() (total, most int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, n := range f.served {
		total += n
		most = max(most, n)
	}
	return total, most
}

// T0 is when the first object Populate makes was created; each next one
// a minute later.
var T0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Populate fills the fake with customers and paid invoices (cus_0000,
// in_0000, ..., invoice i of customer i mod customers), newest first,
// created a minute apart from T0.
func (f *Stripe) Populate(customers, invoices int) {
	for i := customers - 1; i >= 0; i-- {
		c := billingtest.Customer(fmt.Sprintf("cus_%04d", i), fmt.Sprintf("c%d@example.com", i))
		c["created"] = T0.Add(time.Duration(i) * time.Minute).Unix()
		f.Lists["/v1/customers"] = append(f.Lists["/v1/customers"], c)
	}
	for i := invoices - 1; i >= 0; i-- {
		amount := int64(100 + i)
		inv := billingtest.Invoice(fmt.Sprintf("in_%04d", i), fmt.Sprintf("cus_%04d", i%customers), "", "paid", amount, amount)
		inv["created"] = T0.Add(time.Duration(i) * time.Minute).Unix()
		f.Lists["/v1/invoices"] = append(f.Lists["/v1/invoices"], inv)
	}
}

// PopulateCharges adds the succeeded charge of each invoice (ch_ and the
// invoice's id), created with it.
func (f *Stripe) PopulateCharges() {
	for _, inv := range f.Lists["/v1/invoices"] {
		id := inv["id"].(string)
		ch := billingtest.Charge("ch_"+id[3:], inv["customer"].(string), "", id, "succeeded", inv["amount_paid"].(int64))
		ch["created"] = inv["created"]
		f.Lists["/v1/charges"] = append(f.Lists["/v1/charges"], ch)
	}
}
