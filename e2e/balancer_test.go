package e2e

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/testenv"
)

// readyDelay is docker-compose.yml's SHUTDOWN_READY_DELAY for the apis
// behind HAProxy (config/compose_test.go holds it above the checks'
// fall × inter).
const readyDelay = 5 * time.Second

// TestBalancer runs HAProxy with deploy/haproxy/haproxy.cfg in front of
// two `billing api` processes and a worker, under a steady signed load
// that retries every answer but a 2xx as Stripe does. It kills one api
// with SIGKILL (a replacement starts on its address), then stops the
// other with SIGTERM: HAProxy takes that one out while it still serves,
// it exits 0, and the load goes on through the replacement. The answers
// that were not 2xx are 503s or a dead api's closed connection, every
// event gets its 2xx in the end, and each is applied once.
func TestBalancer(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	addrs := []string{testenv.FreeAddr(t), testenv.FreeAddr(t)}
	apiEnv := func(addr string) map[string]string {
		return map[string]string{"HTTP_ADDR": addr, "SHUTDOWN_READY_DELAY": readyDelay.String(), "SHUTDOWN_TIMEOUT": "5s"}
	}
	lb := testenv.StartHAProxy(t, addrs)
	api1, api2 := s.start("api", apiEnv(addrs[0])), s.start("api", apiEnv(addrs[1]))
	s.start("worker", nil)
	lb.WaitServer(t, "api1", "UP", 15*time.Second)
	lb.WaitServer(t, "api2", "UP", 15*time.Second)

	l := startStripe(lb.URL+"/webhooks/stripe", 3000, 100)
	l.waitOK(t, 100, 30*time.Second)

	// SIGKILL: requests in flight on api1 lose their connection; haproxy
	// sends new ones to api2 and takes api1 out after its checks fail.
	if err := api1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-api1.exited
	lb.WaitServer(t, "api1", "DOWN", 15*time.Second)
	s.start("api", apiEnv(addrs[0])) // the replacement, on api1's address
	lb.WaitServer(t, "api1", "UP", 15*time.Second)
	l.waitOK(t, l.okCount()+100, 30*time.Second)

	// SIGTERM: api2 says not ready and keeps serving until haproxy has
	// taken it out, then drains and exits 0.
	stopped := make(chan int, 1)
	go func() { _, code := api2.stop(t, readyDelay+15*time.Second); stopped <- code }()
	lb.WaitServer(t, "api2", "DOWN", readyDelay+10*time.Second)
	select {
	case <-api2.exited:
		t.Error("api2 exited before haproxy took it out: SHUTDOWN_READY_DELAY is shorter than haproxy's checks")
	default:
	}
	if code := <-stopped; code != 0 {
		t.Errorf("api2 exit code %d after SIGTERM, want 0", code)
	}
	if api2.count("api not ready: shutting down") != 1 || api2.count("api stopped") != 1 {
		t.Errorf("api2 logged %d \"not ready\" and %d \"stopped\", want 1 of each",
			api2.count("api not ready: shutting down"), api2.count("api stopped"))
	}
	l.waitOK(t, l.okCount()+100, 30*time.Second) // through the replacement alone

	sum := l.finish(t, 60*time.Second)
	t.Logf("%d events: %d answers, %v by status, %d closed connections; %d retried", len(sum.ids), sum.answers, sum.codes, sum.closed, sum.retried)
	for code, n := range sum.codes {
		if code != http.StatusOK && code != http.StatusServiceUnavailable {
			t.Errorf("%d answers %d: want only 200, or 503 that Stripe retries", n, code)
		}
	}
	if sum.codes[http.StatusOK] < len(sum.ids) {
		t.Fatalf("%d events got a 200 of %d", sum.codes[http.StatusOK], len(sum.ids))
	}
	s.checkApplied(t, sum.ids, nil, 60*time.Second)
	if ledger := s.ledger(t); len(ledger) != len(sum.ids) {
		t.Errorf("ledger has %d events, want the %d sent", len(ledger), len(sum.ids))
	}
	var customers int
	if err := s.db.QueryRow("SELECT COUNT(*) FROM customers").Scan(&customers); err != nil || customers != len(sum.ids) {
		t.Errorf("customers: %d rows (%v), want one per event, %d", customers, err, len(sum.ids))
	}
}

