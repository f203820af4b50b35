package billing

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/segmentio/encoding/json"

	"github.com/stripe-billing/billing/billing/stripejson"
	"github.com/stripe-billing/billing/failure"
)

// The structs below read only what the tables keep, and tolerate the shapes
// that changed between API versions: expandable references are an id or an
// object, and fields that moved are read from both places. A field of a
// table is a pointer, nil when the payload says null; whether the payload
// carries the field at all is the payload's to say (decode).

// The decoders' names for stripejson's types.
type (
	payload  = stripejson.Keys
	ref      = stripejson.Ref
	unix     = stripejson.Unix
	metadata = stripejson.Metadata
)

// decode reads raw, the object at path (such as "invoice" or
// "invoice.payments.data[0]") of event ev, into dst, checks that it is a
// want with an id and every field of requires, and returns the fields it
// carries. A field of another type than Stripe's, a missing id or required
// field, or an object of another kind is an error of class failure.Schema
// naming the field and the event's API version.
func decode(ev Event, raw json.RawMessage, path, want string, dst any, c *stripejson.Common, requires ...string) (payload, error) {
	return decodeScanned(ev, raw, payload{}, path, want, dst, c, requires...)
}

// decodeScanned is decode with raw's keys already read (scanObject), or
// none (read here).
func decodeScanned(ev Event, raw json.RawMessage, keys payload, path, want string, dst any, c *stripejson.Common, requires ...string) (payload, error) {
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '{' {
		return payload{}, schemaError(ev, path, "is not an object")
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		var se *json.SyntaxError
		if field, problem, ok := stripejson.TypeError(err); ok {
			return payload{}, schemaError(ev, path+"."+field, problem)
		}
		switch {
		case errors.As(err, &se):
			return payload{}, schemaError(ev, path, "is not an object")
		}
		return payload{}, schemaError(ev, path, err.Error())
	}
	if c.Object != "" && c.Object != want {
		return payload{}, schemaError(ev, path+".object", fmt.Sprintf("is %q, want %q", c.Object, want))
	}
	p := keys
	if !p.Scanned() {
		p, _, _ = stripejson.Scan(raw)
	}
	for _, key := range append([]string{"id"}, requires...) {
		if p.Missing(key) {
			return payload{}, schemaError(ev, path+"."+key, "is missing")
		}
	}
	return p, nil
}

// schemaError is a failure.Schema error about the field at path of ev's
// object.
func schemaError(ev Event, path, problem string) error {
	version := ev.APIVersion
	if version == "" {
		version = "unknown"
	}
	return failure.MarkSchema(fmt.Errorf("billing: event %s (%s, API version %s): %s %s", ev.ID, ev.Type, version, path, problem))
}
