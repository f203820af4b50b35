package api

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/verify"
)

// FuzzSignatureHeader holds the check the api makes of Stripe-Signature
// before it reads a body (checkSignatureHeader) to stripe-go's own parse
// (verify.Signature): a header stripe-go accepts for its body is never
// refused before the body is read, except where the check is stricter on
// purpose (docs/security.md: two t=, a t= not positive, over 2048 bytes;
// stripe-go takes the last t= and any length), and one the check passes
// has a timestamp verify.Timestamp reads. Seeded with every supported API
// version's fixture events, signed now.
func FuzzSignatureHeader(f *testing.F) {
	now := time.Now()
	for _, v := range stripefixture.Versions() {
		for _, b := range stripefixture.Events(v) {
			header := testenv.Sign(b, testenv.WebhookSecret, now)
			f.Add(header, b)
			f.Add(header+",v0=abc,v1=00", b)
			f.Add(" "+header, b)
			f.Add("t=5,"+header, b) // stripe-go: the last t=; the api: two t=, refused
		}
	}
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		at := time.Now()
		pre := checkSignatureHeader(header, at, DefaultTolerance)
		err := verify.Signature(body, header, []string{"whsec_other", testenv.WebhookSecret}, DefaultTolerance, at)
		if err == nil && pre != nil && !stricterOnPurpose(header) {
			t.Fatalf("header %q: stripe-go accepts it, the check before the body refuses it: %v", header, pre)
		}
		if _, ok := verify.Timestamp(header); pre == nil && !ok {
			t.Fatalf("header %q passes the check, but has no timestamp verify.Timestamp reads", header)
		}
	})
}

// stricterOnPurpose reports whether header breaks one of the rules the
// api's check adds to stripe-go's parse.
func stricterOnPurpose(header string) bool {
	if len(header) > maxSignatureHeader {
		return true
	}
	stamps := 0
	for pair := range strings.SplitSeq(header, ",") {
		if v, ok := strings.CutPrefix(pair, "t="); ok {
			stamps++
			if n, err := strconv.ParseInt(v, 10, 64); err == nil && n <= 0 {
				return true
			}
		}
	}
	return stamps > 1
}
