package e2e

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/simulate"
)

const secret = "whsec_e2e_test"

// bin is the billing binary TestMain builds.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "billing-e2e-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "billing")
	build := exec.Command("go", "build", "-o", bin, "github.com/stripe-billing/billing/cmd/billing")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build billing:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// stack is one test's slice of the servers: a namespace, a database, and
// the addresses its processes use (direct, or through a proxy).
type stack struct {
	t      *testing.T
	ns     string
	dsn    string // the test's database, direct
	db     *sql.DB
	topo   broker.Topology
	delays string
}

func newStack(t *testing.T) *stack {
	t.Helper()
	s := undeclaredStack(t)
	// As `billing topology` before the processes start: they only check it.
	testenv.Declare(t, s.topo)
	return s
}

// undeclaredStack is newStack before its topology is declared.
func undeclaredStack(t *testing.T) *stack {
	t.Helper()
	s := &stack{t: t, ns: testenv.Namespace(t), dsn: testenv.Database(t), delays: "100ms,200ms"}
	s.topo = broker.NewTopology(s.ns, []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}, 20)
	db, err := sql.Open("mysql", s.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s.db = db
	return s
}

// env is the whole environment of a process of this stack; extra wins.
func (s *stack) env(extra map[string]string) []string {
	vars := map[string]string{
		"AMQP_URL":              testenv.AMQPURL(),
		"MYSQL_DSN":             s.dsn,
		"BILLING_NAMESPACE":     s.ns,
		"STRIPE_WEBHOOK_SECRET": secret,
		"HTTP_ADDR":             "127.0.0.1:0",
		"METRICS_ADDR":          "127.0.0.1:0",
		"RETRY_DELAYS":          s.delays,
		"MAX_ATTEMPTS":          "3",
		"PUBLISH_TIMEOUT":       "1s",
		"SHUTDOWN_TIMEOUT":      "3s",
		"WORKER_CONCURRENCY":    "4",
		"LOG_LEVEL":             "info",
	}
	for k, v := range extra {
		vars[k] = v
	}
	out := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// proc is a running billing process.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    *testenv.SyncBuffer
	exited chan struct{}
	err    error // of Wait, once exited
	addr   string
	ops    string // the api's METRICS_ADDR; the worker's is addr
}

// start runs `billing <sub>` with this stack's environment plus extra and
// waits for it to log its listen address. The process is killed when the
// test ends if it still runs; its log is shown when the test failed.
func (s *stack) start(sub string, extra map[string]string) *proc {
	s.t.Helper()
	p := &proc{name: sub, log: &testenv.SyncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, sub)
	p.cmd.Env = s.env(extra)
	p.cmd.Stdout, p.cmd.Stderr = io.Discard, p.log
	if err := p.cmd.Start(); err != nil {
		s.t.Fatalf("start %s: %v", sub, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	s.t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if s.t.Failed() {
			s.t.Logf("%s log (last 6000 bytes):\n%s", sub, tail(p.log.String(), 6000))
		}
	})
	msg := map[string]string{"api": "api listening", "worker": "metrics listening", "relay": "metrics listening", "notify": "metrics listening"}[sub]
	testenv.Eventually(s.t, 10*time.Second, func() bool {
		select {
		case <-p.exited:
			s.t.Fatalf("%s exited at start: %v\n%s", sub, p.err, p.log.String())
		default:
		}
		p.addr = logged(p.log.String(), msg, "addr")
		if sub == "api" {
			p.ops = logged(p.log.String(), "metrics listening", "addr")
			return p.addr != "" && p.ops != ""
		}
		return p.addr != ""
	}, "%s logs %q", sub, msg)
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// logged returns attribute key of the first JSON log line with message msg.
func logged(log, msg, key string) string {
	for _, line := range strings.Split(log, "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			v, _ := rec[key].(string)
			return v
		}
	}
	return ""
}

// count is the number of log lines with message msg.
func (p *proc) count(msg string) int {
	return strings.Count(p.log.String(), `"msg":"`+msg+`"`)
}

// stop sends SIGTERM and returns how long the process took to exit and its
// exit code; it fails the test past within.
func (p *proc) stop(t *testing.T, within time.Duration) (time.Duration, int) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM %s: %v", p.name, err)
	}
	select {
	case <-p.exited:
	case <-time.After(within):
		t.Fatalf("%s did not exit within %s of SIGTERM", p.name, within)
	}
	return time.Since(start), p.cmd.ProcessState.ExitCode()
}

func (p *proc) url(path string) string { return "http://" + p.addr + path }

