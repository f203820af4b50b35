package verify_test

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/verify"
)

// The worker's verifier, as the consumer's Verify middleware runs it on
// each message: a body Stripe signed comes back with its envelope, read
// once, for the worker to apply; anything else is unverified, parked at
// once.
func ExampleVerifier_Verify() {
	const secret = "whsec_example"
	now := time.Unix(1_700_000_000, 0)
	// No Fetcher: no Stripe API key, so an unsigned body cannot be
	// replaced by Stripe's copy.
	v, err := verify.New(verify.Config{Secrets: []string{secret}, Now: func() time.Time { return now }})
	if err != nil {
		fmt.Println(err)
		return
	}
	body := []byte(`{"id":"evt_1","object":"event","api_version":"2025-03-31.basil","created":1700000000,` +
		`"data":{"object":{"id":"cus_1","object":"customer"}},"livemode":false,"type":"customer.created"}`)
	// The Stripe-Signature Stripe sent with body: the api forwards it
	// with the message.
	signature := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: now}).Header
	ctx := context.Background()

	ev, err := v.Verify(ctx, verify.Message{ID: "evt_1", Body: body, Signature: signature})
	fmt.Println(ev.ID, ev.Type, ev.APIVersion, ev.Livemode, ev.Fetched, ev.Signature == signature, err)
	fmt.Println(string(ev.Object))

	// Edited after signing: not Stripe's, and no key to ask Stripe.
	edited := bytes.Replace(body, []byte("cus_1"), []byte("cus_2"), 1)
	_, err = v.Verify(ctx, verify.Message{ID: "evt_1", Body: edited, Signature: signature})
	fmt.Println(failure.Of(err), verify.ReasonOf(err))

	// Signed, but no event of Stripe's form: the api's check, CheckEvent.
	noObject := []byte(`{"id":"evt_2","object":"event","created":1700000000,"type":"customer.created","data":{}}`)
	sig := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: noObject, Secret: secret, Timestamp: now}).Header
	_, err = v.Verify(ctx, verify.Message{ID: "evt_2", Body: noObject, Signature: sig})
	fmt.Println(err)
	// Output:
	// evt_1 customer.created 2025-03-31.basil false false true <nil>
	// {"id":"cus_1","object":"customer"}
	// unverified no_api_key
	// verify: malformed: event "evt_2" not trusted: body is not a Stripe event: no data.object
}
