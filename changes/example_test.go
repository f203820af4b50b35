package changes_test

import (
	"fmt"
	"time"

	"github.com/stripe-billing/billing/changes"
)

// A consumer decodes each delivery, then asks its Tracker: a redelivered
// change is dropped, a jump in an object's sequence is a gap (a change
// lost or still on its way), an older change after a newer one is late.
func ExampleTracker() {
	tr := changes.NewTracker(1000)
	change := func(id string, seq uint64) changes.Change {
		return changes.Change{Version: changes.Version, ID: id, Key: "subscription.status.active",
			ObjectType: "subscription", ObjectID: "sub_1", Sequence: seq}
	}
	for _, c := range []changes.Change{change("a", 1), change("a", 1), change("b", 2), change("d", 4), change("c", 3)} {
		v := tr.Track(c)
		switch {
		case v.Duplicate:
			fmt.Println(c.Sequence, "duplicate: dropped")
		case v.Late:
			fmt.Println(c.Sequence, "late: a newer change was seen")
		case v.Missing > 0:
			fmt.Println(c.Sequence, "after a gap of", v.Missing)
		default:
			fmt.Println(c.Sequence, "in order")
		}
	}
	// Output:
	// 1 in order
	// 1 duplicate: dropped
	// 2 in order
	// 4 after a gap of 1
	// 3 late: a newer change was seen
}

// Decode reads a message's body; a version this package does not read is
// ErrVersion, so a consumer parks it instead of guessing.
func ExampleDecode() {
	body := []byte(`{"version":1,"id":"evt_1/invoice/in_1/status","key":"invoice.status.paid","kind":"status",
		"object_type":"invoice","object_id":"in_1","sequence":2,"customer":"cus_1","livemode":false,
		"source":"event","event_id":"evt_1","event_created":"2026-12-07T10:00:00Z",
		"before":{"status":"open"},"after":{"status":"paid"}}`)
	c, err := changes.Decode(body)
	fmt.Println(c.Key, c.ObjectID, c.Sequence, c.Before["status"], "→", c.After["status"], c.EventCreated.Format(time.DateOnly), err)
	_, err = changes.Decode([]byte(`{"version":2,"id":"x"}`))
	fmt.Println(err)
	// Output:
	// invoice.status.paid in_1 2 open → paid 2026-12-07 <nil>
	// changes: unknown schema version 2 (this package reads 1)
}
