package billing_test

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/billing"
)

// A Mux routes a parsed Stripe event to the handler registered for its
// exact type, as the Processor does inside the transaction that records
// the event. An event whose type has no handler is only recorded in the
// ledger (ignored). The handler here needs no database, so the example
// hands it a nil transaction.
func ExampleMux() {
	mux := billing.NewMux()
	mux.HandleFunc("invoice.paid", func(ctx context.Context, tx *gorm.DB, ev billing.Event) error {
		fmt.Printf("handling %s %s from %s\n", ev.Type, ev.ID, ev.Created.Format("2006-01-02"))
		return nil
	})

	for _, raw := range []string{
		`{"id":"evt_1","object":"event","type":"invoice.paid","created":1767225600,"data":{"object":{"id":"in_1","object":"invoice"}}}`,
		`{"id":"evt_2","object":"event","type":"payout.paid","created":1767225600,"data":{"object":{"id":"po_1","object":"payout"}}}`,
	} {
		ev, err := billing.Parse([]byte(raw))
		if err != nil {
			fmt.Println(err)
			continue
		}
		h, ok := mux.Handler(ev.Type)
		if !ok {
			fmt.Printf("no handler for %s: %s is ignored\n", ev.Type, ev.ID)
			continue
		}
		if err := h.Handle(context.Background(), nil, ev); err != nil {
			fmt.Println(err)
		}
	}
	fmt.Println("registered:", mux.Types())
	// Output:
	// handling invoice.paid evt_1 from 2026-01-01
	// no handler for payout.paid: evt_2 is ignored
	// registered: [invoice.paid]
}
