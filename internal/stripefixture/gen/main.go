// Command gen re-extracts the stripefixture data from stripe-mock modules
// downloaded with `go mod download`, so every byte committed under
// internal/stripefixture/data is provably Stripe's own fixture or a fact of
// Stripe's own OpenAPI spec.
//
//	go generate ./internal/stripefixture          # rewrite data/
//	go run ./internal/stripefixture/gen -check    # fail if data/ differs
//
// For each stripe-mock version it writes data/<api version>/<object>.json,
// the fixture object byte for byte, and data/<api version>/spec.json: the
// API version (the spec's info.version), the stripe-mock version, and for
// each object which field paths the spec defines.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

const stripeMockModule = "github.com/stripe/stripe-mock"

// stripeMockVersions are the stripe-mock tags the data comes from, one per
// supported API version. The module proxy serves only some tags: v0.191.0
// to v0.194.x (where 2025-03-31.basil would be) answer 403, so basil is
// represented by v0.195.0 (2025-05-28.basil, same breaking changes).
var stripeMockVersions = []string{
	"v0.183.0", // 2023-10-16, the version stripe-go v76 pins
	"v0.190.0", // 2024-09-30.acacia
	"v0.195.0", // 2025-05-28.basil
	"v0.197.0", // 2025-09-30.clover
	"v0.203.0", // 2026-08-26.dahlia, the newest tag the proxy serves
}

// objects are the fixture resources the billing handlers read; line_item is
// an invoice line item. A version whose fixtures lack one (invoice_payment
// before basil) simply has no file for it.
var objects = []string{
	"customer", "subscription", "subscription_item", "invoice", "line_item",
	"invoice_payment", "payment_intent", "charge", "refund", "dispute",
	"checkout.session", "credit_note", "event",
	"payment_method", "product", "price", "subscription_schedule",
}

// watchedPaths are the field paths, beyond each object's top-level
// properties, whose presence in the spec is recorded: the fields a billing
// system reads. "x[]" steps into the items of array x. A path's absence is
// recorded too, so a test can assert that a field is gone.
var watchedPaths = map[string][]string{
	"customer": {"livemode", "email", "invoice_settings.default_payment_method", "discount"},
	"subscription": {
		"livemode", "status", "current_period_start", "current_period_end", "discount", "discounts",
		"items.data[].id", "items.data[].price.id", "items.data[].quantity",
		"items.data[].current_period_start", "items.data[].current_period_end",
		"pause_collection.behavior", "pause_collection.resumes_at",
	},
	"subscription_item": {"current_period_start", "current_period_end", "price.id", "quantity", "subscription"},
	"invoice": {
		"livemode", "subscription", "subscription_details.subscription", "subscription_details.metadata",
		"parent.type", "parent.subscription_details.subscription", "parent.subscription_details.metadata",
		"payment_intent", "charge", "paid", "paid_out_of_band",
		"payments.data[].payment.type", "payments.data[].payment.payment_intent",
		"payments.data[].payment.charge", "payments.data[].amount_paid",
		"amount_due", "amount_paid", "amount_remaining", "amount_overpaid", "amount_paid_off_stripe",
		"subtotal", "total", "attempt_count",
		"tax", "total_tax_amounts[].amount", "total_taxes[].amount",
		"total_discount_amounts[].amount", "discount", "discounts",
		"status", "status_transitions.paid_at", "status_transitions.finalized_at",
		"status_transitions.voided_at", "status_transitions.marked_uncollectible_at",
		"period_start", "period_end", "lines.data[].period.start", "lines.data[].period.end",
	},
	"line_item": {
		"livemode", "amount", "amount_excluding_tax", "subtotal", "quantity",
		"period.start", "period.end", "price.id", "pricing.price_details.price",
		"subscription", "subscription_item", "invoice_item", "proration",
		"parent.type", "parent.subscription_item_details.subscription",
		"parent.subscription_item_details.subscription_item",
		"parent.subscription_item_details.proration", "parent.invoice_item_details.invoice_item",
		"tax_amounts[].amount", "taxes[].amount", "discount_amounts[].amount",
	},
	"invoice_payment": {
		"livemode", "invoice", "amount_paid", "amount_requested", "currency", "status", "is_default",
		"payment.type", "payment.payment_intent", "payment.charge", "status_transitions.paid_at",
	},
	"payment_intent": {"livemode", "invoice", "latest_charge", "amount", "amount_received", "status", "payment_details"},
	"charge": {
		"livemode", "invoice", "payment_intent", "amount", "amount_captured", "amount_refunded",
		"refunded", "paid", "captured", "status", "disputed",
		"payment_method_details.type", "payment_method_details.card.brand",
		"payment_method_details.card.last4", "payment_method_details.card.exp_month",
		"payment_method_details.card.exp_year", "refunds.data[].amount",
	},
	"refund":           {"livemode", "charge", "payment_intent", "amount", "status"},
	"dispute":          {"livemode", "charge", "payment_intent", "amount", "status", "reason"},
	"checkout.session": {"livemode", "customer", "subscription", "invoice", "payment_intent", "mode", "status", "payment_status", "amount_total"},
	"credit_note": {
		"livemode", "invoice", "amount", "total", "status", "refund", "refunds[].refund",
		"refunds[].amount_refunded", "tax_amounts[].amount", "total_taxes[].amount",
	},
	"payment_method": {
		"livemode", "customer", "type", "card.brand", "card.display_brand", "card.last4", "card.exp_month",
		"card.exp_year", "card.fingerprint", "card.wallet.type",
	},
	"product": {"livemode", "name", "active", "default_price"},
	"price": {
		"livemode", "product", "currency", "unit_amount", "nickname", "active", "lookup_key", "type",
		"recurring.interval", "recurring.interval_count",
	},
	"subscription_schedule": {
		"livemode", "customer", "subscription", "released_subscription", "status", "end_behavior",
		"current_phase.start_date", "current_phase.end_date", "canceled_at", "completed_at", "released_at",
	},
	"event": {"livemode", "account", "api_version", "context", "data.object", "data.previous_attributes", "request.id"},
}

