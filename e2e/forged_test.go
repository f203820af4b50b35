package e2e

import (
	"database/sql"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
)

// TestForgedEventNotLaundered (issue 21): with the built binaries and a
// Stripe whose API answers 500 to everything, an unsigned invoice.paid
// dated 2100, published straight on <ns>.events after a genuine signed
// lifecycle left the invoice open, runs out of attempts and is parked;
// its ledger row holds no payload. `billing reprocess --status dead`
// (with and without STRIPE_API_KEY) skips it, saying why, and `billing
// sweep` runs; the invoice stays open, and a genuine signed
// invoice.voided sent through the api afterwards applies.
func TestForgedEventNotLaundered(t *testing.T) {
	t.Parallel()
	var stripeCalls atomic.Int64
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stripeCalls.Add(1)
		http.Error(w, `{"error":{"type":"api_error","message":"down"}}`, http.StatusInternalServerError)
	}))
	t.Cleanup(stripe.Close)
	withStripe := map[string]string{"STRIPE_API_KEY": "sk_test_e2e", "STRIPE_API_BASE": stripe.URL}
	s := newStack(t)
	api := s.startReady(withStripe)

	const inv = "in_e2e_forged"
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	invoice := func(status string, paid int64) map[string]any {
		return billingtest.Invoice(inv, "cus_e2e_forged", "", status, 1500, paid)
	}
	for i, step := range []struct{ typ, status string }{{"invoice.created", "draft"}, {"invoice.finalized", "open"}} {
		id := billingtest.NewEventID()
		s.postApplied(t, api, id, billingtest.Event(id, step.typ, at.Add(time.Duration(i)*time.Second), invoice(step.status, 0)))
	}
	if got := s.invoiceStatus(t, inv); got != "open" {
		t.Fatalf("invoice after the genuine lifecycle: %s, want open", got)
	}

	// Published by someone with broker access: no signature.
	forged := billingtest.NewEventID()
	body := billingtest.Event(forged, "invoice.paid", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), invoice("paid", 1500))
	msg := broker.NewEvent(forged, "invoice.paid", body, "", "support", time.Now())
	if err := testenv.Channel(t).PublishWithContext(t.Context(), s.topo.Events, "invoice.paid", true, false, msg); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() bool { _, ok := s.parked(t)[forged]; return ok }, "the forged event parked")
	if class := s.parked(t)[forged]; class != "transient" {
		t.Errorf("forged event parked as %q, want transient (Stripe answered 500)", class)
	}
	if stripeCalls.Load() == 0 {
		t.Errorf("the worker never asked Stripe for the forged event")
	}
	// The router marks the ledger row dead once the DLQ confirmed the copy:
	// just after the message shows there.
	var status string
	var payload, signature, created sql.NullString
	var err error
	testenv.Eventually(t, 10*time.Second, func() bool {
		err = s.db.QueryRow("SELECT status, payload, signature, created FROM stripe_events WHERE id = ?", forged).Scan(&status, &payload, &signature, &created)
		return err == nil
	}, "the forged event's ledger row")
	if status != "dead" || payload.Valid || signature.Valid || created.Valid {
		t.Errorf("ledger row of the forged event: %s payload %v signature %v created %v, %v; want dead, no payload, signature or created",
			status, payload.Valid, signature.Valid, created.String, err)
	}

	for _, tt := range []struct {
		name   string
		env    map[string]string
		reason string
	}{
		{"StripeDown", withStripe, "fetch event " + forged + " from Stripe"},
		{"NoAPIKey", nil, "no_api_key"},
	} {
		out, err := s.run(tt.env, "reprocess", "--status", "dead")
		if err == nil {
			t.Errorf("%s: billing reprocess --status dead exited 0 with an event skipped:\n%s", tt.name, out)
		}
		line := ""
		for l := range strings.SplitSeq(out, "\n") {
			if strings.HasPrefix(l, "skipped "+forged+" invoice.paid (was dead") {
				line = l
			}
		}
		if !strings.Contains(line, "not verified") || !strings.Contains(line, tt.reason) ||
			!strings.Contains(out, "reprocessed 1 event(s): 0 applied, 0 without a handler, 1 skipped (not verified), 0 failed") {
			t.Errorf("%s: reprocess does not say it skipped %s for %q:\n%s", tt.name, forged, tt.reason, out)
		}
		if got := s.invoiceStatus(t, inv); got != "open" {
			t.Fatalf("%s: invoice after reprocess: %s, want open", tt.name, got)
		}
	}
	if out, err := s.run(withStripe, "sweep"); err != nil {
		t.Logf("billing sweep (Stripe down): %v\n%s", err, out)
	}
	if got := s.invoiceStatus(t, inv); got != "open" {
		t.Fatalf("invoice after the sweep: %s, want open", got)
	}

	voided := billingtest.NewEventID()
	s.postApplied(t, api, voided, billingtest.Event(voided, "invoice.voided", time.Now().Truncate(time.Second), invoice("void", 0)))
	if got := s.invoiceStatus(t, inv); got != "void" {
		t.Errorf("invoice after the genuine invoice.voided: %s, want void", got)
	}
}

// invoiceStatus reads an invoice's status in MySQL.
func (s *stack) invoiceStatus(t *testing.T, id string) string {
	t.Helper()
	var status string
	if err := s.db.QueryRow("SELECT status FROM invoices WHERE stripe_id = ?", id).Scan(&status); err != nil {
		t.Fatalf("read invoice %s: %v", id, err)
	}
	return status
}
