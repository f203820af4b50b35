package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/reconcile"
)

// TestEndpointCheckAgainstStripeMock: stripe-mock's one endpoint sends
// charge.failed and charge.succeeded only, so it lacks every other needed
// type: exit 1, with the list.
func TestEndpointCheckAgainstStripeMock(t *testing.T) {
	t.Parallel()
	getenv := apiTestEnv(map[string]string{"STRIPE_API_KEY": "sk_test_123", "STRIPE_API_BASE": testenv.StripeMock(t)})
	out, err := runCmd(t, getenv, "endpoint", "check")
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "1 of 1 enabled endpoint(s) lack needed event types") {
		t.Fatalf("endpoint check = %v, want exit 1 naming the endpoint that lacks types", err)
	}
	lacking := len(billing.NeededTypes("")) - 2
	for _, want := range []string{
		"we_1OPouqJN5vQBdWEx9Xl0KCo3 https://example.com/my/webhook/endpoint (enabled, API version the account's default)",
		fmt.Sprintf("lacks %d needed type(s): charge.captured, charge.dispute.closed,", lacking),
		"invoice_payment.paid", "refund.updated",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "ignores") {
		t.Errorf("output names ignored types, but both types sent are handled:\n%s", out)
	}

	out, err = runCmd(t, getenv, "endpoint", "check", "--json")
	var checks []reconcile.EndpointCheck
	if jerr := json.Unmarshal([]byte(out), &checks); jerr != nil || exitCode(err) != 1 {
		t.Fatalf("--json: %v (exit %v), output %q", jerr, err, out)
	}
	if len(checks) != 1 || len(checks[0].Missing) != lacking || slices.Contains(checks[0].Missing, "charge.succeeded") {
		t.Errorf("--json checks = %+v", checks)
	}
}

// TestEndpointCheck runs against a Stripe of the test's own that pages its
// endpoints two at a time: an endpoint of every event, one of an older
// version that needs no invoice_payment.paid and sends types the worker
// ignores, and a disabled one that lacks everything (which loses nothing).
func TestEndpointCheck(t *testing.T) {
	t.Parallel()
	needed := billing.NeededTypes("2023-10-16")
	endpoints := []map[string]any{
		{"id": "we_all", "object": "webhook_endpoint", "url": "https://a.example/webhooks/stripe", "status": "enabled", "api_version": nil, "enabled_events": []string{"*"}},
		{"id": "we_old", "object": "webhook_endpoint", "url": "https://b.example/webhooks/stripe", "status": "enabled", "api_version": "2023-10-16",
			"enabled_events": append(slices.Clone(needed), "issuing_card.created", "account.updated")},
		{"id": "we_off", "object": "webhook_endpoint", "url": "https://c.example/old", "status": "disabled", "api_version": "2026-08-26.dahlia", "enabled_events": []string{"customer.created"}},
	}
	var pages atomic.Int32
	stripe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/webhook_endpoints" || r.Header.Get("Authorization") != "Bearer rk_test_read" {
			http.Error(w, `{"error":{"message":"no such route or key"}}`, http.StatusNotFound)
			return
		}
		pages.Add(1)
		from := 0
		if after := r.URL.Query().Get("starting_after"); after != "" {
			from = slices.IndexFunc(endpoints, func(e map[string]any) bool { return e["id"] == after }) + 1
		}
		to := min(from+2, len(endpoints))
		_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "url": "/v1/webhook_endpoints", "has_more": to < len(endpoints), "data": endpoints[from:to]})
	}))
	t.Cleanup(stripe.Close)
	getenv := apiTestEnv(map[string]string{"STRIPE_API_KEY": "rk_test_read", "STRIPE_API_BASE": stripe.URL})

	out, err := runCmd(t, getenv, "endpoint", "check")
	if err != nil {
		t.Fatalf("endpoint check = %v, want exit 0:\n%s", err, out)
	}
	if pages.Load() != 2 {
		t.Errorf("%d pages read, want 2", pages.Load())
	}
	for _, want := range []string{
		"we_all https://a.example/webhooks/stripe (enabled, API version the account's default)\n  sends every event type (*)",
		"we_old https://b.example/webhooks/stripe (enabled, API version 2023-10-16)\n  sends every needed type\n  sends 2 type(s) the worker ignores: account.updated, issuing_card.created",
		"we_off https://c.example/old (disabled, API version 2026-08-26.dahlia)\n  disabled: Stripe sends it nothing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	// The same old endpoint moved to basil needs invoice_payment.paid, and
	// the due-date events Stripe added in 2024-09-30.acacia.
	endpoints[1]["api_version"] = "2025-03-31.basil"
	out, err = runCmd(t, getenv, "endpoint", "check")
	if err == nil || exitCode(err) != 1 || !strings.Contains(out, "lacks 3 needed type(s): invoice.overdue, invoice.will_be_due, invoice_payment.paid") {
		t.Errorf("a basil endpoint without invoice_payment.paid and the due-date events: %v\n%s", err, out)
	}

	// Only a disabled endpoint: Stripe sends nothing.
	endpoints = endpoints[2:]
	if _, err := runCmd(t, getenv, "endpoint", "check"); err == nil || !strings.Contains(err.Error(), "no enabled webhook endpoint (1 disabled)") {
		t.Errorf("only a disabled endpoint: %v, want an error saying none is enabled", err)
	}
}

func TestEndpointCheckRefusals(t *testing.T) {
	t.Parallel()
	if _, err := runCmd(t, apiTestEnv(nil), "endpoint", "check"); err == nil || !strings.Contains(err.Error(), "STRIPE_API_KEY is required") {
		t.Errorf("without a key: %v", err)
	}
	if _, err := runCmd(t, apiTestEnv(nil), "endpoint"); exitCode(err) != 2 {
		t.Errorf("endpoint without check: %v, want a usage error", err)
	}
	if _, err := runCmd(t, apiTestEnv(nil), "endpoint", "check", "extra"); exitCode(err) != 2 {
		t.Errorf("a stray argument: %v, want a usage error", err)
	}
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"Invalid API Key provided: sk_test_***"}}`))
	}))
	t.Cleanup(refusing.Close)
	getenv := apiTestEnv(map[string]string{"STRIPE_API_KEY": "sk_test_wrong", "STRIPE_API_BASE": refusing.URL})
	if _, err := runCmd(t, getenv, "endpoint", "check"); err == nil || !strings.Contains(err.Error(), "Invalid API Key provided") {
		t.Errorf("a key Stripe refuses: %v, want Stripe's message", err)
	}
}
