// Package stripejson reads Stripe's JSON as the decoders need it: which
// top-level keys an object carries and what each holds (a key absent,
// null, "" or a value are four different things to a row: an absent field
// is left alone), expandable references, Unix times, metadata, and the
// shapes of the objects billing stores, in every supported API version.
package stripejson

import (
	"bytes"
	"reflect"
	"strconv"
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
// field names, case-insensitively and the last one counting. Of invalid
// JSON it reads what it can, up to the first byte that is not.
//
// It reads only the top level, each value skipped by its brackets and
// strings: the envelope's reader checked the bytes already
// (verify.ReadEnvelope), and the decoder reads the values. A tokenizer
// read every nested token again, a quarter of the decoding of an event.
func Scan(object []byte) (p Keys, objectType, id string) {
	p = Keys{keys: make([]byte, 0, min(len(object), 1024)), fields: make([]field, 0, 32)}
	i := skipSpace(object, 0)
	if i >= len(object) || object[i] != '{' {
		return p, objectType, id
	}
	for i = skipSpace(object, i+1); i < len(object) && object[i] == '"'; {
		end := stringEnd(object, i)
		if end < 0 {
			break
		}
		start := len(p.keys)
		p.keys = appendString(p.keys, object[i:end])
		isType, isID := bytes.EqualFold(p.keys[start:], []byte("object")), bytes.EqualFold(p.keys[start:], []byte("id"))
		if i = skipSpace(object, end); i >= len(object) || object[i] != ':' {
			break
		}
		i = skipSpace(object, i+1)
		end = valueEnd(object, i)
		if end <= i {
			break
		}
		v := object[i:end]
		p.fields = append(p.fields, field{end: len(p.keys), held: HeldOf(v)})
		if isType || isID {
			var s string
			if v[0] == '"' {
				s = stringOf(v)
			}
			if isType {
				objectType = s
			} else {
				id = s
			}
		}
		if i = skipSpace(object, end); i >= len(object) || object[i] != ',' {
			break
		}
		i = skipSpace(object, i+1)
	}
	return p, objectType, id
}

// skipSpace returns the index of the first byte of b from i on that is
// not JSON white space.
func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// stringEnd returns the index just past the string whose quote is at
// b[i]; -1 when it does not end.
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		n := bytes.IndexByte(b[i:], '"')
		if n < 0 {
			return -1
		}
		i += n
		escaped := false
		for j := i - 1; j >= 0 && b[j] == '\\'; j-- {
			escaped = !escaped
		}
		if !escaped {
			return i + 1
		}
	}
	return -1
}

// valueEnd returns the index just past the value that starts at b[i]:
// a string, an object or array by its brackets (those in its strings
// skipped), else a number or literal up to the next delimiter; -1 when
// it does not end.
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				if i = stringEnd(b, i); i < 0 {
					return -1
				}
				i-- // the loop steps past the closing quote
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return -1
	}
	for j := i; j < len(b); j++ {
		switch b[j] {
		case ',', '}', ']', ' ', '\n', '\r', '\t':
			return j
		}
	}
	return len(b)
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
		*r = Ref(stringOf(b)) // b is a JSON string: the decoder read it
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
	n, err := strconv.ParseInt(string(b), 10, 64) // the usual case, without the decoder's set-up per call
	if err != nil {
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
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
