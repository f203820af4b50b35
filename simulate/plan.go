package simulate

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/stripe-billing/billing/simulate/stripeevent"
)

// delivery is one planned POST: an event's exact bytes, sent once or more.
type delivery struct {
	id         string
	body       []byte
	poison     bool
	duplicate  bool // an earlier delivery carried the same event
	outOfOrder bool // delivered after an event Stripe sent after it
}

// event is one generated event before ordering.
type event struct {
	id       string
	body     []byte
	poison   bool
	customer int    // index into the run's customers; -1 for poison
	seq      int    // position in its customer's stream, in Stripe's order
	object   string // data.object.id
}

// planCounts splits cfg.Count into lifecycle events, poison events and
// duplicate deliveries.
func planCounts(cfg Config) (lifecycle, poison, duplicates int) {
	duplicates = int(math.Round(float64(cfg.Count) * cfg.DuplicateRatio))
	unique := cfg.Count - duplicates
	poison = int(math.Round(float64(unique) * cfg.PoisonRatio))
	return unique - poison, poison, duplicates
}

// span bounds how long after cfg.Start the last event of a run claims to
// be created: lifecycleEvents starts a batch of cfg.Customers lifecycles
// every cfg.Customers+120 seconds, and a lifecycle lasts under 120 s.
func span(cfg Config) time.Duration {
	nLife, _, _ := planCounts(cfg)
	perBatch := max(cfg.Customers, 1) * len(stripeevent.Lifecycle(1, time.Time{}))
	batches := (max(nLife, 0) + perBatch - 1) / perBatch
	return time.Duration(batches*(cfg.Customers+120)) * time.Second
}

// plan builds the deliveries of one run: its objects, times and order
// deterministically from cfg.Seed and cfg.Start, its event ids at random.
func plan(cfg Config) ([]delivery, error) {
	rng := rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(cfg.Seed)>>32^0x9e3779b97f4a7c15))
	nLife, nPoison, nDup := planCounts(cfg)

	events, err := lifecycleEvents(cfg, nLife)
	if err != nil {
		return nil, err
	}
	late := delayOutOfOrder(rng, events, cfg.OutOfOrderRatio)
	events = insertPoison(rng, events, cfg.Start, nPoison)

	out := make([]delivery, 0, len(events)+nDup)
	for _, e := range events {
		out = append(out, delivery{id: e.id, body: e.body, poison: e.poison, outOfOrder: late[e.id]})
	}
	return insertDuplicates(rng, out, nDup), nil
}

// lifecycleEvents returns n events of interleaved customer lifecycles
// (stripeevent.Lifecycle), in the order Stripe sends them. Customers come in
// batches of cfg.Customers, each batch starting after the previous one.
func lifecycleEvents(cfg Config, n int) ([]event, error) {
	var out []event
	next := make(map[int]int) // customer -> next seq
	perCustomer := len(stripeevent.Lifecycle(1, cfg.Start))
	if perCustomer == 0 {
		return nil, errors.New("simulate: stripeevent.Lifecycle generates no events")
	}
	for batch := 0; len(out) < n; batch++ {
		start := cfg.Start.Add(time.Duration(batch*(cfg.Customers+120)) * time.Second)
		// Only as many customers as the events left need: whole lifecycles
		// rather than the first steps of many.
		customers := min(cfg.Customers, (n-len(out)+perCustomer-1)/perCustomer)
		owner := make(map[string]int) // object id -> customer of the run
		for i := range customers {
			ids := stripeevent.LifecycleIDs(start, i)
			for _, id := range []string{ids.Customer, ids.Subscription, ids.Invoice, ids.PaymentIntent,
				ids.FailedCharge, ids.Charge, ids.Refund, ids.Dispute, ids.Checkout} {
				owner[id] = batch*cfg.Customers + i
			}
		}
		for _, body := range stripeevent.Lifecycle(customers, start) {
			if len(out) == n {
				break
			}
			var head struct {
				ID   string `json:"id"`
				Data struct {
					Object struct {
						ID string `json:"id"`
					} `json:"object"`
				} `json:"data"`
			}
			if err := json.Unmarshal(body, &head); err != nil {
				return nil, fmt.Errorf("simulate: read generated event: %w", err)
			}
			c, ok := owner[head.Data.Object.ID]
			if !ok {
				return nil, fmt.Errorf("simulate: generated event %s: object %q belongs to no customer", head.ID, head.Data.Object.ID)
			}
			out = append(out, event{id: head.ID, body: body, customer: c, seq: next[c], object: head.Data.Object.ID})
			next[c]++
		}
	}
	return out, nil
}

