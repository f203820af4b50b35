package billing_test

import (
	"fmt"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/models"
)

// A Batch folds the events of a batch into rows with no database: the
// store locks the rows ToLock names (here none exist yet: the objects
// are new), makes sure of ToEnsure's (the invoice's customer), and
// writes what Fold says. invoice.paid arrives before invoice.finalized,
// as Stripe may deliver them; the paid state wins all the same, and each
// event's status goes to the history.
func ExampleBatch() {
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	var events []billing.Planned
	for _, raw := range []string{
		`{"id":"evt_2","object":"event","type":"invoice.paid","created":` + fmt.Sprint(at+1) +
			`,"data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1","status":"paid","amount_paid":900}}}`,
		`{"id":"evt_1","object":"event","type":"invoice.finalized","created":` + fmt.Sprint(at) +
			`,"data":{"object":{"id":"in_1","object":"invoice","customer":"cus_1","status":"open","amount_paid":0}}}`,
	} {
		ev, err := billing.Parse([]byte(raw))
		if err != nil {
			fmt.Println(err)
			return
		}
		planned, err := billing.PlanOf(ev)
		if err != nil {
			fmt.Println(err)
			return
		}
		events = append(events, planned)
	}

	b := billing.NewBatch(events, time.Unix(at+5, 0).UTC())
	for _, rows := range b.ToLock() {
		fmt.Printf("lock %T %v\n", rows.Model, rows.IDs)
		b.Locked(rows, nil) // the store found none
	}
	for _, stubs := range b.ToEnsure() {
		for _, s := range stubs {
			fmt.Printf("ensure %T %s\n", s, s.(*models.Customer).StripeID)
		}
	}
	folded, err := b.Fold(billing.Ties{})
	if err != nil {
		fmt.Println(err)
		return
	}
	inv := folded.Writes[0].Fresh[0].(*models.Invoice)
	fmt.Printf("write invoice %s: %s, paid %d, last event %s\n", inv.StripeID, *inv.Status, *inv.AmountPaid, *inv.LastEventID)
	for _, h := range folded.History {
		fmt.Printf("history %s %s by %s\n", h.ObjectID, h.Status, h.EventID)
	}
	fmt.Println("applied:", folded.Applied)
	// Output:
	// lock *models.Invoice [in_1]
	// ensure *models.Customer cus_1
	// write invoice in_1: paid, paid 900, last event evt_2
	// history in_1 paid by evt_2
	// history in_1 open by evt_1
	// applied: [evt_2]
}
