package verify

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays an event body may
// have, its own object counted. Stripe's objects nest about ten levels
// (TestMaxDepthAboveStripe reads every fixture); the decoders after this
// check recurse once per level, and without a bound a body of a few
// million '[' overflows the goroutine's stack, a fatal error that no
// recover catches.
const MaxDepth = 64

// The reader keeps one bit per open container in a uint64: this does not
// compile with a MaxDepth above 64.
const _ = uint64(1) << (MaxDepth - 1)

// ErrMalformed is the start of every error of ReadEnvelope: the body is
// not one JSON object read one way. The api answers it with a 400 and the
// error's text; the worker parks the message as Malformed.
var ErrMalformed = errors.New("malformed body")

// ErrNotEvent: the body is JSON, but no Stripe event (CheckEvent).
var ErrNotEvent = errors.New("body is not a Stripe event")

// Envelope is an event body's top level, read once (ReadEnvelope) and
// handed on: the fields that say which event it is and where it comes
// from, and the bytes of the object it carries, which the worker decodes.
type Envelope struct {
	ID, Type string
	// Kind is the body's "object": "event" for a Stripe event.
	Kind       string
	Created    int64  // Unix seconds
	APIVersion string // the endpoint's API version the body is written in
	Livemode   bool
	Account    string // the Connect account; "" for the platform's own
	// Object is data.object, its raw bytes: a part of the body, not a
	// copy (its capacity ends with it, so an append cannot write into the
	// body), and nothing may write to it. Always a JSON object when set;
	// nil when data or data.object is absent or null.
	Object []byte
}

// envelopeKeys are the top-level keys Envelope is read from, in the order
// of the key constants below; dataKeys those of data. Each may appear
// once and only spelt so: encoding/json and the worker's earlier decoder
// would also take "ID", "\u0069d" or the last of two "id", and a body
// that one reader takes for one event and another for another is refused.
var (
	envelopeKeys = [...]string{"id", "object", "type", "created", "account", "api_version", "livemode", "data"}
	dataKeys     = [...]string{"object"}
)

// Indexes into envelopeKeys.
const (
	keyID = iota
	keyObject
	keyType
	keyCreated
	keyAccount
	keyAPIVersion
	keyLivemode
	keyData
)

// members keeps one bit per known key in a uint16: this does not compile
// with more than 16.
const _ = uint16(1) << (len(envelopeKeys) - 1)

// ReadEnvelope checks that body is one JSON object (RFC 8259: UTF-8, no
// bare words, leading zeros, unknown escapes or raw control characters),
// nested at most MaxDepth deep, whose envelope keys (and data's "object")
// each appear at most once and spelt exactly, and reads its Envelope.
// Each envelope key holds its type or null (read as Go's zero value, as
// encoding/json reads it): id, object, type, account and api_version a
// string, created an integer of 64 bits, livemode a boolean, data an
// object, and data.object an object. Whether the envelope is an event's
// is CheckEvent's to say. It reads the body once, iteratively: it is the
// bound every later decoder relies on, so it must not recurse itself.
func ReadEnvelope(body []byte) (Envelope, error) {
	r := reader{b: body}
	var env Envelope
	if r.space(); !r.peek('{') {
		return Envelope{}, r.fail("not a JSON object")
	}
	err := r.members(envelopeKeys[:], "", 1, func(k int) (err error) {
		name := envelopeKeys[k]
		switch k {
		case keyID:
			env.ID, err = r.text(name)
		case keyObject:
			env.Kind, err = r.text(name)
		case keyType:
			env.Type, err = r.text(name)
		case keyAccount:
			env.Account, err = r.text(name)
		case keyAPIVersion:
			env.APIVersion, err = r.text(name)
		case keyCreated:
			env.Created, err = r.integer(name)
		case keyLivemode:
			env.Livemode, err = r.boolean(name)
		case keyData:
			env.Object, err = r.data()
		}
		return err
	})
	if err == nil {
		err = r.end()
	}
	if err != nil {
		return Envelope{}, err
	}
	return env, nil
}

// data reads the value of "data": null, or an object whose "object" is an
// object or null. It returns data.object's bytes; nil for a null.
func (r *reader) data() (object []byte, err error) {
	switch {
	case r.literal("null"):
		return nil, nil
	case !r.peek('{'):
		return nil, r.fail("data is not an object")
	}
	err = r.members(dataKeys[:], " in data", 2, func(int) error {
		switch {
		case r.literal("null"):
			object = nil
			return nil
		case !r.peek('{'):
			return r.fail("data.object is not an object")
		}
		start := r.i
		if err := r.value(2); err != nil {
			return err
		}
		object = r.b[start:r.i:r.i]
		return nil
	})
	return object, err
}

