package simulate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/simulate"
)

const secret = "whsec_simulate_test"

// stripeReceiver is the api as far as the simulator can tell: it verifies
// every signature with stripe-go and records what arrived.
type stripeReceiver struct {
	t *testing.T
	// answer picks the status of the n-th request (0-based); nil means 200.
	answer func(n int) int

	mu        sync.Mutex
	requests  int
	badSig    int
	badType   int
	ids       []string // in arrival order
	shapes    []string // type, object id and created of each request, in arrival order
	poison    map[string]bool
	ok        map[string]bool // ids answered 2xx at least once
	regressed int             // first deliveries older than an event already seen for the same object
	newest    map[string]int64
}

func newReceiver(t *testing.T, answer func(n int) int) (*stripeReceiver, *httptest.Server) {
	r := &stripeReceiver{t: t, answer: answer, poison: map[string]bool{}, ok: map[string]bool{}, newest: map[string]int64{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *stripeReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, "read", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.requests
	r.requests++
	if req.Header.Get("Content-Type") != "application/json" || req.Method != http.MethodPost {
		r.badType++
		http.Error(w, "type", http.StatusUnsupportedMediaType)
		return
	}
	// No IgnoreAPIVersionMismatch: the events must claim stripe-go's version.
	ev, err := webhook.ConstructEventWithOptions(body, req.Header.Get("Stripe-Signature"), secret, webhook.ConstructEventOptions{})
	if err != nil {
		r.badSig++
		http.Error(w, "signature", http.StatusBadRequest)
		return
	}
	first := !slices.Contains(r.ids, ev.ID)
	r.ids = append(r.ids, ev.ID)
	// What the worker does with data.object: decode it into a struct with
	// a string id. Poison must fail exactly there.
	var obj struct {
		ID     string `json:"id"`
		Object string `json:"object"`
	}
	err = json.Unmarshal(ev.Data.Raw, &obj)
	r.shapes = append(r.shapes, fmt.Sprintf("%s %s %d", ev.Type, obj.ID, ev.Created))
	if err != nil {
		r.poison[ev.ID] = true
	} else if first {
		if ev.Created < r.newest[obj.ID] {
			r.regressed++
		}
		r.newest[obj.ID] = max(r.newest[obj.ID], ev.Created)
	}
	status := http.StatusOK
	if r.answer != nil {
		status = r.answer(n)
	}
	if status/100 == 2 {
		r.ok[ev.ID] = true
	}
	w.WriteHeader(status)
}

func (r *stripeReceiver) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, id := range r.ids {
		seen[id] = true
	}
	return len(seen)
}

func baseConfig(url string) simulate.Config {
	return simulate.Config{
		URL:         url,
		Secret:      secret,
		Count:       400,
		Concurrency: 4,
		Seed:        7,
		Start:       time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC),
	}
}

