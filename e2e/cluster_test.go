//go:build serial

package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/testenv"
)

// The cluster of scripts/cluster-up.sh: c1-c3@localhost on their own ports,
// beside the machine's default node, which this test never touches.
var clusterNodes = [3]string{
	"amqp://guest:guest@127.0.0.1:5701/",
	"amqp://guest:guest@127.0.0.1:5702/",
	"amqp://guest:guest@127.0.0.1:5703/",
}

// clusterPublishTimeout is the apis' PUBLISH_TIMEOUT in this test.
const clusterPublishTimeout = 2 * time.Second

// nodeList is the cluster's URLs as AMQP_URL takes them, starting at node
// first (0-based): a process connects to the first node that answers.
func nodeList(first int) string {
	var urls []string
	for i := range clusterNodes {
		urls = append(urls, clusterNodes[(first+i)%len(clusterNodes)])
	}
	return strings.Join(urls, ",")
}

func clusterScript(t *testing.T, timeout time.Duration, script string, args ...string) {
	t.Helper()
	sh(t, timeout, "bash", append([]string{"../scripts/" + script}, args...)...)
}

// TestSerialCluster runs 2 apis and 3 workers on a three-node cluster
// while shuffled, duplicated lifecycles are posted at a steady rate: it
// kills (-9) the node that leads the work queue, brings it back, then
// kills the node one api publishes through and brings it back. Every
// event that got a 2xx is applied once, the records are the lifecycles',
// nothing is parked, every answer comes within PUBLISH_TIMEOUT (plus the
// api's own time), and the api whose node died answers 2xx again while
// that node is still down. Then it measures processing with 1, 2 and 3
// workers on the cluster.
func TestSerialCluster(t *testing.T) {
	if _, err := exec.LookPath("/usr/lib/rabbitmq/bin/rabbitmq-server"); err != nil {
		t.Skip("RabbitMQ is not installed on this host: scripts/cluster-up.sh needs it")
	}
	t.Cleanup(func() {
		if err := shErr(2*time.Minute, "bash", "../scripts/cluster-down.sh"); err != nil {
			t.Errorf("cluster-down.sh: %v", err)
		}
	})
	begin := time.Now()
	step := func(format string, args ...any) {
		t.Logf("%6s %s", time.Since(begin).Round(10*time.Millisecond), fmt.Sprintf(format, args...))
	}
	clusterScript(t, 3*time.Minute, "cluster-up.sh")
	step("cluster formed")

	// The harness reads through c3 (the management API, the queues), which
	// this test never kills; the topology is declared through c1, so c1
	// leads every queue.
	t.Setenv("TEST_RABBITMQ_API", "http://guest:guest@127.0.0.1:15703")
	t.Setenv("TEST_AMQP_URL", clusterNodes[0])
	s := undeclaredStack(t)
	s.topo.QuorumInitialGroupSize = 3
	testenv.Declare(t, s.topo)
	t.Setenv("TEST_AMQP_URL", clusterNodes[2])
	leader, members := queueLeader(t, s.topo.Work)
	if leader != "c1@localhost" || members != 3 {
		t.Fatalf("work queue led by %q with %d members, want c1@localhost and 3", leader, members)
	}

	publishTimeout := map[string]string{"PUBLISH_TIMEOUT": clusterPublishTimeout.String()}
	apis := []*proc{
		s.start("api", withEnv(publishTimeout, "AMQP_URL", nodeList(1))), // on c2
		s.start("api", withEnv(publishTimeout, "AMQP_URL", nodeList(2))), // on c3
	}
	workers := startWorkers(s, 3)
	for _, p := range append(slices.Clone(apis), workers...) {
		addr := p.addr
		if p.name == "api" {
			addr = p.ops
		}
		testenv.Eventually(t, 15*time.Second, func() bool { c, _ := get("http://" + addr + "/readyz"); return c == 200 }, "%s ready", p.name)
	}
	step("2 apis (on c2, c3) and 3 workers (on c1, c2, c3) ready")

	ps := &poster{apis: apis, accepted: map[string]bool{}, answers: make([][]answer, len(apis)), status: map[int]int{}}
	var want billingtest.Records
	var lifecycles int
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		want, lifecycles = ps.run(stop, 40, 4)
	}()
	time.Sleep(5 * time.Second)

	step("kill -9 c1, the work queue's leader")
	clusterScript(t, 10*time.Second, "cluster-down.sh", "1")
	time.Sleep(8 * time.Second)
	newLeader, _ := queueLeader(t, s.topo.Work)
	step("work queue now led by %s; bringing c1 back", newLeader)
	clusterScript(t, 2*time.Minute, "cluster-up.sh", "1")
	step("c1 back")
	time.Sleep(3 * time.Second)

	step("kill -9 c2, the node the first api publishes through")
	killed := time.Now()
	clusterScript(t, 10*time.Second, "cluster-down.sh", "2")
	var healed time.Duration
	testenv.Eventually(t, 20*time.Second, func() bool {
		var ok bool
		healed, ok = ps.healed(0, killed)
		return ok
	}, "the first api fails, then answers 2xx again while c2 is down")
	step("first api answers 2xx again %v after losing its node (c2 still down)", healed.Round(time.Millisecond))
	if healed > 10*time.Second {
		t.Errorf("the first api took %v to answer 2xx again after losing its node, want a few seconds", healed)
	}
	time.Sleep(4 * time.Second)
	clusterScript(t, 2*time.Minute, "cluster-up.sh", "2")
	step("c2 back")
	time.Sleep(3 * time.Second)
	close(stop)
	<-done
	step("poster done: %d lifecycles", lifecycles)

	ps.report(t)
	accepted := ps.acceptedIDs()
	s.checkApplied(t, accepted, nil, 90*time.Second)
	if parked, n := s.parkedN(t); n != 0 {
		t.Errorf("the DLQ holds %d messages the run did not put there: %v", n, parked)
	}
	step("every accepted event applied once, nothing parked")

	// Several workers on one queue order each object through row locks:
	// a deadlock is retried, a storm of them would stall the run.
	var deadlocks float64
	for _, w := range workers {
		_, body := get(w.url("/metrics"))
		for _, line := range strings.Split(body, "\n") {
			if v, ok := strings.CutPrefix(line, `billing_database_errors_total{class="deadlock"} `); ok {
				n, _ := strconv.ParseFloat(v, 64)
				deadlocks += n
			}
		}
	}
	step("deadlocks retried by the 3 workers: %.0f for %d accepted events", deadlocks, len(accepted))
	if deadlocks > float64(len(accepted))/20 {
		t.Errorf("%.0f deadlocks for %d events: a storm, want at most one in 20 events", deadlocks, len(accepted))
	}

	// Processing with 1, 2 and 3 workers: the events wait in the work
	// queue, then k workers drain it.
	for _, w := range workers {
		w.stop(t, 15*time.Second)
	}
	// Seeds after the poster's: a lifecycle's time grows with its seed
	// and the api refuses events from the future.
	seed := lifecycles
	for k := 1; k <= 3; k++ {
		var ids []string
		for range 30 {
			seed++
			l := billingtest.VersionLifecycle(billing.SupportedVersions()[seed%len(billing.SupportedVersions())], seed)
			want = want.Add(l.Want)
			for _, raw := range l.Events {
				ids = append(ids, eventIDOf(t, raw))
			}
			ps.postAll(l.Events)
		}
		start := time.Now()
		ws := startWorkers(s, k)
		s.waitProcessed(t, ids, 2*time.Minute)
		took := time.Since(start)
		t.Logf("processing, %d worker(s) on the cluster: %d events in %v = %.0f events/s (from the workers' start)",
			k, len(ids), took.Round(time.Millisecond), float64(len(ids))/took.Seconds())
		for _, w := range ws {
			w.stop(t, 15*time.Second)
		}
	}

	checkRecords(t, s.store(t), want)
	running(t, apis...)
	step("records right")
}