func main() {
	out := flag.String("out", "", "data directory to write (default: internal/stripefixture/data of this module)")
	check := flag.Bool("check", false, "only compare the extraction with the data directory; exit 1 on a difference")
	flag.Parse()
	if err := run(context.Background(), *out, *check); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(ctx context.Context, out string, check bool) error {
	if out == "" {
		root, err := moduleRoot(ctx)
		if err != nil {
			return err
		}
		out = filepath.Join(root, "internal", "stripefixture", "data")
	}
	files := map[string][]byte{}
	for _, v := range stripeMockVersions {
		dir, err := download(ctx, v)
		if err != nil {
			return err
		}
		if err := extract(dir, v, files); err != nil {
			return err
		}
	}
	if check {
		return compare(out, files)
	}
	if err := os.RemoveAll(out); err != nil {
		return fmt.Errorf("gen: clear %s: %w", out, err)
	}
	for name, data := range files {
		path := filepath.Join(out, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("gen: write %s: %w", path, err)
		}
	}
	return nil
}

func moduleRoot(ctx context.Context) (string, error) {
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("gen: go env GOMOD: %w", err)
	}
	path := strings.TrimSpace(string(gomod))
	if path == "" || path == os.DevNull {
		return "", errors.New("gen: not inside a module: pass -out")
	}
	return filepath.Dir(path), nil
}

// download fetches stripe-mock at version into the module cache and returns
// its directory. It runs outside the project (a temporary directory, no
// go.mod) so the project's go.mod and go.sum stay untouched.
func download(ctx context.Context, version string) (string, error) {
	tmp, err := os.MkdirTemp("", "stripefixture-gen-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", stripeMockModule+"@"+version)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, runErr := cmd.Output()
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(stdout, &mod); err != nil || mod.Error != "" || mod.Dir == "" {
		return "", fmt.Errorf("gen: go mod download %s@%s: %v %s %s", stripeMockModule, version, runErr, mod.Error, stderr.String())
	}
	return mod.Dir, nil
}

type schema struct {
	Ref        string             `json:"$ref"`
	Properties map[string]*schema `json:"properties"`
	Items      *schema            `json:"items"`
	AnyOf      []*schema          `json:"anyOf"`
	OneOf      []*schema          `json:"oneOf"`
	AllOf      []*schema          `json:"allOf"`
	ResourceID string             `json:"x-resourceId"`
}

type spec struct {
	Info struct {
		Version string `json:"version"`
	} `json:"info"`
	Components struct {
		Schemas map[string]*schema `json:"schemas"`
	} `json:"components"`
}

// specFacts is data/<api version>/spec.json.
type specFacts struct {
	APIVersion string `json:"api_version"`
	StripeMock string `json:"stripe_mock"`
	// Fields maps object → field path → whether the spec defines it: every
	// top-level property (true) and every watched path.
	Fields map[string]map[string]bool `json:"fields"`
}