func TestRunHonoursRatios(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                string
		count               int
		dup, ooo, poison    float64
		wantDup, wantPoison int
		minLate, maxLate    int
		customers, parallel int
	}{
		{name: "clean stream", count: 200, parallel: 4},
		{name: "all faults", count: 400, dup: 0.1, ooo: 0.2, poison: 0.05, wantDup: 40, wantPoison: 18, minLate: 34, maxLate: 68, parallel: 4},
		{name: "many batches of few customers", count: 300, dup: 0.2, ooo: 0.1, poison: 0.1, wantDup: 60, wantPoison: 24, minLate: 10, maxLate: 22, customers: 3, parallel: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rcv, srv := newReceiver(t, nil)
			cfg := baseConfig(srv.URL)
			cfg.Count, cfg.DuplicateRatio, cfg.OutOfOrderRatio, cfg.PoisonRatio = tt.count, tt.dup, tt.ooo, tt.poison
			cfg.Customers, cfg.Concurrency = tt.customers, tt.parallel
			s, err := simulate.Run(context.Background(), cfg, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			rcv.mu.Lock()
			requests, badSig, badType, poison := rcv.requests, rcv.badSig, rcv.badType, len(rcv.poison)
			okIDs := sortedKeys(rcv.ok)
			rcv.mu.Unlock()
			distinct := rcv.distinct()

			if requests != tt.count || s.Sent != tt.count {
				t.Errorf("requests: server %d, summary %d; want %d", requests, s.Sent, tt.count)
			}
			if badSig != 0 || badType != 0 {
				t.Errorf("%d bad signatures, %d bad content types; want none", badSig, badType)
			}
			if got := requests - distinct; got != tt.wantDup || s.Duplicates != tt.wantDup {
				t.Errorf("duplicates: server %d, summary %d; want %d", got, s.Duplicates, tt.wantDup)
			}
			if s.Events != distinct {
				t.Errorf("summary events %d, server distinct %d", s.Events, distinct)
			}
			if poison != tt.wantPoison || s.PoisonSent != tt.wantPoison || len(s.AcceptedPoison) != tt.wantPoison {
				t.Errorf("poison: server %d, summary %d sent %d accepted; want %d", poison, s.PoisonSent, len(s.AcceptedPoison), tt.wantPoison)
			}
			if s.OutOfOrder < tt.minLate || s.OutOfOrder > tt.maxLate {
				t.Errorf("out of order = %d, want %d..%d", s.OutOfOrder, tt.minLate, tt.maxLate)
			}
			if s.OK != tt.count || len(s.NotOK) != 0 || s.TransportErrors != 0 || s.Failed() {
				t.Errorf("answers: %d ok, %v not ok, %d transport errors; want all ok", s.OK, s.NotOK, s.TransportErrors)
			}
			if !slices.Equal(s.Accepted, okIDs) {
				t.Errorf("summary accepted %d ids, server answered 2xx to %d; lists differ", len(s.Accepted), len(okIDs))
			}
			if s.Latency.P50 <= 0 || s.Latency.P50 > s.Latency.P90 || s.Latency.P90 > s.Latency.P99 || s.Latency.P99 > s.Latency.Max {
				t.Errorf("latency percentiles not ordered: %+v", s.Latency)
			}
		})
	}
}

// TestOutOfOrderReachesTheServer sends one request at a time, so arrival
// order is dispatch order: without out-of-order no object ever sees an
// older event after a newer one; with it, some do.
func TestOutOfOrderReachesTheServer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		ratio   float64
		atLeast int
		atMost  int
	}{
		{"in order", 0, 0, 0},
		{"a third late", 0.3, 20, 1 << 30},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rcv, srv := newReceiver(t, nil)
			cfg := baseConfig(srv.URL)
			cfg.Count, cfg.Concurrency, cfg.OutOfOrderRatio, cfg.DuplicateRatio = 300, 1, tt.ratio, 0.1
			if _, err := simulate.Run(context.Background(), cfg, srv.Client()); err != nil {
				t.Fatal(err)
			}
			rcv.mu.Lock()
			defer rcv.mu.Unlock()
			t.Logf("%d first deliveries older than their object's newest", rcv.regressed)
			if rcv.regressed < tt.atLeast || rcv.regressed > tt.atMost {
				t.Errorf("first deliveries older than their object's newest = %d, want %d..%d", rcv.regressed, tt.atLeast, tt.atMost)
			}
		})
	}
}

func TestRunIsDeterministic(t *testing.T) {
	t.Parallel()
	order := func(seed int64) (shapes, ids []string) {
		rcv, srv := newReceiver(t, nil)
		cfg := baseConfig(srv.URL)
		cfg.Count, cfg.Concurrency, cfg.Seed = 150, 1, seed
		cfg.DuplicateRatio, cfg.OutOfOrderRatio, cfg.PoisonRatio = 0.1, 0.2, 0.05
		if _, err := simulate.Run(context.Background(), cfg, srv.Client()); err != nil {
			t.Fatal(err)
		}
		if got, want := rcv.distinct(), 150-15; got != want { // 10% of 150 are duplicates
			t.Errorf("%d distinct event ids, want %d", got, want)
		}
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return slices.Clone(rcv.shapes), slices.Clone(rcv.ids)
	}
	a, aIDs := order(1)
	b, bIDs := order(1)
	c, _ := order(2)
	if !slices.Equal(a, b) {
		t.Error("two runs with one seed sent different streams")
	}
	if slices.Equal(a, c) {
		t.Error("two seeds sent the same stream")
	}
	// Event ids are random, as Stripe's: a run never repeats another's.
	for _, id := range bIDs {
		if slices.Contains(aIDs, id) {
			t.Fatalf("event id %s sent by two runs", id)
		}
	}
}

