package billing

import (
	"bytes"
	"encoding/json"
	"time"
)

// The structs below read only what the tables keep, and tolerate the shapes
// that changed between API versions: expandable references are an id or an
// object, and fields that moved are read from both places.

// ref is an expandable reference: "id", {"id": ...} or null.
type ref string

func (r *ref) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case len(b) == 0 || bytes.Equal(b, []byte("null")):
		*r = ""
		return nil
	case b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*r = ref(s)
		return nil
	default:
		var o struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return err
		}
		*r = ref(o.ID)
		return nil
	}
}

// ptr returns nil for "" so the column is NULL.
func (r ref) ptr() *string {
	if r == "" {
		return nil
	}
	s := string(r)
	return &s
}

// unix is seconds since the epoch, or null.
type unix struct{ t *time.Time }

func (u *unix) UnmarshalJSON(b []byte) error {
	if bytes.Equal(bytes.TrimSpace(b), []byte("null")) {
		u.t = nil
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	if n == 0 {
		u.t = nil
		return nil
	}
	t := time.Unix(n, 0).UTC()
	u.t = &t
	return nil
}

// common holds what every Stripe object has.
type common struct {
	ID       string `json:"id"`
	Object   string `json:"object"`
	Livemode bool   `json:"livemode"`
	Created  unix   `json:"created"`
}

type customerObject struct {
	common
	Email    *string `json:"email"`
	Name     *string `json:"name"`
	Currency *string `json:"currency"`
	Balance  int64   `json:"balance"`
}

type subscriptionObject struct {
	common
	Customer           ref     `json:"customer"`
	Status             string  `json:"status"`
	Currency           *string `json:"currency"`
	CurrentPeriodStart unix    `json:"current_period_start"`
	CurrentPeriodEnd   unix    `json:"current_period_end"`
	CancelAtPeriodEnd  bool    `json:"cancel_at_period_end"`
	CancelAt           unix    `json:"cancel_at"`
	CanceledAt         unix    `json:"canceled_at"`
	EndedAt            unix    `json:"ended_at"`
	TrialStart         unix    `json:"trial_start"`
	TrialEnd           unix    `json:"trial_end"`
	Items              struct {
		Data []struct {
			Price struct {
				ID string `json:"id"`
			} `json:"price"`
			Quantity *int64 `json:"quantity"`
			// API versions from 2025-03-31 keep the period on the item.
			CurrentPeriodStart unix `json:"current_period_start"`
			CurrentPeriodEnd   unix `json:"current_period_end"`
		} `json:"data"`
	} `json:"items"`
}

type invoiceObject struct {
	common
	Customer         ref     `json:"customer"`
	Subscription     ref     `json:"subscription"`
	PaymentIntent    ref     `json:"payment_intent"`
	Charge           ref     `json:"charge"`
	Status           string  `json:"status"`
	Number           *string `json:"number"`
	Currency         *string `json:"currency"`
	AmountDue        int64   `json:"amount_due"`
	AmountPaid       int64   `json:"amount_paid"`
	AmountRemaining  int64   `json:"amount_remaining"`
	Subtotal         int64   `json:"subtotal"`
	Total            int64   `json:"total"`
	AttemptCount     int     `json:"attempt_count"`
	HostedInvoiceURL *string `json:"hosted_invoice_url"`
	DueDate          unix    `json:"due_date"`
	PeriodStart      unix    `json:"period_start"`
	PeriodEnd        unix    `json:"period_end"`
	// API versions from 2025-03-31 moved the subscription here.
	Parent *struct {
		SubscriptionDetails *struct {
			Subscription ref `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
}

func (o invoiceObject) subscription() ref {
	if o.Subscription != "" {
		return o.Subscription
	}
	if o.Parent != nil && o.Parent.SubscriptionDetails != nil {
		return o.Parent.SubscriptionDetails.Subscription
	}
	return ""
}

type paymentError struct {
	Code    *string `json:"code"`
	Message *string `json:"message"`
}

type paymentIntentObject struct {
	common
	Customer         ref           `json:"customer"`
	Invoice          ref           `json:"invoice"`
	LatestCharge     ref           `json:"latest_charge"`
	Status           string        `json:"status"`
	Currency         *string       `json:"currency"`
	Amount           int64         `json:"amount"`
	AmountCapturable int64         `json:"amount_capturable"`
	AmountReceived   int64         `json:"amount_received"`
	LastPaymentError *paymentError `json:"last_payment_error"`
}

type chargeObject struct {
	common
	Customer       ref     `json:"customer"`
	Invoice        ref     `json:"invoice"`
	PaymentIntent  ref     `json:"payment_intent"`
	Status         string  `json:"status"`
	Currency       *string `json:"currency"`
	Amount         int64   `json:"amount"`
	AmountCaptured int64   `json:"amount_captured"`
	AmountRefunded int64   `json:"amount_refunded"`
	Captured       bool    `json:"captured"`
	Refunded       bool    `json:"refunded"`
	Paid           bool    `json:"paid"`
	FailureCode    *string `json:"failure_code"`
	FailureMessage *string `json:"failure_message"`
}

type refundObject struct {
	common
	Charge        ref     `json:"charge"`
	PaymentIntent ref     `json:"payment_intent"`
	Status        string  `json:"status"`
	Currency      *string `json:"currency"`
	Amount        int64   `json:"amount"`
	Reason        *string `json:"reason"`
	FailureReason *string `json:"failure_reason"`
}

type disputeObject struct {
	common
	Charge             ref     `json:"charge"`
	PaymentIntent      ref     `json:"payment_intent"`
	Status             string  `json:"status"`
	Currency           *string `json:"currency"`
	Amount             int64   `json:"amount"`
	Reason             *string `json:"reason"`
	IsChargeRefundable bool    `json:"is_charge_refundable"`
	EvidenceDetails    *struct {
		DueBy unix `json:"due_by"`
	} `json:"evidence_details"`
}

type checkoutSessionObject struct {
	common
	Customer      ref `json:"customer"`
	Subscription  ref `json:"subscription"`
	PaymentIntent ref `json:"payment_intent"`
	Invoice       ref `json:"invoice"`
}
