package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// errNotObject is the scanner's one error: the body is no JSON object of
// the form it reads.
var errNotObject = errors.New("api: body is not a JSON object")

// readEvent picks id, object, type and created from an event body in one
// pass over its top level, skipping every other value without decoding
// it: the api needs four fields of a 3 KiB event, and encoding/json
// scanned the body twice (a validity pass, then the decode) for them, a
// fifth of the api's CPU under load. A repeated key keeps its last value,
// as encoding/json would; keys match exactly (encoding/json would also
// accept "ID"; Stripe sends lower case). The values skipped are checked
// only for balanced brackets and closed strings: the body is signed, and
// the worker decodes it whole.
func readEvent(body []byte) (event, error) {
	var ev event
	s := scanner{b: body}
	if !s.consume('{') {
		return ev, errNotObject
	}
	if s.consume('}') {
		return ev, s.end()
	}
	for {
		key, ok := s.str()
		if !ok || !s.consume(':') {
			return ev, errNotObject
		}
		s.space()
		var err error
		switch string(key) {
		case "id":
			ev.ID, err = s.text()
		case "object":
			ev.Object, err = s.text()
		case "type":
			ev.Type, err = s.text()
		case "created":
			ev.Created, err = s.integer()
		default:
			err = s.skip()
		}
		if err != nil {
			return ev, err
		}
		if s.consume('}') {
			return ev, s.end()
		}
		if !s.consume(',') {
			return ev, errNotObject
		}
	}
}

// scanner reads JSON tokens from b at i.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips white space and then c, if c is next.
func (s *scanner) consume(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end accepts only white space after the object.
func (s *scanner) end() error {
	s.space()
	if s.i != len(s.b) {
		return errNotObject
	}
	return nil
}

// str reads a string token and returns it raw, without its quotes.
func (s *scanner) str() ([]byte, bool) {
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, false
	}
	end, ok := stringEnd(s.b, s.i+1)
	if !ok {
		return nil, false
	}
	raw := s.b[s.i+1 : end]
	s.i = end + 1
	return raw, true
}

// text reads a string value; null reads as "", as encoding/json leaves it.
func (s *scanner) text() (string, error) {
	if s.literal("null") {
		return "", nil
	}
	start := s.i
	raw, ok := s.str()
	switch {
	case !ok:
		return "", errNotObject
	case bytes.IndexByte(raw, '\\') < 0:
		return string(raw), nil
	}
	var v string // escapes: rare in an id or type, left to encoding/json
	if err := json.Unmarshal(s.b[start:s.i], &v); err != nil {
		return "", errNotObject
	}
	return v, nil
}

// integer reads an integer value; null reads as 0.
func (s *scanner) integer() (int64, error) {
	if s.literal("null") {
		return 0, nil
	}
	start := s.i
	for s.i < len(s.b) && (s.b[s.i] == '-' || '0' <= s.b[s.i] && s.b[s.i] <= '9') {
		s.i++
	}
	n, err := strconv.ParseInt(string(s.b[start:s.i]), 10, 64)
	if err != nil {
		return 0, errNotObject
	}
	return n, nil
}

func (s *scanner) literal(word string) bool {
	if bytes.HasPrefix(s.b[s.i:], []byte(word)) {
		s.i += len(word)
		return true
	}
	return false
}

// skip passes over one value: a string, an object or array (brackets
// balanced, strings closed), or a number or literal up to its delimiter.
func (s *scanner) skip() error {
	if s.i >= len(s.b) {
		return errNotObject
	}
	switch s.b[s.i] {
	case '"':
		if _, ok := s.str(); !ok {
			return errNotObject
		}
		return nil
	case '{', '[':
		end, ok := skipContainer(s.b, s.i)
		if !ok {
			return errNotObject
		}
		s.i = end
		return nil
	}
	start := s.i
	for s.i < len(s.b) && bytes.IndexByte([]byte(",}] \t\n\r"), s.b[s.i]) < 0 {
		s.i++
	}
	if s.i == start {
		return errNotObject
	}
	return nil
}

// skipContainer returns the index just past the object or array opening
// at b[i]. It works on locals, not the scanner's fields: the loop is most
// of the api's reading of a body.
func skipContainer(b []byte, i int) (int, bool) {
	depth := 0
	for ; i < len(b); i++ {
		if !structural[b[i]] {
			continue
		}
		switch b[i] {
		case '"':
			end, ok := stringEnd(b, i+1)
			if !ok {
				return 0, false
			}
			i = end
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1, true
			}
		}
	}
	return 0, false
}

// structural marks the bytes skipContainer acts on: one load per byte
// passes over the numbers, literals and punctuation between strings.
var structural = [256]bool{'"': true, '{': true, '}': true, '[': true, ']': true}

// stringEnd returns the index of the quote that closes the string whose
// contents start at b[start].
func stringEnd(b []byte, start int) (int, bool) {
	for i := start; ; i++ {
		// Most of an event's bytes are in strings: IndexByte passes over
		// them many bytes at a time.
		j := bytes.IndexByte(b[i:], '"')
		if j < 0 {
			return 0, false
		}
		i += j
		// The quote ends the string unless an odd run of backslashes
		// escapes it.
		k := i
		for k > start && b[k-1] == '\\' {
			k--
		}
		if (i-k)%2 == 0 {
			return i, true
		}
	}
}
