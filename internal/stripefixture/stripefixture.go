package stripefixture

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
)

//go:generate go run ./gen

//go:embed data
var data embed.FS

// Versions returns the supported Stripe API versions, oldest first (their
// names start with the release date).
func Versions() []string {
	entries, err := fs.ReadDir(data, "data")
	if err != nil {
		panic(fmt.Sprintf("stripefixture: read embedded data: %v", err))
	}
	var versions []string
	for _, e := range entries {
		if e.IsDir() {
			versions = append(versions, e.Name())
		}
	}
	return versions
}

// Has reports whether version has a fixture of object ("invoice",
// "line_item", "checkout.session", ...). invoice_payment exists only from
// 2025-03-31.basil on.
func Has(version, object string) bool {
	_, err := fs.Stat(data, fixturePath(version, object))
	return err == nil
}

// Raw returns the fixture of object in version as Stripe ships it (a fresh
// copy). It panics when Has is false: a test asking for a fixture that does
// not exist is a bug in the test.
func Raw(version, object string) []byte {
	b, err := data.ReadFile(fixturePath(version, object))
	if err != nil {
		panic(fmt.Sprintf("stripefixture: no %s fixture for API version %s", object, version))
	}
	return b
}

// Object returns the fixture of object in version decoded as encoding/json
// decodes into any (numbers are float64; every fixture number is an integer
// below 2^53, so exact). Each call returns a new deep copy the caller may
// change. It panics when Has is false.
func Object(version, object string) map[string]any {
	var m map[string]any
	if err := json.Unmarshal(Raw(version, object), &m); err != nil {
		panic(fmt.Sprintf("stripefixture: decode %s fixture for API version %s: %v", object, version, err))
	}
	return m
}

// StripeMock returns the github.com/stripe/stripe-mock version whose
// embedded fixtures and spec gave version's data.
func StripeMock(version string) string {
	return loadSpec(version).StripeMock
}

// SpecDefines reports whether Stripe's OpenAPI spec for version defines the
// field path of object, among the paths the generator records: every
// top-level property the spec has, and the watched paths, present or not
// ("payment_intent", "parent.subscription_details.subscription",
// "lines.data[].period.start"; "x[]" steps into the items of array x). A
// fixture can keep a key its spec dropped (as null) or omit one the spec
// defines, so shape checks ask both. It panics for a path not recorded for
// version, so a misspelt path cannot pass as absent: add it to
// watchedPaths in gen and regenerate.
func SpecDefines(version, object, fieldPath string) bool {
	fields, ok := loadSpec(version).Fields[object]
	if !ok {
		panic(fmt.Sprintf("stripefixture: no %s spec facts for API version %s", object, version))
	}
	defined, ok := fields[fieldPath]
	if !ok {
		panic(fmt.Sprintf("stripefixture: %s.%s is not recorded for API version %s: add it to watchedPaths in gen", object, fieldPath, version))
	}
	return defined
}

// specFacts is data/<version>/spec.json, written by gen.
type specFacts struct {
	APIVersion string                     `json:"api_version"`
	StripeMock string                     `json:"stripe_mock"`
	Fields     map[string]map[string]bool `json:"fields"`
}

func loadSpec(version string) specFacts {
	b, err := data.ReadFile(path.Join("data", version, "spec.json"))
	if err != nil {
		panic(fmt.Sprintf("stripefixture: unsupported API version %q", version))
	}
	var s specFacts
	if err := json.Unmarshal(b, &s); err != nil {
		panic(fmt.Sprintf("stripefixture: decode spec facts of %s: %v", version, err))
	}
	return s
}

func fixturePath(version, object string) string {
	return path.Join("data", version, object+".json")
}

// eventTypes is an event type Stripe sends about each object that has
// events, for Events.
var eventTypes = map[string]string{
	"customer": "customer.updated", "subscription": "customer.subscription.updated",
	"invoice": "invoice.paid", "invoice_payment": "invoice_payment.paid",
	"payment_intent": "payment_intent.succeeded", "charge": "charge.succeeded",
	"refund": "refund.created", "dispute": "charge.dispute.created",
	"checkout.session": "checkout.session.completed", "credit_note": "credit_note.created",
	"payment_method": "payment_method.attached", "product": "product.created", "price": "price.created",
	"subscription_schedule": "subscription_schedule.created",
}

// Events returns the event bodies of version that tests seed fuzz
// targets with: the version's event fixture as it is, and, for each
// object of eventTypes the version has, a copy of it carrying that object
// under an event type Stripe sends for it, api_version set to version.
// Keys are in encoding/json's order, one line.
func Events(version string) [][]byte {
	out := [][]byte{Raw(version, "event")}
	for _, object := range slices.Sorted(maps.Keys(eventTypes)) {
		if !Has(version, object) {
			continue
		}
		e := Object(version, "event")
		e["type"], e["api_version"] = eventTypes[object], version
		e["data"] = map[string]any{"object": Object(version, object)}
		b, err := json.Marshal(e)
		if err != nil {
			panic(fmt.Sprintf("stripefixture: encode %s event of %s: %v", object, version, err))
		}
		out = append(out, b)
	}
	return out
}
