package billing

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"time"

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
	return decodeScanned(ev, raw, payload{}, path, want, c, func(raw []byte) error {
		k := kindOf[want]
		if k == nil {
			return json.Unmarshal(raw, dst)
		}
		w := k.withSimple(reflect.TypeOf(dst).Elem())
		v := reflect.New(w.typ).Elem()
		if err := w.unmarshal(raw, dst, v, nil); err != nil {
			return err
		}
		if w.embeds {
			reflect.ValueOf(dst).Elem().Set(v.Field(0))
		}
		return nil
	}, requires...)
}

// decodeAs is decode of an object of kind k into a new T, k's shape
// (stripejson), with raw's keys already read (scanObject) or none (read
// here), and k's simple fields (isSimple) into row, a pointer to k's
// model: all in the decoder's one pass over raw (withSimple).
func decodeAs[T any](ev Event, raw json.RawMessage, keys payload, path string, k *kind, row any, requires ...string) (*T, payload, error) {
	w := k.withSimple(reflect.TypeFor[T]())
	v := reflect.New(w.typ).Elem()
	var o *T
	if w.embeds {
		o = v.Field(0).Addr().Interface().(*T) // the shape is its first field (withSimple)
	} else {
		o = new(T)
	}
	c := reflect.ValueOf(o).Elem().Field(0).Addr().Interface().(*stripejson.Common) // every shape opens with it (withSimple)
	p, err := decodeScanned(ev, raw, keys, path, k.objectType, c, func(raw []byte) error {
		return w.unmarshal(raw, o, v, row)
	}, requires...)
	return o, p, err
}

// decodeScanned is decode with raw's keys already read (scanObject), or
// none (read here); read is the decoder's reading of raw into the shape
// whose Common is c.
func decodeScanned(ev Event, raw json.RawMessage, keys payload, path, want string, c *stripejson.Common, read func([]byte) error, requires ...string) (payload, error) {
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '{' {
		return payload{}, schemaError(ev, path, "is not an object")
	}
	if err := read(raw); err != nil {
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

// unmarshal reads raw into v, a w.typ, and o, the shape v embeds (or a
// shape apart, when it does not), and copies the simple fields v read
// into row, a pointer to the kind's model (nil: none).
func (w *withSimple) unmarshal(raw []byte, o any, v reflect.Value, row any) error {
	if !w.embeds {
		if err := json.Unmarshal(raw, o); err != nil {
			return err
		}
	}
	if err := json.Unmarshal(raw, v.Addr().Interface()); err != nil {
		return err
	}
	if row == nil {
		return nil
	}
	// Each simple field is a pointer in v as in the model, a time's in a
	// Unix as its T (withSimple checks).
	dst := reflect.ValueOf(row).Elem()
	for _, c := range w.copies {
		f := v.Field(c.from)
		if c.unix {
			f = f.Field(0)
		}
		dst.Field(c.to).Set(f)
	}
	return nil
}

// withSimple is the struct the decoder reads an object of a kind into: its
// shape (stripejson), embedded, and each simple field of the kind, by its
// payload key (a time as stripejson.Unix). A shape that reads
// itself (a json.Unmarshaler: its methods would not be the struct's) is
// read apart, and the struct has the simple fields alone.
type withSimple struct {
	shape, typ reflect.Type
	embeds     bool
	copies     []simpleCopy // by simple field
}

// simpleCopy is where a simple field is in the decoder's struct (from)
// and in the model (to), field indexes; unix: the decoder's is a Unix.
type simpleCopy struct {
	from, to int
	unix     bool
}

// withSimple is the kind's withSimple for shape, made once.
func (k *kind) withSimple(shape reflect.Type) *withSimple {
	if w := k.with.Load(); w != nil && w.shape == shape {
		return w
	}
	if common, ok := shape.FieldByName("Common"); !ok || common.Type != reflect.TypeFor[stripejson.Common]() || common.Offset != 0 {
		panic(fmt.Sprintf("billing: %s: shape %s does not open with stripejson.Common", k.objectType, shape))
	}
	w := &withSimple{shape: shape}
	var fields []reflect.StructField
	if !reflect.PointerTo(shape).Implements(reflect.TypeFor[json.Unmarshaler]()) {
		w.embeds = true
		fields = append(fields, reflect.StructField{Name: shape.Name(), Type: shape, Anonymous: true})
	}
	for i, sf := range k.simple {
		t := sf.Type
		if t == reflect.TypeFor[*time.Time]() {
			t = reflect.TypeFor[unix]() // its one field, T, a *time.Time
		}
		if sf.Type.Kind() != reflect.Pointer || len(sf.Index) != 1 {
			panic(fmt.Sprintf("billing: %s: simple field %s is not a pointer of the model's own", k.objectType, sf.Name))
		}
		fields = append(fields, reflect.StructField{Name: fmt.Sprintf("Simple%d", i), Type: t,
			Tag: reflect.StructTag(`json:"` + carriedKeys(sf.Tag.Get("stripe"), k.objectType)[0] + `"`)})
	}
	w.typ = reflect.StructOf(fields)
	for i, sf := range k.simple {
		w.copies = append(w.copies, simpleCopy{from: len(fields) - len(k.simple) + i, to: sf.Index[0],
			unix: sf.Type == reflect.TypeFor[*time.Time]()})
	}
	k.with.Store(w)
	return w
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
