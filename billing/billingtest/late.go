package billingtest

import (
	"encoding/json"
	"fmt"
	"time"
)

// Late names the events LateLifecycle delivers out of Stripe's order.
type Late struct {
	// Finalized is the invoice.finalized that comes after the invoice's
	// invoice.payment_failed: stale when it arrives.
	Finalized string
	// Deleted is a customer.deleted one second older than the
	// customer.updated it follows: stale, yet it marks the row deleted.
	Deleted string
}

// LateLifecycle is VersionLifecycle(version, seed) as a webhook endpoint
// may receive it, with two events late (see Late). Its records differ
// from the lifecycle's Want: the customer ends deleted.
func LateLifecycle(version string, seed int) (VersionedLifecycle, Late) {
	lc := VersionLifecycle(version, seed)
	var late Late
	var finalized []byte
	var events [][]byte
	for _, raw := range lc.Events {
		var ev struct{ ID, Type string }
		if err := json.Unmarshal(raw, &ev); err != nil {
			panic(fmt.Sprintf("billingtest: late lifecycle: %v", err)) // events built above: a bug
		}
		switch ev.Type {
		case "invoice.finalized":
			finalized, late.Finalized = raw, ev.ID
		case "invoice.payment_failed":
			events = append(events, raw, finalized)
		case "customer.updated":
			late.Deleted = NewEventID()
			events = append(events, raw, retype(raw, late.Deleted, "customer.deleted", -time.Second))
		default:
			events = append(events, raw)
		}
	}
	lc.Events, lc.Want = events, Records{}
	return lc, late
}

// retype is event raw (mode, account, object and all) as another event:
// id, type and created moved by shift.
func retype(raw []byte, id, typ string, shift time.Duration) []byte {
	var e map[string]any
	if err := json.Unmarshal(raw, &e); err != nil {
		panic(fmt.Sprintf("billingtest: retype: %v", err))
	}
	e["id"], e["type"] = id, typ
	e["created"] = int64(e["created"].(float64)) + int64(shift/time.Second)
	out, err := json.Marshal(e)
	if err != nil {
		panic(err) // only maps of JSON values
	}
	return out
}