func TestRunRespectsRate(t *testing.T) {
	t.Parallel()
	_, srv := newReceiver(t, nil)
	cfg := baseConfig(srv.URL)
	cfg.Count, cfg.Rate, cfg.Concurrency = 30, 200, 8
	s, err := simulate.Run(context.Background(), cfg, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	// 30 starts at 200/s take at least 29 intervals of 5ms. Not a timing
	// test: the upper bound only catches a limiter that stalls.
	if s.Duration < 140*time.Millisecond || s.Duration > 5*time.Second {
		t.Errorf("30 requests at 200/s took %s, want about 145ms", s.Duration)
	}
	if s.OK != 30 {
		t.Errorf("ok = %d, want 30", s.OK)
	}
}

func TestRunReportsFailures(t *testing.T) {
	t.Parallel()
	rcv, srv := newReceiver(t, func(n int) int {
		switch {
		case n%5 == 0:
			return http.StatusServiceUnavailable
		case n%7 == 0:
			return http.StatusBadRequest
		default:
			return http.StatusOK
		}
	})
	cfg := baseConfig(srv.URL)
	cfg.Count, cfg.DuplicateRatio = 100, 0.2
	s, err := simulate.Run(context.Background(), cfg, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	// n in 0..99: 20 multiples of 5; multiples of 7 that are not of 5: 12.
	if s.NotOK[503] != 20 || s.NotOK[400] != 12 || s.OK != 68 {
		t.Errorf("answers: ok %d, not ok %v; want 68 ok, 20×503, 12×400", s.OK, s.NotOK)
	}
	if !s.Failed() {
		t.Error("Failed() = false with 503s")
	}
	rcv.mu.Lock()
	okIDs := sortedKeys(rcv.ok)
	rcv.mu.Unlock()
	if !slices.Equal(s.Accepted, okIDs) {
		t.Errorf("accepted %d ids, the server answered 2xx to %d", len(s.Accepted), len(okIDs))
	}
	if len(s.Accepted) >= s.Events {
		t.Errorf("every one of %d events accepted despite failures", s.Events)
	}
	var out bytes.Buffer
	if err := s.Print(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"503", "400", "2xx", "p99"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("printed summary lacks %q:\n%s", want, out.String())
		}
	}
}

func TestRunTransportErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens any more
	cfg := baseConfig(url)
	cfg.Count = 5
	s, err := simulate.Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.TransportErrors != 5 || s.OK != 0 || !s.Failed() || s.FirstTransportError == "" || len(s.Accepted) != 0 {
		t.Errorf("summary = %+v, want 5 transport errors and nothing accepted", s)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	t.Parallel()
	rcv, srv := newReceiver(t, nil)
	cfg := baseConfig(srv.URL)
	cfg.Count, cfg.Rate = 1000, 50
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // cancel once the server has answered a few
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			rcv.mu.Lock()
			n := rcv.requests
			rcv.mu.Unlock()
			if n >= 3 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	s, err := simulate.Run(ctx, cfg, srv.Client())
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the context's", err)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if s.Sent < 3 || s.Sent >= cfg.Count || s.Sent != rcv.requests {
		t.Errorf("sent %d (server saw %d), want a few (at least 3, fewer than %d), all answered", s.Sent, rcv.requests, cfg.Count)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*simulate.Config)
		want   string
	}{
		{"no url", func(c *simulate.Config) { c.URL = "" }, "url"},
		{"not http", func(c *simulate.Config) { c.URL = "amqp://x/" }, "url"},
		{"another machine", func(c *simulate.Config) { c.URL = "http://192.0.2.7:8080/webhooks/stripe" }, "--allow-remote"},
		{"a name that is not localhost", func(c *simulate.Config) { c.URL = "https://billing.example.com/webhooks/stripe" }, "--allow-remote"},
		{"no secret", func(c *simulate.Config) { c.Secret = "" }, "secret"},
		{"no count", func(c *simulate.Config) { c.Count = 0 }, "count"},
		{"negative rate", func(c *simulate.Config) { c.Rate = -1 }, "rate"},
		{"duplicate ratio 1", func(c *simulate.Config) { c.DuplicateRatio = 1 }, "duplicate ratio"},
		{"negative poison", func(c *simulate.Config) { c.PoisonRatio = -0.1 }, "poison ratio"},
		{"out of order above 1", func(c *simulate.Config) { c.OutOfOrderRatio = 1.5 }, "out-of-order ratio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := baseConfig("http://127.0.0.1:1/webhooks/stripe")
			tt.mutate(&cfg)
			_, err := simulate.Run(context.Background(), cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one naming %q", err, tt.want)
			}
		})
	}
}

