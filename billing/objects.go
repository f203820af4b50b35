package billing

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

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
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return payload{}, schemaError(ev, path+"."+fieldPath(te.Field), fmt.Sprintf("is a JSON %s, want %s", jsonValue(te.Value), jsonKind(te.Type)))
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

// fieldPath writes the decoder's path of a field (dotted, an array's
// index as a segment of digits) as this package's errors do:
// "lines.data[0].period". The common fields are embedded: their path is
// the object's.
func fieldPath(field string) string {
	var b strings.Builder
	for seg := range strings.SplitSeq(field, ".") {
		switch {
		case seg == "common" || seg == "":
		case strings.Trim(seg, "0123456789") == "":
			b.WriteString("[" + seg + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(seg)
		}
	}
	return b.String()
}

// jsonValue names the kind of JSON value an UnmarshalTypeError reports.
// The decoder reports the text it stopped at (quoted, cut short: "\"500\",
// \"app...") where encoding/json names the kind ("string"); a kind named
// already, or a value a custom decoder put in words ("value 42"), is kept.
func jsonValue(v string) string {
	if u, err := strconv.Unquote(v); err == nil {
		v = u
	}
	switch {
	case v == "":
		return "value"
	case v[0] == '"':
		return "string"
	case v[0] == '-' || '0' <= v[0] && v[0] <= '9' || strings.HasPrefix(v, "number"):
		return "number"
	case strings.HasPrefix(v, "true") || strings.HasPrefix(v, "false"):
		return "bool"
	case v[0] == '[':
		return "array"
	case v[0] == '{':
		return "object"
	}
	return v
}

// jsonKind names the JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "an array"
	default:
		return "an object"
	}
}
