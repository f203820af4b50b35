package billing

import (
	"strings"
	"time"
)

// state is what decides whether an event may change a row: the status it
// carries and the event that carried it.
type state struct {
	Status  string
	Created time.Time // zero for a stub row no event has filled yet
	EventID string
}

// rankFunc orders the statuses of one kind of object: a row never moves to
// a lower rank, whatever the event's time. Statuses of equal rank are peers
// and the newer event wins.
type rankFunc func(status string) int

// shouldApply decides whether incoming replaces current. The order is
// (rank, created, event id): rank first so terminal states never reopen,
// then Stripe's time, then the event id as a last, arbitrary but
// deterministic tie-break, so that every delivery order converges on the
// same row.
func shouldApply(rank rankFunc, current, incoming state) bool {
	if current.Created.IsZero() {
		return true
	}
	if rc, ri := rank(current.Status), rank(incoming.Status); ri != rc {
		return ri > rc
	}
	if !incoming.Created.Equal(current.Created) {
		return incoming.Created.After(current.Created)
	}
	return strings.Compare(incoming.EventID, current.EventID) > 0
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

// disputeRank: open statuses < won | lost | warning_closed.
func disputeRank(s string) int {
	switch s {
	case "won", "lost", "warning_closed":
		return 1
	default:
		return 0
	}
}