func TestSummaryJSON(t *testing.T) {
	t.Parallel()
	s := simulate.Summary{
		Sent: 3, Events: 2, Duplicates: 1, OK: 2, NotOK: map[int]int{503: 1},
		Latency:  simulate.Latency{P50: time.Millisecond, P90: 2 * time.Millisecond, P99: 3 * time.Millisecond, Max: 4 * time.Millisecond},
		Duration: 1500 * time.Millisecond, Accepted: []string{"evt_1", "evt_2"},
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Sent     int                `json:"sent"`
		NotOK    map[string]int     `json:"not_ok"`
		Latency  map[string]float64 `json:"latency_seconds"`
		Duration float64            `json:"duration_seconds"`
		Accepted []string           `json:"accepted"`
		Poison   []string           `json:"accepted_poison"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Sent != 3 || got.NotOK["503"] != 1 || got.Latency["p99"] != 0.003 || got.Duration != 1.5 ||
		len(got.Accepted) != 2 || got.Poison == nil {
		t.Errorf("JSON = %s", b)
	}
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestRunTargets: loopback in any spelling is a target; another machine is
// one only when allowed (checked without a request: the config is refused
// before anything is sent).
func TestRunTargets(t *testing.T) {
	t.Parallel()
	_, srv := newReceiver(t, nil)
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	for _, host := range []string{"127.0.0.1", "localhost", "[::1]"} {
		cfg := baseConfig("http://" + host + port + "/webhooks/stripe")
		cfg.Count = 1
		if host == "[::1]" {
			cfg.RequestTimeout = time.Second // the test server may not listen on IPv6
		}
		if _, err := simulate.Run(context.Background(), cfg, nil); err != nil {
			t.Errorf("%s refused: %v", host, err)
		}
	}
	cfg := baseConfig("http://192.0.2.7:1/webhooks/stripe") // TEST-NET-1: never routed
	cfg.AllowRemote, cfg.Count, cfg.RequestTimeout = true, 1, 50*time.Millisecond
	s, err := simulate.Run(context.Background(), cfg, nil)
	if err != nil || s.Sent != 1 || s.TransportErrors != 1 {
		t.Errorf("allowed remote: sent %d, transport errors %d, err %v; want the one request tried", s.Sent, s.TransportErrors, err)
	}
}

// TestRunSendsTestModeEvents: every event, poison included, and every
// object that has the field, says livemode false.
func TestRunSendsTestModeEvents(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var events, live int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct {
			Livemode *bool `json:"livemode"`
			Data     struct {
				Object json.RawMessage `json:"object"`
			} `json:"data"`
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("body is not JSON: %v", err)
		}
		var obj struct {
			Livemode *bool `json:"livemode"`
		}
		_ = json.Unmarshal(ev.Data.Object, &obj) // poison objects do not decode
		mu.Lock()
		defer mu.Unlock()
		events++
		if ev.Livemode == nil || *ev.Livemode || (obj.Livemode != nil && *obj.Livemode) {
			live++
		}
	}))
	t.Cleanup(srv.Close)
	cfg := baseConfig(srv.URL)
	cfg.PoisonRatio, cfg.DuplicateRatio = 0.1, 0.1
	if _, err := simulate.Run(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if events != cfg.Count || live != 0 {
		t.Errorf("%d events, %d not in test mode; want %d, none", events, live, cfg.Count)
	}
}

// TestRunCreatesNothingInTheFuture: by default a long run's events all
// claim a created time before the run, however many batches of customers
// it takes: the api refuses an event created in the future.
func TestRunCreatesNothingInTheFuture(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var latest int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Created int64 }
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &ev)
		mu.Lock()
		defer mu.Unlock()
		latest = max(latest, ev.Created)
	}))
	t.Cleanup(srv.Close)
	cfg := baseConfig(srv.URL)
	cfg.Start, cfg.Count, cfg.Customers, cfg.Concurrency = time.Time{}, 3000, 20, 16 // eight batches of customers
	before := time.Now()
	if _, err := simulate.Run(context.Background(), cfg, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if latest == 0 || latest > before.Unix() {
		t.Errorf("latest created %s, want at or before the run's start %s", time.Unix(latest, 0).UTC(), before.UTC())
	}
}
