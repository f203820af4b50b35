package stripeevent

import (
	"encoding/json"
	"regexp"
	"slices"
	"testing"
	"time"
)

func TestNewEventID(t *testing.T) {
	t.Parallel()
	shape := regexp.MustCompile(`^evt_[0-9A-Za-z]{24}$`)
	seen := map[string]bool{}
	chars := map[rune]bool{}
	for range 2000 {
		id := NewEventID()
		if !shape.MatchString(id) {
			t.Fatalf("NewEventID() = %q, want evt_ and 24 alphanumerics", id)
		}
		if seen[id] {
			t.Fatalf("NewEventID() repeated %q", id)
		}
		seen[id] = true
		for _, c := range id[4:] {
			chars[c] = true
		}
	}
	// 48,000 draws from 62 characters: every one shows up.
	if len(chars) != len(IDAlphabet) {
		t.Errorf("%d distinct characters in the ids, want %d", len(chars), len(IDAlphabet))
	}
}

// TestLifecycleEventIDs: the same lifecycle built twice carries new event
// ids, and they do not sort in stream order, as Stripe's do not.
func TestLifecycleEventIDs(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ids := func() []string {
		var out []string
		for _, raw := range Lifecycle(3, start) {
			var ev struct{ ID string }
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, ev.ID)
		}
		return out
	}
	a, b := ids(), ids()
	if slices.IsSorted(a) {
		t.Errorf("event ids sort in stream order: %v", a)
	}
	for _, id := range b {
		if slices.Contains(a, id) {
			t.Fatalf("event id %s in two lifecycles", id)
		}
	}
}

// TestLifecycleIDs: the object ids of a lifecycle are the same for the
// same start and customer, distinct otherwise, and, like Stripe's, do not
// sort in the order the customers came: a table's unique key takes them
// at random places.
func TestLifecycleIDs(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	if a, b := LifecycleIDs(start, 7), LifecycleIDs(start, 7); a != b {
		t.Errorf("customer 7's ids differ between two calls: %+v, %+v", a, b)
	}
	var customers []string
	firsts := map[byte]bool{}
	for i := range 200 {
		c := LifecycleIDs(start, i).Customer
		if slices.Contains(customers, c) {
			t.Fatalf("customer %d has the id %s of another", i, c)
		}
		customers = append(customers, c)
		firsts[c[len("cus_")]] = true
	}
	if c := LifecycleIDs(start.Add(time.Second), 0).Customer; slices.Contains(customers, c) {
		t.Errorf("a lifecycle a second later reuses %s", c)
	}
	if slices.IsSorted(customers) {
		t.Errorf("customer ids sort in the customers' order: %v", customers[:5])
	}
	// 200 draws from 62 characters: far more than a handful show up.
	if len(firsts) < 40 {
		t.Errorf("the customer ids start with %d distinct characters, want them spread over the alphabet", len(firsts))
	}
}
