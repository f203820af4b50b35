package billing

import (
	"testing"
	"time"
)

func TestShouldApply(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Second)
	tests := []struct {
		name     string
		rank     rankFunc
		current  state
		incoming state
		want     bool
	}{
		{"stub row takes anything", invoiceRank, state{}, state{"draft", t0, "evt_1"}, true},
		{"newer peer wins", subscriptionRank, state{"active", t0, "evt_1"}, state{"past_due", t1, "evt_2"}, true},
		{"older peer loses", subscriptionRank, state{"past_due", t1, "evt_2"}, state{"active", t0, "evt_1"}, false},
		{"tie: higher state wins", invoiceRank, state{"open", t0, "evt_9"}, state{"paid", t0, "evt_1"}, true},
		{"tie: lower state loses", invoiceRank, state{"paid", t0, "evt_1"}, state{"open", t0, "evt_9"}, false},
		{"tie, same state: larger event id wins", invoiceRank, state{"paid", t0, "evt_1"}, state{"paid", t0, "evt_2"}, true},
		{"tie, same state: smaller event id loses", invoiceRank, state{"paid", t0, "evt_2"}, state{"paid", t0, "evt_1"}, false},
		{"paid invoice never reopens", invoiceRank, state{"paid", t0, "evt_1"}, state{"open", t1, "evt_2"}, false},
		{"newer paid invoice update applies", invoiceRank, state{"paid", t0, "evt_1"}, state{"paid", t1, "evt_2"}, true},
		{"uncollectible invoice can be paid later", invoiceRank, state{"uncollectible", t0, "evt_1"}, state{"paid", t1, "evt_2"}, true},
		{"canceled subscription never active again", subscriptionRank, state{"canceled", t0, "evt_1"}, state{"active", t1, "evt_2"}, false},
		{"incomplete_expired is terminal", subscriptionRank, state{"incomplete_expired", t0, "evt_1"}, state{"active", t1, "evt_2"}, false},
		{"active never back to incomplete", subscriptionRank, state{"active", t0, "evt_1"}, state{"incomplete", t1, "evt_2"}, false},
		{"older cancellation still cancels", subscriptionRank, state{"active", t1, "evt_2"}, state{"canceled", t0, "evt_1"}, true},
		{"succeeded intent never processing", paymentIntentRank, state{"succeeded", t0, "evt_1"}, state{"processing", t1, "evt_2"}, false},
		{"failed attempt returns to requires_payment_method", paymentIntentRank, state{"processing", t0, "evt_1"}, state{"requires_payment_method", t1, "evt_2"}, true},
		{"succeeded charge never pending", chargeRank, state{"succeeded", t0, "evt_1"}, state{"pending", t1, "evt_2"}, false},
		{"lost dispute never reopens", disputeRank, state{"lost", t0, "evt_1"}, state{"under_review", t1, "evt_2"}, false},
		{"refund failed after succeeded", refundRank, state{"succeeded", t0, "evt_1"}, state{"failed", t1, "evt_2"}, true},
		{"succeeded refund never pending", refundRank, state{"succeeded", t0, "evt_1"}, state{"pending", t1, "evt_2"}, false},
		{"customer: newer wins", noRank, state{"", t0, "evt_1"}, state{"", t1, "evt_0"}, true},
		{"customer: older loses", noRank, state{"", t1, "evt_0"}, state{"", t0, "evt_1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := shouldApply(tt.rank, tt.current, tt.incoming); got != tt.want {
				t.Errorf("shouldApply(%+v, %+v) = %v, want %v", tt.current, tt.incoming, got, tt.want)
			}
		})
	}
}