// members reads the object whose '{' is at r.i, the depth-th level of
// nesting (the body's own object is 1). Of keys, each may appear once and
// only spelt so, and member(k) reads the value of keys[k]; the values of
// other keys are only checked. in names the object in errors.
func (r *reader) members(keys []string, in string, depth int, member func(k int) error) error {
	r.i++
	if r.space(); r.peek('}') {
		r.i++
		return nil
	}
	var seen uint16
	for {
		r.space()
		keyAt := r.i
		key, err := r.str()
		if err != nil {
			return err
		}
		k, err := knownKey(key, keys)
		if err != nil {
			return r.failAt(keyAt, err.Error()+in)
		}
		if r.space(); !r.peek(':') {
			return r.fail("want ':' after an object key")
		}
		r.i++
		r.space()
		if k >= 0 {
			if seen&(1<<k) != 0 {
				return r.failAt(keyAt, fmt.Sprintf("key %q given twice%s", keys[k], in))
			}
			seen |= 1 << k
			err = member(k)
		} else {
			err = r.value(depth)
		}
		if err != nil {
			return err
		}
		r.space()
		switch {
		case r.peek(','):
			r.i++
		case r.peek('}'):
			r.i++
			return nil
		default:
			return r.fail("want ',' or '}' after an object value")
		}
	}
}

// knownKey returns the index in keys of key, a raw JSON string's
// contents, or -1 for a key no reader acts on; an error for a key that a
// case-insensitive reader (encoding/json, segmentio's) would take for one
// of keys but that is not spelt as one.
func knownKey(key []byte, keys []string) (int, error) {
	for i, k := range keys {
		if string(key) == k {
			return i, nil
		}
	}
	if plainASCII(key) {
		for _, k := range keys {
			if asciiEqualFold(key, k) {
				return -1, misspelt(key, k)
			}
		}
		return -1, nil
	}
	var name string
	if err := json.Unmarshal(quoted(key), &name); err != nil {
		return -1, err // not reached: r.str checked the string
	}
	for _, k := range keys {
		if strings.EqualFold(name, k) { // Unicode's folds: "ſ" is "s"
			return -1, misspelt(key, k)
		}
	}
	return -1, nil
}

func misspelt(key []byte, k string) error {
	return fmt.Errorf("key %q stands for %q: envelope keys must be spelt exactly", key, k)
}