// stripeLoad posts fresh customer.created events at a steady rate, each
// retried (signed anew) after every answer but a 2xx until it gets one,
// as Stripe retries a webhook.
type stripeLoad struct {
	url    string
	client *http.Client
	cancel context.CancelFunc
	sent   sync.WaitGroup // every event until its 2xx
	done   chan struct{}  // the sender stopped starting events

	mu      sync.Mutex
	ids     []string
	ok      int
	codes   map[int]int
	closed  int // no answer: the connection closed or failed
	retried int // events that needed more than one attempt
	failed  []string
}

// startStripe starts up to max events at rate per second to url.
func startStripe(url string, max int, rate float64) *stripeLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &stripeLoad{
		url:    url,
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 32}},
		cancel: cancel, done: make(chan struct{}), codes: map[int]int{},
	}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		for range max {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			id := billingtest.NewEventID()
			l.mu.Lock()
			l.ids = append(l.ids, id)
			l.mu.Unlock()
			l.sent.Add(1)
			go l.deliver(id)
		}
	}()
	return l
}

// deliver posts one event until it gets a 2xx, for at most a minute.
func (l *stripeLoad) deliver(id string) {
	defer l.sent.Done()
	body := billingtest.Event(id, "customer.created", time.Now(), billingtest.Customer("cus_"+id[4:], id+"@example.com"))
	deadline := time.Now().Add(time.Minute)
	for attempt := 1; ; attempt++ {
		code, err := l.post(body)
		l.mu.Lock()
		if err != nil {
			l.closed++
		} else {
			l.codes[code]++
		}
		if code/100 == 2 {
			l.ok++
			if attempt > 1 {
				l.retried++
			}
			l.mu.Unlock()
			return
		}
		if time.Now().After(deadline) {
			l.failed = append(l.failed, id)
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		time.Sleep(min(time.Duration(attempt)*100*time.Millisecond, time.Second))
	}
}

func (l *stripeLoad) post(body []byte) (int, error) {
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret})
	req, err := http.NewRequest(http.MethodPost, l.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (l *stripeLoad) okCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok
}

// waitOK waits until n events got their 2xx; the load must not have run
// out of events first.
func (l *stripeLoad) waitOK(t *testing.T, n int, within time.Duration) {
	t.Helper()
	testenv.Eventually(t, within, func() bool {
		select {
		case <-l.done:
			if l.okCount() < n {
				t.Fatalf("the load ran out of events at %d accepted, before %d", l.okCount(), n)
			}
		default:
		}
		return l.okCount() >= n
	}, "%d events accepted through the balancer", n)
}

// stripeSummary is what the load saw.
type stripeSummary struct {
	ids                      []string
	answers, closed, retried int
	codes                    map[int]int
}

// finish stops starting events and waits until every event started got
// its 2xx.
func (l *stripeLoad) finish(t *testing.T, within time.Duration) stripeSummary {
	t.Helper()
	l.cancel()
	<-l.done
	all := make(chan struct{})
	go func() { l.sent.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(within):
		t.Fatalf("events still unanswered after %s", within)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failed) > 0 {
		t.Fatalf("%d events never got a 2xx: %v", len(l.failed), firstN(l.failed, 10))
	}
	sum := stripeSummary{ids: slices.Clone(l.ids), closed: l.closed, retried: l.retried, codes: map[int]int{}}
	for code, n := range l.codes {
		sum.codes[code] = n
		sum.answers += n
	}
	return sum
}
