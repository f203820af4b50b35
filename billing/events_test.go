package billing_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/stripe-billing/billing/billing"
)

// TestNeededTypesDocumented keeps the list in docs/webhook-events.md equal
// to billing.NeededTypes, the one list the code and `billing endpoint
// check` use.
func TestNeededTypesDocumented(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/webhook-events.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- needed types -->\n")
	list, _, ok2 := strings.Cut(rest, "<!-- end needed types -->")
	if !ok || !ok2 {
		t.Fatal("docs/webhook-events.md has no <!-- needed types --> ... <!-- end needed types --> list")
	}
	var documented []string // "- `x.`: a, b" is x.a and x.b
	for line := range strings.Lines(list) {
		prefix, names, ok := strings.Cut(line, ":")
		if !ok {
			t.Errorf("docs/webhook-events.md: %q is not \"- `prefix.`: name, name\"", line)
			continue
		}
		for name := range strings.SplitSeq(names, ",") {
			documented = append(documented, strings.Trim(prefix, "-` ")+strings.TrimSpace(name))
		}
	}
	slices.Sort(documented)
	if want := billing.NeededTypes(""); !slices.Equal(documented, want) {
		t.Errorf("docs/webhook-events.md lists\n%v\nwant billing.NeededTypes(\"\")\n%v", documented, want)
	}
}

func TestNeededTypes(t *testing.T) {
	t.Parallel()
	handled := billing.HandledTypes()
	for _, tc := range []struct {
		version string
		want    []string // included
		wantNot []string // excluded
	}{
		{"", []string{"invoice_payment.paid", "refund.created", "charge.refunded", "credit_note.created"}, []string{"invoice.upcoming"}},
		{"2023-10-16", []string{"invoice.paid", "refund.updated"}, []string{"invoice_payment.paid", "invoice.upcoming"}},
		{"2024-09-30.acacia", nil, []string{"invoice_payment.paid"}},
		{"2025-03-31.basil", []string{"invoice_payment.paid"}, nil},
		{"2026-08-26.dahlia", []string{"invoice_payment.paid"}, nil},
	} {
		needed := billing.NeededTypes(tc.version)
		for _, typ := range tc.want {
			if !slices.Contains(needed, typ) {
				t.Errorf("NeededTypes(%q) lacks %s", tc.version, typ)
			}
		}
		for _, typ := range tc.wantNot {
			if slices.Contains(needed, typ) {
				t.Errorf("NeededTypes(%q) has %s", tc.version, typ)
			}
		}
		for _, typ := range needed {
			if !slices.Contains(handled, typ) {
				t.Errorf("NeededTypes(%q) has %s, which no handler applies", tc.version, typ)
			}
		}
	}
	if !slices.IsSorted(handled) || !slices.Contains(handled, "invoice.upcoming") {
		t.Errorf("HandledTypes() = %v: want sorted, with the preview it records", handled)
	}
}
