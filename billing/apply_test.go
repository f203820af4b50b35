package billing

import (
	"reflect"
	"slices"
	"strings"
	"testing"
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
