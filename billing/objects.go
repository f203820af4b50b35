package billing

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/stripe-billing/billing/billing/stripejson"
	"github.com/stripe-billing/billing/failure"
)

// The structs below read only what the tables keep, and tolerate the shapes
// that changed between API versions: expandable references are an id or an
// object, and fields that moved are read from both places. A field of a
// table is a pointer, nil when the payload says null; whether the payload
// carries the field at all is the payload's to say (decode).

// The decoders' names for stripejson's types.
type (
	payload  = stripejson.Keys
	ref      = stripejson.Ref
	unix     = stripejson.Unix
	metadata = stripejson.Metadata
)

// decode reads raw, the object at path (such as "invoice" or
// "invoice.payments.data[0]") of event ev, into dst, checks that it is a
// want with an id and every field of requires, and returns the fields it
// carries. A field of another type than Stripe's, a missing id or required
// field, or an object of another kind is an error of class failure.Schema
// naming the field and the event's API version.
func decode(ev Event, raw json.RawMessage, path, want string, dst any, c *common, requires ...string) (payload, error) {
	return decodeScanned(ev, raw, payload{}, path, want, dst, c, requires...)
}

// decodeScanned is decode with raw's keys already read (scanObject), or
// none (read here).
func decodeScanned(ev Event, raw json.RawMessage, keys payload, path, want string, dst any, c *common, requires ...string) (payload, error) {
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || raw[0] != '{' {
		return payload{}, schemaError(ev, path, "is not an object")
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			return payload{}, schemaError(ev, path+"."+fieldPath(te.Field), fmt.Sprintf("is a JSON %s, want %s", jsonValue(te.Value), jsonKind(te.Type)))
		case errors.As(err, &se):
			return payload{}, schemaError(ev, path, "is not an object")
		}
		return payload{}, schemaError(ev, path, err.Error())
	}
	if c.Object != "" && c.Object != want {
		return payload{}, schemaError(ev, path+".object", fmt.Sprintf("is %q, want %q", c.Object, want))
	}
	p := keys
	if !p.Scanned() {
		p, _, _ = stripejson.Scan(raw)
	}
	for _, key := range append([]string{"id"}, requires...) {
		if p.Missing(key) {
			return payload{}, schemaError(ev, path+"."+key, "is missing")
		}
	}
	return p, nil
}

// schemaError is a failure.Schema error about the field at path of ev's
// object.
func schemaError(ev Event, path, problem string) error {
	version := ev.APIVersion
	if version == "" {
		version = "unknown"
	}
	return failure.MarkSchema(fmt.Errorf("billing: event %s (%s, API version %s): %s %s", ev.ID, ev.Type, version, path, problem))
}

// fieldPath writes the decoder's path of a field (dotted, an array's
// index as a segment of digits) as this package's errors do:
// "lines.data[0].period". The common fields are embedded: their path is
// the object's.
func fieldPath(field string) string {
	var b strings.Builder
	for seg := range strings.SplitSeq(field, ".") {
		switch {
		case seg == "common" || seg == "":
		case strings.Trim(seg, "0123456789") == "":
			b.WriteString("[" + seg + "]")
		default:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(seg)
		}
	}
	return b.String()
}

// jsonValue names the kind of JSON value an UnmarshalTypeError reports.
// The decoder reports the text it stopped at (quoted, cut short: "\"500\",
// \"app...") where encoding/json names the kind ("string"); a kind named
// already, or a value a custom decoder put in words ("value 42"), is kept.
func jsonValue(v string) string {
	if u, err := strconv.Unquote(v); err == nil {
		v = u
	}
	switch {
	case v == "":
		return "value"
	case v[0] == '"':
		return "string"
	case v[0] == '-' || '0' <= v[0] && v[0] <= '9' || strings.HasPrefix(v, "number"):
		return "number"
	case strings.HasPrefix(v, "true") || strings.HasPrefix(v, "false"):
		return "bool"
	case v[0] == '[':
		return "array"
	case v[0] == '{':
		return "object"
	}
	return v
}

// jsonKind names the JSON value a Go type decodes from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "an array"
	default:
		return "an object"
	}
}

// common holds what every Stripe object has. livemode is left out: it is
// the event's (a Refund has none).
type common struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created unix   `json:"created"`
}

type customerObject struct {
	common
	Email    *string  `json:"email"`
	Name     *string  `json:"name"`
	Currency *string  `json:"currency"`
	Balance  *int64   `json:"balance"`
	Metadata metadata `json:"metadata"`
}

