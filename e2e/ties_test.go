package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/testenv"
)

// refunded is a charge.refunded event of charge id with amount refunded,
// under a random event id.
func refunded(id string, at time.Time, amount int64) (evID string, body []byte) {
	o := billingtest.Charge(id, "cus_"+id, "", "", "succeeded", 2000)
	o["amount_refunded"] = amount
	evID = billingtest.NewEventID()
	return evID, billingtest.Event(evID, "charge.refunded", at, o)
}

// postApplied posts a signed event to the running api and waits until the
// running worker has recorded it in the ledger.
func (s *stack) postApplied(t *testing.T, api *proc, evID string, body []byte) {
	t.Helper()
	if code := postSigned(api, body); code != http.StatusOK {
		t.Fatalf("POST %s: %d", evID, code)
	}
	testenv.Eventually(t, 15*time.Second, func() bool { return s.ledger(t)[evID] == "processed" }, "the worker applies %s", evID)
}

// amountRefunded reads a charge's row in MySQL.
func (s *stack) amountRefunded(t *testing.T, charge string) (amount int64, lastEvent string) {
	t.Helper()
	err := s.db.QueryRow("SELECT amount_refunded, last_event_id FROM payments WHERE stripe_id = ?", charge).Scan(&amount, &lastEvent)
	if err != nil {
		t.Fatalf("read charge %s: %v", charge, err)
	}
	return amount, lastEvent
}

// TestSameSecondRefundsEndToEnd: two partial refunds of one charge in one
// second, posted signed to the running api in either order and applied by
// the running worker, end at the larger amount in MySQL.
func TestSameSecondRefundsEndToEnd(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api := s.startReady(nil)
	at := time.Now().Truncate(time.Second)
	for run := range 4 {
		charge := fmt.Sprintf("ch_e2e_tie_%d", run)
		small, smallBody := refunded(charge, at, 500)
		large, largeBody := refunded(charge, at, 1000)
		if run%2 == 0 {
			s.postApplied(t, api, small, smallBody)
			s.postApplied(t, api, large, largeBody)
		} else {
			s.postApplied(t, api, large, largeBody)
			s.postApplied(t, api, small, smallBody)
		}
		if amount, last := s.amountRefunded(t, charge); amount != 1000 || last != large {
			t.Errorf("run %d (%s first): amount_refunded %d from %s, want 1000 from %s", run, []string{"500", "1000"}[run%2], amount, last, large)
		}
	}
}

// TestReprocessEndToEnd: a charge.refunded that a worker of an older
// release recorded ignored (its ledger row says so, and the charge row
// is as that worker left it) is listed by `billing reprocess --dry-run`
// and applied by `billing reprocess --type charge.refunded`; running it
// again changes nothing.
func TestReprocessEndToEnd(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api := s.startReady(nil)
	at := time.Now().Truncate(time.Second)
	const charge = "ch_e2e_reprocess"
	succeededID := billingtest.NewEventID()
	s.postApplied(t, api, succeededID, billingtest.Event(succeededID, "charge.succeeded", at.Add(-time.Second),
		billingtest.Charge(charge, "cus_"+charge, "", "", "succeeded", 2000)))
	refundedID, body := refunded(charge, at, 700)
	s.postApplied(t, api, refundedID, body)

	// What an older worker without the handler would have left.
	for _, q := range []string{
		"UPDATE stripe_events SET status = 'ignored' WHERE id = ?",
		"UPDATE payments SET amount_refunded = 0, last_event_id = ?, last_event_created = ? WHERE stripe_id = '" + charge + "'",
	} {
		args := []any{refundedID}
		if strings.HasPrefix(q, "UPDATE payments") {
			args = []any{succeededID, at.Add(-time.Second).UTC()}
		}
		if _, err := s.db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	reprocess := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"reprocess"}, args...)...)
		cmd.Env = s.env(nil)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("billing reprocess %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	out := reprocess("--type", "charge.refunded", "--dry-run")
	if !strings.Contains(out, "would apply "+refundedID+" charge.refunded (was ignored") {
		t.Errorf("dry run:\n%s", out)
	}
	if amount, _ := s.amountRefunded(t, charge); amount != 0 {
		t.Fatalf("the dry run applied the refund")
	}
	out = reprocess("--type", "charge.refunded")
	if !strings.Contains(out, "applied "+refundedID) || !strings.Contains(out, "1 applied") {
		t.Errorf("reprocess:\n%s", out)
	}
	if amount, last := s.amountRefunded(t, charge); amount != 700 || last != refundedID || s.ledger(t)[refundedID] != "processed" {
		t.Errorf("after reprocess: amount_refunded %d from %s, ledger %q; want 700 from %s, processed", amount, last, s.ledger(t)[refundedID], refundedID)
	}
	var before string
	if err := s.db.QueryRow("SELECT CONCAT_WS(',', amount_refunded, last_event_id, last_event_created, updated_at) FROM payments WHERE stripe_id = ?", charge).Scan(&before); err != nil {
		t.Fatal(err)
	}
	out = reprocess("--type", "charge.refunded", "--status", "processed,ignored")
	var after string
	if err := s.db.QueryRow("SELECT CONCAT_WS(',', amount_refunded, last_event_id, last_event_created, updated_at) FROM payments WHERE stripe_id = ?", charge).Scan(&after); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 applied") || after != before {
		t.Errorf("second reprocess changed the charge: %s -> %s\n%s", before, after, out)
	}
}

// TestSubscriptionTieFetchedEndToEnd: with STRIPE_API_KEY set, the running
// worker settles two customer.subscription.updated of one second, which
// nothing in their payloads orders, on the subscription as Stripe
// (stripe-mock) has it.
func TestSubscriptionTieFetchedEndToEnd(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	mock := testenv.StripeMock(t)
	api := s.startReady(map[string]string{"STRIPE_API_KEY": "sk_test_123", "STRIPE_API_BASE": mock})
	const sub = "sub_e2e_tie"
	req, _ := http.NewRequest(http.MethodGet, mock+"/v1/subscriptions/"+sub, nil)
	req.SetBasicAuth("sk_test_123", "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var stripeSub struct{ Status, Customer string }
	err = json.NewDecoder(resp.Body).Decode(&stripeSub)
	resp.Body.Close()
	if err != nil || stripeSub.Status == "" || stripeSub.Status == "past_due" || stripeSub.Status == "unpaid" {
		t.Fatalf("stripe-mock's subscription: %+v, %v", stripeSub, err)
	}
	at := time.Now().Truncate(time.Second)
	for _, status := range []string{"past_due", "unpaid"} {
		id := billingtest.NewEventID()
		s.postApplied(t, api, id, billingtest.Event(id, "customer.subscription.updated", at, billingtest.Subscription(sub, "cus_e2e", status, at)))
	}
	var status, customer string
	if err := s.db.QueryRow("SELECT status, customer_id FROM subscriptions WHERE stripe_id = ?", sub).Scan(&status, &customer); err != nil {
		t.Fatal(err)
	}
	if status != stripeSub.Status || customer != stripeSub.Customer {
		t.Errorf("subscription row: status %s customer %s, want Stripe's %s %s", status, customer, stripeSub.Status, stripeSub.Customer)
	}
}