// delayOutOfOrder moves round(ratio*len(events)) events, chosen among those
// that have a successor in their customer's stream, to just after a later
// event of the same object when there is one (an invoice.created after its
// invoice.paid: what the state order must survive), else after one of the
// next three events of the customer. It returns the ids of the events that
// end up after an event their customer's stream sends later.
func delayOutOfOrder(rng *rand.Rand, events []event, ratio float64) map[string]bool {
	byCustomer := map[int][]int{}  // customer -> positions in stream order
	byObject := map[string][]int{} // object -> positions in stream order
	objectSeq := make([]int, len(events))
	for p, e := range events {
		byCustomer[e.customer] = append(byCustomer[e.customer], p)
		objectSeq[p] = len(byObject[e.object])
		byObject[e.object] = append(byObject[e.object], p)
	}
	var eligible []int
	for p, e := range events {
		if e.seq < len(byCustomer[e.customer])-1 {
			eligible = append(eligible, p)
		}
	}
	want := min(int(math.Round(float64(len(events))*ratio)), len(eligible))
	keys := make([]float64, len(events))
	for p := range keys {
		keys[p] = float64(p)
	}
	for _, k := range rng.Perm(len(eligible))[:want] {
		p := eligible[k]
		stream := byCustomer[events[p].customer]
		target := stream[min(events[p].seq+1+rng.IntN(3), len(stream)-1)]
		if same := byObject[events[p].object]; objectSeq[p] < len(same)-1 {
			target = same[min(objectSeq[p]+1+rng.IntN(2), len(same)-1)]
		}
		keys[p] = float64(target) + 0.5
	}
	order := make([]int, len(events))
	for p := range order {
		order[p] = p
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(keys[a], keys[b]) })
	sorted := make([]event, len(events))
	for i, p := range order {
		sorted[i] = events[p]
	}
	copy(events, sorted)

	late := map[string]bool{}
	maxSeq := map[int]int{}
	for _, e := range events {
		if m, ok := maxSeq[e.customer]; ok && m > e.seq {
			late[e.id] = true
		}
		maxSeq[e.customer] = max(maxSeq[e.customer], e.seq)
	}
	return late
}

// poisonTypes are the event types poison events claim, with the object
// their data.object pretends to be.
var poisonTypes = []struct{ typ, object string }{
	{"invoice.paid", "invoice"},
	{"customer.subscription.updated", "subscription"},
	{"charge.succeeded", "charge"},
	{"payment_intent.succeeded", "payment_intent"},
	{"customer.created", "customer"},
}

// insertPoison adds n poison events at random positions. A poison event is
// a well-formed, signed Stripe event (the api accepts it and stripe-go
// parses it) whose data.object is an object of the right kind with a
// numeric id: no handler can ever decode it, so the worker parks it.
// (A data.object that is a string would be refused by the api, since
// stripe-go cannot parse such an event, and never reach the worker.)
func insertPoison(rng *rand.Rand, events []event, start time.Time, n int) []event {
	for k := range n {
		pt := poisonTypes[k%len(poisonTypes)]
		id := stripeevent.NewEventID()
		obj := map[string]any{"id": 4_000_000 + k, "object": pt.object, "created": start.Unix(), "livemode": false}
		body := stripeevent.Event(id, pt.typ, start, obj)
		p := rng.IntN(len(events) + 1)
		events = slices.Insert(events, p, event{id: id, body: body, poison: true, customer: -1})
	}
	return events
}

// insertDuplicates adds n redeliveries, each of a random earlier event with
// the same bytes (Stripe re-signs a redelivery, and so does the sender), at a
// random later position within the next 50 deliveries, the way a slow ack
// or a retry would.
func insertDuplicates(rng *rand.Rand, ds []delivery, n int) []delivery {
	if len(ds) == 0 {
		return ds
	}
	type keyed struct {
		key float64
		d   delivery
	}
	all := make([]keyed, 0, len(ds)+n)
	for p, d := range ds {
		all = append(all, keyed{float64(p), d})
	}
	for range n {
		src := rng.IntN(len(ds))
		d := ds[src]
		d.duplicate, d.outOfOrder = true, false
		after := 1 + rng.Float64()*49
		all = append(all, keyed{float64(src) + after, d})
	}
	slices.SortStableFunc(all, func(a, b keyed) int { return cmp.Compare(a.key, b.key) })
	out := make([]delivery, len(all))
	for i, k := range all {
		out[i] = k.d
	}
	return out
}
