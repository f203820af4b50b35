package billing

import (
	stdjson "encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/stripefixture"
)

// TestStripeTags holds the models' stripe tags to the kinds: a key
// scoped to an object type ("charge:captured") names a type that the
// model's table holds, so that no tag is silently ignored.
func TestStripeTags(t *testing.T) {
	t.Parallel()
	serves := map[reflect.Type][]string{}
	for _, k := range kinds {
		serves[k.model] = append(serves[k.model], k.objectType)
	}
	tags := 0
	for model, types := range serves {
		for i := range model.NumField() {
			sf := model.Field(i)
			for key := range strings.FieldsSeq(sf.Tag.Get("stripe")) {
				tags++
				if ot, _, scoped := strings.Cut(key, ":"); scoped && !slices.Contains(types, ot) {
					t.Errorf("%s.%s: stripe key %q is scoped to %q; the table holds %v", model.Name(), sf.Name, key, ot, types)
				}
			}
		}
	}
	if tags < 50 {
		t.Fatalf("read %d stripe keys: the models are not what this test thinks", tags)
	}
}

// TestSimpleFields holds a simple column (isSimple) to its two places: its
// migration (TestModelsMatchSchema) and its model's field with its stripe
// tag. No shape (stripejson) names its key, and for every kind and API
// version whose fixture has the object, the row the decoder makes holds
// in that field what encoding/json reads of the key (a time from Unix
// seconds, 0 none), nil where the object lacks it.
func TestSimpleFields(t *testing.T) {
	t.Parallel()
	checked := 0
	for _, k := range kinds {
		t.Run(k.objectType, func(t *testing.T) {
			if len(k.simple) == 0 {
				t.Fatalf("%s has no simple field", k.model.Name())
			}
			shape := reflect.TypeOf(objectTypes[k.objectType]()).Elem()
			for _, sf := range k.simple {
				key := carriedKeys(sf.Tag.Get("stripe"), k.objectType)[0]
				for f := range shape.Fields() {
					if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name == key {
						t.Errorf("stripejson.%s.%s reads %q, the simple field %s.%s: the model's tag is its one place",
							shape.Name(), f.Name, key, k.model.Name(), sf.Name)
					}
				}
			}
			for _, v := range stripefixture.Versions() {
				if !stripefixture.Has(v, k.objectType) {
					continue
				}
				raw := stripefixture.Raw(v, k.objectType)
				pl, err := objectPlans[k.objectType](Event{ID: "evt_1", Type: k.objectType + ".updated", APIVersion: v, Object: raw})
				if err != nil {
					t.Fatalf("%s: %v", v, err)
				}
				row := reflect.ValueOf(pl[0].change.row).Elem()
				var object map[string]stdjson.RawMessage
				if err := stdjson.Unmarshal(raw, &object); err != nil {
					t.Fatal(err)
				}
				for _, sf := range k.simple {
					key := carriedKeys(sf.Tag.Get("stripe"), k.objectType)[0]
					want := reflect.New(sf.Type).Elem()
					if value, ok := object[key]; ok && sf.Type == reflect.TypeFor[*time.Time]() {
						var n *int64
						if err := stdjson.Unmarshal(value, &n); err != nil {
							t.Fatal(err)
						}
						if n != nil && *n != 0 {
							want.Set(reflect.ValueOf(new(time.Unix(*n, 0).UTC())))
						}
					} else if ok {
						if err := stdjson.Unmarshal(value, want.Addr().Interface()); err != nil {
							t.Fatal(err)
						}
					}
					if got := row.FieldByIndex(sf.Index); !sameValue(got, want) {
						t.Errorf("%s: %s.%s is %v; the object's %q is %s", v, k.model.Name(), sf.Name, got, key, object[key])
					}
					checked++
				}
			}
		})
	}
	t.Cleanup(func() {
		if checked < 100 {
			t.Errorf("checked %d simple fields in the fixtures: the kinds are not what this test thinks", checked)
		}
	})
}
