package models

import (
	"fmt"
	"sync"
	"time"

	"gorm.io/gorm/schema"
)

// One struct per table of the migrations (TestModelsMatchSchema): every
// statement takes its names from them, and a field's stripe tag names the
// payload keys its column comes from in Stripe's object (any of them;
// "charge:captured" for one object type of a shared table), which billing
// folds by (TestStripeTags).

// namingStrategy is GORM's default, named so that Schema parses models as
// the Store's GORM does.
var namingStrategy = schema.NamingStrategy{IdentifierMaxLength: 64}

// Schema parses model, one of the table models, as the Store's GORM does:
// its table name and each field's column.
func Schema(model schema.Tabler) (*schema.Schema, error) {
	s, err := schema.Parse(model, &sync.Map{}, namingStrategy)
	if err != nil {
		return nil, fmt.Errorf("models: parse %T: %w", model, err)
	}
	return s, nil
}

// StripeIDIndex is the name of the unique key on stripe_id of a table of
// Stripe objects: statements that must use it name it.
func StripeIDIndex(table string) string { return "uq_" + table + "_stripe_id" }

// SubscriptionItemsBySubscription is the index of subscription_items on
// subscription_id: a statement that must lock only the items of its
// subscriptions names it.
const SubscriptionItemsBySubscription = "idx_subscription_items_subscription"

// Ledger statuses of a Stripe event.
const (
	EventProcessed = "processed"
	EventIgnored   = "ignored"
	EventDead      = "dead"
	// EventDiscarded: a person took the parked event off the DLQ for good
	// (`billing dlq discard`); its EventDiscard rows say who, when and why.
	EventDiscarded = "discarded"
)

// Payment object kinds sharing the payments table; the views charges and
// payment_intents each show one.
const (
	ObjectCharge        = "charge"
	ObjectPaymentIntent = "payment_intent"
)

// StripeEvent is one row of the ledger: every event id ever seen, once.
type StripeEvent struct {
	// Seq numbers rows in order of insertion: the clustered key, so that
	// new rows append (00005_ledger_retention.sql says why).
	Seq        uint64     `gorm:"column:seq;primaryKey"`
	ID         string     `gorm:"column:id"`
	Type       string     `gorm:"column:type"`
	APIVersion string     `gorm:"column:api_version"`
	Livemode   bool       `gorm:"column:livemode"`
	Account    string     `gorm:"column:account"`
	Created    *time.Time `gorm:"column:created"`
	// ObjectType and ObjectID name the event's object (data.object's
	// object and id); ObjectID is nil for a preview without an id.
	ObjectType *string `gorm:"column:object_type"`
	ObjectID   *string `gorm:"column:object_id"`
	Status     string  `gorm:"column:status"`
	// Applied is true when the event changed its object's row, false when
	// it was stale (its status only went to the history); nil when it was
	// not applied (ignored, dead) or was recorded before the column was.
	Applied   *bool   `gorm:"column:applied"`
	Attempts  int     `gorm:"column:attempts"`
	Redrives  int     `gorm:"column:redrives"`
	LastError *string `gorm:"column:last_error"`
	// Payload is the event as Stripe signed or served it: a row holds one
	// only once it was verified. Signature is the Stripe-Signature that
	// signs it, as the broker delivered it (bytes: a header is not
	// text); nil when it is Stripe's copy fetched by id (or was recorded
	// before the column was), which `billing reprocess` fetches again
	// rather than trust.
	Payload     []byte     `gorm:"column:payload"`
	Signature   []byte     `gorm:"column:signature"`
	ReceivedAt  time.Time  `gorm:"column:received_at"`
	ProcessedAt *time.Time `gorm:"column:processed_at"`
}

// TableName implements gorm's tabler.
func (StripeEvent) TableName() string { return "stripe_events" }

// Ordering is the guard every Stripe object row carries: the newest event
// applied to it.
type Ordering struct {
	LastEventID      *string    `gorm:"column:last_event_id"`
	LastEventCreated *time.Time `gorm:"column:last_event_created"`
	CreatedAt        time.Time  `gorm:"column:created_at"`
	UpdatedAt        time.Time  `gorm:"column:updated_at"`
	// ChangeSeq is the object_seq of its last change in the change feed.
	ChangeSeq uint64 `gorm:"column:change_seq"`
}

