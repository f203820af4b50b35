package billing

import (
	"bytes"
	stdjson "encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/segmentio/encoding/json"

	"github.com/stripe-billing/billing/billing/stripejson"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/verify"
)

// The worker decodes with github.com/segmentio/encoding/json, not
// encoding/json, for its CPU. These tests pin what the package relies on
// of the decoder: every payload, of every supported API version, decodes
// as encoding/json decodes it, and what encoding/json refuses it refuses.

// objectTypes are the structs the handlers decode, by fixture name.
var objectTypes = map[string]func() any{
	"customer":              func() any { return new(stripejson.Customer) },
	"subscription":          func() any { return new(stripejson.Subscription) },
	"subscription_item":     func() any { return new(stripejson.SubscriptionItem) },
	"invoice":               func() any { return new(stripejson.Invoice) },
	"invoice_payment":       func() any { return new(stripejson.InvoicePayment) },
	"payment_intent":        func() any { return new(stripejson.PaymentIntent) },
	"charge":                func() any { return new(stripejson.Charge) },
	"refund":                func() any { return new(stripejson.Refund) },
	"dispute":               func() any { return new(stripejson.Dispute) },
	"checkout.session":      func() any { return new(stripejson.CheckoutSession) },
	"credit_note":           func() any { return new(stripejson.CreditNote) },
	"payment_method":        func() any { return new(stripejson.PaymentMethod) },
	"product":               func() any { return new(stripejson.Product) },
	"price":                 func() any { return new(stripejson.Price) },
	"subscription_schedule": func() any { return new(stripejson.SubscriptionSchedule) },
}

// stdKeys is the payload as encoding/json reads it: the top-level keys
// and what each holds.
func stdKeys(raw []byte) (map[string]stripejson.Held, error) {
	var m map[string]stdjson.RawMessage
	if err := stdjson.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	out := map[string]stripejson.Held{}
	for k, v := range m {
		out[k] = stripejson.HeldOf(v)
	}
	return out, nil
}

// sameAsStd checks that raw decodes into a new(name's struct) and to a
// payload as encoding/json decodes it, or fails with both.
func sameAsStd(t *testing.T, name, label string, raw []byte) {
	t.Helper()
	got, want := objectTypes[name](), objectTypes[name]()
	errGot, errWant := json.Unmarshal(raw, got), stdjson.Unmarshal(raw, want)
	if (errGot == nil) != (errWant == nil) {
		t.Fatalf("%s %s: decoder error %v, encoding/json error %v", name, label, errGot, errWant)
	}
	if errGot == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("%s %s: decoder read %+v, encoding/json %+v", name, label, got, want)
	}
	sameParseAsStd(t, label, raw)
	keys, err := stdKeys(raw)
	if err != nil {
		return
	}
	p, _, _ := stripejson.Scan(raw)
	if p.Len() < len(keys) {
		t.Fatalf("%s %s: payload has %d keys, encoding/json %d", name, label, p.Len(), len(keys))
	}
	for k, h := range keys {
		if g, ok := p.Get(k); !ok || g != h {
			t.Fatalf("%s %s: payload key %q holds %v (%v), encoding/json %v", name, label, k, g, ok, h)
		}
	}
}

// sameParseAsStd checks that Parse reads an event carrying object as
// encoding/json reads it: refused alike (or refused by verify.ReadEnvelope,
// which the api and the Verifier apply first), and the same object type
// and id (strings, else "").
func sameParseAsStd(t *testing.T, label string, object []byte) {
	t.Helper()
	raw := append(append([]byte(`{"id":"evt_1","object":"event","type":"invoice.paid","created":1700000000,"data":{"object":`), object...), "}}"...)
	ev, err := Parse(raw)
	var se struct {
		Data struct {
			Object struct {
				Object any `json:"object"`
				ID     any `json:"id"`
			} `json:"object"`
		} `json:"data"`
	}
	errStd := stdjson.Unmarshal(raw, &se)
	if o := bytes.TrimSpace(object); errStd == nil && (len(o) == 0 || o[0] != '{') {
		errStd = errors.New("not an object")
	}
	if _, errEnv := verify.ReadEnvelope(raw); errStd == nil && errEnv != nil {
		// Stricter than encoding/json (invalid UTF-8, say): the api and
		// the Verifier refuse the body, so Parse does too.
		errStd = errEnv
	}
	if (err == nil) != (errStd == nil) {
		t.Fatalf("Parse %s: error %v, encoding/json error %v", label, err, errStd)
	}
	typ, _ := se.Data.Object.Object.(string)
	id, _ := se.Data.Object.ID.(string)
	if err == nil && (ev.ObjectType != typ || ev.ObjectID != id) {
		t.Fatalf("Parse %s: object %q id %q, encoding/json %q %q", label, ev.ObjectType, ev.ObjectID, typ, id)
	}
}

