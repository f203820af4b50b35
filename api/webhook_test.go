package api_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/api"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/simulate/stripeevent"
	"github.com/stripe-billing/billing/verify"
)

func TestWebhookPublishesRawEvent(t *testing.T) {
	t.Parallel()
	f := setup(t, options{wait: true})
	body := event("evt_1NqAbC", "invoice.paid", "2023-10-16")
	header := sign(body, secret, time.Now())

	got := f.post(t, body, header)
	if got.status != http.StatusOK || got.body != `{"received":true}`+"\n" {
		t.Fatalf("answer = %d %q, want 200 {\"received\":true}", got.status, got.body)
	}
	assertJSONHeaders(t, got)
	msgs := f.take(t)
	if len(msgs) != 1 {
		t.Fatalf("work queue gave %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if !bytes.Equal(m.Body, body) {
		t.Errorf("body = %q, want the exact original bytes %q", m.Body, body)
	}
	checks := []struct{ name, got, want string }{
		{"message id", m.MessageId, "evt_1NqAbC"},
		{"type", m.Type, "invoice.paid"},
		{"content type", m.ContentType, "application/json"},
		{"app id", m.AppId, api.AppID},
		{"exchange", m.Exchange, f.topo.Events},
		{"routing key", m.RoutingKey, "invoice.paid"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.name, c.got, c.want)
		}
	}
	if m.DeliveryMode != amqp.Persistent {
		t.Errorf("delivery mode = %d, want %d (persistent)", m.DeliveryMode, amqp.Persistent)
	}
	if !m.Timestamp.Equal(clock) {
		t.Errorf("timestamp = %s, want the injected clock %s", m.Timestamp, clock)
	}
	// The signature travels with the event, unchanged, for the worker.
	if got := m.Headers[broker.HeaderStripeSignature]; got != header {
		t.Errorf("header %s = %v, want the request's Stripe-Signature %q", broker.HeaderStripeSignature, got, header)
	}

	// One log line for the request, with what staff need and nothing secret.
	lines := f.logs.requests(t)
	if len(lines) != 1 {
		t.Fatalf("%d request log lines, want 1", len(lines))
	}
	line := lines[0]
	for k, want := range map[string]any{
		"method": "POST", "path": "/webhooks/stripe", "status": float64(200),
		"event_id": "evt_1NqAbC", "event_type": "invoice.paid", "outcome": "accepted",
	} {
		if line[k] != want {
			t.Errorf("log %s = %v, want %v", k, line[k], want)
		}
	}
	if _, ok := line["latency_ms"].(float64); !ok {
		t.Errorf("log latency_ms = %v, want a number", line["latency_ms"])
	}
	if webhooks, publishes := f.observed.seen(); !slices.Equal(webhooks, []string{"accepted 200"}) || publishes != 1 {
		t.Errorf("observer saw %v and %d publishes, want [accepted 200] and 1", webhooks, publishes)
	}
	all := f.logs.String()
	for _, leak := range []string{secret, header, "amount_paid", strings.SplitN(header, "v1=", 2)[1]} {
		if strings.Contains(all, leak) {
			t.Errorf("logs contain %q", leak)
		}
	}
}

