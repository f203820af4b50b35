package api_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/simulate/stripeevent"
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
	return response{status: resp.StatusCode, header: resp.Header, body: string(b), close: resp.Close}, true
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
	// The slow upload must hold its slot for the whole test, however slow
	// the machine: the body deadline has a test of its own.
	f := setup(t, options{wait: true, maxInFlight: 1, bodyTimeout: time.Minute})
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

// TestWebhookSlowClients: 500 clients send a well-formed Stripe-Signature
// and a Content-Length, then no body, to an api (Server.Run, its default
// connection cap) whose in-flight cap is 16. Each is answered and its
// connection closed: 408 once its slot's body timeout is spent, or 503
// busy at once (net/http would otherwise wait for the declared body before
// sending the 503). 20 genuine deliveries sent beside them, retried on 503
// as Stripe retries, all get 200 and are published, once each; nothing
// of the slow clients is.
func TestWebhookSlowClients(t *testing.T) {
	t.Parallel()
	const slow, genuine, inFlight = 500, 20, 16
	f := setup(t, options{run: true, wait: true, maxInFlight: inFlight, bodyTimeout: 300 * time.Millisecond})
	bait := event(stripeevent.NewEventID(), "invoice.paid", "2023-10-16")
	baitSignature := sign(bait, secret, time.Now())
	clients := make([]*rawRequest, slow)
	for i := range clients {
		clients[i] = openRaw(t, f.url, baitSignature, len(bait))
	}

	var wg sync.WaitGroup
	type answer struct {
		status int
		body   string
		closed bool
		ok     bool
	}
	slowAnswers := make([]answer, slow)
	for i, c := range clients {
		wg.Go(func() {
			// Well under the server's 15s ReadTimeout: without the body
			// timeout, or with net/http waiting for the declared body
			// before a 503, answers would come no sooner than that.
			got, ok := c.answer(t, 10*time.Second)
			slowAnswers[i] = answer{got.status, got.body, got.close, ok}
		})
	}
	ids := make([]string, genuine)
	final := make([]int, genuine)
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range ids {
		ids[i] = stripeevent.NewEventID()
		wg.Go(func() {
			body := event(ids[i], "invoice.paid", "2023-10-16")
			for range 500 { // Stripe retries a 503; a short pause here
				req, _ := http.NewRequest(http.MethodPost, f.url+"/webhooks/stripe", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Stripe-Signature", sign(body, secret, time.Now()))
				resp, err := client.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					final[i] = resp.StatusCode
					if resp.StatusCode != http.StatusServiceUnavailable {
						return
					}
				}
				<-time.After(20 * time.Millisecond)
			}
		})
	}
	wg.Wait()

	counts := map[int]int{}
	for i, a := range slowAnswers {
		switch {
		case !a.ok:
			t.Errorf("slow client %d: no answer", i)
		case a.status == http.StatusRequestTimeout && a.body == errorBody("body not received in time"),
			a.status == http.StatusServiceUnavailable && a.body == errorBody("too many webhooks in flight, retry later"):
			counts[a.status]++
			if !a.closed {
				t.Errorf("slow client %d: %d without Connection: close", i, a.status)
			}
		default:
			t.Errorf("slow client %d: %d %q, want 408 or a busy 503", i, a.status, a.body)
		}
	}
	if counts[408]+counts[503] != slow || counts[408] < inFlight {
		t.Errorf("slow clients: %d answered 408, %d 503; want all %d, at least %d of them 408 (the slots' holders)", counts[408], counts[503], slow, inFlight)
	}
	for i, code := range final {
		if code != http.StatusOK {
			t.Errorf("genuine delivery %s: last answer %d, want 200", ids[i], code)
		}
	}
	var published []string
	for _, m := range f.take(t) {
		published = append(published, m.MessageId)
	}
	slices.Sort(published)
	slices.Sort(ids)
	if !slices.Equal(published, ids) {
		t.Errorf("work queue = %d messages %v, want the %d genuine deliveries once each", len(published), published, genuine)
	}
	t.Logf("slow clients: %d answered 408, %d 503 busy", counts[408], counts[503])
}

// TestRunCapsConnections: with MaxConns 4 and four connections that hold
// their slots, a fifth connection's complete webhook is not answered (it
// waits, unaccepted); once one of the four goes away it is accepted and
// answered 200.
func TestRunCapsConnections(t *testing.T) {
	t.Parallel()
	f := setup(t, options{run: true, wait: true, bodyTimeout: time.Minute, maxConns: 4})
	bait := event(stripeevent.NewEventID(), "invoice.paid", "2023-10-16")
	var held []*rawRequest
	for range 4 {
		held = append(held, openRaw(t, f.url, sign(bait, secret, time.Now()), len(bait)))
	}
	id := stripeevent.NewEventID()
	body := event(id, "invoice.paid", "2023-10-16")
	fifth := openRaw(t, f.url, sign(body, secret, time.Now()), len(body))
	if _, err := fifth.conn.Write(body); err != nil {
		t.Fatal(err)
	}
	if got, ok := fifth.answer(t, 500*time.Millisecond); ok {
		t.Fatalf("the fifth connection was answered %d %q while four were open: no connection cap", got.status, got.body)
	}
	_ = held[0].conn.Close()
	// answer's deadline ran out above; bufio holds nothing yet, so reading
	// again is safe.
	if got, ok := fifth.answer(t, 10*time.Second); !ok || got.status != http.StatusOK {
		t.Fatalf("the fifth connection after one closed = %d %q (answered %v), want 200", got.status, got.body, ok)
	}
	if msgs := f.take(t); len(msgs) != 1 || msgs[0].MessageId != id {
		t.Errorf("work queue = %d messages, want the fifth's event alone", len(msgs))
	}
}
