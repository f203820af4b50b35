package billing

import (
	"testing"
	"time"
)

// st is a row or event state; grows are the values of the fields that
// only grow, -1 for one not known.
func st(status string, created time.Time, eventID string, grows ...int64) state {
	s := state{Status: status, Created: created, EventID: eventID}
	for _, g := range grows {
		s.Grows = append(s.Grows, grown{n: g, known: g >= 0})
	}
	return s
}

func TestCompare(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Second)
	tests := []struct {
		name     string
		rank     rankFunc
		current  state
		incoming state
		want     verdict
	}{
		{"stub row takes anything", invoiceRank, state{}, st("draft", t0, "evt_1"), replace},
		{"a prevented dispute stays prevented", disputeRank, st("prevented", t0, "evt_1"), st("needs_response", t1, "evt_2"), keep},
		{"an expired checkout never reopens", checkoutSessionRank, st("expired", t0, "evt_1"), st("open", t1, "evt_2"), keep},
		{"a complete checkout's newer payment status wins", checkoutSessionRank, st("complete", t0, "evt_1"), st("complete", t1, "evt_2"), replace},
		{"a void credit note is never issued again", creditNoteRank, st("void", t0, "evt_1"), st("issued", t1, "evt_2"), keep},
		{"newer peer wins", subscriptionRank, st("active", t0, "evt_1"), st("past_due", t1, "evt_2"), replace},
		{"older peer loses", subscriptionRank, st("past_due", t1, "evt_2"), st("active", t0, "evt_1"), keep},
		{"same second: higher state wins", invoiceRank, st("open", t0, "evt_9"), st("paid", t0, "evt_1"), replace},
		{"same second: lower state loses", invoiceRank, st("paid", t0, "evt_1"), st("open", t0, "evt_9"), keep},
		{"same second, same state: a tie", subscriptionRank, st("active", t0, "evt_1"), st("past_due", t0, "evt_2"), tied},
		{"same event again keeps the row", subscriptionRank, st("active", t0, "evt_1"), st("active", t0, "evt_1"), keep},
		{"same second: more refunded wins", chargeRank, st("succeeded", t0, "evt_9", 500, 2000), st("succeeded", t0, "evt_1", 1000, 2000), replace},
		{"same second: less refunded loses", chargeRank, st("succeeded", t0, "evt_1", 1000, 2000), st("succeeded", t0, "evt_9", 500, 2000), keep},
		{"same second: more attempts win", invoiceRank, st("open", t0, "evt_9", 0, 1), st("open", t0, "evt_1", 0, 2), replace},
		{"same second: more paid wins", invoiceRank, st("open", t0, "evt_9", 500, 1), st("open", t0, "evt_1", 800, 1), replace},
		{"same second: equal growing fields tie", chargeRank, st("succeeded", t0, "evt_1", 500, 2000), st("succeeded", t0, "evt_2", 500, 2000), tied},
		{"same second: growing fields that disagree tie", invoiceRank, st("open", t0, "evt_1", 800, 1), st("open", t0, "evt_2", 500, 2), tied},
		{"same second: an unknown field is left out", chargeRank, st("succeeded", t0, "evt_9", 500, -1), st("succeeded", t0, "evt_1", 1000, 2000), replace},
		{"a later second wins even with less", chargeRank, st("succeeded", t0, "evt_1", 1000, 2000), st("succeeded", t1, "evt_0", 500, 2000), replace},
		{"paid invoice never reopens", invoiceRank, st("paid", t0, "evt_1"), st("open", t1, "evt_2"), keep},
		{"newer paid invoice update applies", invoiceRank, st("paid", t0, "evt_1"), st("paid", t1, "evt_2"), replace},
		{"uncollectible invoice can be paid later", invoiceRank, st("uncollectible", t0, "evt_1"), st("paid", t1, "evt_2"), replace},
		{"canceled subscription never active again", subscriptionRank, st("canceled", t0, "evt_1"), st("active", t1, "evt_2"), keep},
		{"incomplete_expired is terminal", subscriptionRank, st("incomplete_expired", t0, "evt_1"), st("active", t1, "evt_2"), keep},
		{"active never back to incomplete", subscriptionRank, st("active", t0, "evt_1"), st("incomplete", t1, "evt_2"), keep},
		{"older cancellation still cancels", subscriptionRank, st("active", t1, "evt_2"), st("canceled", t0, "evt_1"), replace},
		{"succeeded intent never processing", paymentIntentRank, st("succeeded", t0, "evt_1"), st("processing", t1, "evt_2"), keep},
		{"failed attempt returns to requires_payment_method", paymentIntentRank, st("processing", t0, "evt_1"), st("requires_payment_method", t1, "evt_2"), replace},
		{"succeeded charge never pending", chargeRank, st("succeeded", t0, "evt_1"), st("pending", t1, "evt_2"), keep},
		{"lost dispute never reopens", disputeRank, st("lost", t0, "evt_1"), st("under_review", t1, "evt_2"), keep},
		{"refund failed after succeeded", refundRank, st("succeeded", t0, "evt_1"), st("failed", t1, "evt_2"), replace},
		{"succeeded refund never pending", refundRank, st("succeeded", t0, "evt_1"), st("pending", t1, "evt_2"), keep},
		{"customer: newer wins", noRank, st("", t0, "evt_1"), st("", t1, "evt_0"), replace},
		{"customer: older loses", noRank, st("", t1, "evt_0"), st("", t0, "evt_1"), keep},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := compare(tt.rank, tt.current, tt.incoming); got != tt.want {
				t.Errorf("compare(%+v, %+v) = %v, want %v", tt.current, tt.incoming, got, tt.want)
			}
		})
	}
}

func TestByEventID(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a, b := st("active", t0, "evt_A"), st("past_due", t0, "evt_b")
	if byEventID(a, b) != replace || byEventID(b, a) != keep {
		t.Errorf("byEventID: the larger id must win from either side")
	}
}
