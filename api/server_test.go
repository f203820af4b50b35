package api_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/api"
	"github.com/stripe-billing/billing/internal/testenv"
)

func TestProbes(t *testing.T) {
	t.Parallel()
	f := setup(t, options{wait: true})
	for path, want := range map[string]string{
		"/healthz": `{"status":"ok"}` + "\n",
		"/readyz":  `{"status":"ready"}` + "\n",
	} {
		got := do(t, http.MethodGet, f.url+path, nil, nil)
		if got.status != http.StatusOK || got.body != want {
			t.Errorf("GET %s = %d %q, want 200 %q", path, got.status, got.body, want)
		}
	}
	// The public port faces Stripe: metrics live on METRICS_ADDR.
	assertError(t, do(t, http.MethodGet, f.url+"/metrics", nil, nil), http.StatusNotFound, "not found")
	if webhooks, _ := f.observed.seen(); len(webhooks) != 0 {
		t.Errorf("observer saw %v for probes, want nothing", webhooks)
	}
	got := do(t, http.MethodPost, f.url+"/healthz", nil, nil)
	assertError(t, got, http.StatusMethodNotAllowed, "method not allowed")
	if allow := got.header.Get("Allow"); allow != "GET, HEAD" {
		t.Errorf("Allow = %q, want GET, HEAD", allow)
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	valid := api.Config{Exchange: "x.events", Secrets: []string{secret}}
	tests := []struct {
		name string
		edit func(*api.Config)
		want string
	}{
		{"no exchange", func(c *api.Config) { c.Exchange = "" }, "Exchange"},
		{"no secret", func(c *api.Config) { c.Secrets = nil }, "secret"},
		{"write timeout not above publish timeout", func(c *api.Config) { c.PublishTimeout, c.WriteTimeout = 5*time.Second, 5*time.Second }, "WriteTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid
			tt.edit(&cfg)
			_, err := api.New(cfg, logger, &blockingPublisher{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("New = %v, want an error naming %s", err, tt.want)
			}
		})
	}
	if _, err := api.New(valid, logger, &blockingPublisher{}); err != nil {
		t.Errorf("New(valid) = %v", err)
	}
}

// blockingPublisher holds every publish until released. It stands in for
// the broker where the test exercises the server's lifecycle, not publishing.
type blockingPublisher struct {
	started chan struct{}
	release chan struct{}
}

func (p *blockingPublisher) Publish(ctx context.Context, _, _ string, _ amqp.Publishing) error {
	close(p.started)
	select {
	case <-p.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *blockingPublisher) Ready() bool { return true }

// runServer runs a Server with cfg (exchange, secret, a free address and
// a 5s ShutdownTimeout filled in) until the test cancels it or ends, once
// it answers /healthz. ran receives Run's result.
func runServer(t *testing.T, cfg api.Config, pub api.Publisher) (srv *api.Server, addr string, ran chan error, cancel context.CancelFunc) {
	t.Helper()
	addr = testenv.FreeAddr(t)
	cfg.Exchange, cfg.Secrets, cfg.Addr, cfg.ShutdownTimeout = "x.events", []string{secret}, addr, 5*time.Second
	srv, err := api.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), pub)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ran = make(chan error, 1)
	go func() { ran <- srv.Run(ctx) }()
	testenv.Eventually(t, 5*time.Second, func() bool {
		return doNoFatalGet("http://"+addr+"/healthz").status == http.StatusOK
	}, "server never listened on %s", addr)
	return srv, addr, ran, cancel
}