func TestWebhookRejects(t *testing.T) {
	t.Parallel()
	body := event("evt_bad", "invoice.paid", "2023-10-16")
	json := map[string]string{"Content-Type": "application/json"}
	signed := func(b []byte, secret string, at time.Time) map[string]string {
		return map[string]string{"Content-Type": "application/json", "Stripe-Signature": sign(b, secret, at)}
	}
	changed := bytes.Replace(body, []byte("evt_bad"), []byte("evt_bae"), 1)
	noObject := bytes.Replace(body, []byte(`"data": {"object": {`), []byte(`"data": {"previous_attributes": {`), 1)
	nullObject := bytes.Replace(body, []byte(`"data": {"object": {`), []byte(`"data": {"object": null, "previous_attributes": {`), 1)
	large := append(bytes.Repeat([]byte(" "), maxBody), body...)
	tests := []rejected{
		{"no signature header", "POST", "/webhooks/stripe", reader(body), json, 400, "missing Stripe-Signature header"},
		{"malformed signature header", "POST", "/webhooks/stripe", reader(body),
			map[string]string{"Content-Type": "application/json", "Stripe-Signature": "garbage"}, 400, "malformed Stripe-Signature header"},
		{"signature header without timestamp", "POST", "/webhooks/stripe", reader(body),
			map[string]string{"Content-Type": "application/json", "Stripe-Signature": "v1=" + strings.Repeat("ab", 32)}, 400, "malformed Stripe-Signature header"},
		{"wrong secret", "POST", "/webhooks/stripe", reader(body), signed(body, "whsec_someone_else", time.Now()), 400, "no valid signature"},
		{"body changed by one byte", "POST", "/webhooks/stripe", reader(changed), signed(body, secret, time.Now()), 400, "no valid signature"},
		{"timestamp older than the tolerance", "POST", "/webhooks/stripe", reader(body), signed(body, secret, time.Now().Add(-6*time.Minute)), 400, "signature timestamp outside tolerance"},
		{"timestamp further ahead than the tolerance", "POST", "/webhooks/stripe", reader(body), signed(body, secret, time.Now().Add(6*time.Minute)), 400, "signature timestamp more than the tolerance in the future"},
		{"timestamp in the year 2100", "POST", "/webhooks/stripe", reader(body), signed(body, secret, time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)), 400, "signature timestamp more than the tolerance in the future"},
		{"timestamp not a number", "POST", "/webhooks/stripe", reader(body),
			map[string]string{"Content-Type": "application/json", "Stripe-Signature": "t=soon,v1=" + strings.Repeat("ab", 32)}, 400, "malformed Stripe-Signature header"},
		{"two timestamps", "POST", "/webhooks/stripe", reader(body),
			map[string]string{"Content-Type": "application/json", "Stripe-Signature": sign(body, secret, time.Now()) + ",t=1"}, 400, "malformed Stripe-Signature header"},
		{"v1 not a SHA-256 in hex", "POST", "/webhooks/stripe", reader(body),
			map[string]string{"Content-Type": "application/json", "Stripe-Signature": fmt.Sprintf("t=%d,v1=abc", time.Now().Unix())}, 400, "malformed Stripe-Signature header"},
		{"v1 of a SHA-256's length, not hex", "POST", "/webhooks/stripe", reader(body),
			map[string]string{"Content-Type": "application/json", "Stripe-Signature": fmt.Sprintf("t=%d,v1=%s", time.Now().Unix(), strings.Repeat("g", 64))}, 400, "malformed Stripe-Signature header"},
		{"header longer than any Stripe sends", "POST", "/webhooks/stripe", reader(body),
			map[string]string{"Content-Type": "application/json", "Stripe-Signature": sign(body, secret, time.Now()) + strings.Repeat(",v0=00", 400)}, 400, "malformed Stripe-Signature header"},
		{"body over the cap", "POST", "/webhooks/stripe", reader(large), signed(large, secret, time.Now()), 413, "body too large"},
		{"body over the cap, chunked", "POST", "/webhooks/stripe", chunked(large), signed(large, secret, time.Now()), 413, "body too large"},
		{"empty body", "POST", "/webhooks/stripe", reader(nil), signed(nil, secret, time.Now()), 400, "empty body"},
		{"signed body that is not JSON", "POST", "/webhooks/stripe", reader([]byte("hello")), signed([]byte("hello"), secret, time.Now()), 400, "malformed body: not a JSON object at byte 0"},
		{"signed JSON that is not an event", "POST", "/webhooks/stripe", reader([]byte(`{"id":"cus_1","object":"customer"}`)),
			signed([]byte(`{"id":"cus_1","object":"customer"}`), secret, time.Now()), 400, "body is not a Stripe event"},
		{"signed event without a type", "POST", "/webhooks/stripe", reader([]byte(`{"id":"evt_1","object":"event"}`)),
			signed([]byte(`{"id":"evt_1","object":"event"}`), secret, time.Now()), 400, "body is not a Stripe event"},
		{"signed event without created", "POST", "/webhooks/stripe", reader(bytes.Replace(body, []byte(`"created": 1700000000`), []byte(`"created": null`), 1)),
			signed(bytes.Replace(body, []byte(`"created": 1700000000`), []byte(`"created": null`), 1), secret, time.Now()), 400, "body is not a Stripe event"},
		// The worker's form too (verify.CheckEvent, one check for both):
		// an event carries its object.
		{"signed event without data.object", "POST", "/webhooks/stripe", reader(noObject),
			signed(noObject, secret, time.Now()), 400, "body is not a Stripe event"},
		{"signed event with a null data.object", "POST", "/webhooks/stripe", reader(nullObject),
			signed(nullObject, secret, time.Now()), 400, "body is not a Stripe event"},
		// Stripe's forms: an id or type the worker would park as
		// unverified, a created time or signature from the future, is
		// refused before it reaches the broker (docs/security.md).
		{"event id not evt_", "POST", "/webhooks/stripe", reader(event("cus_1", "invoice.paid", "2023-10-16")),
			signed(event("cus_1", "invoice.paid", "2023-10-16"), secret, time.Now()), 400, verify.ErrBadID.Error()},
		{"event id with a control character", "POST", "/webhooks/stripe", reader(event(`evt_1\u001b[2J`, "invoice.paid", "2023-10-16")),
			signed(event(`evt_1\u001b[2J`, "invoice.paid", "2023-10-16"), secret, time.Now()), 400, verify.ErrBadID.Error()},
		{"event id over 255 bytes", "POST", "/webhooks/stripe", reader(event("evt_"+strings.Repeat("a", 252), "invoice.paid", "2023-10-16")),
			signed(event("evt_"+strings.Repeat("a", 252), "invoice.paid", "2023-10-16"), secret, time.Now()), 400, verify.ErrBadID.Error()},
		{"event type with upper case and #", "POST", "/webhooks/stripe", reader(event("evt_1", "Invoice.#", "2023-10-16")),
			signed(event("evt_1", "Invoice.#", "2023-10-16"), secret, time.Now()), 400, verify.ErrBadType.Error()},
		{"created in 2100", "POST", "/webhooks/stripe", reader(createdAt(body, 4102444800)),
			signed(createdAt(body, 4102444800), secret, time.Now()), 400, verify.ErrFutureCreated.Error()},
		{"created beyond the tolerance", "POST", "/webhooks/stripe", reader(createdAt(body, time.Now().Add(10*time.Minute).Unix())),
			signed(createdAt(body, time.Now().Add(10*time.Minute).Unix()), secret, time.Now()), 400, verify.ErrFutureCreated.Error()},
		{"signature timestamp beyond the tolerance", "POST", "/webhooks/stripe", reader(body),
			signed(body, secret, time.Now().Add(10*time.Minute)), 400, verify.ErrFutureSignature.Error()},
		{"GET", "GET", "/webhooks/stripe", reader(nil), nil, 405, "method not allowed"},
		{"text/plain", "POST", "/webhooks/stripe", reader(body),
			map[string]string{"Content-Type": "text/plain", "Stripe-Signature": sign(body, secret, time.Now())}, 415, "content type must be application/json"},
		{"no content type", "POST", "/webhooks/stripe", reader(body),
			map[string]string{"Stripe-Signature": sign(body, secret, time.Now())}, 415, "content type must be application/json"},
		{"unknown path", "POST", "/webhooks/stripe/", reader(body), signed(body, secret, time.Now()), 404, "not found"},
	}
	// One body, one way (verify.ReadEnvelope): what encoding/json or the
	// worker would read otherwise than the api, and what is no JSON.
	// Each member is put first in the object, at byte 1.
	second := len(`{"id":"evt_x",`)
	for _, m := range []struct{ name, member, message string }{
		{"ID beside id", `"ID":"evt_other"`, `malformed body: key "ID" stands for "id": envelope keys must be spelt exactly at byte 1`},
		{"escaped id beside id", `"\u0069d":"evt_other"`, `malformed body: key "\\u0069d" stands for "id": envelope keys must be spelt exactly at byte 1`},
		{"a second id", `"id":"evt_x","id":"evt_other"`, fmt.Sprintf(`malformed body: key "id" given twice at byte %d`, second)},
		{"Type beside type", `"Type":"customer.created"`, `malformed body: key "Type" stands for "type": envelope keys must be spelt exactly at byte 1`},
		{"CREATED beside created", `"CREATED":4102444800`, `malformed body: key "CREATED" stands for "created": envelope keys must be spelt exactly at byte 1`},
		{"escaped object beside object", `"obj\u0065ct":"customer"`, `malformed body: key "obj\\u0065ct" stands for "object": envelope keys must be spelt exactly at byte 1`},
		{"a bare word", `"note":yes`, `malformed body: invalid character 'y' at byte 8`},
		{"a leading zero", `"note":012`, `malformed body: number with a leading zero at byte 8`},
		{"an unknown escape", `"note":"a\qb"`, `malformed body: invalid escape '\q' at byte 10`},
		{"a raw control byte", "\"note\":\"a\x01b\"", `malformed body: control character 0x01 in a string at byte 10`},
		{"invalid UTF-8", "\"note\":\"a\xffb\"", `malformed body: invalid UTF-8 at byte 10`},
		{"nested 100 deep", `"note":` + strings.Repeat("[", 100) + strings.Repeat("]", 100), `malformed body: nested deeper than 64 levels at byte 71`},
		{"livemode a string", `"livemode":"false"`, `malformed body: livemode is not a boolean at byte 12`},
		{"api_version a number", `"api_version":20231016`, `malformed body: api_version is not a string at byte 15`},
		{"data a string", `"data":"in_1"`, `malformed body: data is not an object at byte 8`},
		{"data.object an array", `"data":{"object":[]}`, `malformed body: data.object is not an object at byte 18`},
		{"Object in data", `"data":{"Object":{}}`, `malformed body: key "Object" stands for "object": envelope keys must be spelt exactly in data at byte 9`},
	} {
		b := append([]byte("{"+m.member+","), body[1:]...)
		tests = append(tests, rejected{m.name, "POST", "/webhooks/stripe", reader(b), signed(b, secret, time.Now()), 400, m.message})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, options{wait: true})
			got := do(t, tt.method, f.url+tt.path, tt.body(), tt.header)
			assertError(t, got, tt.status, tt.message)
			if tt.status == http.StatusMethodNotAllowed {
				if allow := got.header.Get("Allow"); allow != "POST" {
					t.Errorf("Allow = %q, want POST", allow)
				}
			}
			f.assertEmpty(t)
		})
	}
}

