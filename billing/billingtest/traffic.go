package billingtest

import (
	"math/rand/v2"
	"time"

	"github.com/stripe-billing/billing/models"
)

// TrafficIDs are the object ids of a TrafficLifecycle beyond its
// customer's, subscription's and invoice's.
type TrafficIDs struct {
	PaymentMethods [2]string // the first is detached, the second stays the default
	Products       [2]string // the second is deleted
	LegacyPrice    string    // the deleted product's price, deleted
	Schedules      [2]string // the first is released, the second canceled
	// Fingerprint is the cards' fingerprint in every payload: no record
	// may hold it.
	Fingerprint string
}

// TrafficLifecycle is the traffic support and finance ask about besides
// payments (issue 23 item 9), for one customer of seed in API version
// version, from Stripe's fixtures of that version: a catalog (a product,
// a monthly price and a one-time one; a legacy product and price, both
// deleted), two cards (the first detached, the second the customer's
// default, updated by the customer and by the network), a subscription
// paused, resumed and with its collection paused, a send_invoice invoice
// due, then overdue (invoice.will_be_due, invoice.overdue), and two
// subscription schedules, one released, one canceled. Its objects are
// not VersionLifecycle's (ids end in "t"), so the two mix in one
// database. IDs.Prices are the monthly and the one-time price.
type TrafficLifecycle struct {
	VersionedLifecycle
	Traffic TrafficIDs
}

// VersionTraffic builds the TrafficLifecycle of seed in version.
func VersionTraffic(version string, seed int) TrafficLifecycle {
	b := newVersionBuilder(version, seed)
	// Event ids of a stream of their own: VersionLifecycle's seed gives
	// its ids.
	b.evRand = rand.New(rand.NewPCG(^uint64(seed), b.evRand.Uint64()))
	id := &b.id
	for _, s := range []*string{&id.Customer, &id.Subscription, &id.Invoice, &id.User, &id.Items[0], &id.Items[1],
		&id.Prices[0], &id.Prices[1], &id.Lines[0], &id.Lines[1]} {
		*s += "t"
	}
	s := id.Customer[len("cus_"):]
	tr := TrafficIDs{PaymentMethods: [2]string{"pm_" + s + "1", "pm_" + s + "2"}, Products: [2]string{"prod_" + s, "prod_" + s + "old"},
		LegacyPrice: "price_" + s + "old", Schedules: [2]string{"sub_sched_" + s + "1", "sub_sched_" + s + "2"},
		Fingerprint: "Fp" + s}
	l := TrafficLifecycle{Traffic: tr}
	l.VersionedLifecycle = VersionedLifecycle{Version: version, IDs: b.id, Livemode: b.livemode, Account: b.account, Currency: b.currency}
	l.Events = b.trafficEvents(tr)
	l.Want = b.trafficWant(tr)
	return l
}

const trafficDueDays = 14

