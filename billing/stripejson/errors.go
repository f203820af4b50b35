package stripejson

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/segmentio/encoding/json"
)

// TypeError describes err when it is a decoding error of a field of
// another type than the struct's: the field's path ("lines.data[0].period",
// relative to the decoded object) and the problem ("is a JSON string,
// want a number"); ok is false for any other error.
func TypeError(err error) (path, problem string, ok bool) {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return "", "", false
	}
	return fieldPath(te.Field), fmt.Sprintf("is a JSON %s, want %s", jsonValue(te.Value), jsonKind(te.Type)), true
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