// rejected is a request TestWebhookRejects sends and the error it must get.
type rejected struct {
	name    string
	method  string
	path    string
	body    func() io.Reader
	header  map[string]string
	status  int
	message string
}

// createdAt is body with its created time replaced.
func createdAt(body []byte, unix int64) []byte {
	return bytes.Replace(body, []byte(`"created": 1700000000`), fmt.Appendf(nil, `"created": %d`, unix), 1)
}

func reader(b []byte) func() io.Reader {
	return func() io.Reader { return bytes.NewReader(b) }
}

// chunked hides the length, so the client sends no Content-Length and the
// cap is enforced while reading.
func chunked(b []byte) func() io.Reader {
	return func() io.Reader { return io.MultiReader(bytes.NewReader(b)) }
}

func TestWebhookAccepts(t *testing.T) {
	t.Parallel()
	body := event("evt_ok", "customer.subscription.updated", "2023-10-16")
	old := event("evt_old", "customer.subscription.updated", "2020-08-27")
	now := time.Now()
	// An invalid v1 first, then the valid one, as during Stripe's secret roll.
	twoV1 := strings.Replace(sign(body, secret, now), ",v1=", ",v1="+strings.Repeat("f", 64)+",v1=", 1)
	tests := []struct {
		name        string
		secrets     []string
		body        []byte
		header      string
		contentType string
	}{
		{"second of two secrets", []string{otherSecret, secret}, body, sign(body, secret, now), "application/json"},
		{"first of two secrets", []string{secret, otherSecret}, body, sign(body, secret, now), "application/json"},
		{"two v1 of which one is valid", nil, body, twoV1, "application/json"},
		{"API version 2020-08-27", nil, old, sign(old, secret, now), "application/json"},
		{"charset=utf-8", nil, body, sign(body, secret, now), "application/json; charset=utf-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, options{secrets: tt.secrets, wait: true})
			got := do(t, http.MethodPost, f.url+"/webhooks/stripe", bytes.NewReader(tt.body),
				map[string]string{"Content-Type": tt.contentType, "Stripe-Signature": tt.header})
			if got.status != http.StatusOK {
				t.Fatalf("answer = %d %q, want 200", got.status, got.body)
			}
			msgs := f.take(t)
			if len(msgs) != 1 || !bytes.Equal(msgs[0].Body, tt.body) {
				t.Fatalf("work queue gave %d messages, want exactly the posted event", len(msgs))
			}
		})
	}
}

