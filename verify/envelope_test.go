package verify_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	segmentio "github.com/segmentio/encoding/json"

	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/verify"
)

// stdEnvelope is what encoding/json reads of the fields ReadEnvelope
// returns.
type stdEnvelope struct {
	ID         string `json:"id"`
	Object     string `json:"object"`
	Type       string `json:"type"`
	Account    string `json:"account"`
	Created    int64  `json:"created"`
	APIVersion string `json:"api_version"`
	Livemode   bool   `json:"livemode"`
	Data       *struct {
		Object json.RawMessage `json:"object"`
	} `json:"data"`
}

// readStd reads body's envelope with encoding/json.
func readStd(body []byte) (verify.Envelope, error) {
	var s stdEnvelope
	if err := json.Unmarshal(body, &s); err != nil {
		return verify.Envelope{}, err
	}
	env := verify.Envelope{ID: s.ID, Type: s.Type, Kind: s.Object, Created: s.Created, APIVersion: s.APIVersion, Livemode: s.Livemode, Account: s.Account}
	if s.Data != nil && string(s.Data.Object) != "null" { // RawMessage keeps a null
		env.Object = s.Data.Object
	}
	return env, nil
}

// TestReadEnvelope checks the reader against encoding/json on the bodies
// both accept, and its message for each body it refuses.
func TestReadEnvelope(t *testing.T) {
	t.Parallel()
	t.Run("AgreesWithEncodingJSON", func(t *testing.T) {
		t.Parallel()
		bodies := map[string]string{
			"stripe order":              `{"id":"evt_1","object":"event","api_version":"2023-10-16","created":1700000000,"data":{"object":{"id":"in_1","lines":{"data":[{"a":[1,2,{"b":"}]"}]}]}}},"livemode":false,"pending_webhooks":1,"request":{"id":null,"idempotency_key":null},"type":"invoice.paid"}`,
			"white space":               " \n{ \"id\" : \"evt_2\" ,\t\"type\":\"customer.created\", \"object\":\"event\", \"created\" : 12 }\r\n",
			"escapes":                   `{"id":"evt_\u0031","type":"a\"b","object":"event","created":3,"note":"q\\\"}","account":"acct_\/1"}`,
			"backslashes":               `{"dir":"C:\\","id":"evt_5","esc":"\\\"\\","type":"t","object":"event","created":4}`,
			"nulls":                     `{"id":null,"type":null,"object":null,"created":null,"account":null}`,
			"empty":                     `{}`,
			"nested keys":               `{"data":{"id":"in_1","ID":"x","type":"nope","created":5},"id":"evt_3","object":"event","type":"t","created":-1}`,
			"other values":              `{"a":true,"b":false,"c":null,"d":-1.5e3,"e":[],"f":{},"g":[[],{}],"h":0,"i":-0.0E+1,"id":"evt_4"}`,
			"unicode":                   `{"id":"evt_6","name":"Zoë 東京 🎉 \u00e9\ud83c\udf89","ıd":"other key","created":-0}`,
			"lone surrogate in a value": `{"id":"evt_7","note":"\ud800"}`,
			"envelope nulls":            `{"api_version":null,"livemode":null,"data":null}`,
			"data.object null":          `{"livemode":true,"data":{"object":null,"previous_attributes":{"object":1}}}`,
			"data without object":       `{"api_version":"2025-03-31.basil","data":{"previous_attributes":{}}}`,
			"empty data":                `{"data":{}}`,
			"data.object spaced":        `{"data": { "object" : { "id" : [ {}, [] ] } , "x" : 1 } }`,
			"data.object deep":          `{"data":{"object":{"a":` + strings.Repeat("[", verify.MaxDepth-3) + strings.Repeat("]", verify.MaxDepth-3) + `}}}`,
		}
		for _, version := range stripefixture.Versions() {
			for i, b := range stripefixture.Events(version) {
				bodies[version+" fixture "+string(rune('a'+i))] = string(b)
			}
		}
		for name, body := range bodies {
			want, err := readStd([]byte(body))
			if err != nil {
				t.Fatalf("%s: encoding/json: %v", name, err)
			}
			got, err := verify.ReadEnvelope([]byte(body))
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("%s: ReadEnvelope = %+v, %v; encoding/json read %+v", name, got, err, want)
			}
		}
	})
	t.Run("ObjectIsPartOfBody", func(t *testing.T) {
		t.Parallel()
		body := []byte(`{"id":"evt_1","data":{"object":{"id":"in_1"}},"type":"invoice.paid"}`)
		env, err := verify.ReadEnvelope(body)
		if err != nil {
			t.Fatal(err)
		}
		at := bytes.Index(body, []byte(`{"id":"in_1"}`))
		if string(env.Object) != `{"id":"in_1"}` || &env.Object[0] != &body[at] || cap(env.Object) != len(env.Object) {
			t.Errorf("Object %q (cap %d) is not body[%d:] capped at its end", env.Object, cap(env.Object), at)
		}
	})
	t.Run("Refuses", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct{ name, body, want string }{
			{"empty", ``, "malformed body: not a JSON object at the end (byte 0)"},
			{"bare word", `hello`, "malformed body: not a JSON object at byte 0"},
			{"array", `[]`, "malformed body: not a JSON object at byte 0"},
			{"unclosed", `{"id":"evt_1"`, "malformed body: want ',' or '}' after an object value at the end (byte 13)"},
			{"trailing comma", `{"id":"evt_1",}`, "malformed body: want a string at byte 14"},
			{"no colon", `{"id" "evt_1"}`, "malformed body: want ':' after an object key at byte 6"},
			{"data after the object", `{"id":"evt_1"} x`, "malformed body: data after the object at byte 15"},
			{"two objects", `{}{}`, "malformed body: data after the object at byte 2"},
			{"unquoted key", `{id:"evt_1"}`, "malformed body: want a string at byte 1"},
			{"bare word value", `{"a":yes}`, `malformed body: invalid character 'y' at byte 5`},
			{"truncated literal", `{"a":tru}`, `malformed body: invalid character 't' at byte 5`},
			{"literal run on", `{"a":nullx}`, `malformed body: invalid character 'n' at byte 5`},
			{"leading zero", `{"a":012}`, "malformed body: number with a leading zero at byte 5"},
			{"negative leading zero", `{"a":-01}`, "malformed body: number with a leading zero at byte 5"},
			{"bare minus", `{"a":-}`, "malformed body: invalid number at byte 5"},
			{"no fraction digits", `{"a":1.}`, "malformed body: invalid number at byte 5"},
			{"no exponent digits", `{"a":1e}`, "malformed body: invalid number at byte 5"},
			{"hex number", `{"a":0x1F}`, "malformed body: invalid number at byte 5"},
			{"plus sign", `{"a":+1}`, `malformed body: invalid character '+' at byte 5`},
			{"unknown escape", `{"a":"x\q"}`, `malformed body: invalid escape '\q' at byte 7`},
			{"short unicode escape", `{"a":"\u12G4"}`, `malformed body: invalid \u escape at byte 6`},
			{"raw newline in a string", "{\"a\":\"x\ny\"}", "malformed body: control character 0x0a in a string at byte 7"},
			{"raw NUL in a key", "{\"a\x00\":1}", "malformed body: control character 0x00 in a string at byte 3"},
			{"invalid UTF-8", "{\"a\":\"\xff\"}", "malformed body: invalid UTF-8 at byte 6"},
			{"UTF-8 surrogate", "{\"a\":\"\xed\xa0\x80\"}", "malformed body: invalid UTF-8 at byte 6"},
			{"overlong UTF-8", "{\"a\":\"\xc0\xaf\"}", "malformed body: invalid UTF-8 at byte 6"},
			{"unterminated string", `{"a":"abc`, "malformed body: unterminated string at the end (byte 9)"},
			{"unbalanced", `{"data":{"a":[1}}`, "malformed body: want ',' or the container's end after a value at byte 15"},
			{"missing value", `{"a":}`, `malformed body: invalid character '}' at byte 5`},
			{"id twice", `{"id":"evt_a","id":"evt_b"}`, `malformed body: key "id" given twice at byte 14`},
			{"created twice", `{"created":1,"type":"a","created":2}`, `malformed body: key "created" given twice at byte 24`},
			{"ID", `{"ID":"evt_a"}`, `malformed body: key "ID" stands for "id": envelope keys must be spelt exactly at byte 1`},
			{"ID beside id", `{"id":"evt_a","ID":"evt_b"}`, `malformed body: key "ID" stands for "id": envelope keys must be spelt exactly at byte 14`},
			{"escaped id", `{"id":"evt_a","\u0069d":"evt_b"}`, `malformed body: key "\\u0069d" stands for "id": envelope keys must be spelt exactly at byte 14`},
			{"Type", `{"Type":"invoice.paid"}`, `malformed body: key "Type" stands for "type": envelope keys must be spelt exactly at byte 1`},
			{"OBJECT", `{"OBJECT":"event"}`, `malformed body: key "OBJECT" stands for "object": envelope keys must be spelt exactly at byte 1`},
			{"escaped created", `{"cr\u0065ated":1}`, `malformed body: key "cr\\u0065ated" stands for "created": envelope keys must be spelt exactly at byte 1`},
			{"long s in api_version", `{"api_ver` + "\u017f" + `ion":"x"}`, `malformed body: key "api_verſion" stands for "api_version": envelope keys must be spelt exactly at byte 1`},
			{"Data", `{"Data":{}}`, `malformed body: key "Data" stands for "data": envelope keys must be spelt exactly at byte 1`},
			{"id a number", `{"id":1}`, "malformed body: id is not a string at byte 6"},
			{"created a string", `{"created":"1"}`, "malformed body: created is not an integer at byte 11"},
			{"created a fraction", `{"created":1.5}`, "malformed body: created is not an integer of 64 bits at byte 11"},
			{"created an exponent", `{"created":1e9}`, "malformed body: created is not an integer of 64 bits at byte 11"},
			{"created over 64 bits", `{"created":9223372036854775808}`, "malformed body: created is not an integer of 64 bits at byte 11"},
			{"api_version a number", `{"api_version":20231016}`, "malformed body: api_version is not a string at byte 15"},
			{"livemode a string", `{"livemode":"false"}`, "malformed body: livemode is not a boolean at byte 12"},
			{"livemode a number", `{"livemode":0}`, "malformed body: livemode is not a boolean at byte 12"},
			{"livemode run on", `{"livemode":truex}`, "malformed body: livemode is not a boolean at byte 12"},
			{"data an array", `{"data":[{"object":{}}]}`, "malformed body: data is not an object at byte 8"},
			{"data a string", `{"data":"not an object"}`, "malformed body: data is not an object at byte 8"},
			{"data.object an array", `{"data":{"object":[]}}`, "malformed body: data.object is not an object at byte 18"},
			{"data.object a string", `{"data":{"object":"in_1"}}`, "malformed body: data.object is not an object at byte 18"},
			{"data.object twice", `{"data":{"object":{},"object":{}}}`, `malformed body: key "object" given twice in data at byte 21`},
			{"data.Object", `{"data":{"Object":{}}}`, `malformed body: key "Object" stands for "object": envelope keys must be spelt exactly in data at byte 9`},
			{"escaped data.object", `{"data":{"object":{},"obj\u0065ct":{}}}`, `malformed body: key "obj\\u0065ct" stands for "object": envelope keys must be spelt exactly in data at byte 21`},
			{"data unclosed", `{"data":{"object":{}`, "malformed body: want ',' or '}' after an object value at the end (byte 20)"},
			{"data.object unclosed", `{"data":{"object":{"a":1`, "malformed body: want ',' or the container's end after a value at the end (byte 24)"},
			{"too deep in data.object", `{"data":{"object":{"a":` + strings.Repeat("[", verify.MaxDepth-2) + strings.Repeat("]", verify.MaxDepth-2) + `}}}`,
				"malformed body: nested deeper than 64 levels at byte 84"},
			{"too deep", `{"a":` + strings.Repeat("[", verify.MaxDepth) + strings.Repeat("]", verify.MaxDepth) + `}`,
				"malformed body: nested deeper than 64 levels at byte 68"},
			{"millions deep", `{"a":` + strings.Repeat(`{"b":[`, 1_000_000), "malformed body: nested deeper than 64 levels at byte 196"},
		} {
			env, err := verify.ReadEnvelope([]byte(tt.body))
			if err == nil || err.Error() != tt.want || !errors.Is(err, verify.ErrMalformed) {
				t.Errorf("%s: ReadEnvelope(%.40q) = %+v, %v; want %q", tt.name, tt.body, env, err, tt.want)
			}
		}
	})
	t.Run("DepthUpToMaxDepth", func(t *testing.T) {
		t.Parallel()
		// The object itself is level 1: MaxDepth-1 levels inside it.
		n := verify.MaxDepth - 1
		body := `{"a":` + strings.Repeat(`[{"b":`, n/2) + strings.Repeat("[", n%2) + `1` + strings.Repeat("]", n%2) + strings.Repeat(`}]`, n/2) + `}`
		if _, err := verify.ReadEnvelope([]byte(body)); err != nil {
			t.Errorf("a body %d levels deep: %v", verify.MaxDepth, err)
		}
	})
}