type subscriptionObject struct {
	common
	Customer           ref      `json:"customer"`
	Status             string   `json:"status"`
	Currency           *string  `json:"currency"`
	CurrentPeriodStart unix     `json:"current_period_start"`
	CurrentPeriodEnd   unix     `json:"current_period_end"`
	CancelAtPeriodEnd  *bool    `json:"cancel_at_period_end"`
	CancelAt           unix     `json:"cancel_at"`
	CanceledAt         unix     `json:"canceled_at"`
	EndedAt            unix     `json:"ended_at"`
	TrialStart         unix     `json:"trial_start"`
	TrialEnd           unix     `json:"trial_end"`
	Items              *list    `json:"items"`
	Metadata           metadata `json:"metadata"`
}

// list is a Stripe list whose items are decoded one by one.
type list struct {
	Data    []json.RawMessage `json:"data"`
	HasMore bool              `json:"has_more"`
}

type subscriptionItemObject struct {
	common
	Price    ref    `json:"price"`
	Quantity *int64 `json:"quantity"`
	// API versions from 2025-03-31 keep the period on the item.
	CurrentPeriodStart unix `json:"current_period_start"`
	CurrentPeriodEnd   unix `json:"current_period_end"`
}

type invoiceObject struct {
	common
	Customer           ref     `json:"customer"`
	Subscription       ref     `json:"subscription"`
	PaymentIntent      ref     `json:"payment_intent"`
	Charge             ref     `json:"charge"`
	Status             string  `json:"status"`
	Number             *string `json:"number"`
	Currency           *string `json:"currency"`
	AmountDue          *int64  `json:"amount_due"`
	AmountPaid         *int64  `json:"amount_paid"`
	AmountRemaining    *int64  `json:"amount_remaining"`
	Subtotal           *int64  `json:"subtotal"`
	Total              *int64  `json:"total"`
	AttemptCount       *int    `json:"attempt_count"`
	HostedInvoiceURL   *string `json:"hosted_invoice_url"`
	DueDate            unix    `json:"due_date"`
	NextPaymentAttempt unix    `json:"next_payment_attempt"`
	StatusTransitions  *struct {
		PaidAt unix `json:"paid_at"`
	} `json:"status_transitions"`
	// Before 2025-03-31.basil the total tax is tax; from it on, the sum
	// of total_taxes.
	Tax                  *int64    `json:"tax"`
	TotalTaxes           *[]amount `json:"total_taxes"`
	TotalDiscountAmounts *[]amount `json:"total_discount_amounts"`
	Metadata             metadata  `json:"metadata"`
	PeriodStart          unix      `json:"period_start"`
	PeriodEnd            unix      `json:"period_end"`
	Lines                *struct {
		Data []struct {
			Period *struct {
				Start unix `json:"start"`
				End   unix `json:"end"`
			} `json:"period"`
		} `json:"data"`
	} `json:"lines"`
	// API versions from 2025-03-31: the invoice's InvoicePayments, when
	// the payload includes them.
	Payments *list `json:"payments"`
	// API versions from 2025-03-31 moved the subscription here.
	Parent *struct {
		SubscriptionDetails *struct {
			Subscription ref `json:"subscription"`
		} `json:"subscription_details"`
	} `json:"parent"`
}

// amount is an item of a list of amounts (taxes, discounts).
type amount struct {
	Amount int64 `json:"amount"`
}

// sum adds up amounts; nil when the list is null.
func sum(amounts *[]amount) *int64 {
	if amounts == nil {
		return nil
	}
	var total int64
	for _, a := range *amounts {
		total += a.Amount
	}
	return &total
}

// tax is the invoice's total tax, in whichever field its version has.
func (o invoiceObject) tax() *int64 {
	if o.Tax != nil {
		return o.Tax
	}
	return sum(o.TotalTaxes)
}