// startReady starts an api and a worker (with workerEnv besides the
// stack's) and waits until both are ready; it returns the api.
func (s *stack) startReady(workerEnv map[string]string) *proc {
	s.t.Helper()
	api, worker := s.start("api", nil), s.start("worker", workerEnv)
	for _, p := range []*proc{api, worker} {
		testenv.Eventually(s.t, 10*time.Second, func() bool { c, _ := get(p.url("/readyz")); return c == 200 }, "%s ready", p.name)
	}
	return api
}

func get(url string) (int, string) {
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post sends one signed customer.created event and returns the status (0:
// no answer).
func post(api *proc, id string) int {
	return postSigned(api, billingtest.Event(id, "customer.created", time.Now(), billingtest.Customer("cus_"+id, id+"@example.com")))
}

// postSigned sends body signed with the stack's webhook secret, as Stripe
// does, and returns the status (0: no answer).
func postSigned(api *proc, body []byte) int {
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret})
	req, _ := http.NewRequest(http.MethodPost, api.url("/webhooks/stripe"), bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// probes posts single events and remembers the ids that got a 200.
type probes struct {
	mu       sync.Mutex
	n        int
	accepted []string
}

// post sends a fresh event and returns its status.
func (pr *probes) post(api *proc) int {
	pr.mu.Lock()
	pr.n++
	id := fmt.Sprintf("evt_probe_%03d", pr.n)
	pr.mu.Unlock()
	code := post(api, id)
	if code == http.StatusOK {
		pr.mu.Lock()
		pr.accepted = append(pr.accepted, id)
		pr.mu.Unlock()
	}
	return code
}

// load runs simulate against api in the background.
type load struct {
	done    chan struct{}
	summary simulate.Summary
	err     error
	cancel  context.CancelFunc
}

func startLoad(api *proc, count int, rate float64, seed int64) *load {
	ctx, cancel := context.WithCancel(context.Background())
	l := &load{done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(l.done)
		l.summary, l.err = simulate.Run(ctx, simulate.Config{
			URL: api.url("/webhooks/stripe"), Secret: secret,
			Count: count, Rate: rate, Concurrency: 4,
			DuplicateRatio: 0.05, OutOfOrderRatio: 0.1, PoisonRatio: 0.02,
			Seed: seed, Customers: 20, RequestTimeout: 5 * time.Second,
		}, &http.Client{})
	}()
	return l
}

func (l *load) wait(t *testing.T, within time.Duration) simulate.Summary {
	t.Helper()
	select {
	case <-l.done:
	case <-time.After(within):
		l.cancel()
		<-l.done
		t.Fatalf("simulate did not finish within %s", within)
	}
	l.cancel()
	// Faults make the api answer 503 and Stripe retry; any other status
	// means the simulator sent what the api refuses (say, an event
	// created in the future), and those events would go untested.
	for code, n := range l.summary.NotOK {
		if code != http.StatusServiceUnavailable {
			t.Errorf("simulate: %d answers %d; want only 2xx and 503", n, code)
		}
	}
	return l.summary
}

// checkApplied waits until every accepted id is in the ledger, then checks
// the invariants: each accepted event applied once (processed or ignored;
// the poison ones dead and parked), nothing else parked, no duplicate
// history, queues drained.
func (s *stack) checkApplied(t *testing.T, accepted, poison []string, within time.Duration) {
	t.Helper()
	isPoison := map[string]bool{}
	for _, id := range poison {
		isPoison[id] = true
	}
	var missing []string
	deadline := time.Now().Add(within)
	for {
		status := s.ledger(t)
		missing = missing[:0]
		for _, id := range accepted {
			want := []string{"processed", "ignored"}
			if isPoison[id] {
				// Parked (checked below); marking it dead in the ledger
				// is best effort and fails while MySQL is cut.
				want = []string{"dead", ""}
			}
			if !slices.Contains(want, status[id]) {
				missing = append(missing, id+"="+status[id])
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s, %d accepted events not applied (id=ledger status): %v", within, len(missing), firstN(missing, 10))
		}
		time.Sleep(100 * time.Millisecond)
	}

	var rows, distinct int
	if err := s.db.QueryRow("SELECT COUNT(*), COUNT(DISTINCT event_id, object_type, object_id) FROM payment_status_history").Scan(&rows, &distinct); err != nil {
		t.Fatal(err)
	}
	if rows != distinct {
		t.Errorf("payment_status_history: %d rows, %d distinct (event, object): want equal", rows, distinct)
	}
	// Parked: every accepted poison event, and nothing that is not poison.
	testenv.Eventually(t, 10*time.Second, func() bool {
		return s.ready(s.topo.Work) == 0 && s.ready(s.topo.TierQueue(0)) == 0 && s.ready(s.topo.TierQueue(1)) == 0
	}, "work queue and tiers drained")
	// A poison delivery can still be held unacked (not ready) by a worker
	// whose publishing connection is reconnecting: wait for every one.
	var parked map[string]string
	var unparked []string
	testenv.Eventually(t, 30*time.Second, func() bool {
		parked, unparked = s.parked(t), nil
		for _, id := range poison {
			if _, ok := parked[id]; !ok {
				unparked = append(unparked, id)
			}
		}
		return len(unparked) == 0
	}, "accepted poison events not in the DLQ: %v", &unparked)
	acceptedSet := map[string]bool{}
	for _, id := range accepted {
		acceptedSet[id] = true
	}
	for id, class := range parked {
		if acceptedSet[id] && !isPoison[id] {
			t.Errorf("%s parked (%s) but it is not poison", id, class)
		}
		if class != string(failure.Schema) {
			t.Errorf("%s parked as %q, want schema (poison: a numeric object id)", id, class)
		}
	}
}

func firstN(s []string, n int) []string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ledger maps event id to its status in stripe_events.
func (s *stack) ledger(t *testing.T) map[string]string {
	t.Helper()
	rows, err := s.db.Query("SELECT id, status FROM stripe_events")
	if err != nil {
		t.Logf("read ledger: %v", err)
		return nil
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, status string
		if err := rows.Scan(&id, &status); err != nil {
			t.Fatal(err)
		}
		out[id] = status
	}
	return out
}

// ready is a queue's ready count, straight from the broker.
func (s *stack) ready(queue string) int {
	s.t.Helper()
	conn, err := amqp.Dial(testenv.AMQPURL())
	if err != nil {
		s.t.Logf("dial: %v", err)
		return -1
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return -1
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return -1
	}
	return q.Messages
}

// parked maps the id of each message in the DLQ to its error class (a
// poison event delivered twice is parked twice); the messages stay in the
// DLQ.
func (s *stack) parked(t *testing.T) map[string]string {
	out, _ := s.parkedN(t)
	return out
}

// parkedN is parked with the number of messages.
func (s *stack) parkedN(t *testing.T) (map[string]string, int) {
	t.Helper()
	out := map[string]string{}
	ds := s.peekDLQ(t)
	for _, d := range ds {
		out[d.MessageId] = broker.HeaderString(d.Headers, broker.HeaderErrorClass)
	}
	return out, len(ds)
}

// peekDLQ returns the messages in the DLQ, which stay there.
func (s *stack) peekDLQ(t *testing.T) []amqp.Delivery {
	t.Helper()
	conn, err := amqp.Dial(testenv.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close() // unacked messages return to the DLQ
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	var out []amqp.Delivery
	for {
		d, ok, err := ch.Get(s.topo.DLQ, false)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, d)
	}
}

// newProxy starts an in-process toxiproxy to upstream, stopped when the
// test ends.
func newProxy(t *testing.T, name, upstream string) *toxiproxy.Proxy {
	t.Helper()
	return testenv.Proxy(t, t.Name()+"-"+name, upstream)
}

// amqpVia is the AMQP URL through a proxy at addr.
func amqpVia(addr string) string { return testenv.AMQPVia(addr) }

// amqpHost is the host:port of the test broker.
func amqpHost() string {
	u := testenv.AMQPURL()
	i := strings.Index(u, "@")
	j := strings.Index(u[i:], "/")
	return u[i+1 : i+j]
}

// dsnVia is the stack's DSN through a proxy at addr, with short timeouts.
func (s *stack) dsnVia(addr string) string {
	cfg, err := mysql.ParseDSN(s.dsn)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg.Addr = addr
	cfg.Timeout = time.Second
	cfg.ReadTimeout = 5 * time.Second
	cfg.WriteTimeout = 5 * time.Second
	return cfg.FormatDSN()
}

func mysqlHost(t *testing.T, dsn string) string {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return cfg.Addr
}

// toxic adds a toxic to p (JSON as toxiproxy's API takes it) and returns
// its removal.
func toxic(t *testing.T, p *toxiproxy.Proxy, name, typ, stream string, attrs map[string]any) func() {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "attributes": attrs})
	if _, err := p.Toxics.AddToxicJson(bytes.NewReader(b)); err != nil {
		t.Fatalf("add toxic %s: %v", name, err)
	}
	return func() {
		if err := p.Toxics.RemoveToxic(context.Background(), name); err != nil {
			t.Errorf("remove toxic %s: %v", name, err)
		}
	}
}

// metric returns the value of the first exposition line that starts with
// series (name and labels as printed), or -1.
func metric(body, series string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			var v float64
			if _, err := fmt.Sscan(rest, &v); err == nil {
				return v
			}
		}
	}
	return -1
}

// sumMetric sums the lines that start with prefix and contain label.
func sumMetric(body, prefix, label string) float64 {
	var total float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) && strings.Contains(line, label) {
			var v float64
			if _, err := fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &v); err == nil {
				total += v
			}
		}
	}
	return total
}