func (b *versionBuilder) trafficEvents(tr TrafficIDs) [][]byte {
	var out [][]byte
	add := func(sec int, typ string, o map[string]any) { out = append(out, b.event(typ, b.at(sec), o)) }
	prices := [3]string{b.id.Prices[0], b.id.Prices[1], tr.LegacyPrice}
	add(0, "customer.created", b.customer(b.id.Customer+"@example.com"))
	add(0, "product.created", b.product(tr.Products[0], "Pro", true))
	add(0, "product.created", b.product(tr.Products[1], "Legacy", true))
	add(0, "price.created", b.price(prices[0], tr.Products[0], "Pro monthly", true))
	add(0, "price.created", b.price(prices[1], tr.Products[0], "Setup fee", true))
	add(0, "price.created", b.price(prices[2], tr.Products[1], "Legacy yearly", true))
	add(1, "payment_method.attached", b.paymentMethod(tr, 0, b.id.Customer, 8, 2030))
	add(1, "customer.updated", b.customerDefault(tr.PaymentMethods[0]))
	add(1, "customer.subscription.created", b.trafficSubscription("active", nil))
	add(1, "subscription_schedule.created", b.schedule(tr.Schedules[0], "not_started", nil, nil, nil))
	add(1, "subscription_schedule.created", b.schedule(tr.Schedules[1], "not_started", nil, nil, nil))
	add(2, "subscription_schedule.updated", b.schedule(tr.Schedules[0], "active", b.id.Subscription, nil, nil))
	add(3, "invoice.created", b.dueInvoice("draft"))
	add(4, "invoice.finalized", b.dueInvoice("open"))
	add(5, "payment_method.attached", b.paymentMethod(tr, 1, b.id.Customer, 4, 2031))
	add(6, "customer.updated", b.customerDefault(tr.PaymentMethods[1]))
	add(7, "payment_method.detached", b.paymentMethod(tr, 0, nil, 8, 2030))
	add(8, "payment_method.updated", b.paymentMethod(tr, 1, b.id.Customer, 5, 2031))
	add(9, "payment_method.automatically_updated", b.paymentMethod(tr, 1, b.id.Customer, 5, 2032))
	add(10, "invoice.will_be_due", b.dueInvoice("open"))
	add(20, "invoice.overdue", b.dueInvoice("open"))
	add(21, "customer.subscription.paused", b.trafficSubscription("paused", nil))
	add(22, "customer.subscription.resumed", b.trafficSubscription("active", nil))
	add(23, "customer.subscription.updated", b.trafficSubscription("active", map[string]any{
		"behavior": "keep_as_draft", "resumes_at": b.at(23).AddDate(0, 0, 7).Unix()}))
	add(30, "product.updated", b.product(tr.Products[0], "Pro plan", true))
	add(30, "price.updated", b.price(prices[0], tr.Products[0], "Pro monthly (2026)", true))
	add(31, "price.deleted", b.price(prices[2], tr.Products[1], "Legacy yearly", false))
	add(31, "product.deleted", b.product(tr.Products[1], "Legacy", false))
	add(40, "subscription_schedule.expiring", b.schedule(tr.Schedules[0], "active", b.id.Subscription, nil, nil))
	released, canceled := b.at(41), b.at(42)
	add(41, "subscription_schedule.released", b.schedule(tr.Schedules[0], "released", nil, &released, nil))
	add(42, "subscription_schedule.canceled", b.schedule(tr.Schedules[1], "canceled", nil, nil, &canceled))
	return out
}

func (b *versionBuilder) customerDefault(paymentMethod string) map[string]any {
	o := b.customer(b.id.Customer + "@example.com")
	o["invoice_settings"].(map[string]any)["default_payment_method"] = paymentMethod
	return o
}

func (b *versionBuilder) trafficSubscription(status string, pause map[string]any) map[string]any {
	o := b.subscription(status, nil)
	o["latest_invoice"] = b.id.Invoice
	if pause != nil {
		o["pause_collection"] = pause
	}
	return o
}

// dueInvoice is the send_invoice invoice, due trafficDueDays after it is
// finalized.
func (b *versionBuilder) dueInvoice(status string) map[string]any {
	o := b.invoice(status, 0, "", false)
	o["collection_method"], o["due_date"], o["next_payment_attempt"] = "send_invoice", b.at(4).AddDate(0, 0, trafficDueDays).Unix(), nil
	if b.defines("invoice", "payment_intent") {
		o["payment_intent"] = nil
	}
	return o
}

func (b *versionBuilder) product(id, name string, active bool) map[string]any {
	o := b.fixture("product", id, b.at(0))
	o["name"], o["active"], o["default_price"], o["metadata"] = name, active, nil, b.metadata("product")
	return o
}

// price is the monthly price (of the product), the one-time price or the
// legacy yearly one, by id.
func (b *versionBuilder) price(id, product, nickname string, active bool) map[string]any {
	o := b.fixture("price", id, b.at(0))
	o["product"], o["nickname"], o["active"], o["currency"] = product, nickname, active, b.currency
	o["metadata"], o["lookup_key"] = b.metadata("price"), nil
	recurring := o["recurring"].(map[string]any)
	switch id {
	case b.id.Prices[0]:
		o["unit_amount"], o["lookup_key"] = VersionedUnitA, "pro_monthly"
		recurring["interval"], recurring["interval_count"] = "month", 1
	case b.id.Prices[1]:
		o["unit_amount"], o["type"], o["recurring"] = VersionedUnitB, "one_time", nil
	default:
		o["unit_amount"] = 12 * VersionedUnitA
		recurring["interval"], recurring["interval_count"] = "year", 1
	}
	o["unit_amount_decimal"] = nil
	return o
}