// TestDecoderMatchesEncodingJSON decodes every fixture of every supported
// API version, and 300 random corruptions of each (bytes replaced,
// removed or cut), with both decoders: the same structs and payload keys,
// and the same inputs refused.
func TestDecoderMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	tricky := []byte(`{}[],:"\ 0123456789-+.eEtrufalsn` + "\xff\xc3\x01")
	for _, v := range SupportedVersions() {
		for name := range objectTypes {
			if !stripefixture.Has(v, name) {
				continue
			}
			t.Run(v+"/"+name, func(t *testing.T) {
				t.Parallel()
				raw := stripefixture.Raw(v, name)
				sameAsStd(t, name, "fixture", raw)
				r := rand.New(rand.NewPCG(uint64(len(raw)), uint64(len(name))))
				for range 300 {
					b := bytes.Clone(raw)
					i, op := r.IntN(len(b)), r.IntN(3)
					switch op {
					case 0:
						b[i] = tricky[r.IntN(len(tricky))]
					case 1:
						b = append(b[:i], b[i+1:]...)
					default:
						b = b[:i]
					}
					sameAsStd(t, name, fmt.Sprintf("op %d at byte %d: %.60q", op, i, b[max(0, i-30):min(len(b), i+30)]), b)
				}
			})
		}
	}
}

// TestDecoderEdges pins what the decoder does with what Stripe never
// sends but a hand-made message may: each as encoding/json.
func TestDecoderEdges(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		`{"id":"in_1","number":"a` + "\xff" + `b"}`, // invalid UTF-8: U+FFFD
		`{"id":"in_1","number":"\ud800"}`,           // a lone surrogate: U+FFFD
		`{"id":"in_1","number":"x","number":"y"}`,   // the last of duplicates
		`{"id":"in_1","Number":"case"}`,             // names match case-insensitively
		`{"id":"in_1","number":"\u00e9\n\/"}`,
		`{"id":"in_1","amount_due":-0,"total":9007199254740993}`,
		`{"id":"in_1","amount_due":1.0}`,
		`{"id":"in_1","amount_due":1e3}`,
		`{"id":"in_1","amount_due":99999999999999999999}`,
		`{"id":"in_1","attempt_count":2147483648}`,
		`{"id":"in_1","customer":{"id":"cus_1","x":[1,{"y":null}]}}`,
		`{"id":"in_1","metadata":{"b":"2","a":"<&>` + "\u2028\xff" + `"}}`,
		`{"id":"in_1","metadata":{"a":1}}`,
		`{"id":"in_1","unknown":{"a":01}}`,
		`{"id":"in_1","unknown":[1,]}`,
		`{"id":"in_1","unknown":"\q"}`,
		`{"id":"in_1","unknown":"` + "\x01" + `"}`,
		`{"id":"in_1"} x`,
		`{"id":"in_1", }`,
		`{"i\u0064":"in_1","\u006eumber":"esc"}`,
		`{"object":"invoice","id":"in_1","OBJECT":"customer","Id":"in_2"}`,
		`{"object":"invoice","id":"in_1","object":5,"id":{"a":"b"}}`,
		`{"object":"invoice","id":"in_1","obj\u0065ct":null,"iD":["x"]}`,
		`{"object":"in\u0076oice","id":"in_` + "\xff" + `1"}`,
		`{"x":{"object":"customer","id":"cus_1"},"object":"invoice"}`,
		`{"objectx":"a","xid":"b","ıd":"c","ſ":"d"}`,
	} {
		sameAsStd(t, "invoice", fmt.Sprintf("%q", raw), []byte(raw))
	}
	// The metadata column is encoding/json's text of the map.
	var o stripejson.Invoice
	raw := `{"metadata":{"b":"2","a":"<&>` + "\u2028\xff" + `","c":"\u00e9"}}`
	if err := json.Unmarshal([]byte(raw), &o); err != nil {
		t.Fatal(err)
	}
	var kv map[string]string
	_ = stdjson.Unmarshal([]byte(raw[len(`{"metadata":`):len(raw)-1]), &kv)
	want, _ := stdjson.Marshal(kv)
	if o.Metadata.S == nil || *o.Metadata.S != string(want) {
		t.Errorf("metadata column %v, want encoding/json's %s", o.Metadata.S, want)
	}
}