// TestMaxDepthAboveStripe holds MaxDepth well above the nesting of every
// Stripe object of every supported API version.
func TestMaxDepthAboveStripe(t *testing.T) {
	t.Parallel()
	deepest := 0
	for _, version := range stripefixture.Versions() {
		for _, body := range stripefixture.Events(version) {
			deepest = max(deepest, depth(t, body))
		}
	}
	if deepest < 4 || deepest > verify.MaxDepth/4 {
		t.Errorf("the fixtures' events nest %d deep: MaxDepth %d must be at least 4 times that", deepest, verify.MaxDepth)
	}
}

// depth is the nesting of the JSON value b, as encoding/json's tokens
// tell it.
func depth(t *testing.T, b []byte) int {
	t.Helper()
	d, deepest := 0, 0
	dec := json.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := dec.Token()
		if err != nil {
			return deepest
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			d++
			deepest = max(deepest, d)
		case json.Delim('}'), json.Delim(']'):
			d--
		}
	}
}

func TestCheckEvent(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	ok := verify.Envelope{ID: "evt_1", Kind: "event", Type: "invoice.paid", Created: now.Unix(), Object: []byte(`{"id":"in_1"}`)}
	with := func(f func(*verify.Envelope)) verify.Envelope { e := ok; f(&e); return e }
	for _, tt := range []struct {
		name string
		env  verify.Envelope
		want error
	}{
		{"Stripe's", ok, nil},
		{"not an event", with(func(e *verify.Envelope) { e.Kind = "customer" }), verify.ErrNotEvent},
		{"no object", with(func(e *verify.Envelope) { e.Kind = "" }), verify.ErrNotEvent},
		{"no data.object", with(func(e *verify.Envelope) { e.Object = nil }), verify.ErrNotEvent},
		{"empty data.object", with(func(e *verify.Envelope) { e.Object = []byte{} }), verify.ErrNotEvent},
		{"data.object not an object", with(func(e *verify.Envelope) { e.Object = []byte(`[]`) }), verify.ErrNotEvent},
		{"empty data.object object", with(func(e *verify.Envelope) { e.Object = []byte(`{}`) }), nil},
		{"no id", with(func(e *verify.Envelope) { e.ID = "" }), verify.ErrNotEvent},
		{"no type", with(func(e *verify.Envelope) { e.Type = "" }), verify.ErrNotEvent},
		{"no created", with(func(e *verify.Envelope) { e.Created = 0 }), verify.ErrNotEvent},
		{"bad id", with(func(e *verify.Envelope) { e.ID = "cus_1" }), verify.ErrBadID},
		{"bad type", with(func(e *verify.Envelope) { e.Type = "Invoice.paid" }), verify.ErrBadType},
		{"future", with(func(e *verify.Envelope) { e.Created = now.Add(time.Hour).Unix() }), verify.ErrFutureCreated},
	} {
		if err := verify.CheckEvent(tt.env, now, 5*time.Minute); !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
			t.Errorf("%s: CheckEvent = %v, want %v", tt.name, err, tt.want)
		}
	}
}

