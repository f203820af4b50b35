package testenv

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/verify"
)

// WebhookSecret is the webhook secret tests sign events with and run the
// api and the worker with.
const WebhookSecret = "whsec_testenv_secret"

// Sign returns the Stripe-Signature header Stripe would send with body,
// signed with secret at the time at (stripe-go's own test signer).
func Sign(body []byte, secret string, at time.Time) string {
	return webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: at}).Header
}

// Signed returns msg as the api publishes it: its body signed now with
// WebhookSecret, the signature in header broker.HeaderStripeSignature.
func Signed(msg amqp.Publishing) amqp.Publishing {
	h := amqp.Table{}
	for k, v := range msg.Headers {
		h[k] = v
	}
	h[broker.HeaderStripeSignature] = Sign(msg.Body, WebhookSecret, time.Now())
	msg.Headers = h
	return msg
}

// Verifier is the worker's verifier for tests: WebhookSecret, and fetch
// (nil: no Stripe API key) for what is not signed with it.
func Verifier(t testing.TB, fetch verify.Fetcher) *verify.Verifier {
	t.Helper()
	v, err := verify.New(verify.Config{Secrets: []string{WebhookSecret}, Fetcher: fetch})
	if err != nil {
		t.Fatal(err)
	}
	return v
}
