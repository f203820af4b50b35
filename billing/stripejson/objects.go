package stripejson

import (
	"errors"
	"time"

	"github.com/segmentio/encoding/json"
)

// The shapes of Stripe's objects, as every supported API version writes
// them: what needs reading beyond a top-level key's plain value
// (references, an id or an object; nested objects; fields that moved,
// read from both places, as SubscriptionRef; statuses; metadata). A plain
// column is its model's alone: its stripe tag names the key billing reads
// it from (billing's isSimple). Whether the payload carries a field at all
// is Keys' to say.

// Common holds what every Stripe object has. livemode is left out: it is
// the event's (a Refund has none).
type Common struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created Unix   `json:"created"`
}

// Customer is a customer object.
type Customer struct {
	Common
	Metadata Metadata `json:"metadata"`
	// InvoiceSettings holds the customer's default payment method.
	InvoiceSettings *struct {
		DefaultPaymentMethod Ref `json:"default_payment_method"`
	} `json:"invoice_settings"`
}

// Subscription is a subscription object.
type Subscription struct {
	Common
	Customer           Ref    `json:"customer"`
	Status             string `json:"status"`
	CurrentPeriodStart Unix   `json:"current_period_start"`
	CurrentPeriodEnd   Unix   `json:"current_period_end"`
	PauseCollection    *struct {
		Behavior  *string `json:"behavior"`
		ResumesAt Unix    `json:"resumes_at"`
	} `json:"pause_collection"`
	Items    *List    `json:"items"`
	Metadata Metadata `json:"metadata"`
}

// List is a Stripe list whose items are decoded one by one.
type List struct {
	Data    []json.RawMessage `json:"data"`
	HasMore bool              `json:"has_more"`
}

// SubscriptionItem is an item of a subscription.
type SubscriptionItem struct {
	Common
	Price    Ref    `json:"price"`
	Quantity *int64 `json:"quantity"`
	// API versions from 2025-03-31 keep the period on the item.
	CurrentPeriodStart Unix `json:"current_period_start"`
	CurrentPeriodEnd   Unix `json:"current_period_end"`
}