// extract adds the files of one stripe-mock version, keyed by their path
// under the data directory.
func extract(dir, stripeMock string, files map[string][]byte) error {
	openapi := filepath.Join(dir, "embedded", "openapi")
	specJSON, err := os.ReadFile(filepath.Join(openapi, "spec3.json"))
	if err != nil {
		return fmt.Errorf("gen: read spec of stripe-mock %s: %w", stripeMock, err)
	}
	var s spec
	if err := json.Unmarshal(specJSON, &s); err != nil {
		return fmt.Errorf("gen: decode spec of stripe-mock %s: %w", stripeMock, err)
	}
	version := s.Info.Version
	if version == "" || strings.ContainsAny(version, `/\`) {
		return fmt.Errorf("gen: stripe-mock %s: spec info.version %q", stripeMock, version)
	}
	fixturesJSON, err := os.ReadFile(filepath.Join(openapi, "fixtures3.json"))
	if err != nil {
		return fmt.Errorf("gen: read fixtures of stripe-mock %s: %w", stripeMock, err)
	}
	var fixtures struct {
		Resources map[string]json.RawMessage `json:"resources"`
	}
	if err := json.Unmarshal(fixturesJSON, &fixtures); err != nil {
		return fmt.Errorf("gen: decode fixtures of stripe-mock %s: %w", stripeMock, err)
	}

	facts := specFacts{APIVersion: version, StripeMock: stripeMock, Fields: map[string]map[string]bool{}}
	for _, object := range objects {
		raw, ok := fixtures.Resources[object]
		if !ok {
			continue
		}
		// json.RawMessage holds the object's bytes exactly as in fixtures3.json.
		files[filepath.Join(version, object+".json")] = append(slices.Clone(raw), '\n')

		root := s.resource(object)
		if root == nil {
			return fmt.Errorf("gen: stripe-mock %s (%s): fixture %s has no schema in the spec", stripeMock, version, object)
		}
		fields := map[string]bool{}
		for _, leaf := range s.leaves(root) {
			for name := range leaf.Properties {
				fields[name] = true
			}
		}
		for _, path := range watchedPaths[object] {
			fields[path] = s.defines(root, strings.Split(path, "."))
		}
		facts.Fields[object] = fields
	}
	data, err := json.MarshalIndent(facts, "", "  ")
	if err != nil {
		return err
	}
	files[filepath.Join(version, "spec.json")] = append(data, '\n')
	return nil
}

func (s *spec) resource(object string) *schema {
	if sc := s.Components.Schemas[object]; sc != nil && sc.ResourceID == object {
		return sc
	}
	for _, sc := range s.Components.Schemas {
		if sc.ResourceID == object {
			return sc
		}
	}
	return nil
}

// leaves follows $ref and flattens anyOf/oneOf/allOf: an expandable field
// (anyOf string or object) or a nullable one yields its object schemas.
func (s *spec) leaves(sc *schema) []*schema {
	var out []*schema
	var walk func(sc *schema, depth int)
	walk = func(sc *schema, depth int) {
		if sc == nil || depth > 32 {
			return
		}
		if name, ok := strings.CutPrefix(sc.Ref, "#/components/schemas/"); ok {
			walk(s.Components.Schemas[name], depth+1)
			return
		}
		out = append(out, sc)
		for _, group := range [][]*schema{sc.AnyOf, sc.OneOf, sc.AllOf} {
			for _, alt := range group {
				walk(alt, depth+1)
			}
		}
	}
	walk(sc, 0)
	return out
}

// defines reports whether any branch of sc has the field path.
func (s *spec) defines(sc *schema, path []string) bool {
	if len(path) == 0 {
		return true
	}
	name, isArray := strings.CutSuffix(path[0], "[]")
	for _, leaf := range s.leaves(sc) {
		field := leaf.Properties[name]
		if field == nil {
			continue
		}
		next := []*schema{field}
		if isArray {
			next = nil
			for _, arr := range s.leaves(field) {
				if arr.Items != nil {
					next = append(next, arr.Items)
				}
			}
		}
		for _, n := range next {
			if s.defines(n, path[1:]) {
				return true
			}
		}
	}
	return false
}

// compare reports every file that differs from, is missing from, or is
// extra in the data directory.
func compare(out string, files map[string][]byte) error {
	var diffs []string
	seen := map[string]bool{}
	err := filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(out, path)
		if err != nil {
			return err
		}
		seen[rel] = true
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if want, ok := files[rel]; !ok {
			diffs = append(diffs, "extra "+rel)
		} else if !bytes.Equal(got, want) {
			diffs = append(diffs, "differs "+rel)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("gen: read %s: %w", out, err)
	}
	for name := range files {
		if !seen[name] {
			diffs = append(diffs, "missing "+name)
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		return fmt.Errorf("gen: %s is not what stripe-mock gives; run go generate ./internal/stripefixture:\n%s", out, strings.Join(diffs, "\n"))
	}
	return nil
}