// paymentMethod is card i, of customer (nil: detached), expiring in
// month/year: a visa without a wallet, or a mastercard through Apple Pay.
func (b *versionBuilder) paymentMethod(tr TrafficIDs, i int, customer any, month, year int) map[string]any {
	o := b.fixture("payment_method", tr.PaymentMethods[i], b.at(1+4*i))
	o["customer"], o["type"], o["metadata"] = customer, "card", b.metadata("payment_method")
	card := o["card"].(map[string]any)
	card["brand"], card["last4"], card["exp_month"], card["exp_year"] = "visa", "4242", month, year
	card["fingerprint"], card["wallet"] = tr.Fingerprint, nil
	if i == 1 {
		card["brand"], card["last4"] = "mastercard", "4444"
		card["wallet"] = map[string]any{"type": "apple_pay", "apple_pay": map[string]any{}, "dynamic_last4": "9876"}
	}
	return o
}

// schedule is subscription schedule id: its current phase while active.
func (b *versionBuilder) schedule(id, status string, subscription any, releasedAt, canceledAt *time.Time) map[string]any {
	o := b.fixture("subscription_schedule", id, b.at(1))
	o["customer"], o["status"], o["subscription"], o["end_behavior"] = b.id.Customer, status, subscription, "release"
	o["released_subscription"], o["released_at"], o["canceled_at"], o["completed_at"] = nil, unixOrNil(releasedAt), unixOrNil(canceledAt), nil
	o["current_phase"], o["metadata"] = nil, b.metadata("subscription_schedule")
	if status == "active" {
		o["current_phase"] = map[string]any{"start_date": b.at(2).Unix(), "end_date": b.at(2).AddDate(0, 1, 0).Unix()}
	}
	if status == "released" {
		o["released_subscription"] = b.id.Subscription
	}
	return o
}

