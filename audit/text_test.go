package audit_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stripe-billing/billing/audit"
	"github.com/stripe-billing/billing/billing"
)

func TestText(t *testing.T) {
	t.Parallel()
	drifted := audit.KindReport{Kind: "invoices", Checked: 3, Fixed: 1, Failed: map[string]error{"in_3": errors.New("stripe:\n503")},
		Drifted: []audit.Object{
			{Kind: "invoices", Ref: billing.ObjectRef{Type: "invoice", ID: "in_1"}, Fields: []billing.FieldDrift{{Field: "status", Ours: "open", Stripes: "paid"}}},
			{Kind: "invoices", Ref: billing.ObjectRef{Type: "invoice", ID: "in_2"}, Missing: true},
		}}
	clean := audit.KindReport{Kind: "customers", Checked: 2, Failed: map[string]error{}}
	var b strings.Builder
	audit.WriteText(&b, []audit.KindReport{drifted, clean}, true)
	want := "invoice in_1: status: ours open, Stripe's paid\n" +
		"invoice in_2: missing at Stripe, not deleted here\n" +
		"invoices in_3: not compared: stripe: 503\n" +
		"invoices: 3 compared, 2 differ, 1 not compared; (missing) 1; status 1; 1 fixed\n" +
		"customers: 2 compared, 0 differ, 0 not compared; 0 fixed\n"
	if got := b.String(); got != want {
		t.Errorf("WriteText:\n%s\nwant\n%s", got, want)
	}
	tests := []struct {
		name    string
		reports []audit.KindReport
		want    string
	}{
		{"Drifted", []audit.KindReport{drifted, clean}, "audit: 1 object(s) differ from Stripe's (not fixed)"},
		{"OnlyFailed", []audit.KindReport{{Kind: "x", Failed: map[string]error{"a": errors.New("e")}}}, "audit: 1 object(s) could not be compared"},
		{"Clean", []audit.KindReport{clean}, ""},
	}
	for _, tt := range tests {
		got := ""
		if err := audit.Problem(tt.reports); err != nil {
			got = err.Error()
		}
		if got != tt.want {
			t.Errorf("%s: Problem = %q, want %q", tt.name, got, tt.want)
		}
	}
}
