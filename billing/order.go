package billing

import (
	"strings"
	"time"
)

// state is what decides whether an event may change a row: the status it
// carries, the event that carried it, and the values of the kind's fields
// that only grow.
type state struct {
	Status  string
	Created time.Time // zero for a stub row no event has filled yet
	EventID string
	Grows   []grown // in the order of kind.grows
}

// grown is a value of a field that only grows; known is false when the
// row or the payload does not say it.
type grown struct {
	n     int64
	known bool
}

// rankFunc orders the statuses of one kind of object: a row never moves to
// a lower rank, whatever the event's time. Statuses of equal rank are peers
// and the newer event wins.
type rankFunc func(status string) int

// verdict is what the order says of an incoming event.
type verdict int

const (
	keep    verdict = iota // the row stays as it is
	replace                // the incoming event's object is newer
	tied                   // nothing the two carry orders them
)

// compare orders incoming against current: by rank first, so terminal
// states never reopen, then by Stripe's time, then, within one second, by
// the fields that only grow (more refunded, more attempts: later). What
// is left is a tie: Stripe's ids are not ordered in time, so the caller
// settles it with Stripe's own object or, failing that, byEventID; but
// an event wins a tie with a snapshot. The same event again (a
// reprocess) keeps the row.
func compare(rank rankFunc, current, incoming state) verdict {
	if current.Created.IsZero() {
		return replace
	}
	if rc, ri := rank(current.Status), rank(incoming.Status); ri != rc {
		return cond(ri > rc)
	}
	if !incoming.Created.Equal(current.Created) {
		return cond(incoming.Created.After(current.Created))
	}
	switch growth(current.Grows, incoming.Grows) {
	case 1:
		return replace
	case -1:
		return keep
	}
	if incoming.EventID == current.EventID {
		return keep
	}
	// A snapshot against an event of its second: the event wins, as the
	// fetch may have read the object before it (snapshot.go).
	switch in, cur := isSnapshotID(incoming.EventID), isSnapshotID(current.EventID); {
	case in && !cur:
		return keep
	case cur && !in:
		return replace
	}
	return tied
}

// byEventID settles a tie when nothing else can: arbitrary, but the same
// whatever the delivery order, so every order converges on one row.
func byEventID(current, incoming state) verdict {
	return cond(strings.Compare(incoming.EventID, current.EventID) > 0)
}

func cond(newer bool) verdict {
	if newer {
		return replace
	}
	return keep
}

// growth is 1 when incoming has grown past current (some field more, none
// less), -1 when current is ahead, 0 when they are equal, disagree, or
// one of them does not know.
func growth(current, incoming []grown) int {
	more, less := false, false
	for i := range min(len(current), len(incoming)) {
		c, in := current[i], incoming[i]
		if !c.known || !in.known {
			continue
		}
		more = more || in.n > c.n
		less = less || in.n < c.n
	}
	switch {
	case more && !less:
		return 1
	case less && !more:
		return -1
	default:
		return 0
	}
}

func noRank(string) int { return 0 }

// subscriptionRank: incomplete < the live statuses (peers) < the terminal
// ones: a canceled subscription never becomes active again.
func subscriptionRank(s string) int {
	switch s {
	case "incomplete":
		return 0
	case "canceled", "incomplete_expired":
		return 2
	default: // trialing, active, past_due, unpaid, paused
		return 1
	}
}

// invoiceRank: draft < open < paid | void | uncollectible.
func invoiceRank(s string) int {
	switch s {
	case "draft":
		return 0
	case "open":
		return 1
	case "paid", "void", "uncollectible":
		return 2
	default:
		return 0
	}
}

// paymentIntentRank: the requires_* and processing statuses are peers (a
// failed attempt goes back to requires_payment_method); succeeded and
// canceled are final.
func paymentIntentRank(s string) int {
	switch s {
	case "succeeded", "canceled":
		return 1
	default:
		return 0
	}
}

// chargeRank: pending < succeeded | failed.
func chargeRank(s string) int {
	switch s {
	case "succeeded", "failed":
		return 1
	default:
		return 0
	}
}

// refundRank: pending | requires_action < succeeded | failed | canceled.
func refundRank(s string) int {
	switch s {
	case "succeeded", "failed", "canceled":
		return 1
	default:
		return 0
	}
}

// disputeRank: open statuses < won | lost | warning_closed | prevented
// (from 2025-09-30.clover: a dispute stopped before it was filed, by a
// prevention service such as Visa's Rapid Dispute Resolution).
func disputeRank(s string) int {
	switch s {
	case "won", "lost", "warning_closed", "prevented":
		return 1
	default:
		return 0
	}
}

// invoicePaymentRank: open < paid | canceled.
func invoicePaymentRank(s string) int {
	switch s {
	case "paid", "canceled":
		return 1
	default:
		return 0
	}
}

// checkoutSessionRank: open < complete | expired. A complete session's
// payment_status still changes (an async payment succeeds or fails): the
// newer event wins.
func checkoutSessionRank(s string) int {
	switch s {
	case "complete", "expired":
		return 1
	default:
		return 0
	}
}

// creditNoteRank: issued < void; a voided credit note is never issued again.
func creditNoteRank(s string) int {
	if s == "void" {
		return 1
	}
	return 0
}

// subscriptionScheduleRank: not_started < active < completed | released |
// canceled: a schedule that ended never runs again.
func subscriptionScheduleRank(s string) int {
	switch s {
	case "not_started":
		return 0
	case "completed", "released", "canceled":
		return 2
	default:
		return 1
	}
}