// FuzzReadEnvelope holds the reader to encoding/json: what it accepts,
// encoding/json decodes to the same envelope (id, object, type, account,
// created, api_version, livemode and the bytes of data.object); what
// encoding/json finds invalid, it refuses. It never panics and never
// recurses (a deep body is a test case, not a crash).
func FuzzReadEnvelope(f *testing.F) {
	for _, version := range stripefixture.Versions() {
		for _, b := range stripefixture.Events(version) {
			f.Add(b)
		}
	}
	for _, s := range []string{
		`{"id":"evt_1","ID":"x"}`, `{"\u0069d":"evt_1"}`, `{"a":[{"b":[1,2.5e-3,"\ud83c\udf89"]}]}`, `{"created":-0}`,
		`{"livemode":true,"api_version":"2023-10-16","data":{"object":{"id":"in_1"},"previous_attributes":{"object":null}}}`,
		`{"data":{"object":null}}`, `{"data":null,"livemode":null}`, `{"data":{"OBJECT":{}}}`, `{"data":{"object":[]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := verify.ReadEnvelope(body)
		if err != nil {
			if !errors.Is(err, verify.ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted %q, which encoding/json finds invalid", body)
		}
		want, err := readStd(body)
		if err != nil {
			t.Fatalf("accepted %q, which encoding/json refuses: %v", body, err)
		}
		if !reflect.DeepEqual(env, want) {
			t.Fatalf("read %+v from %q, encoding/json %+v", env, body, want)
		}
		if env.Object != nil && (env.Object[0] != '{' || !json.Valid(env.Object)) {
			t.Fatalf("data.object %q is not a JSON object", env.Object)
		}
	})
}

// invoicePaid is an invoice.paid event as Stripe sends it (stripe-mock's
// invoice fixture, indented).
func invoicePaid(b *testing.B) []byte {
	body, err := json.MarshalIndent(map[string]any{
		"id": "evt_1", "object": "event", "api_version": "2023-10-16", "created": 1700000000,
		"data":     map[string]any{"object": stripefixture.Object("2023-10-16", "invoice")},
		"livemode": false, "pending_webhooks": 1, "request": map[string]any{"id": nil, "idempotency_key": nil},
		"type": "invoice.paid",
	}, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkEnvelopeOnce is the saving of reading the envelope once
// (issue 26): Once is ReadEnvelope alone, as the api and the worker run
// it, its Envelope carrying api_version, livemode and data.object; Twice
// adds the second decode of the envelope the worker ran before
// (billing.Parse: segmentio's, keeping data.object as a part of the body).
func BenchmarkEnvelopeOnce(b *testing.B) {
	body := invoicePaid(b)
	b.Run("Once", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if env, err := verify.ReadEnvelope(body); err != nil || env.Object == nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Twice", func(b *testing.B) {
		b.SetBytes(int64(len(body)))
		b.ReportAllocs()
		for b.Loop() {
			if _, err := verify.ReadEnvelope(body); err != nil {
				b.Fatal(err)
			}
			var se struct {
				ID         string `json:"id"`
				Type       string `json:"type"`
				APIVersion string `json:"api_version"`
				Livemode   bool   `json:"livemode"`
				Account    string `json:"account"`
				Created    int64  `json:"created"`
				Data       *struct {
					Object segmentio.RawMessage `json:"object"`
				} `json:"data"`
			}
			if _, err := segmentio.Parse(body, &se, segmentio.DontCopyRawMessage); err != nil || se.Data == nil {
				b.Fatal(err)
			}
		}
	})
}