func TestWebhookBrokerUnreachable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"connection refused", func(*testing.T) string { return "127.0.0.1:1" }},
		{"listener that never answers", silentListener},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := setup(t, options{amqpURL: "amqp://guest:guest@" + tt.addr(t) + "/", publishTimeout: 2 * time.Second})
			body := event("evt_down", "invoice.paid", "2023-10-16")
			// A request that hangs instead of answering fails at the test
			// client's timeout (do); the answer's time is not asserted.
			got := f.post(t, body, sign(body, secret, time.Now()))
			assertError(t, got, http.StatusServiceUnavailable, "event not stored, retry later")
			if ra := got.header.Get("Retry-After"); ra != "3" {
				t.Errorf("Retry-After = %q, want 3", ra)
			}
			ready := do(t, http.MethodGet, f.url+"/readyz", nil, nil)
			assertError(t, ready, http.StatusServiceUnavailable, "not ready")
			if live := do(t, http.MethodGet, f.url+"/healthz", nil, nil); live.status != http.StatusOK {
				t.Errorf("/healthz = %d, want 200 while the broker is down", live.status)
			}
			f.assertEmpty(t)
			line := f.logs.requests(t)[0]
			if line["outcome"] != "unavailable" || !strings.Contains(line["error"].(string), "not connected") {
				t.Errorf("log line = %v, want outcome unavailable with the broker error", line)
			}
		})
	}
}