func withEnv(base map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for bk, bv := range base {
		out[bk] = bv
	}
	return out
}

// startWorkers starts n workers, worker i on node i first.
func startWorkers(s *stack, n int) []*proc {
	var ws []*proc
	for i := range n {
		ws = append(ws, s.start("worker", map[string]string{"AMQP_URL": nodeList(i)}))
	}
	return ws
}

// queueLeader is the node leading a quorum queue, and its members, as the
// management API (on c3) reports them.
func queueLeader(t *testing.T, queue string) (string, int) {
	t.Helper()
	var q struct {
		Leader  string   `json:"leader"`
		Members []string `json:"members"`
	}
	if err := testenv.Management(http.MethodGet, "/api/queues/%2F/"+url.PathEscape(queue), nil, &q); err != nil {
		t.Fatalf("queue %s: %v", queue, err)
	}
	return q.Leader, len(q.Members)
}

// poster posts signed events to the apis in turn as Stripe does: an
// answer other than 2xx (or none) is retried, on the other api, until a
// 2xx.
type poster struct {
	apis []*proc

	mu         sync.Mutex
	accepted   map[string]bool
	answers    [][]answer  // per api, in the order they came
	status     map[int]int // answers by status (0: none)
	maxLatency time.Duration
	slow       int // answers later than PUBLISH_TIMEOUT + 2s: a hang
	turn       int
}

