package reconcile_test

import (
	"strings"
	"testing"

	"github.com/stripe-billing/billing/reconcile"
)

func TestEndpointsText(t *testing.T) {
	t.Parallel()
	all := reconcile.EndpointCheck{ID: "we_1", URL: "https://a/webhooks", Status: "enabled", All: true}
	lacking := reconcile.EndpointCheck{ID: "we_2", URL: "https://b", Status: "enabled", APIVersion: "2023-10-16", Missing: []string{"invoice.paid", "charge.refunded"}, Ignored: []string{"product.created"}}
	disabled := reconcile.EndpointCheck{ID: "we_3", URL: "https://c", Status: "disabled", Missing: []string{"invoice.paid"}}
	tests := []struct {
		name    string
		checks  []reconcile.EndpointCheck
		problem string
	}{
		{"None", nil, "endpoint check: no enabled webhook endpoint (0 disabled): Stripe sends nothing"},
		{"OnlyDisabled", []reconcile.EndpointCheck{disabled}, "endpoint check: no enabled webhook endpoint (1 disabled): Stripe sends nothing"},
		{"Lacking", []reconcile.EndpointCheck{all, lacking, disabled}, "endpoint check: 1 of 2 enabled endpoint(s) lack needed event types"},
		{"Fine", []reconcile.EndpointCheck{all, disabled}, ""},
	}
	for _, tt := range tests {
		got := ""
		if err := reconcile.EndpointsProblem(tt.checks); err != nil {
			got = err.Error()
		}
		if got != tt.problem {
			t.Errorf("%s: EndpointsProblem = %q, want %q", tt.name, got, tt.problem)
		}
	}
	var b strings.Builder
	reconcile.WriteEndpointChecks(&b, []reconcile.EndpointCheck{all, lacking, disabled})
	want := "we_1 https://a/webhooks (enabled, API version the account's default)\n" +
		"  sends every event type (*): every needed type arrives; the worker records the others as ignored\n\n" +
		"we_2 https://b (enabled, API version 2023-10-16)\n" +
		"  lacks 2 needed type(s): invoice.paid, charge.refunded\n" +
		"  sends 1 type(s) the worker ignores: product.created\n\n" +
		"we_3 https://c (disabled, API version the account's default)\n" +
		"  disabled: Stripe sends it nothing, so what it lacks loses nothing\n" +
		"  lacks 1 needed type(s): invoice.paid\n"
	if got := b.String(); got != want {
		t.Errorf("WriteEndpointChecks:\n%s\nwant\n%s", got, want)
	}
}