// silentListener accepts TCP connections and never says a word.
func silentListener(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

func TestWebhookUnroutable(t *testing.T) {
	t.Parallel()
	f := setup(t, options{wait: true})
	if err := f.ch.QueueUnbind(f.topo.Work, "#", f.topo.Events, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		body := event("evt_lost", "invoice.paid", "2023-10-16")
		got := f.post(t, body, sign(body, secret, time.Now()))
		assertError(t, got, http.StatusServiceUnavailable, "event not stored, retry later")
		if got.header.Get("Retry-After") == "" {
			t.Errorf("post #%d: no Retry-After", i+1)
		}
	}
	f.assertEmpty(t)
	want := []string{"unavailable 503", "unavailable 503", "unavailable 503"}
	if webhooks, publishes := f.observed.seen(); !slices.Equal(webhooks, want) || publishes != 3 {
		t.Errorf("observer saw %v and %d publishes, want %v and 3", webhooks, publishes, want)
	}
	for _, line := range f.logs.requests(t) {
		if err, _ := line["error"].(string); !strings.Contains(err, "unroutable") {
			t.Errorf("log error = %q, want the unroutable return", err)
		}
	}
}

// TestWebhookNacked: RabbitMQ nacks the publish on a live channel (a
// queue bound beside the work queue, at its length limit with x-overflow
// reject-publish, refuses it; a message routed to several queues is nacked
// when any refuses). A nack is not a confirm: the answer is a 503 with
// Retry-After, so Stripe retries, and the delivery after the queue has room
// again is a 200.
func TestWebhookNacked(t *testing.T) {
	t.Parallel()
	f := setup(t, options{wait: true})
	full := f.topo.Namespace + ".full"
	if _, err := f.ch.QueueDeclare(full, false, true, false, false, amqp.Table{
		"x-max-length": int32(0),
		"x-overflow":   "reject-publish",
	}); err != nil {
		t.Fatal(err)
	}
	if err := f.ch.QueueBind(full, "#", f.topo.Events, false, nil); err != nil {
		t.Fatal(err)
	}
	body := event(stripeevent.NewEventID(), "invoice.paid", "2023-10-16")
	got := f.post(t, body, sign(body, secret, time.Now()))
	assertError(t, got, http.StatusServiceUnavailable, "event not stored, retry later")
	if got.header.Get("Retry-After") != "3" {
		t.Errorf("Retry-After = %q, want 3", got.header.Get("Retry-After"))
	}
	if _, err := f.ch.QueueDelete(full, false, false, false); err != nil {
		t.Fatal(err)
	}
	if got := f.post(t, body, sign(body, secret, time.Now())); got.status != http.StatusOK {
		t.Fatalf("retry once the queue is gone: %d %q, want 200", got.status, got.body)
	}
	// The work queue took the nacked copy too (a nack means "not stored
	// everywhere", not "stored nowhere"); the ledger makes the second
	// copy a duplicate.
	msgs := f.take(t)
	if len(msgs) != 2 || !bytes.Equal(msgs[0].Body, body) || !bytes.Equal(msgs[1].Body, body) {
		t.Errorf("work queue holds %d messages, want the event twice", len(msgs))
	}
}

func TestWebhookRecoversAfterConnectionDropped(t *testing.T) {
	t.Parallel()
	f := setup(t, options{wait: true})
	body := event("evt_again", "invoice.paid", "2023-10-16")
	if got := f.post(t, body, sign(body, secret, time.Now())); got.status != http.StatusOK {
		t.Fatalf("before the drop: %d %q, want 200", got.status, got.body)
	}

	// Force-close the api's connection as an operator (or a network fault)
	// would. It is found by its client-provided name: the broker may see
	// another peer address than ours (NAT in docker).
	old, err := f.conn.Connection()
	if err != nil {
		t.Fatal(err)
	}
	name := f.connectionName(t)
	if err := testenv.Management(http.MethodDelete, "/api/connections/"+url.PathEscape(name), nil, nil); err != nil {
		t.Fatal(err)
	}
	// The supervisor must dial a new connection by itself.
	testenv.Eventually(t, 10*time.Second, func() bool {
		c, err := f.conn.Connection()
		return err == nil && c != old
	}, "the api never reconnected")

	var ok, unavailable int
	testenv.Eventually(t, 10*time.Second, func() bool {
		got := f.post(t, body, sign(body, secret, time.Now()))
		switch got.status {
		case http.StatusOK:
			ok++
			return true
		case http.StatusServiceUnavailable:
			unavailable++
			return false
		default:
			t.Fatalf("after the drop: %d %q, want 200 or 503", got.status, got.body)
			return false
		}
	}, "api never served 200 again")
	if msgs := f.take(t); len(msgs) != 1+ok {
		t.Errorf("work queue holds %d messages, want %d (one per 200)", len(msgs), 1+ok)
	}
	t.Logf("503s while reconnecting: %d", unavailable)
}

// connectionName waits until the management API (whose listing lags by up
// to its stats interval, 5s) shows the api's connection; it returns the
// broker's name for it.
func (f *fixture) connectionName(t *testing.T) string {
	t.Helper()
	var name string
	testenv.Eventually(t, 10*time.Second, func() bool {
		var conns []struct {
			Name             string `json:"name"`
			UserProvidedName string `json:"user_provided_name"`
		}
		if err := testenv.Management(http.MethodGet, "/api/connections", nil, &conns); err != nil {
			t.Fatal(err)
		}
		for _, c := range conns {
			if c.UserProvidedName == f.connName {
				name = c.Name
				return true
			}
		}
		return false
	}, "no connection named %q", f.connName)
	return name
}

func TestWebhookConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	f := setup(t, options{wait: true})
	body := event("evt_dup", "invoice.paid", "2023-10-16")
	header := sign(body, secret, time.Now())
	const n = 50
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { statuses[i] = doNoFatal(f.url+"/webhooks/stripe", body, header).status })
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("delivery #%d = %d, want 200", i, s)
		}
	}
	if got := f.ready(t); got != n {
		t.Errorf("work queue holds %d ready messages, want %d (dedupe is the consumer's job)", got, n)
	}
	for _, m := range f.take(t) {
		if m.MessageId != "evt_dup" || !bytes.Equal(m.Body, body) {
			t.Fatalf("message %q, want evt_dup with the original body", m.MessageId)
		}
	}
}