func (o invoiceObject) paidAt() *time.Time {
	if o.StatusTransitions == nil {
		return nil
	}
	return o.StatusTransitions.PaidAt.T
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

// billedPeriod is the span of the lines' periods: what the invoice bills.
func (o invoiceObject) billedPeriod() (start, end *time.Time) {
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

type invoicePaymentObject struct {
	common
	Invoice         ref     `json:"invoice"`
	Status          string  `json:"status"`
	Currency        *string `json:"currency"`
	AmountPaid      *int64  `json:"amount_paid"`
	AmountRequested *int64  `json:"amount_requested"`
	Payment         *struct {
		PaymentIntent ref `json:"payment_intent"`
		Charge        ref `json:"charge"`
	} `json:"payment"`
	StatusTransitions *struct {
		PaidAt unix `json:"paid_at"`
	} `json:"status_transitions"`
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
	Amount           *int64        `json:"amount"`
	AmountReceived   *int64        `json:"amount_received"`
	LastPaymentError *paymentError `json:"last_payment_error"`
	Metadata         metadata      `json:"metadata"`
}

type chargeObject struct {
	common
	Customer             ref                   `json:"customer"`
	Invoice              ref                   `json:"invoice"`
	PaymentIntent        ref                   `json:"payment_intent"`
	Status               string                `json:"status"`
	Currency             *string               `json:"currency"`
	Amount               *int64                `json:"amount"`
	AmountCaptured       *int64                `json:"amount_captured"`
	AmountRefunded       *int64                `json:"amount_refunded"`
	Captured             *bool                 `json:"captured"`
	Refunded             *bool                 `json:"refunded"`
	Paid                 *bool                 `json:"paid"`
	FailureCode          *string               `json:"failure_code"`
	FailureMessage       *string               `json:"failure_message"`
	PaymentMethodDetails *paymentMethodSummary `json:"payment_method_details"`
	Metadata             metadata              `json:"metadata"`
	// The charge's refunds, when the payload carries the list.
	Refunds *list `json:"refunds"`
}

// paymentMethodSummary is what a charge's payment_method_details say of
// the method that paid, whatever its type: the type and, from the
// details of that type, brand, last four digits, expiry and wallet. The
// rest (a card's fingerprint above all) is never read.
type paymentMethodSummary struct {
	Type     *string `json:"-"`
	Brand    *string `json:"brand"`
	Last4    *string `json:"last4"`
	ExpMonth *int    `json:"exp_month"`
	ExpYear  *int    `json:"exp_year"`
	Wallet   *struct {
		Type *string `json:"type"`
	} `json:"wallet"`
}

func (m *paymentMethodSummary) UnmarshalJSON(b []byte) error {
	var details map[string]json.RawMessage
	if err := json.Unmarshal(b, &details); err != nil {
		return err
	}
	*m = paymentMethodSummary{}
	if t := details["type"]; t != nil {
		if err := json.Unmarshal(t, &m.Type); err != nil {
			return err
		}
	}
	if m.Type == nil {
		return nil
	}
	if method := details[*m.Type]; method != nil {
		type fields paymentMethodSummary // without this method
		f := fields{Type: m.Type}
		if err := json.Unmarshal(method, &f); err != nil {
			return err
		}
		*m = paymentMethodSummary(f)
	}
	return nil
}

// wallet is the wallet that paid (apple_pay, link, ...), nil for none.
func (m *paymentMethodSummary) wallet() *string {
	if m == nil || m.Wallet == nil {
		return nil
	}
	return m.Wallet.Type
}

type refundObject struct {
	common
	Charge        ref      `json:"charge"`
	PaymentIntent ref      `json:"payment_intent"`
	Status        string   `json:"status"`
	Currency      *string  `json:"currency"`
	Amount        *int64   `json:"amount"`
	Reason        *string  `json:"reason"`
	FailureReason *string  `json:"failure_reason"`
	Metadata      metadata `json:"metadata"`
}

type disputeObject struct {
	common
	Charge             ref     `json:"charge"`
	PaymentIntent      ref     `json:"payment_intent"`
	Status             string  `json:"status"`
	Currency           *string `json:"currency"`
	Amount             *int64  `json:"amount"`
	Reason             *string `json:"reason"`
	IsChargeRefundable *bool   `json:"is_charge_refundable"`
	EvidenceDetails    *struct {
		DueBy unix `json:"due_by"`
	} `json:"evidence_details"`
	Metadata metadata `json:"metadata"`
}

type checkoutSessionObject struct {
	common
	Mode              *string  `json:"mode"`
	Status            string   `json:"status"`
	PaymentStatus     *string  `json:"payment_status"`
	ClientReferenceID *string  `json:"client_reference_id"`
	Customer          ref      `json:"customer"`
	Subscription      ref      `json:"subscription"`
	PaymentIntent     ref      `json:"payment_intent"`
	Invoice           ref      `json:"invoice"`
	Currency          *string  `json:"currency"`
	AmountTotal       *int64   `json:"amount_total"`
	ExpiresAt         unix     `json:"expires_at"`
	Metadata          metadata `json:"metadata"`
}

type creditNoteObject struct {
	common
	Invoice  ref      `json:"invoice"`
	Customer ref      `json:"customer"`
	Number   *string  `json:"number"`
	Status   string   `json:"status"`
	Type     *string  `json:"type"`
	Reason   *string  `json:"reason"`
	Currency *string  `json:"currency"`
	Amount   *int64   `json:"amount"`
	Total    *int64   `json:"total"`
	Memo     *string  `json:"memo"`
	VoidedAt unix     `json:"voided_at"`
	Metadata metadata `json:"metadata"`
}
