package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/api"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
)

const (
	secret      = "whsec_test_primary"
	otherSecret = "whsec_test_other"
	maxBody     = 4096
)

// clock is the fixed time the api stamps on messages.
var clock = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

type options struct {
	secrets        []string
	amqpURL        string // default: the test broker
	publishTimeout time.Duration
	wait           bool // wait until the api's connection is up
	maxInFlight    int
	bodyTimeout    time.Duration
	// run serves with Server.Run, its connection cap maxConns included,
	// instead of httptest.
	run      bool
	maxConns int
}

// fixture is one api on a fresh namespace, served by httptest, with a real
// broker.Conn and Publisher, plus the test's own channel to inspect queues.
type fixture struct {
	topo     broker.Topology
	observed *recorder
	connName string
	conn     *broker.Conn
	url      string
	ch       *amqp.Channel
	logs     *syncBuffer
}

func setup(t *testing.T, o options) *fixture {
	t.Helper()
	if o.secrets == nil {
		o.secrets = []string{secret}
	}
	if o.amqpURL == "" {
		o.amqpURL = testenv.AMQPURL()
	}
	if o.publishTimeout == 0 {
		o.publishTimeout = 2 * time.Second
	}
	ns := testenv.Namespace(t)
	f := &fixture{topo: broker.NewTopology(ns, []time.Duration{time.Second}, 5), connName: "api-test " + ns, logs: &syncBuffer{}, observed: &recorder{}}

	// The test's own connection declares the topology first, so the work
	// queue exists even when the api's connection never comes up.
	f.ch = testenv.Channel(t)
	if err := f.topo.Declare(context.Background(), f.ch, testenv.ManagementClient(t)); err != nil {
		t.Fatal(err)
	}

	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.conn = broker.NewConn(broker.ConnConfig{
		URL:         o.amqpURL,
		Name:        f.connName,
		Topology:    f.topo,
		Backoff:     func(int) time.Duration { return 50 * time.Millisecond },
		DialTimeout: 500 * time.Millisecond,
		// As `billing api` dials.
		CoalesceWrites: true,
	}, logger)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.conn.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	pub := broker.NewPublisher(f.conn, 4, o.publishTimeout)
	addr := "127.0.0.1:0" // httptest listens on its own
	if o.run {
		addr = testenv.FreeAddr(t)
	}
	srv, err := api.New(api.Config{
		Exchange:       f.topo.Events,
		Secrets:        o.secrets,
		Tolerance:      5 * time.Minute,
		MaxBodyBytes:   maxBody,
		PublishTimeout: o.publishTimeout,
		RetryAfter:     3 * time.Second,
		Now:            func() time.Time { return clock },
		Observer:       f.observed,
		MaxInFlight:    o.maxInFlight,
		BodyTimeout:    o.bodyTimeout,
		MaxConns:       o.maxConns,
		Addr:           addr,
	}, logger, pub)
	if err != nil {
		t.Fatal(err)
	}
	if o.run {
		f.serve(t, srv, addr)
		f.url = "http://" + addr
	} else {
		ts := httptest.NewServer(srv.Handler())
		t.Cleanup(ts.Close)
		f.url = ts.URL
	}

	if o.wait {
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer wcancel()
		if _, err := f.conn.Await(wctx); err != nil {
			t.Fatalf("api broker connection not up: %v", err)
		}
	}
	return f
}

// serve runs srv, listening on addr, until the test ends, once it
// answers /healthz.
func (f *fixture) serve(t *testing.T, srv *api.Server, addr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("api Run: %v", err)
		}
	})
	testenv.Eventually(t, 5*time.Second, func() bool {
		return doNoFatalGet("http://"+addr+"/healthz").status == http.StatusOK
	}, "api never listened on %s", addr)
}

// event is a Stripe event body whose spacing, key order and escapes a
// re-serialisation would change, so byte-equality proves it was not.
func event(id, eventType, apiVersion string) []byte {
	return []byte(`{
  "object": "event",
  "id": "` + id + `",
  "type": "` + eventType + `",
  "api_version": "` + apiVersion + `",
  "created": 1700000000,
  "livemode": false,
  "pending_webhooks": 1,
  "request": {"id": null, "idempotency_key": null},
  "data": {"object": {"id": "in_1", "object": "invoice", "description": "caf\u00e9 \u2603", "amount_paid": 1200}}
}`)
}

func sign(body []byte, secret string, at time.Time) string {
	return testenv.Sign(body, secret, at)
}

type response struct {
	status int
	header http.Header
	body   string
	close  bool // the server closes the connection after it
}

// errorBody is the exact body of an error answer.
func errorBody(msg string) string {
	b, _ := json.Marshal(map[string]string{"error": msg})
	return string(b) + "\n"
}

func do(t *testing.T, method, url string, body io.Reader, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// post sends a signed webhook the way Stripe does.
func (f *fixture) post(t *testing.T, body []byte, sigHeader string) response {
	t.Helper()
	return do(t, http.MethodPost, f.url+"/webhooks/stripe", bytes.NewReader(body), map[string]string{
		"Content-Type":     "application/json; charset=utf-8",
		"Stripe-Signature": sigHeader,
	})
}

// take returns every message in the work queue, removing them.
func (f *fixture) take(t *testing.T) []amqp.Delivery {
	t.Helper()
	var out []amqp.Delivery
	for {
		d, ok, err := f.ch.Get(f.topo.Work, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// ready is the work queue's ready count according to the broker itself.
func (f *fixture) ready(t *testing.T) int {
	t.Helper()
	q, err := f.ch.QueueDeclarePassive(f.topo.Work, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

// assertEmpty checks that nothing was published to the work queue.
func (f *fixture) assertEmpty(t *testing.T) {
	t.Helper()
	if n := f.ready(t); n != 0 {
		t.Errorf("work queue holds %d ready messages, want 0", n)
	}
	if got := f.take(t); len(got) != 0 {
		t.Errorf("work queue gave %d messages, want none (first: %q)", len(got), got[0].Body)
	}
}

func assertError(t *testing.T, got response, status int, msg string) {
	t.Helper()
	if got.status != status || got.body != errorBody(msg) {
		t.Errorf("answer = %d %q, want %d %q", got.status, got.body, status, errorBody(msg))
	}
	assertJSONHeaders(t, got)
}

// assertJSONHeaders checks the two headers of every JSON answer, each
// given once.
func assertJSONHeaders(t *testing.T, got response) {
	t.Helper()
	for k, want := range map[string]string{"Content-Type": "application/json", "X-Content-Type-Options": "nosniff"} {
		if v := got.header.Values(k); len(v) != 1 || v[0] != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
}

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log lines whose msg is "http request".
func (b *syncBuffer) requests(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if m["msg"] == "http request" {
			out = append(out, m)
		}
	}
	return out
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// recorder is an api.Observer that remembers what it was told.
type recorder struct {
	mu        sync.Mutex
	webhooks  []string // "outcome status"
	publishes int
}

func (r *recorder) Webhook(outcome string, code int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.webhooks = append(r.webhooks, fmt.Sprintf("%s %d", outcome, code))
}

func (r *recorder) ObservePublish(time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.publishes++
}

func (r *recorder) seen() ([]string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.webhooks), r.publishes
}
