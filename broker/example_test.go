package broker_test

import (
	"fmt"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
)

// A delivery's attempt is read from our own header only when it came back
// from a delay tier (the retry return exchange); an api publish, a UI
// "Publish message" or any replay from the DLQ is a fresh attempt, and a
// replay counts one more replay. So a hand-made message cannot claim to be
// on its last attempt, and a replayed event gets its whole schedule again.
func ExampleReadAttempt() {
	topo := broker.NewTopology("billing", []time.Duration{10 * time.Second, time.Minute}, 5)
	headers := amqp.Table{broker.HeaderAttempt: int32(2), broker.HeaderReplays: int32(1)}
	for _, d := range []amqp.Delivery{
		{Exchange: topo.Events, Headers: headers},      // the api, or a UI publish
		{Exchange: topo.Return, Headers: headers},      // back from a delay tier
		{Exchange: topo.Replay, Headers: headers},      // UI "Reject requeue false" on the DLQ
		{Exchange: "", Headers: headers},               // UI "Move messages", billing dlq replay, the sweep
		{Exchange: topo.Return, Headers: amqp.Table{}}, // a tier's copy without our header
	} {
		a := broker.ReadAttempt(d, topo)
		fmt.Printf("%-6s attempt %d, replays %d\n", a.Origin, a.Number(), a.Replays)
	}
	// Output:
	// fresh  attempt 1, replays 1
	// retry  attempt 3, replays 1
	// reject attempt 1, replays 2
	// move   attempt 1, replays 2
	// retry  attempt 1, replays 0
}
