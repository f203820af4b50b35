package models

import "gorm.io/gorm/schema"

// ObjectTables are the models of the tables that hold Stripe objects, one
// row per stripe_id: where an object is looked up by its id alone
// (models/lookup, `billing history`). A new table of Stripe objects is
// one more entry.
func ObjectTables() []schema.Tabler {
	return []schema.Tabler{
		Customer{}, Subscription{}, SubscriptionItem{}, Invoice{}, InvoicePayment{},
		Payment{}, Refund{}, Dispute{}, CheckoutSession{}, CreditNote{},
		PaymentMethod{}, Product{}, Price{}, SubscriptionSchedule{},
	}
}
