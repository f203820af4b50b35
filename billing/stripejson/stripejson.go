// Package stripejson reads Stripe's JSON as the decoders need it: which
// top-level keys an object carries and what each holds (a key absent,
// null, "" or a value are four different things to a row: an absent field
// is left alone), expandable references, Unix times, metadata, and the
// shapes of the objects billing stores, in every supported API version.
package stripejson

import (
	"bytes"
	"reflect"
	"time"
	"unicode/utf8"

	"github.com/segmentio/encoding/json"
)

// Keys are the fields a Stripe object carries, by top-level key: a key
// it lacks is a field the event says nothing about, left alone in the row.
// Only what each value is (null, "", other) is kept: decode reads the
// values themselves into the kind's struct. The keys are kept end to end
// in one buffer: a string of each, or a map of them, would be allocations
// per field of every event.
type Keys struct {
	keys   []byte  // the keys, unquoted, one after the other
	fields []field // in the object's order
}

// field is a top-level key of a Keys, keys[previous end:end], and
// what its value is.
type field struct {
	end  int
	held Held
}

// Held is what a key of Keys holds.
type Held byte

const (
	HeldValue Held = iota
	HeldNull
	HeldEmpty // ""
)

// HeldOf says what the JSON value v is.
func HeldOf(v []byte) Held {
	switch string(v) {
	case "null":
		return HeldNull
	case `""`:
		return HeldEmpty
	default:
		return HeldValue
	}
}

// Get returns what key holds; false when p lacks it. Of a key given twice
// the last counts, as encoding/json reads it.
func (p Keys) Get(key string) (Held, bool) {
	for i := len(p.fields) - 1; i >= 0; i-- {
		start := 0
		if i > 0 {
			start = p.fields[i-1].end
		}
		if string(p.keys[start:p.fields[i].end]) == key {
			return p.fields[i].held, true
		}
	}
	return 0, false
}

// Has reports whether p carries any of keys.
func (p Keys) Has(keys ...string) bool {
	for _, k := range keys {
		if _, ok := p.Get(k); ok {
			return true
		}
	}
	return false
}

// Missing reports whether p lacks key or carries it as null or "".
func (p Keys) Missing(key string) bool {
	v, ok := p.Get(key)
	return !ok || v == HeldNull || v == HeldEmpty
}

// Scan reads the top-level fields of object, valid JSON: its keys
// and what each holds, and its "object" and "id" where they are strings
// (else ""). Those two are matched as encoding/json matches a struct's
// field names, case-insensitively and the last one counting.
func Scan(object []byte) (p Keys, objectType, id string) {
	p = Keys{keys: make([]byte, 0, 1024), fields: make([]field, 0, 64)}
	key, isType, isID := false, false, false
	for t := json.NewTokenizer(object); t.Next(); {
		switch {
		case t.Depth != 1 || t.Delim == ':' || t.Delim == ',' || t.Delim == '}':
		case t.IsKey && (len(t.Value) < 2 || t.Value[0] != '"'):
			// A key that is no string: the object is not JSON, which
			// the decoder refuses; the tokenizer still calls it a key
			// (FuzzScanObject found `{0`).
			return p, objectType, id
		case t.IsKey:
			start := len(p.keys)
			p.keys = appendString(p.keys, t.Value)
			isType, isID = bytes.EqualFold(p.keys[start:], []byte("object")), bytes.EqualFold(p.keys[start:], []byte("id"))
			key = true
		case key:
			p.fields = append(p.fields, field{end: len(p.keys), held: HeldOf(t.Value)})
			if isType || isID {
				var s string
				if t.Delim == 0 && t.Value[0] == '"' {
					s = stringOf(t.Value)
				}
				if isType {
					objectType = s
				} else {
					id = s
				}
			}
			key = false
		}
	}
	return p, objectType, id
}

// stringOf is the value of the JSON string s.
func stringOf(s []byte) string {
	if plain(s) {
		return string(s[1 : len(s)-1])
	}
	return string(json.AppendUnescape(nil, s, 0))
}

// appendString appends the value of the JSON string s to b.
func appendString(b, s []byte) []byte {
	if plain(s) {
		return append(b, s[1:len(s)-1]...)
	}
	return json.AppendUnescape(b, s, 0) // escapes, or bytes to read as UTF-8 (U+FFFD where invalid)
}

// plain reports whether the JSON string s is ASCII without escapes: its
// text between the quotes is its value.
func plain(s []byte) bool {
	for _, c := range s {
		if c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// Len is the number of top-level keys, a key given twice counted twice.
func (p Keys) Len() int { return len(p.fields) }

// Ref is an expandable reference: "id", {"id": ...} or null.
type Ref string

func (r *Ref) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*r = ""
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = Ref(s)
		return nil
	case b[0] == '{':
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*r = Ref(o.ID)
		return nil
	default:
		return &json.UnmarshalTypeError{Value: "value " + string(b), Type: reflect.TypeFor[string]()}
	}
}

// Ptr returns nil for "" so the column is NULL.
func (r Ref) Ptr() *string {
	if r == "" {
		return nil
	}
	s := string(r)
	return &s
}

// Unix is seconds since the epoch as T, nil for null or 0.
type Unix struct{ T *time.Time }

func (u *Unix) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		u.T = nil
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	if n == 0 {
		u.T = nil
		return nil
	}
	t := time.Unix(n, 0).UTC()
	u.T = &t
	return nil
}

// Metadata is an object's Stripe metadata (string keys and values) as
// compact JSON text with its keys sorted, nil for null: the same object
// gives the same column whatever the payload's spacing.
type Metadata struct{ S *string }

func (m *Metadata) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		m.S = nil
		return nil
	}
	var kv map[string]string
	if err := json.Unmarshal(b, &kv); err != nil {
		return err
	}
	text, err := json.Marshal(kv)
	if err != nil {
		return err
	}
	s := string(text)
	m.S = &s
	return nil
}

// Scanned reports whether p was read by Scan (the zero Keys was not).
func (p Keys) Scanned() bool { return p.fields != nil }
