package billing

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stripe-billing/billing/billing/stripejson"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/models"
)

// A snapshot is an object as Stripe showed it when it was fetched (a page
// of a list, by `billing backfill`), folded by the rules events are
// folded by, as a pseudo-event created at the fetch time:
//
//   - it never overwrites a row written from an event created later, and
//     an event created after it wins (compare: the created time);
//   - in the second of the fetch, the event wins: the fetch may have come
//     before it;
//   - a snapshot that agrees with the row on every stored field leaves it
//     alone, so a second import writes nothing;
//   - the history records the status of a snapshot that changed the row,
//     with source backfill; a stale one records nothing (it tells nothing
//     the row's newer event did not).
//
// A snapshot has no ledger row: it is no event of Stripe's, and its id is
// not an event id (Stripe's begin with "evt_").

// snapshotPrefix begins every snapshot's id, which stands in the rows'
// last_event_id and the history's event_id.
const snapshotPrefix = "backfill_"

// Fetched is where and when an object was fetched from Stripe.
type Fetched struct {
	// At is when the request that fetched it was sent: Stripe read the
	// object after it.
	At time.Time
	// APIVersion is the version it was fetched in (the shape the
	// decoders read).
	APIVersion string
	// Account is the Connect account it was fetched on; "" for the
	// platform's own.
	Account string
	// Livemode is the key's mode: the object's own livemode wins when it
	// has one (a Refund has none).
	Livemode bool
	// Correction: the object is fetched to correct a row that differs
	// from it (`billing audit --fix`): the history records its status
	// whenever it changes the row, as source correction.
	Correction bool
}

// Snapshot is obj, an object Stripe served as from, as a pseudo-event
// PlanOf plans and a Batch folds. An object of a type the worker does
// not store, or without an id, is an error marked permanent.
func Snapshot(obj []byte, from Fetched) (Event, error) {
	keys, objectType, id := stripejson.Scan(obj)
	if objectPlans[objectType] == nil || id == "" {
		return Event{}, failure.MarkPermanent(fmt.Errorf("billing: snapshot: object %q %q is not one the worker stores", objectType, id))
	}
	var live struct {
		Livemode *bool `json:"livemode"`
	}
	if err := json.Unmarshal(obj, &live); err != nil {
		return Event{}, failure.MarkPermanent(fmt.Errorf("billing: snapshot of %s %s: %w", objectType, id, err))
	}
	livemode := from.Livemode
	if live.Livemode != nil {
		livemode = *live.Livemode
	}
	at := from.At.Truncate(time.Second).UTC() // Stripe's times have one-second resolution
	return Event{
		ID:         snapshotPrefix + strconv.FormatInt(at.Unix(), 10) + "_" + id,
		Type:       snapshotPrefix + objectType,
		APIVersion: from.APIVersion,
		Livemode:   livemode,
		Account:    from.Account,
		Created:    at,
		Object:     obj,
		ObjectType: objectType,
		ObjectID:   id,
		snapshot:   true,
		correction: from.Correction,
		keys:       keys,
	}, nil
}

// IsSnapshot reports whether ev is a snapshot (Snapshot), not an event.
func IsSnapshot(ev Event) bool { return ev.snapshot }

// isSnapshotID reports whether a row's last event id names a snapshot.
func isSnapshotID(id string) bool { return strings.HasPrefix(id, snapshotPrefix) }

// sourceOf is where ev's history comes from (models.StatusChange.Source).
func sourceOf(ev Event) string {
	switch {
	case ev.correction:
		return models.SourceCorrection
	case ev.snapshot:
		return models.SourceBackfill
	}
	return models.SourceEvent
}