// run posts lifecycles in batches of batch, each batch's events duplicated
// (a third again) and shuffled, at rate requests per second, until stop;
// it finishes the batch under way and returns the records the lifecycles
// must leave.
func (p *poster) run(stop chan struct{}, rate, batch int) (billingtest.Records, int) {
	jobs, wait := p.senders()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	rng := rand.New(rand.NewPCG(14, 14))
	versions := billing.SupportedVersions()
	var want billingtest.Records
	seed := 0
	for {
		select {
		case <-stop:
			close(jobs)
			wait()
			return want, seed
		default:
		}
		var events [][]byte
		for range batch {
			seed++
			l := billingtest.VersionLifecycle(versions[seed%len(versions)], seed)
			want = want.Add(l.Want)
			events = append(events, l.Events...)
		}
		events = append(events, events[:len(events)/3]...)
		rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
		for _, raw := range events {
			<-tick.C
			jobs <- raw
		}
	}
}

// postAll posts events, 8 at a time, as fast as the apis answer.
func (p *poster) postAll(events [][]byte) {
	jobs, wait := p.senders()
	for _, raw := range events {
		jobs <- raw
	}
	close(jobs)
	wait()
}

// senders delivers what is sent on jobs, 8 at a time; wait returns once
// jobs is closed and every event delivered.
func (p *poster) senders() (jobs chan<- []byte, wait func()) {
	ch := make(chan []byte)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for raw := range ch {
				p.deliver(raw)
			}
		})
	}
	return ch, wg.Wait
}

type answer struct {
	sent, came time.Time
	code       int
}

// deliver posts raw until an api answers 2xx (for at most a minute); a 4xx
// is a mistake of the test, not retried (report fails on it).
func (p *poster) deliver(raw []byte) {
	id := eventIDOfRaw(raw)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		p.mu.Lock()
		i := p.turn % len(p.apis)
		p.turn++
		p.mu.Unlock()
		start := time.Now()
		code := postSigned(p.apis[i], raw)
		latency := time.Since(start)
		p.mu.Lock()
		p.status[code]++
		p.maxLatency = max(p.maxLatency, latency)
		if latency > clusterPublishTimeout+2*time.Second {
			p.slow++
		}
		p.answers[i] = append(p.answers[i], answer{start, time.Now(), code})
		ok := code/100 == 2
		if ok {
			p.accepted[id] = true
		}
		p.mu.Unlock()
		if ok || code/100 == 4 {
			return
		}
	}
}

// healed is how long after its node was lost at lost api i answered 2xx
// to a request sent after its first failure since: the failure shows the
// api did lose its connection; a 2xx to a request sent earlier may be a
// confirm that came before the loss.
func (p *poster) healed(i int, lost time.Time) (time.Duration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var failed time.Time
	for _, a := range p.answers[i] {
		switch {
		case failed.IsZero() && a.came.After(lost) && a.code/100 != 2:
			failed = a.came
		case !failed.IsZero() && a.code/100 == 2 && a.sent.After(failed):
			return a.came.Sub(lost), true
		}
	}
	return 0, false
}

func (p *poster) acceptedIDs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ids []string
	for id := range p.accepted {
		ids = append(ids, id)
	}
	return ids
}

// report prints the answers and the worst stall of each api (the longest
// time between two of its 2xx answers), and fails on an answer that took
// longer than PUBLISH_TIMEOUT allows: a confirm that never comes must
// become a 503, never a hang.
func (p *poster) report(t *testing.T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t.Logf("answers by status (0: none): %v; slowest answer %v", p.status, p.maxLatency.Round(time.Millisecond))
	for i, as := range p.answers {
		var worst time.Duration
		var last time.Time
		oks := 0
		for _, a := range as {
			if a.code/100 != 2 {
				continue
			}
			if oks++; !last.IsZero() {
				worst = max(worst, a.came.Sub(last))
			}
			last = a.came
		}
		t.Logf("api %d: %d 2xx, worst stall between two 2xx answers %v", i+1, oks, worst.Round(time.Millisecond))
	}
	for code, n := range p.status {
		if code/100 == 4 {
			t.Errorf("%d answers %d: the test posted something the api refuses", n, code)
		}
	}
	if p.slow > 0 {
		t.Errorf("%d answers took longer than PUBLISH_TIMEOUT (%v) + 2s", p.slow, clusterPublishTimeout)
	}
	if p.status[0] > 0 {
		t.Errorf("%d requests got no answer", p.status[0])
	}
}

func eventIDOfRaw(raw []byte) string {
	var e struct{ ID string }
	_ = json.Unmarshal(raw, &e)
	return e.ID
}
