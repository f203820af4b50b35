package billing

import (
	stdjson "encoding/json"
	"testing"

	"github.com/stripe-billing/billing/billing/stripejson"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/verify"
)

// fuzzEvents seeds the fuzz targets: the fixtures' events of every
// supported API version.
func fuzzEvents(f *testing.F) {
	for _, v := range SupportedVersions() {
		for _, b := range stripefixture.Events(v) {
			f.Add(b)
		}
	}
}

// FuzzDecode runs the worker's decoder on any body: Parse, then the
// handler's decode of the object, never panic; every error they give is
// one that parks the event (never transient, which would retry it for
// hours); a body the api and verifier accept (verify.ReadEnvelope) is
// read by Parse as they read it; and the object decodes as encoding/json
// decodes it (sameAsStd).
func FuzzDecode(f *testing.F) {
	fuzzEvents(f)
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := Parse(raw)
		if err != nil {
			if c := failure.Of(err); c != failure.Permanent {
				t.Fatalf("Parse error %v of class %s, want permanent", err, c)
			}
			return
		}
		if env, err := verify.ReadEnvelope(raw); err == nil {
			if env.ID != ev.ID || env.Type != ev.Type || env.Account != ev.Account || env.Created != ev.Created.Unix() {
				t.Fatalf("Parse read %s %s %q %d, the api %+v", ev.ID, ev.Type, ev.Account, ev.Created.Unix(), env)
			}
		}
		if Handles(ev.Type) && !IsPreview(ev) {
			if _, err := PlanOf(ev); err != nil && failure.Of(err) != failure.Schema && failure.Of(err) != failure.Permanent {
				t.Fatalf("decode error %v of class %s, want schema or permanent", err, failure.Of(err))
			}
		}
		if _, ok := objectTypes[ev.ObjectType]; ok {
			sameAsStd(t, ev.ObjectType, "fuzzed", ev.Object)
		}
	})
}

// FuzzScanObject holds the presence scanner to encoding/json: on any
// JSON object, the same top-level keys holding the same kind of value,
// and the same "object" and "id" where they are strings; on anything
// else, no panic.
func FuzzScanObject(f *testing.F) {
	for _, v := range SupportedVersions() {
		for name := range objectTypes {
			if stripefixture.Has(v, name) {
				f.Add(stripefixture.Raw(v, name))
			}
		}
	}
	f.Add([]byte(`{"object":"invoice","id":"in_1","OBJECT":"customer","Id":"in_2","ıd":"x","obj\u0065ct":null}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, objectType, id := stripejson.Scan(raw)
		keys, err := stdKeys(raw)
		if err != nil {
			return
		}
		if p.Len() < len(keys) {
			t.Fatalf("payload has %d keys, encoding/json %d", p.Len(), len(keys))
		}
		for k, h := range keys {
			if g, ok := p.Get(k); !ok || g != h {
				t.Fatalf("payload key %q holds %v (%v), encoding/json %v", k, g, ok, h)
			}
		}
		var std struct {
			Object any `json:"object"`
			ID     any `json:"id"`
		}
		if stdjson.Unmarshal(raw, &std) != nil {
			return
		}
		wantType, _ := std.Object.(string)
		wantID, _ := std.ID.(string)
		if objectType != wantType || id != wantID {
			t.Fatalf("scanned object %q id %q, encoding/json %q %q", objectType, id, wantType, wantID)
		}
	})
}