// Invoice is an invoice object.
type Invoice struct {
	Common
	Customer          Ref    `json:"customer"`
	Subscription      Ref    `json:"subscription"`
	PaymentIntent     Ref    `json:"payment_intent"`
	Charge            Ref    `json:"charge"`
	Status            string `json:"status"`
	StatusTransitions *struct {
		PaidAt Unix `json:"paid_at"`
	} `json:"status_transitions"`
	// Before 2025-03-31.basil the total tax is tax; from it on, the sum
	// of total_taxes.
	Tax                  *int64    `json:"tax"`
	TotalTaxes           *[]Amount `json:"total_taxes"`
	TotalDiscountAmounts *[]Amount `json:"total_discount_amounts"`
	Metadata             Metadata  `json:"metadata"`
	Lines                *struct {
		Data []struct {
			Period *struct {
				Start Unix `json:"start"`
				End   Unix `json:"end"`
			} `json:"period"`
		} `json:"data"`
	} `json:"lines"`
	// API versions from 2025-03-31: the invoice's InvoicePayments, when
	// the payload includes them.
	Payments *List `json:"payments"`
	// API versions from 2025-03-31 moved the subscription here.
	Parent *struct {
		SubscriptionDetails *struct {
			Subscription Ref `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
}

// Amount is an item of a list of amounts (taxes, discounts).
type Amount struct {
	Amount int64 `json:"amount"`
}

// Sum adds up amounts; nil when the list is null.
func Sum(amounts *[]Amount) *int64 {
	if amounts == nil {
		return nil
	}
	var total int64
	for _, a := range *amounts {
		total += a.Amount
	}
	return &total
}

// The invoice's fields that need reading are functions, not methods: an
// Invoice is embedded in a struct made at run time (billing's withSimple),
// which cannot have a type with methods embedded.

// TotalTax is invoice o's total tax, in whichever field its version has.
func TotalTax(o *Invoice) *int64 {
	if o.Tax != nil {
		return o.Tax
	}
	return Sum(o.TotalTaxes)
}

// PaidAt is when invoice o was paid (status_transitions.paid_at).
func PaidAt(o *Invoice) *time.Time {
	if o.StatusTransitions == nil {
		return nil
	}
	return o.StatusTransitions.PaidAt.T
}

// SubscriptionRef is invoice o's subscription: its own field before
// 2025-03-31.basil, parent.subscription_details from it on.
func SubscriptionRef(o *Invoice) Ref {
	if o.Subscription != "" {
		return o.Subscription
	}
	if o.Parent != nil && o.Parent.SubscriptionDetails != nil {
		return o.Parent.SubscriptionDetails.Subscription
	}
	return ""
}

// BilledPeriod is the span of invoice o's lines' periods: what it bills.
func BilledPeriod(o *Invoice) (start, end *time.Time) {
	if o.Lines == nil {
		return nil, nil
	}
	for _, l := range o.Lines.Data {
		if l.Period == nil {
			continue
		}
		if s := l.Period.Start.T; s != nil && (start == nil || s.Before(*start)) {
			start = s
		}
		if e := l.Period.End.T; e != nil && (end == nil || e.After(*end)) {
			end = e
		}
	}
	return start, end
}

// InvoicePayment is an invoice payment (from 2025-03-31.basil).
type InvoicePayment struct {
	Common
	Invoice Ref    `json:"invoice"`
	Status  string `json:"status"`
	Payment *struct {
		PaymentIntent Ref `json:"payment_intent"`
		Charge        Ref `json:"charge"`
	} `json:"payment"`
	StatusTransitions *struct {
		PaidAt Unix `json:"paid_at"`
	} `json:"status_transitions"`
}

// PaymentError is a payment intent's last_payment_error.
type PaymentError struct {
	Code    *string `json:"code"`
	Message *string `json:"message"`
}

// PaymentIntent is a payment intent object.
type PaymentIntent struct {
	Common
	Customer         Ref           `json:"customer"`
	Invoice          Ref           `json:"invoice"`
	LatestCharge     Ref           `json:"latest_charge"`
	Status           string        `json:"status"`
	LastPaymentError *PaymentError `json:"last_payment_error"`
	Metadata         Metadata      `json:"metadata"`
}

// Charge is a charge object.
type Charge struct {
	Common
	Customer             Ref                   `json:"customer"`
	Invoice              Ref                   `json:"invoice"`
	PaymentIntent        Ref                   `json:"payment_intent"`
	Status               string                `json:"status"`
	PaymentMethodDetails *PaymentMethodSummary `json:"payment_method_details"`
	Metadata             Metadata              `json:"metadata"`
	// The charge's refunds, when the payload carries the list.
	Refunds *List `json:"refunds"`
}

// PaymentMethodSummary is what a charge's payment_method_details say of
// the method that paid, whatever its type: the type and, from the
// details of that type, brand, last four digits, expiry and wallet. The
// rest (a card's fingerprint above all) is never read.
type PaymentMethodSummary struct {
	Type     *string `json:"-"`
	Brand    *string `json:"brand"`
	Last4    *string `json:"last4"`
	ExpMonth *int    `json:"exp_month"`
	ExpYear  *int    `json:"exp_year"`
	Wallet   *struct {
		Type *string `json:"type"`
	} `json:"wallet"`
}

func (m *PaymentMethodSummary) UnmarshalJSON(b []byte) error {
	var details map[string]json.RawMessage
	if err := json.Unmarshal(b, &details); err != nil {
		return err
	}
	*m = PaymentMethodSummary{}
	if t := details["type"]; t != nil {
		if err := json.Unmarshal(t, &m.Type); err != nil {
			return err
		}
	}
	if m.Type == nil {
		return nil
	}
	if method := details[*m.Type]; method != nil {
		type fields PaymentMethodSummary // without this method
		f := fields{Type: m.Type}
		if err := json.Unmarshal(method, &f); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				te.Field = *m.Type + "." + te.Field // the path under the details, not under the type's
			}
			return err
		}
		*m = PaymentMethodSummary(f)
	}
	return nil
}

// WalletType is the wallet that paid (apple_pay, link, ...), nil for none.
func (m *PaymentMethodSummary) WalletType() *string {
	if m == nil || m.Wallet == nil {
		return nil
	}
	return m.Wallet.Type
}

// Refund is a refund object.
type Refund struct {
	Common
	Charge        Ref      `json:"charge"`
	PaymentIntent Ref      `json:"payment_intent"`
	Status        string   `json:"status"`
	Metadata      Metadata `json:"metadata"`
}

// Dispute is a dispute object.
type Dispute struct {
	Common
	Charge          Ref    `json:"charge"`
	PaymentIntent   Ref    `json:"payment_intent"`
	Status          string `json:"status"`
	EvidenceDetails *struct {
		DueBy Unix `json:"due_by"`
	} `json:"evidence_details"`
	Metadata Metadata `json:"metadata"`
}

// CheckoutSession is a Checkout session object.
type CheckoutSession struct {
	Common
	Status        string   `json:"status"`
	Customer      Ref      `json:"customer"`
	Subscription  Ref      `json:"subscription"`
	PaymentIntent Ref      `json:"payment_intent"`
	Invoice       Ref      `json:"invoice"`
	Metadata      Metadata `json:"metadata"`
}

// CreditNote is a credit note object.
type CreditNote struct {
	Common
	Invoice  Ref      `json:"invoice"`
	Customer Ref      `json:"customer"`
	Status   string   `json:"status"`
	Metadata Metadata `json:"metadata"`
}

// PaymentMethod is a payment method object: its customer and, read as a
// charge's payment_method_details are (type, then that type's details),
// its summary; the fingerprint is never read.
type PaymentMethod struct {
	Common
	Customer Ref                  `json:"customer"`
	Metadata Metadata             `json:"metadata"`
	Summary  PaymentMethodSummary `json:"-"`
}

func (m *PaymentMethod) UnmarshalJSON(b []byte) error {
	type fields PaymentMethod // without this method
	var f fields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	if err := json.Unmarshal(b, &f.Summary); err != nil {
		return err
	}
	*m = PaymentMethod(f)
	return nil
}

// Product is a product object.
type Product struct {
	Common
	Metadata Metadata `json:"metadata"`
}

// Price is a price object; Recurring is nil for a one-time price.
type Price struct {
	Common
	Product   Ref `json:"product"`
	Recurring *struct {
		Interval      *string `json:"interval"`
		IntervalCount *int    `json:"interval_count"`
	} `json:"recurring"`
	Metadata Metadata `json:"metadata"`
}

// SubscriptionSchedule is a subscription schedule object.
type SubscriptionSchedule struct {
	Common
	Customer             Ref    `json:"customer"`
	Subscription         Ref    `json:"subscription"`
	ReleasedSubscription Ref    `json:"released_subscription"`
	Status               string `json:"status"`
	CurrentPhase         *struct {
		StartDate Unix `json:"start_date"`
		EndDate   Unix `json:"end_date"`
	} `json:"current_phase"`
	Metadata Metadata `json:"metadata"`
}
