// Package stripefixture holds, for each supported Stripe API version, the
// objects the billing handlers read exactly as Stripe ships them in the
// OpenAPI fixtures of github.com/stripe/stripe-mock, and which field paths
// that version's OpenAPI spec defines. It is test support: only tests and
// test helpers import it.
//
// Where the data comes from (the API version is the embedded spec's
// info.version; docs/api-versions.md tabulates what moved between them):
//
//	API version         stripe-mock
//	2023-10-16          v0.183.0  (stripe-go v76's version; internal/testenv runs it)
//	2024-09-30.acacia   v0.190.0
//	2025-05-28.basil    v0.195.0
//	2025-09-30.clover   v0.197.0
//	2026-08-26.dahlia   v0.203.0  (newest in the module proxy)
//
// 2025-03-31.basil itself is not here: the module proxy refuses (403) the
// tags between v0.190.0 and v0.195.0, so 2025-05-28.basil, a later release
// of the same major version with the same breaking changes, stands for it.
//
// Objects, by their Stripe "object" name: customer, subscription,
// subscription_item, invoice, line_item (an invoice line item),
// invoice_payment (basil and later only), payment_intent, charge, refund,
// dispute, checkout.session, credit_note, event, payment_method, product,
// price, subscription_schedule. Each sits in
// data/<api version>/<object>.json, byte for byte the fixture; the spec
// facts are in data/<api version>/spec.json.
//
// Stripe's fixtures are not payloads a real account sends: ids are
// placeholders, a subscription has one item, arrays such as taxes and
// discounts are empty, the event is a plan.created with a null
// api_version, and some keys disagree with the spec (the basil and later
// invoices keep "subscription": null). Tests build their events from these
// objects; TestShape lists every such difference it relies on.
//
// To regenerate after changing the versions or watched paths in gen (it
// downloads each stripe-mock with `go mod download` outside this module, so
// go.mod is untouched):
//
//	go generate ./internal/stripefixture
//	go run ./internal/stripefixture/gen -check   # exit 1 if data/ differs
package stripefixture