// asciiEqualFold is strings.EqualFold of ASCII b and s, without
// converting b.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// plainASCII reports whether a JSON string's contents are ASCII without
// escapes: their bytes are their value.
func plainASCII(s []byte) bool {
	for _, c := range s {
		if c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func quoted(s []byte) []byte {
	q := make([]byte, 0, len(s)+2)
	return append(append(append(q, '"'), s...), '"')
}

// reader checks JSON tokens of b from i on.
type reader struct {
	b []byte
	i int
}

// fail is an ErrMalformed at the reader's position.
func (r *reader) fail(problem string) error { return r.failAt(r.i, problem) }

func (r *reader) failAt(at int, problem string) error {
	if at >= len(r.b) {
		return fmt.Errorf("%w: %s at the end (byte %d)", ErrMalformed, problem, at)
	}
	return fmt.Errorf("%w: %s at byte %d", ErrMalformed, problem, at)
}

// space skips JSON white space.
func (r *reader) space() { r.i = skipSpace(r.b, r.i) }

func (r *reader) peek(c byte) bool { return r.i < len(r.b) && r.b[r.i] == c }

// end accepts only white space after the object.
func (r *reader) end() error {
	if r.space(); r.i != len(r.b) {
		return r.fail("data after the object")
	}
	return nil
}

// str reads a string token at r.i and returns its contents, raw.
func (r *reader) str() ([]byte, error) {
	if !r.peek('"') {
		return nil, r.fail("want a string")
	}
	start := r.i
	end, err := r.stringEnd(start)
	if err != nil {
		return nil, err
	}
	r.i = end
	return r.b[start+1 : end-1], nil
}

// stringEnd checks the string whose quote is at b[i] and returns the
// index just past its closing quote.
func (r *reader) stringEnd(i int) (int, error) {
	b := r.b
	i++
	for {
		// Most of an event's bytes are plain ASCII in strings: eight at
		// a time, then one table load each.
		for i+8 <= len(b) && plain8(binary.LittleEndian.Uint64(b[i:])) {
			i += 8
		}
		for i < len(b) && class[b[i]]&isPlain != 0 {
			i++
		}
		if i >= len(b) {
			return i, r.failAt(i, "unterminated string")
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			n, problem := escapeLen(b[i:])
			if problem != "" {
				return i, r.failAt(i, problem)
			}
			i += n
		case c < 0x20:
			return i, r.failAt(i, fmt.Sprintf("control character %#02x in a string", c))
		default: // c >= 0x80
			ru, n := utf8.DecodeRune(b[i:])
			if ru == utf8.RuneError && n <= 1 {
				return i, r.failAt(i, "invalid UTF-8")
			}
			i += n
		}
	}
}

// plain8 reports whether the eight bytes of x are all plain string bytes:
// none is '"', '\\', below 0x20 or above 0x7f. Each term is the classic
// "has a byte less than n" ((v - n per byte) &^ v, high bits), exact for
// the word as a whole; x's own high bits are the bytes above 0x7f.
func plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	q, bs := x^(ones*'"'), x^(ones*'\\')
	control := (x - ones*0x20) &^ x
	quote := (q - ones) &^ q
	backslash := (bs - ones) &^ bs
	return (control|quote|backslash|x)&highs == 0
}

// escapeLen returns the length of the escape sequence at the start of b,
// or why it is none.
func escapeLen(b []byte) (int, string) {
	if len(b) < 2 {
		return 0, "unterminated string"
	}
	switch b[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 2, ""
	case 'u':
		if len(b) < 6 {
			return 0, "unterminated string"
		}
		for _, c := range b[2:6] {
			if class[c]&isHex == 0 {
				return 0, "invalid \\u escape"
			}
		}
		return 6, ""
	}
	if b[1] < 0x20 || b[1] >= utf8.RuneSelf {
		return 0, "invalid escape"
	}
	return 0, fmt.Sprintf("invalid escape '\\%c'", b[1])
}

// text reads the value of key: a string or null ("").
func (r *reader) text(key string) (string, error) {
	if r.literal("null") {
		return "", nil
	}
	if !r.peek('"') {
		return "", r.fail(key + " is not a string")
	}
	raw, err := r.str()
	switch {
	case err != nil:
		return "", err
	case plainASCII(raw):
		return string(raw), nil
	}
	var v string // escapes: rare in an envelope field, left to encoding/json
	if err := json.Unmarshal(quoted(raw), &v); err != nil {
		return "", r.fail("invalid string")
	}
	return v, nil
}

// integer reads the value of key: an integer that fits int64, or null
// (0).
func (r *reader) integer(key string) (int64, error) {
	if r.literal("null") {
		return 0, nil
	}
	start := r.i
	if r.i >= len(r.b) || r.b[r.i] != '-' && class[r.b[r.i]]&isDigit == 0 {
		return 0, r.fail(key + " is not an integer")
	}
	if err := r.number(); err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(string(r.b[start:r.i]), 10, 64)
	if err != nil {
		return 0, r.failAt(start, key+" is not an integer of 64 bits")
	}
	return n, nil
}

// boolean reads the value of key: true, false or null (false).
func (r *reader) boolean(key string) (bool, error) {
	switch {
	case r.literal("true"):
		return true, nil
	case r.literal("false"), r.literal("null"):
		return false, nil
	}
	return false, r.fail(key + " is not a boolean")
}

// literal reads word if it is next and ends there.
func (r *reader) literal(word string) bool {
	end := r.i + len(word)
	if end > len(r.b) || string(r.b[r.i:end]) != word {
		return false
	}
	if end < len(r.b) && class[r.b[end]]&isWordByte != 0 {
		return false
	}
	r.i = end
	return true
}

// number reads a JSON number: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?
func (r *reader) number() error {
	start := r.i
	if r.peek('-') {
		r.i++
	}
	switch {
	case r.peek('0'):
		r.i++
		if r.i < len(r.b) && class[r.b[r.i]]&isDigit != 0 {
			return r.failAt(start, "number with a leading zero")
		}
	case r.digits() == 0:
		return r.failAt(start, "invalid number")
	}
	if r.peek('.') {
		r.i++
		if r.digits() == 0 {
			return r.failAt(start, "invalid number")
		}
	}
	if r.peek('e') || r.peek('E') {
		r.i++
		if r.peek('+') || r.peek('-') {
			r.i++
		}
		if r.digits() == 0 {
			return r.failAt(start, "invalid number")
		}
	}
	if r.i < len(r.b) && class[r.b[r.i]]&isWordByte != 0 {
		return r.failAt(start, "invalid number")
	}
	return nil
}

func (r *reader) digits() int {
	start := r.i
	for r.i < len(r.b) && class[r.b[r.i]]&isDigit != 0 {
		r.i++
	}
	return r.i - start
}

// value checks one JSON value at r.i, inside depth levels of nesting,
// without recursion: open containers are bits of a stack word (set: an
// object), which MaxDepth bounds. It is most of the api's reading of a
// body, so it keeps its position in a local and calls out only for
// strings, numbers and errors.
func (r *reader) value(depth int) error {
	b, i, outside := r.b, r.i, depth
	var objects uint64 // bit d-1: the container at depth d is an object
	var err error
	for {
		// A value at i.
		if i < len(b) && class[b[i]]&isSpace != 0 {
			i = skipSpace(b, i)
		}
		if i >= len(b) {
			return r.failAt(i, "want a value")
		}
		switch c := b[i]; {
		case c == '"':
			if i, err = r.stringEnd(i); err != nil {
				return err
			}
		case c == '{' || c == '[':
			if depth++; depth > MaxDepth {
				return r.failAt(i, fmt.Sprintf("nested deeper than %d levels", MaxDepth))
			}
			i = skipSpace(b, i+1)
			if c == '[' {
				objects &^= 1 << (depth - 1)
				if i >= len(b) || b[i] != ']' {
					continue // its first value
				}
			} else {
				objects |= 1 << (depth - 1)
				if i >= len(b) || b[i] != '}' {
					if i, err = r.key(i); err != nil {
						return err
					}
					continue
				}
			}
			i++ // empty
			depth--
		case c == '-' || class[c]&isDigit != 0:
			r.i = i
			if err := r.number(); err != nil {
				return err
			}
			i = r.i
		default:
			r.i = i
			if !r.literal("true") && !r.literal("false") && !r.literal("null") {
				return r.fail(fmt.Sprintf("invalid character %q", rune(c)))
			}
			i = r.i
		}
		// After a value: close containers until one goes on.
		for {
			if depth == outside {
				r.i = i
				return nil
			}
			if i < len(b) && class[b[i]]&isSpace != 0 {
				i = skipSpace(b, i)
			}
			object := objects&(1<<(depth-1)) != 0
			switch {
			case i >= len(b):
				return r.failAt(i, "want ',' or the container's end after a value")
			case b[i] == ',':
				i++
				if object {
					if i, err = r.key(skipSpace(b, i)); err != nil {
						return err
					}
				}
			case object && b[i] == '}', !object && b[i] == ']':
				i++
				depth--
				continue
			default:
				return r.failAt(i, "want ',' or the container's end after a value")
			}
			break
		}
	}
}

// key reads an object member's key at i and its colon, and returns the
// index after them.
func (r *reader) key(i int) (int, error) {
	if i >= len(r.b) || r.b[i] != '"' {
		return i, r.failAt(i, "want a string")
	}
	i, err := r.stringEnd(i)
	if err != nil {
		return i, err
	}
	if i = skipSpace(r.b, i); i >= len(r.b) || r.b[i] != ':' {
		return i, r.failAt(i, "want ':' after an object key")
	}
	return i + 1, nil
}

// skipSpace returns the index of the first byte from i on that is not
// JSON white space.
func skipSpace(b []byte, i int) int {
	// An indented body's white space is mostly runs of spaces: eight at
	// a time.
	for i+8 <= len(b) && binary.LittleEndian.Uint64(b[i:]) == 0x2020202020202020 {
		i += 8
	}
	for i < len(b) && class[b[i]]&isSpace != 0 {
		i++
	}
	return i
}

// Byte classes of the reader, one table load per byte.
const (
	isSpace    = 1 << iota // JSON white space
	isPlain                // a string byte that stands for itself: ASCII, not a control, '"' or '\\'
	isDigit                // 0-9
	isHex                  // 0-9, a-f, A-F
	isWordByte             // may continue a number or literal: a letter, digit, '.', '+', '-'
)

var class = func() (t [256]uint8) {
	for _, c := range " \t\n\r" {
		t[c] |= isSpace
	}
	for c := 0x20; c < 0x80; c++ {
		if c != '"' && c != '\\' {
			t[c] |= isPlain
		}
	}
	for c := '0'; c <= '9'; c++ {
		t[c] |= isDigit | isHex | isWordByte
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] |= isWordByte
		t[c-'a'+'A'] |= isWordByte
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] |= isHex
		t[c-'a'+'A'] |= isHex
	}
	for _, c := range ".+-" {
		t[c] |= isWordByte
	}
	return t
}()