// TestWebhookConfirmTimeout stops the broker's answers after the
// connection is up: the publish goes out, no confirm comes back, and the
// api must answer 503 once PUBLISH_TIMEOUT passes, not hang.
func TestWebhookConfirmTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	p := startProxy(t)
	f := setup(t, options{amqpURL: p.url, publishTimeout: timeout, wait: true})
	t.Cleanup(p.close) // before the Conn's cleanup: a muted broker never answers close

	body := event("evt_slow", "invoice.paid", "2023-10-16")
	if got := f.post(t, body, sign(body, secret, time.Now())); got.status != http.StatusOK {
		t.Fatalf("before muting: %d %q, want 200", got.status, got.body)
	}
	p.mute.Store(true)
	// Each answer is a 503 for the confirm's deadline, never before it
	// (a lower bound: load only makes it later); a hang fails the test
	// client's own timeout. The first publish times out on its channel,
	// which is dropped: the next opens a channel on the muted connection,
	// which never answers, and must still get its answer by the deadline.
	for _, which := range []string{"first", "next"} {
		start := time.Now()
		got := f.post(t, body, sign(body, secret, time.Now()))
		took := time.Since(start)
		assertError(t, got, http.StatusServiceUnavailable, "event not stored, retry later")
		if got.header.Get("Retry-After") != "3" {
			t.Errorf("%s: Retry-After = %q, want 3", which, got.header.Get("Retry-After"))
		}
		if took < timeout {
			t.Errorf("%s answer after %s, before PUBLISH_TIMEOUT %s", which, took, timeout)
		}
		lines := f.logs.requests(t)
		if err, _ := lines[len(lines)-1]["error"].(string); !strings.Contains(err, "no confirm before the deadline") {
			t.Errorf("%s: log error = %q, want the confirm timeout", which, err)
		}
	}
}

// proxy forwards TCP to the test broker; once muted it drops everything
// the broker sends, as a broker that stopped answering would.
type proxy struct {
	url  string
	ln   net.Listener
	mute atomic.Bool

	mu    sync.Mutex
	conns []net.Conn
	once  sync.Once
}

func startProxy(t *testing.T) *proxy {
	t.Helper()
	target, err := url.Parse(testenv.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := *target
	u.Host = ln.Addr().String()
	p := &proxy{url: u.String(), ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target.Host)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); _ = s.Close() }()
			go p.down(c, s)
		}
	}()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) down(c, s net.Conn) {
	defer c.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 && !p.mute.Load() {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) close() {
	p.once.Do(func() {
		_ = p.ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			_ = c.Close()
		}
	})
}