func (b *versionBuilder) trafficWant(tr TrafficIDs) Records {
	var account *string
	if b.account != "" {
		account = ptr(b.account)
	}
	id, live, cur := b.id, b.livemode, ptr(b.currency)
	md := b.metadataJSON
	r := Records{
		Customers: []models.Customer{{StripeID: id.Customer, Email: ptr(id.Customer + "@example.com"), Name: ptr("Customer " + id.Customer),
			Currency: cur, Balance: ptr[int64](0), DefaultPaymentMethodID: ptr(tr.PaymentMethods[1]), Metadata: md("customer"),
			Livemode: live, Account: account, StripeCreated: ptr(b.at(0))}},
		Subscriptions: []models.Subscription{{StripeID: id.Subscription, CustomerID: ptr(id.Customer), Status: ptr("active"),
			Currency: cur, CurrentPeriodStart: ptr(b.period[0]), CurrentPeriodEnd: ptr(b.period[1]), CancelAtPeriodEnd: ptr(false),
			PauseCollectionBehavior: ptr("keep_as_draft"), PauseCollectionResumesAt: ptr(b.at(23).AddDate(0, 0, 7)),
			Metadata: md("subscription"), Livemode: live, Account: account, StripeCreated: ptr(b.at(1))}},
		Invoices: []models.Invoice{{StripeID: id.Invoice, CustomerID: ptr(id.Customer), SubscriptionID: ptr(id.Subscription),
			Status: ptr("open"), Number: ptr("INV-" + id.Invoice), Currency: cur, AmountDue: ptr[int64](VersionedTotal),
			AmountPaid: ptr[int64](0), AmountRemaining: ptr[int64](VersionedTotal), Subtotal: ptr[int64](VersionedSubtotal),
			Total: ptr[int64](VersionedTotal), Tax: ptr[int64](VersionedTax), TotalDiscountAmount: ptr[int64](VersionedDiscount),
			AttemptCount: ptr(0), HostedInvoiceURL: ptr("https://invoice.stripe.com/i/" + id.Invoice),
			DueDate: ptr(b.at(4).AddDate(0, 0, trafficDueDays)), PeriodStart: ptr(b.at(1)), PeriodEnd: ptr(b.at(1)),
			BilledPeriodStart: ptr(b.period[0]), BilledPeriodEnd: ptr(b.period[1]), Metadata: md("invoice"),
			Livemode: live, Account: account, StripeCreated: ptr(b.at(1))}},
		PaymentMethods: []models.PaymentMethod{
			{StripeID: tr.PaymentMethods[0], Type: ptr("card"), Brand: ptr("visa"), Last4: ptr("4242"), ExpMonth: ptr(8), ExpYear: ptr(2030),
				Metadata: md("payment_method"), Livemode: live, Account: account, StripeCreated: ptr(b.at(1))},
			{StripeID: tr.PaymentMethods[1], CustomerID: ptr(id.Customer), Type: ptr("card"), Brand: ptr("mastercard"), Last4: ptr("4444"),
				ExpMonth: ptr(5), ExpYear: ptr(2032), Wallet: ptr("apple_pay"), Metadata: md("payment_method"), Livemode: live, Account: account,
				StripeCreated: ptr(b.at(5))},
		},
		Products: []models.Product{
			{StripeID: tr.Products[0], Name: ptr("Pro plan"), Active: ptr(true), Metadata: md("product"), Livemode: live, Account: account,
				StripeCreated: ptr(b.at(0))},
			{StripeID: tr.Products[1], Name: ptr("Legacy"), Active: ptr(false), Metadata: md("product"), Deleted: true, Livemode: live,
				Account: account, StripeCreated: ptr(b.at(0))},
		},
		Prices: []models.Price{
			{StripeID: id.Prices[0], ProductID: ptr(tr.Products[0]), Type: ptr("recurring"), Currency: cur, UnitAmount: ptr[int64](VersionedUnitA),
				RecurringInterval: ptr("month"), RecurringIntervalCount: ptr(1), Nickname: ptr("Pro monthly (2026)"), LookupKey: ptr("pro_monthly"),
				Active: ptr(true), Metadata: md("price"), Livemode: live, Account: account, StripeCreated: ptr(b.at(0))},
			{StripeID: id.Prices[1], ProductID: ptr(tr.Products[0]), Type: ptr("one_time"), Currency: cur, UnitAmount: ptr[int64](VersionedUnitB),
				Nickname: ptr("Setup fee"), Active: ptr(true), Metadata: md("price"), Livemode: live, Account: account, StripeCreated: ptr(b.at(0))},
			{StripeID: tr.LegacyPrice, ProductID: ptr(tr.Products[1]), Type: ptr("recurring"), Currency: cur, UnitAmount: ptr[int64](12 * VersionedUnitA),
				RecurringInterval: ptr("year"), RecurringIntervalCount: ptr(1), Nickname: ptr("Legacy yearly"), Active: ptr(false),
				Metadata: md("price"), Deleted: true, Livemode: live, Account: account, StripeCreated: ptr(b.at(0))},
		},
		SubscriptionSchedules: []models.SubscriptionSchedule{
			{StripeID: tr.Schedules[0], CustomerID: ptr(id.Customer), SubscriptionID: ptr(id.Subscription), Status: ptr("released"),
				EndBehavior: ptr("release"), ReleasedAt: ptr(b.at(41)), Metadata: md("subscription_schedule"), Livemode: live, Account: account,
				StripeCreated: ptr(b.at(1))},
			{StripeID: tr.Schedules[1], CustomerID: ptr(id.Customer), Status: ptr("canceled"), EndBehavior: ptr("release"),
				CanceledAt: ptr(b.at(42)), Metadata: md("subscription_schedule"), Livemode: live, Account: account, StripeCreated: ptr(b.at(1))},
		},
	}
	for i, q := range []int64{VersionedQuantityA, 1} {
		r.SubscriptionItems = append(r.SubscriptionItems, models.SubscriptionItem{StripeID: id.Items[i], SubscriptionID: id.Subscription,
			PriceID: ptr(id.Prices[i]), Quantity: ptr(q), CurrentPeriodStart: ptr(b.period[0]), CurrentPeriodEnd: ptr(b.period[1]),
			Livemode: live, Account: account})
	}
	r.sort()
	return r
}
