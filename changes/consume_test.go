package changes_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/stripe-billing/billing/changes"
)

func TestDecode(t *testing.T) {
	t.Parallel()
	const ok = `"id":"e/invoice/in_1/status","key":"invoice.status.paid","object_type":"invoice","object_id":"in_1","sequence":1`
	for _, tc := range []struct {
		name, body, err string
		version         bool
	}{
		{name: "Valid", body: `{"version":1,` + ok + `,"added_later":{"x":1}}`},
		{name: "NotJSON", body: `{"version":1,`, err: "changes: decode: not a JSON object: unexpected end of JSON input"},
		{name: "NotAnObject", body: `[1]`, err: "changes: decode: not a JSON object: json: cannot unmarshal array into Go value of type struct { Version *int \"json:\\\"version\\\"\" }"},
		{name: "TrailingBytes", body: `{"version":1,` + ok + `} {}`, err: "changes: decode: not a JSON object: invalid character '{' after top-level value"},
		{name: "NoVersion", body: `{` + ok + `}`, err: `changes: unknown schema version: no "version"`, version: true},
		{name: "NullBody", body: `null`, err: `changes: unknown schema version: no "version"`, version: true},
		{name: "LaterVersion", body: `{"version":2,` + ok + `}`, err: "changes: unknown schema version 2 (this package reads 1)", version: true},
		{name: "VersionNotNumber", body: `{"version":"1"}`, err: "changes: decode: not a JSON object: json: cannot unmarshal string into Go struct field .version of type int"},
		{name: "NoID", body: `{"version":1,"key":"k","object_type":"invoice","object_id":"in_1","sequence":1}`, err: `changes: decode: no "id"`},
		{name: "NoKey", body: `{"version":1,"id":"i","object_type":"invoice","object_id":"in_1","sequence":1}`, err: `changes: decode i: no "key"`},
		{name: "NoObject", body: `{"version":1,"id":"i","key":"k","object_type":"invoice","sequence":1}`, err: `changes: decode i: no "object_type" or "object_id"`},
		{name: "SequenceZero", body: `{"version":1,"id":"i","key":"k","object_type":"invoice","object_id":"in_1"}`, err: `changes: decode i: "sequence" must be 1 or more`},
		{name: "SequenceNegative", body: `{"version":1,"id":"i","key":"k","object_type":"invoice","object_id":"in_1","sequence":-1}`, err: "changes: decode: json: cannot unmarshal number -1 into Go struct field Change.sequence of type uint64"},
		{name: "BadTime", body: `{"version":1,` + ok + `,"event_created":"yesterday"}`, err: `changes: decode: parsing time "yesterday" as "2006-01-02T15:04:05Z07:00": cannot parse "yesterday" as "2006"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := changes.Decode([]byte(tc.body))
			if tc.err == "" {
				if err != nil || c.ObjectID != "in_1" || c.Sequence != 1 {
					t.Fatalf("Decode = %+v, %v", c, err)
				}
				return
			}
			if err == nil || err.Error() != tc.err {
				t.Fatalf("Decode error = %v, want %s", err, tc.err)
			}
			if errors.Is(err, changes.ErrVersion) != tc.version {
				t.Fatalf("errors.Is(%v, ErrVersion) = %v", err, !tc.version)
			}
		})
	}
}

func TestTracker(t *testing.T) {
	t.Parallel()
	change := func(obj string, seq uint64) changes.Change {
		return changes.Change{ID: fmt.Sprintf("%s/%d", obj, seq), ObjectType: "invoice", ObjectID: obj, Sequence: seq}
	}
	t.Run("ObjectsApart", func(t *testing.T) {
		t.Parallel()
		tr := changes.NewTracker(10)
		if v := tr.Track(change("in_1", 3)); v != (changes.Verdict{}) {
			t.Fatalf("first change of an object = %+v, want no gap (the tracker knows nothing before it)", v)
		}
		if v := tr.Track(change("in_2", 1)); v != (changes.Verdict{}) {
			t.Fatalf("another object = %+v", v)
		}
		if v := tr.Track(change("in_1", 6)); v.Missing != 2 {
			t.Fatalf("in_1 3 then 6 = %+v, want 2 missing", v)
		}
		if v := tr.Track(change("in_1", 5)); !v.Late {
			t.Fatalf("in_1 5 after 6 = %+v, want late", v)
		}
		if v := tr.Track(change("in_1", 7)); v != (changes.Verdict{}) {
			t.Fatalf("in_1 7 after 6 (a late 5 between) = %+v, want in order", v)
		}
	})
	t.Run("WindowBounded", func(t *testing.T) {
		t.Parallel()
		tr := changes.NewTracker(3)
		for i := range 4 {
			tr.Track(change(fmt.Sprintf("in_%d", i), 1))
		}
		// in_0 is the least recently seen of 4 with a window of 3: forgotten,
		// so its redelivery passes, and no gap can be told for it.
		if v := tr.Track(change("in_0", 1)); v.Duplicate {
			t.Fatalf("redelivery beyond the window = %+v, want forgotten", v)
		}
		if v := tr.Track(change("in_3", 1)); !v.Duplicate {
			t.Fatalf("redelivery within the window = %+v, want duplicate", v)
		}
	})
	t.Run("RecentlySeenKept", func(t *testing.T) {
		t.Parallel()
		tr := changes.NewTracker(2)
		tr.Track(change("in_a", 1))
		tr.Track(change("in_b", 1))
		tr.Track(change("in_a", 1)) // a duplicate refreshes in_a's id
		tr.Track(change("in_c", 1)) // forgets in_b's, the least recent
		if v := tr.Track(change("in_a", 1)); !v.Duplicate {
			t.Fatalf("recently seen id = %+v, want duplicate", v)
		}
	})
}

// FuzzDecode: any bytes give a Change or an error, never a panic; an
// accepted message has the fields a consumer keys on, and its JSON
// decodes again to the same JSON.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"version":1,"id":"evt_1/invoice/in_1/status","key":"invoice.status.paid","kind":"status","object_type":"invoice","object_id":"in_1","sequence":2,"customer":"cus_1","livemode":true,"source":"event","event_id":"evt_1","event_created":"2026-12-07T10:00:00Z","before":{"status":"open"},"after":{"status":"paid","amount_paid":1200}}`,
		`{"version":1,"id":"x","key":"customer.created","object_type":"customer","object_id":"cus_1","sequence":1,"after":{"email":"a@b.c","metadata":{"k":[1,null,true]}}}`,
		`{"version":2}`, `null`, `[]`, `{"version":1,"sequence":1e30}`, `{"version":1,"event_created":"2026-12-07T10:00:00+23:59"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := changes.Decode(body)
		if err != nil {
			if c.ID != "" || strings.TrimSpace(err.Error()) == "" {
				t.Fatalf("Decode error %v with a change %+v", err, c)
			}
			return
		}
		if c.Version != changes.Version || c.ID == "" || c.Key == "" || c.ObjectType == "" || c.ObjectID == "" || c.Sequence == 0 {
			t.Fatalf("Decode accepted %+v", c)
		}
		out, err := json.Marshal(c)
		if err != nil {
			return // a time json cannot write (a year past 9999 after its offset)
		}
		c2, err := changes.Decode(out)
		if err != nil {
			t.Fatalf("Decode(its own JSON %s) = %v", out, err)
		}
		if again, _ := json.Marshal(c2); string(again) != string(out) {
			t.Fatalf("JSON changed on a round trip:\n%s\n%s", out, again)
		}
	})
}
