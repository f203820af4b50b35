package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/testenv"
)

// rawRequest is a webhook sent by hand on its own connection, so that the
// test decides how much of the body goes out, and when.
type rawRequest struct {
	conn net.Conn
	br   *bufio.Reader
}

// openRaw sends the request line and headers of a POST declaring
// contentLength, and no body yet.
func openRaw(t *testing.T, base, signature string, contentLength int) *rawRequest {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	head := "POST /webhooks/stripe HTTP/1.1\r\nHost: " + u.Host + "\r\nContent-Type: application/json\r\n" +
		fmt.Sprintf("Content-Length: %d\r\n", contentLength)
	if signature != "" {
		head += "Stripe-Signature: " + signature + "\r\n"
	}
	if _, err := io.WriteString(c, head+"\r\n"); err != nil {
		t.Fatal(err)
	}
	return &rawRequest{conn: c, br: bufio.NewReader(c)}
}

// answer reads the response within wait; ok is false when none came.
func (r *rawRequest) answer(t *testing.T, wait time.Duration) (response, bool) {
	t.Helper()
	_ = r.conn.SetReadDeadline(time.Now().Add(wait))
	resp, err := http.ReadResponse(r.br, nil)
	if err != nil {
		return response{}, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}, true
}

// TestWebhookAnswersBeforeTheBody declares a 1 MiB body and sends none of
// it: a header that cannot be Stripe's must be answered all the same,
// since the server never waits for the body.
func TestWebhookAnswersBeforeTheBody(t *testing.T) {
	t.Parallel()
	f := setup(t, options{})
	body := event("evt_never_sent", "invoice.paid", "2023-10-16")
	tests := []struct {
		name, signature, message string
	}{
		{"no signature", "", "missing Stripe-Signature header"},
		{"malformed", "v1=" + strings.Repeat("ab", 32), "malformed Stripe-Signature header"},
		{"expired", sign(body, secret, time.Now().Add(-time.Hour)), "signature timestamp outside tolerance"},
		{"future", sign(body, secret, time.Now().Add(time.Hour)), "signature timestamp more than the tolerance in the future"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := openRaw(t, f.url, tt.signature, 1<<20).answer(t, 5*time.Second)
			if !ok {
				t.Fatal("no answer while the body is unsent: the server waits for the body")
			}
			assertError(t, got, http.StatusBadRequest, tt.message)
		})
	}
}

// TestWebhookInFlightCap holds the one in-flight slot with a slow upload:
// the next webhook gets 503 with Retry-After without sending its body;
// once the slow one finishes, webhooks are taken again.
func TestWebhookInFlightCap(t *testing.T) {
	t.Parallel()
	f := setup(t, options{wait: true, maxInFlight: 1})
	slowBody := event("evt_slow_upload", "invoice.paid", "2023-10-16")
	slow := openRaw(t, f.url, sign(slowBody, secret, time.Now()), len(slowBody))
	if _, err := slow.conn.Write(slowBody[:10]); err != nil {
		t.Fatal(err)
	}

	// The slow upload took the slot once its headers were read; a second
	// webhook (whose body is never sent) is refused from then on.
	var busy response
	testenv.Eventually(t, 10*time.Second, func() bool {
		other := openRaw(t, f.url, sign(slowBody, secret, time.Now()), 1<<20)
		defer other.conn.Close()
		got, ok := other.answer(t, time.Second)
		busy = got
		return ok && got.status == http.StatusServiceUnavailable
	}, "no 503 while the only slot is held")
	assertError(t, busy, http.StatusServiceUnavailable, "too many webhooks in flight, retry later")
	if ra := busy.header.Get("Retry-After"); ra != "3" {
		t.Errorf("Retry-After = %q, want 3", ra)
	}

	if _, err := slow.conn.Write(slowBody[10:]); err != nil {
		t.Fatal(err)
	}
	if got, ok := slow.answer(t, 10*time.Second); !ok || got.status != http.StatusOK {
		t.Fatalf("slow upload = %d %q (answered %v), want 200", got.status, got.body, ok)
	}
	next := event("evt_after_slow", "invoice.paid", "2023-10-16")
	if got := f.post(t, next, sign(next, secret, time.Now())); got.status != http.StatusOK {
		t.Errorf("after the slot came back: %d %q, want 200", got.status, got.body)
	}
	var ids []string
	for _, m := range f.take(t) {
		ids = append(ids, m.MessageId)
	}
	if !slices.Equal(ids, []string{"evt_slow_upload", "evt_after_slow"}) {
		t.Errorf("work queue = %v, want the slow upload and the next one", ids)
	}
	webhooks, _ := f.observed.seen()
	if !slices.Contains(webhooks, "busy 503") {
		t.Errorf("observer saw %v, want a busy 503", webhooks)
	}
}
