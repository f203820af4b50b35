package api

import (
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/verify"
)

// FuzzSignatureHeader holds the check the api makes of Stripe-Signature
// before it reads a body (checkSignatureHeader) to stripe-go's own parse
// (verify.Signature): a header stripe-go accepts for its body is never
// refused before the body is read, and one the check passes has a
// timestamp verify.Timestamp reads. Seeded with every supported API
// version's fixture events, signed now.
func FuzzSignatureHeader(f *testing.F) {
	now := time.Now()
	for _, v := range stripefixture.Versions() {
		for _, b := range stripefixture.Events(v) {
			header := testenv.Sign(b, testenv.WebhookSecret, now)
			f.Add(header, b)
			f.Add(header+",v0=abc,v1=00", b)
			f.Add(" "+header, b)
		}
	}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		at := time.Now()
		pre := checkSignatureHeader(header, at, DefaultTolerance)
		err := verify.Signature(body, header, []string{"whsec_other", testenv.WebhookSecret}, DefaultTolerance, at)
		if err == nil && pre != nil {
			t.Fatalf("header %q: stripe-go accepts it, the check before the body refuses it: %v", header, pre)
		}
		if _, ok := verify.Timestamp(header); pre == nil && !ok {
			t.Fatalf("header %q passes the check, but has no timestamp verify.Timestamp reads", header)
		}
	})
}
