package models

import "time"

// PaymentMethod is a Stripe payment method: its summary (type and, where
// the method has them, brand, last four digits, expiry, wallet), never
// a number or a fingerprint. CustomerID is NULL once it is detached.
type PaymentMethod struct {
	ID            uint64     `gorm:"column:id;primaryKey"`
	StripeID      string     `gorm:"column:stripe_id"`
	CustomerID    *string    `gorm:"column:customer_id" stripe:"customer"`
	Type          *string    `gorm:"column:type" stripe:"type"`
	Brand         *string    `gorm:"column:brand" stripe:"type"`
	Last4         *string    `gorm:"column:last4" stripe:"type"`
	ExpMonth      *int       `gorm:"column:exp_month" stripe:"type"`
	ExpYear       *int       `gorm:"column:exp_year" stripe:"type"`
	Wallet        *string    `gorm:"column:wallet" stripe:"type"`
	Metadata      *string    `gorm:"column:metadata;type:json" stripe:"metadata"`
	Livemode      bool       `gorm:"column:livemode"`
	Account       *string    `gorm:"column:account"`
	StripeCreated *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering      `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (PaymentMethod) TableName() string { return "payment_methods" }

// Product is a Stripe product: what a report names a price by.
type Product struct {
	ID            uint64     `gorm:"column:id;primaryKey"`
	StripeID      string     `gorm:"column:stripe_id"`
	Name          *string    `gorm:"column:name" stripe:"name"`
	Active        *bool      `gorm:"column:active" stripe:"active"`
	Metadata      *string    `gorm:"column:metadata;type:json" stripe:"metadata"`
	Deleted       bool       `gorm:"column:deleted"`
	Livemode      bool       `gorm:"column:livemode"`
	Account       *string    `gorm:"column:account"`
	StripeCreated *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering      `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (Product) TableName() string { return "products" }

// Price is a Stripe price of a product; its recurring interval and count
// are NULL for a one-time price.
type Price struct {
	ID                     uint64     `gorm:"column:id;primaryKey"`
	StripeID               string     `gorm:"column:stripe_id"`
	ProductID              *string    `gorm:"column:product_id"`
	Type                   *string    `gorm:"column:type" stripe:"type"`
	Currency               *string    `gorm:"column:currency" stripe:"currency"`
	UnitAmount             *int64     `gorm:"column:unit_amount" stripe:"unit_amount"`
	RecurringInterval      *string    `gorm:"column:recurring_interval" stripe:"recurring"`
	RecurringIntervalCount *int       `gorm:"column:recurring_interval_count" stripe:"recurring"`
	Nickname               *string    `gorm:"column:nickname" stripe:"nickname"`
	LookupKey              *string    `gorm:"column:lookup_key" stripe:"lookup_key"`
	Active                 *bool      `gorm:"column:active" stripe:"active"`
	Metadata               *string    `gorm:"column:metadata;type:json" stripe:"metadata"`
	Deleted                bool       `gorm:"column:deleted"`
	Livemode               bool       `gorm:"column:livemode"`
	Account                *string    `gorm:"column:account"`
	StripeCreated          *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering               `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (Price) TableName() string { return "prices" }

// SubscriptionSchedule is a Stripe subscription schedule: SubscriptionID
// is the subscription it manages, or managed once released.
type SubscriptionSchedule struct {
	ID                uint64     `gorm:"column:id;primaryKey"`
	StripeID          string     `gorm:"column:stripe_id"`
	CustomerID        *string    `gorm:"column:customer_id"`
	SubscriptionID    *string    `gorm:"column:subscription_id"`
	Status            *string    `gorm:"column:status"`
	EndBehavior       *string    `gorm:"column:end_behavior" stripe:"end_behavior"`
	CurrentPhaseStart *time.Time `gorm:"column:current_phase_start" stripe:"current_phase"`
	CurrentPhaseEnd   *time.Time `gorm:"column:current_phase_end" stripe:"current_phase"`
	CanceledAt        *time.Time `gorm:"column:canceled_at" stripe:"canceled_at"`
	CompletedAt       *time.Time `gorm:"column:completed_at" stripe:"completed_at"`
	ReleasedAt        *time.Time `gorm:"column:released_at" stripe:"released_at"`
	Metadata          *string    `gorm:"column:metadata;type:json" stripe:"metadata"`
	Livemode          bool       `gorm:"column:livemode"`
	Account           *string    `gorm:"column:account"`
	StripeCreated     *time.Time `gorm:"column:stripe_created" stripe:"created"`
	Ordering          `gorm:"embedded"`
}

// TableName implements gorm's tabler.
func (SubscriptionSchedule) TableName() string { return "subscription_schedules" }