// Customer is a Stripe customer.
type Customer struct {
	ID       uint64  `gorm:"column:id;primaryKey"`
	StripeID string  `gorm:"column:stripe_id"`
	Email    *string `gorm:"column:email" stripe:"email"`
	Name     *string `gorm:"column:name" stripe:"name"`
	Currency *string `gorm:"column:currency" stripe:"currency"`
	Balance  *int64  `gorm:"column:balance" stripe:"balance"`
	// DefaultPaymentMethodID is invoice_settings.default_payment_method.
	DefaultPaymentMethodID *string `gorm:"column:default_payment_method_id" stripe:"invoice_settings"`
	// Metadata, on every object's table, is its Stripe metadata as JSON
	// text (a JSON column: LONGTEXT with a JSON_VALID check on MariaDB),
	// for JSON_VALUE and JSON_EXTRACT; nil until an event carries it.
	Metadata      *string    `gorm:"column:metadata;type:json" stripe:"metadata"`
	Deleted       bool       `gorm:"column:deleted"`
	Livemode      bool       `gorm:"column:livemode"`
	Account       *string    `gorm:"column:account"`
	StripeCreated *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering      `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (Customer) TableName() string { return "customers" }

// Subscription is a Stripe subscription.
type Subscription struct {
	ID                 uint64     `gorm:"column:id;primaryKey"`
	StripeID           string     `gorm:"column:stripe_id"`
	CustomerID         *string    `gorm:"column:customer_id"`
	Status             *string    `gorm:"column:status"`
	Currency           *string    `gorm:"column:currency" stripe:"currency"`
	CurrentPeriodStart *time.Time `gorm:"column:current_period_start" stripe:"current_period_start items"`
	CurrentPeriodEnd   *time.Time `gorm:"column:current_period_end" stripe:"current_period_end items"`
	CancelAtPeriodEnd  *bool      `gorm:"column:cancel_at_period_end" stripe:"cancel_at_period_end"`
	CancelAt           *time.Time `gorm:"column:cancel_at" stripe:"cancel_at"`
	CanceledAt         *time.Time `gorm:"column:canceled_at" stripe:"canceled_at"`
	EndedAt            *time.Time `gorm:"column:ended_at" stripe:"ended_at"`
	TrialStart         *time.Time `gorm:"column:trial_start" stripe:"trial_start"`
	TrialEnd           *time.Time `gorm:"column:trial_end" stripe:"trial_end"`
	// PauseCollection*: pause_collection, nil when collection is not paused.
	PauseCollectionBehavior  *string    `gorm:"column:pause_collection_behavior" stripe:"pause_collection"`
	PauseCollectionResumesAt *time.Time `gorm:"column:pause_collection_resumes_at" stripe:"pause_collection"`
	Metadata                 *string    `gorm:"column:metadata;type:json" stripe:"metadata"`
	Livemode                 bool       `gorm:"column:livemode"`
	Account                  *string    `gorm:"column:account"`
	StripeCreated            *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering                 `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (Subscription) TableName() string { return "subscriptions" }

// SubscriptionItem is one item of a subscription, as its subscription's
// newest applied event lists it. Before 2025-03-31.basil every item has its
// subscription's current period.
type SubscriptionItem struct {
	ID                 uint64     `gorm:"column:id;primaryKey"`
	StripeID           string     `gorm:"column:stripe_id"`
	SubscriptionID     string     `gorm:"column:subscription_id"`
	PriceID            *string    `gorm:"column:price_id"`
	Quantity           *int64     `gorm:"column:quantity"`
	CurrentPeriodStart *time.Time `gorm:"column:current_period_start"`
	CurrentPeriodEnd   *time.Time `gorm:"column:current_period_end"`
	Livemode           bool       `gorm:"column:livemode"`
	Account            *string    `gorm:"column:account"`
	CreatedAt          time.Time  `gorm:"column:created_at"`
	UpdatedAt          time.Time  `gorm:"column:updated_at"`
}

// TableName implements gorm's tabler.
func (SubscriptionItem) TableName() string { return "subscription_items" }

// Invoice is a Stripe invoice.
type Invoice struct {
	ID              uint64  `gorm:"column:id;primaryKey"`
	StripeID        string  `gorm:"column:stripe_id"`
	CustomerID      *string `gorm:"column:customer_id"`
	SubscriptionID  *string `gorm:"column:subscription_id"`
	PaymentIntentID *string `gorm:"column:payment_intent_id"`
	ChargeID        *string `gorm:"column:charge_id"`
	Status          *string `gorm:"column:status"`
	Number          *string `gorm:"column:number" stripe:"number"`
	Currency        *string `gorm:"column:currency" stripe:"currency"`
	AmountDue       *int64  `gorm:"column:amount_due" stripe:"amount_due"`
	AmountPaid      *int64  `gorm:"column:amount_paid" stripe:"amount_paid"`
	AmountRemaining *int64  `gorm:"column:amount_remaining" stripe:"amount_remaining"`
	Subtotal        *int64  `gorm:"column:subtotal" stripe:"subtotal"`
	Total           *int64  `gorm:"column:total" stripe:"total"`
	// Tax is the invoice's total tax, inclusive taxes included: Stripe's
	// tax before 2025-03-31.basil, the sum of total_taxes from it on.
	Tax *int64 `gorm:"column:tax" stripe:"tax total_taxes"`
	// TotalDiscountAmount is the sum of total_discount_amounts.
	TotalDiscountAmount *int64     `gorm:"column:total_discount_amount" stripe:"total_discount_amounts"`
	AttemptCount        *int       `gorm:"column:attempt_count" stripe:"attempt_count"`
	HostedInvoiceURL    *string    `gorm:"column:hosted_invoice_url" stripe:"hosted_invoice_url"`
	DueDate             *time.Time `gorm:"column:due_date" stripe:"due_date"`
	PaidAt              *time.Time `gorm:"column:paid_at" stripe:"status_transitions"` // status_transitions.paid_at
	NextPaymentAttempt  *time.Time `gorm:"column:next_payment_attempt" stripe:"next_payment_attempt"`
	// PeriodStart and PeriodEnd are Stripe's period_start/period_end: the
	// period in which items were added to the invoice (for a subscription
	// invoice, the period before the one it bills).
	PeriodStart *time.Time `gorm:"column:period_start" stripe:"period_start"`
	PeriodEnd   *time.Time `gorm:"column:period_end" stripe:"period_end"`
	// BilledPeriodStart and BilledPeriodEnd are the period the invoice
	// bills: the earliest start and latest end of its lines' periods.
	BilledPeriodStart *time.Time `gorm:"column:billed_period_start" stripe:"lines"`
	BilledPeriodEnd   *time.Time `gorm:"column:billed_period_end" stripe:"lines"`
	Metadata          *string    `gorm:"column:metadata;type:json" stripe:"metadata"`
	Deleted           bool       `gorm:"column:deleted"`
	Livemode          bool       `gorm:"column:livemode"`
	Account           *string    `gorm:"column:account"`
	StripeCreated     *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering          `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (Invoice) TableName() string { return "invoices" }

// Payment is a Stripe charge or payment intent (Object says which).
type Payment struct {
	ID              uint64  `gorm:"column:id;primaryKey"`
	StripeID        string  `gorm:"column:stripe_id"`
	Object          string  `gorm:"column:object"`
	CustomerID      *string `gorm:"column:customer_id"`
	InvoiceID       *string `gorm:"column:invoice_id"`
	PaymentIntentID *string `gorm:"column:payment_intent_id"`
	ChargeID        *string `gorm:"column:charge_id"`
	Status          *string `gorm:"column:status"`
	Currency        *string `gorm:"column:currency" stripe:"currency"`
	Amount          *int64  `gorm:"column:amount" stripe:"amount"`
	AmountCaptured  *int64  `gorm:"column:amount_captured" stripe:"charge:amount_captured"`
	AmountReceived  *int64  `gorm:"column:amount_received" stripe:"payment_intent:amount_received"`
	AmountRefunded  *int64  `gorm:"column:amount_refunded" stripe:"charge:amount_refunded"`
	AmountReleased  *int64  `gorm:"column:amount_released" stripe:"charge:amount_refunded"` // of it, a hold never captured (billing's released)
	Captured        *bool   `gorm:"column:captured" stripe:"payment_intent:status charge:captured"`
	Refunded        *bool   `gorm:"column:refunded" stripe:"charge:refunded"`
	Paid            *bool   `gorm:"column:paid" stripe:"payment_intent:status charge:paid"`
	FailureCode     *string `gorm:"column:failure_code" stripe:"payment_intent:last_payment_error charge:failure_code"`
	FailureMessage  *string `gorm:"column:failure_message" stripe:"payment_intent:last_payment_error charge:failure_message"`
	// The payment method summary of a charge (payment_method_details):
	// its type and, where the method has them, brand, last four digits,
	// expiry and wallet. Never the number or fingerprint.
	PaymentMethodType     *string    `gorm:"column:payment_method_type" stripe:"charge:payment_method_details"`
	PaymentMethodBrand    *string    `gorm:"column:payment_method_brand" stripe:"charge:payment_method_details"`
	PaymentMethodLast4    *string    `gorm:"column:payment_method_last4" stripe:"charge:payment_method_details"`
	PaymentMethodExpMonth *int       `gorm:"column:payment_method_exp_month" stripe:"charge:payment_method_details"`
	PaymentMethodExpYear  *int       `gorm:"column:payment_method_exp_year" stripe:"charge:payment_method_details"`
	PaymentMethodWallet   *string    `gorm:"column:payment_method_wallet" stripe:"charge:payment_method_details"`
	Metadata              *string    `gorm:"column:metadata;type:json" stripe:"metadata"`
	Livemode              bool       `gorm:"column:livemode"`
	Account               *string    `gorm:"column:account"`
	StripeCreated         *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering              `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (Payment) TableName() string { return "payments" }

// Refund is a Stripe refund.
type Refund struct {
	ID              uint64     `gorm:"column:id;primaryKey"`
	StripeID        string     `gorm:"column:stripe_id"`
	ChargeID        *string    `gorm:"column:charge_id"`
	PaymentIntentID *string    `gorm:"column:payment_intent_id"`
	Status          *string    `gorm:"column:status"`
	Currency        *string    `gorm:"column:currency" stripe:"currency"`
	Amount          *int64     `gorm:"column:amount" stripe:"amount"`
	Reason          *string    `gorm:"column:reason" stripe:"reason"`
	FailureReason   *string    `gorm:"column:failure_reason" stripe:"failure_reason"`
	Metadata        *string    `gorm:"column:metadata;type:json" stripe:"metadata"`
	Livemode        bool       `gorm:"column:livemode"`
	Account         *string    `gorm:"column:account"`
	StripeCreated   *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering        `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (Refund) TableName() string { return "refunds" }

// Dispute is a Stripe dispute.
type Dispute struct {
	ID                 uint64     `gorm:"column:id;primaryKey"`
	StripeID           string     `gorm:"column:stripe_id"`
	ChargeID           *string    `gorm:"column:charge_id"`
	PaymentIntentID    *string    `gorm:"column:payment_intent_id"`
	Status             *string    `gorm:"column:status"`
	Currency           *string    `gorm:"column:currency" stripe:"currency"`
	Amount             *int64     `gorm:"column:amount" stripe:"amount"`
	Reason             *string    `gorm:"column:reason" stripe:"reason"`
	IsChargeRefundable *bool      `gorm:"column:is_charge_refundable" stripe:"is_charge_refundable"`
	EvidenceDueBy      *time.Time `gorm:"column:evidence_due_by" stripe:"evidence_details"`
	Metadata           *string    `gorm:"column:metadata;type:json" stripe:"metadata"`
	Livemode           bool       `gorm:"column:livemode"`
	Account            *string    `gorm:"column:account"`
	StripeCreated      *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering           `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (Dispute) TableName() string { return "disputes" }

// InvoicePayment is a Stripe InvoicePayment (API versions from
// 2025-03-31.basil): one payment, by a payment intent or a charge, toward
// an invoice.
type InvoicePayment struct {
	ID              uint64     `gorm:"column:id;primaryKey"`
	StripeID        string     `gorm:"column:stripe_id"`
	InvoiceID       *string    `gorm:"column:invoice_id"`
	PaymentIntentID *string    `gorm:"column:payment_intent_id"`
	ChargeID        *string    `gorm:"column:charge_id"`
	Status          *string    `gorm:"column:status"`
	Currency        *string    `gorm:"column:currency" stripe:"currency"`
	AmountPaid      *int64     `gorm:"column:amount_paid" stripe:"amount_paid"`
	AmountRequested *int64     `gorm:"column:amount_requested" stripe:"amount_requested"`
	PaidAt          *time.Time `gorm:"column:paid_at" stripe:"status_transitions"`
	Livemode        bool       `gorm:"column:livemode"`
	Account         *string    `gorm:"column:account"`
	StripeCreated   *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering        `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (InvoicePayment) TableName() string { return "invoice_payments" }

// CheckoutSession is a Stripe Checkout Session: what links a checkout to
// our user (client_reference_id, metadata) and to what it created.
type CheckoutSession struct {
	ID                uint64     `gorm:"column:id;primaryKey"`
	StripeID          string     `gorm:"column:stripe_id"`
	Mode              *string    `gorm:"column:mode" stripe:"mode"`
	Status            *string    `gorm:"column:status"`
	PaymentStatus     *string    `gorm:"column:payment_status" stripe:"payment_status"`
	ClientReferenceID *string    `gorm:"column:client_reference_id" stripe:"client_reference_id"`
	CustomerID        *string    `gorm:"column:customer_id"`
	SubscriptionID    *string    `gorm:"column:subscription_id"`
	PaymentIntentID   *string    `gorm:"column:payment_intent_id"`
	InvoiceID         *string    `gorm:"column:invoice_id"`
	Currency          *string    `gorm:"column:currency" stripe:"currency"`
	AmountTotal       *int64     `gorm:"column:amount_total" stripe:"amount_total"`
	ExpiresAt         *time.Time `gorm:"column:expires_at" stripe:"expires_at"`
	Metadata          *string    `gorm:"column:metadata;type:json" stripe:"metadata"`
	Livemode          bool       `gorm:"column:livemode"`
	Account           *string    `gorm:"column:account"`
	StripeCreated     *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering          `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (CheckoutSession) TableName() string { return "checkout_sessions" }

// CreditNote is a Stripe credit note: an amount credited on an invoice.
type CreditNote struct {
	ID            uint64     `gorm:"column:id;primaryKey"`
	StripeID      string     `gorm:"column:stripe_id"`
	InvoiceID     *string    `gorm:"column:invoice_id"`
	CustomerID    *string    `gorm:"column:customer_id"`
	Number        *string    `gorm:"column:number" stripe:"number"`
	Status        *string    `gorm:"column:status"`
	Type          *string    `gorm:"column:type" stripe:"type"`
	Reason        *string    `gorm:"column:reason" stripe:"reason"`
	Currency      *string    `gorm:"column:currency" stripe:"currency"`
	Amount        *int64     `gorm:"column:amount" stripe:"amount"`
	Total         *int64     `gorm:"column:total" stripe:"total"`
	Memo          *string    `gorm:"column:memo" stripe:"memo"`
	VoidedAt      *time.Time `gorm:"column:voided_at" stripe:"voided_at"`
	Metadata      *string    `gorm:"column:metadata;type:json" stripe:"metadata"`
	Livemode      bool       `gorm:"column:livemode"`
	Account       *string    `gorm:"column:account"`
	StripeCreated *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering      `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (CreditNote) TableName() string { return "credit_notes" }

// StatusChange is one append-only row of payment_status_history.
type StatusChange struct {
	ID         uint64    `gorm:"column:id;primaryKey"`
	ObjectType string    `gorm:"column:object_type"`
	ObjectID   string    `gorm:"column:object_id"`
	Status     string    `gorm:"column:status"`
	EventID    string    `gorm:"column:event_id"`
	OccurredAt time.Time `gorm:"column:occurred_at"`
	RecordedAt time.Time `gorm:"column:recorded_at"`
	// Source says what reported the status: SourceEvent, SourceBackfill
	// or SourceCorrection.
	Source string `gorm:"column:source"`
}

// Sources of a status change (StatusChange.Source).
const (
	// SourceEvent: a Stripe event; EventID is its id.
	SourceEvent = "event"
	// SourceBackfill: the object as `billing backfill` fetched it; EventID
	// names the snapshot (billing.Snapshot), not an event.
	SourceBackfill = "backfill"
	// SourceCorrection: the object as `billing audit --fix` fetched it to
	// correct a row that differed.
	SourceCorrection = "correction"
)

// TableName implements gorm's tabler.
func (StatusChange) TableName() string { return "payment_status_history" }

// SweepCheckpoint remembers how far a periodic job got.
type SweepCheckpoint struct {
	Name      string    `gorm:"column:name;primaryKey"`
	Value     string    `gorm:"column:value"`
	UpdatedAt time.Time `gorm:"column:updated_at"`
}

// TableName implements gorm's tabler.
func (SweepCheckpoint) TableName() string { return "sweep_checkpoints" }

// EventDiscard is one `billing dlq discard`: a person's decision to drop a
// parked event, with the DLQ copies it took away.
type EventDiscard struct {
	ID          uint64    `gorm:"column:id;primaryKey"`
	EventID     string    `gorm:"column:event_id"`
	EventType   string    `gorm:"column:event_type"`
	Copies      int       `gorm:"column:copies"`
	DiscardedBy string    `gorm:"column:discarded_by"`
	Reason      string    `gorm:"column:reason"`
	DiscardedAt time.Time `gorm:"column:discarded_at"`
}

// TableName implements gorm's tabler.
func (EventDiscard) TableName() string { return "event_discards" }
