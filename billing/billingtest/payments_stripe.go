package billingtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
)

// PaymentsStripe is a fake Stripe in the test process that lists each
// invoice's InvoicePayments as a test set them (GET
// /v1/invoice_payments?invoice=), and counts the calls by invoice, with
// the API version each asked for. Any other request fails the test.
type PaymentsStripe struct {
	// URL is its API base, closed when the test ends.
	URL      string
	t        testing.TB
	mu       sync.Mutex
	payments map[string][]map[string]any
	calls    map[string][]string // invoice: the Stripe-Version of each call
}

// NewPaymentsStripe starts a PaymentsStripe for t.
func NewPaymentsStripe(t testing.TB) *PaymentsStripe {
	f := &PaymentsStripe{t: t, payments: map[string][]map[string]any{}, calls: map[string][]string{}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

func (f *PaymentsStripe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	invoice := r.URL.Query().Get("invoice")
	if r.Method != http.MethodGet || r.URL.Path != "/v1/invoice_payments" || invoice == "" {
		f.t.Errorf("fake Stripe asked %s %s", r.Method, r.URL)
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	f.calls[invoice] = append(f.calls[invoice], r.Header.Get("Stripe-Version"))
	data := f.payments[invoice]
	f.mu.Unlock()
	if data == nil {
		data = []map[string]any{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data, "has_more": false, "url": "/v1/invoice_payments"})
}

// Set makes payments the list of invoice's payments.
func (f *PaymentsStripe) Set(invoice string, payments []map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.payments[invoice] = payments
}

// Called returns the Stripe-Version of each call for invoice's payments.
func (f *PaymentsStripe) Called(invoice string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls[invoice])
}
