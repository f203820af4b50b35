package billingtest

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// Hold is how a payment authorised and not captured at once (a payment
// intent with capture_method manual) ends.
type Hold int

// The holds HoldLifecycle builds.
const (
	HoldCanceled Hold = iota // the intent canceled before capture
	HoldExpired              // the authorisation expired, 7 days on
	HoldPartial              // captured in part, then a part of that refunded
)

// Holds are every Hold, for a test to run each.
var Holds = []Hold{HoldCanceled, HoldExpired, HoldPartial}

func (h Hold) String() string { return [...]string{"Canceled", "Expired", "Partial"}[h] }

// Amounts of a HoldLifecycle, in cents (or euro cents).
const (
	HoldAuthorized = 1000 // the hold
	HoldCaptured   = 600  // HoldPartial's capture: 400 is released
	HoldRefund     = 100  // HoldPartial's refund of captured money
)

// HoldIDs are the object ids of seed's HoldLifecycle of h.
func HoldIDs(seed int, h Hold) (paymentIntent, charge, release, refund string) {
	s := newVersionBuilder("2023-10-16", seed).id.Customer[len("cus_"):] + fmt.Sprintf("h%d", h)
	return "pi_" + s, "ch_" + s, "re_" + s + "x", "re_" + s + "r"
}

// HoldLifecycle is the events Stripe sends, in its order, for a hold of
// HoldAuthorized on seed's customer in API version version (the mode,
// account and currency of VersionLifecycle(version, seed)), 100 seconds
// after that lifecycle starts. Before 2025-03-31.basil Stripe refunds the
// part it never captured: a Refund (reason expired_uncaptured_charge
// for an expiry, none otherwise) counted in the charge's amount_refunded,
// with charge.refunded. From basil it releases the hold with no Refund and
// amount_refunded counts only captured money
// (docs.stripe.com/changelog/basil/2025-03-31/remove-refund-from-partial-capture-and-payment-cancellation-flow);
// a canceled charge's amount_captured, null before, is 0. Each object is
// a copy of Stripe's fixture in the version, as VersionLifecycle's.
func HoldLifecycle(version string, seed int, h Hold) [][]byte {
	b := newVersionBuilder(version, seed)
	// Event ids of their own, apart from the lifecycle's and the other
	// holds', the same in every run.
	b.evRand = rand.New(rand.NewPCG(uint64(seed), b.evRand.Uint64()+uint64(h)+1))
	pi, ch, release, refund := HoldIDs(seed, h)
	preBasil := b.defines("charge", "invoice")
	t0 := b.at(100)
	charge := func(captured, amountCaptured any, refunded int64) map[string]any {
		o := b.charge(ch, "succeeded", t0, refunded)
		o["payment_intent"], o["amount"], o["amount_captured"] = pi, HoldAuthorized, amountCaptured
		o["captured"], o["refunded"] = captured, refunded == HoldAuthorized
		if _, ok := o["invoice"]; ok {
			o["invoice"] = nil
		}
		return o
	}
	intent := func(status string, received int64, reason any) map[string]any {
		o := b.paymentIntent(status, ch, false)
		o["id"], o["amount"], o["amount_received"], o["amount_capturable"] = pi, HoldAuthorized, received, 0
		if status == "requires_capture" {
			o["amount_capturable"] = HoldAuthorized
		}
		o["cancellation_reason"] = reason
		if _, ok := o["invoice"]; ok {
			o["invoice"] = nil
		}
		return o
	}
	refundOf := func(id string, amount int64, created time.Time, reason any) map[string]any {
		o := b.fixture("refund", id, created)
		o["charge"], o["payment_intent"], o["status"], o["currency"] = ch, pi, "succeeded", b.currency
		o["amount"], o["reason"], o["metadata"] = amount, reason, b.metadata("refund")
		return o
	}
	var out [][]byte
	add := func(at time.Time, typ string, o map[string]any) { out = append(out, b.event(typ, at, o)) }
	add(t0, "charge.succeeded", charge(false, 0, 0))
	add(t0, "payment_intent.amount_capturable_updated", intent("requires_capture", 0, nil))
	switch at := t0.Add(10 * time.Second); h {
	case HoldCanceled:
		canceled := intent("canceled", 0, "requested_by_customer")
		canceled["canceled_at"] = at.Unix()
		add(at, "payment_intent.canceled", canceled)
		if preBasil {
			add(at, "refund.created", refundOf(release, HoldAuthorized, at, nil))
			add(at, "charge.refunded", charge(false, nil, HoldAuthorized))
		}
	case HoldExpired:
		at = t0.AddDate(0, 0, 7)
		reason := "expired"
		if preBasil {
			reason = "automatic"
			add(at, "refund.created", refundOf(release, HoldAuthorized, at, "expired_uncaptured_charge"))
			add(at, "charge.expired", charge(false, nil, HoldAuthorized))
		} else {
			add(at, "charge.expired", charge(false, 0, 0))
		}
		canceled := intent("canceled", 0, reason)
		canceled["canceled_at"] = at.Unix()
		add(at, "payment_intent.canceled", canceled)
	case HoldPartial:
		released := int64(0)
		if preBasil {
			released = HoldAuthorized - HoldCaptured
			add(at, "refund.created", refundOf(release, released, at, nil))
		}
		add(at, "charge.captured", charge(true, HoldCaptured, released))
		if preBasil {
			add(at, "charge.refunded", charge(true, HoldCaptured, released))
		}
		add(at, "payment_intent.succeeded", intent("succeeded", HoldCaptured, nil))
		at = at.Add(10 * time.Second)
		add(at, "refund.created", refundOf(refund, HoldRefund, at, "requested_by_customer"))
		add(at, "charge.refunded", charge(true, HoldCaptured, released+HoldRefund))
	}
	return out
}