// TestDecodeErrors pins the errors decode makes of what the decoder
// reports: invalid JSON or not an object is "is not an object", a value
// of another type names the field (an array's item by index), the kind of
// JSON it is and the kind wanted; all of class schema.
func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	ev := Event{ID: "evt_1", Type: "invoice.paid", APIVersion: "2025-05-28.basil"}
	for _, tt := range []struct{ raw, want string }{
		{`{"id":"in_1",`, "invoice is not an object"},
		{`{"id":"in_1"} x`, "invoice is not an object"},
		{`[{"id":"in_1"}]`, "invoice is not an object"},
		{`"in_1"`, "invoice is not an object"},
		{`{"id":"in_1","amount_due":"5"}`, "invoice.amount_due is a JSON string, want a number"},
		{`{"id":"in_1","amount_due":1.5}`, "invoice.amount_due is a JSON number, want a number"},
		{`{"id":"in_1","amount_due":true}`, "invoice.amount_due is a JSON bool, want a number"},
		{`{"id":"in_1","amount_due":[5]}`, "invoice.amount_due is a JSON array, want a number"},
		{`{"id":"in_1","number":{}}`, "invoice.number is a JSON object, want a string"},
		{`{"id":7}`, "invoice.id is a JSON number, want a string"},
		{`{"id":"in_1","created":"x"}`, "invoice.created is a JSON string, want a number"},
		{`{"id":"in_1","customer":42}`, "invoice.customer is a JSON value 42, want a string"},
		{`{"id":"in_1","total_taxes":[{"amount":1},{"amount":"2"}]}`, "invoice.total_taxes[1].amount is a JSON string, want a number"},
		{`{"id":"in_1","lines":{"data":[{"period":{"start":"x"}}]}}`, "invoice.lines.data[0].period.start is a JSON string, want a number"},
		{`{"id":"in_1","status_transitions":{"paid_at":false}}`, "invoice.status_transitions.paid_at is a JSON bool, want a number"},
		{`{"id":"","object":"invoice"}`, "invoice.id is missing"},
		{`{"id":"in_1","object":"customer"}`, `invoice.object is "customer", want "invoice"`},
	} {
		var o stripejson.Invoice
		_, err := decode(ev, []byte(tt.raw), "invoice", "invoice", &o, &o.Common)
		if failure.Of(err) != failure.Schema || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("decode(%s) = %v (class %q), want a schema error saying %q", tt.raw, err, failure.Of(err), tt.want)
		}
	}
	// The kinds of issue 23 item 9: a card's details are read under its
	// type, as a charge's payment_method_details are.
	for _, tt := range []struct {
		k         kind
		dst       func() (any, *stripejson.Common)
		raw, want string
	}{
		{paymentMethodKind, func() (any, *stripejson.Common) { o := new(stripejson.PaymentMethod); return o, &o.Common },
			`{"id":"pm_1","type":"card","card":{"exp_month":"8"}}`, "payment_method.card.exp_month is a JSON string, want a number"},
		{chargeKind, func() (any, *stripejson.Common) { o := new(stripejson.Charge); return o, &o.Common },
			`{"id":"ch_1","status":"failed","payment_method_details":{"type":"card","card":{"exp_year":"x"}}}`,
			"charge.payment_method_details.card.exp_year is a JSON string, want a number"},
		{paymentMethodKind, func() (any, *stripejson.Common) { o := new(stripejson.PaymentMethod); return o, &o.Common },
			`{"id":"pm_1","customer":["cus_1"]}`, "payment_method.customer is a JSON value [\"cus_1\"], want a string"},
		{priceKind, func() (any, *stripejson.Common) { o := new(stripejson.Price); return o, &o.Common },
			`{"id":"price_1","recurring":{"interval_count":"1"}}`, "price.recurring.interval_count is a JSON string, want a number"},
		{productKind, func() (any, *stripejson.Common) { o := new(stripejson.Product); return o, &o.Common },
			`{"id":"prod_1","active":"yes"}`, "product.active is a JSON string, want a boolean"},
		{subscriptionScheduleKind, func() (any, *stripejson.Common) { o := new(stripejson.SubscriptionSchedule); return o, &o.Common },
			`{"id":"sub_sched_1"}`, "subscription_schedule.status is missing"},
		{subscriptionScheduleKind, func() (any, *stripejson.Common) { o := new(stripejson.SubscriptionSchedule); return o, &o.Common },
			`{"id":"sub_sched_1","status":"active","current_phase":{"end_date":"x"}}`,
			"subscription_schedule.current_phase.end_date is a JSON string, want a number"},
	} {
		dst, c := tt.dst()
		_, err := decode(ev, []byte(tt.raw), tt.k.objectType, tt.k.objectType, dst, c, tt.k.requires...)
		if failure.Of(err) != failure.Schema || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("decode(%s) = %v (class %q), want a schema error saying %q", tt.raw, err, failure.Of(err), tt.want)
		}
	}
	for _, raw := range []string{`{"id": "evt_1", `, `{"id":"evt_1","type":"a","created":1,"data":{"object":{"id":"x",}}}`, `{"id":"evt_1"} {}`} {
		if _, err := Parse([]byte(raw)); failure.Of(err) != failure.Permanent || !strings.Contains(err.Error(), "parse event") {
			t.Errorf("Parse(%s) = %v (class %q), want a permanent parse event error", raw, err, failure.Of(err))
		}
	}
}