// TestRunDrainsInFlight cancels Run's context while a webhook is waiting
// for its confirm: the request must still get its 200, then Run returns nil.
func TestRunDrainsInFlight(t *testing.T) {
	t.Parallel()
	pub := &blockingPublisher{started: make(chan struct{}), release: make(chan struct{})}
	_, addr, ran, cancel := runServer(t, api.Config{PublishTimeout: 5 * time.Second}, pub)

	body := event("evt_inflight", "invoice.paid", "2023-10-16")
	answered := make(chan response, 1)
	go func() {
		answered <- doNoFatal("http://"+addr+"/webhooks/stripe", body, sign(body, secret, time.Now()))
	}()
	select {
	case <-pub.started:
	case <-time.After(5 * time.Second):
		t.Fatal("the webhook never reached Publish")
	}
	cancel() // SIGTERM while the request is in flight
	select {
	case err := <-ran:
		t.Fatalf("Run returned %v before the in-flight request finished", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(pub.release)
	select {
	case got := <-answered:
		if got.status != http.StatusOK {
			t.Errorf("in-flight request = %d %q, want 200", got.status, got.body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("in-flight request never answered")
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after shutdown")
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Error("server still accepts connections after Run returned")
	}
}

// TestRunSaysNotReadyBeforeDraining cancels Run's context with a
// ShutdownReadyDelay: /readyz answers 503 at once while webhooks are still
// served, as a load balancer needs; after the delay Run stops accepting
// and returns nil.
func TestRunSaysNotReadyBeforeDraining(t *testing.T) {
	t.Parallel()
	pub := &blockingPublisher{started: make(chan struct{}), release: make(chan struct{})}
	close(pub.release) // every publish confirmed at once
	srv, addr, ran, cancel := runServer(t, api.Config{ShutdownReadyDelay: 3 * time.Second}, pub)
	base := "http://" + addr
	if got := doNoFatalGet(base + "/readyz"); got.status != http.StatusOK {
		t.Fatalf("/readyz before cancel = %d %q, want 200", got.status, got.body)
	}

	cancel() // SIGTERM
	testenv.Eventually(t, 3*time.Second, srv.Draining, "Draining after cancel")
	if got := doNoFatalGet(base + "/readyz"); got.status != http.StatusServiceUnavailable || got.body != `{"error":"not ready"}`+"\n" {
		t.Errorf("/readyz while draining = %d %q, want 503 not ready", got.status, got.body)
	}
	body := event("evt_draining", "invoice.paid", "2023-10-16")
	if got := doNoFatal(base+"/webhooks/stripe", body, sign(body, secret, time.Now())); got.status != http.StatusOK {
		t.Errorf("webhook while draining = %d %q, want 200: the balancer may still send some", got.status, got.body)
	}
	select {
	case err := <-ran:
		t.Fatalf("Run returned %v while the probes above ran within the ready delay", err)
	default:
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the ready delay")
	}
	if got := doNoFatalGet(base + "/healthz"); got.status != 0 {
		t.Errorf("GET /healthz after Run returned = %d, want no connection", got.status)
	}
}

// doNoFatalGet is doNoFatal's GET.
func doNoFatalGet(url string) response {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return response{body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// doNoFatal posts from a goroutine other than the test's; errors become status 0.
func doNoFatal(url string, body []byte, sig string) response {
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(string(body)))
	if err != nil {
		return response{body: err.Error()}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", sig)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return response{body: err.Error()}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// panickingPublisher stands in for a broken dependency.
type panickingPublisher struct{}

func (panickingPublisher) Publish(context.Context, string, string, amqp.Publishing) error {
	panic("boom")
}

func (panickingPublisher) Ready() bool { return true }

func TestPanicIsA500(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	srv, err := api.New(api.Config{Exchange: "x.events", Secrets: []string{secret}},
		slog.New(slog.NewJSONHandler(logs, nil)), panickingPublisher{})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	body := event("evt_panic", "invoice.paid", "2023-10-16")
	for range 2 { // the server survives the first one
		got := doNoFatal(ts.URL+"/webhooks/stripe", body, sign(body, secret, time.Now()))
		assertError(t, got, http.StatusInternalServerError, "internal error")
	}
	lines := logs.requests(t)
	if len(lines) != 2 || lines[0]["level"] != "ERROR" || lines[0]["outcome"] != "internal_error" || lines[0]["event_id"] != "evt_panic" {
		t.Errorf("log lines = %v, want two ERROR lines with outcome internal_error and the event id", lines)
	}
}
