package e2e

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/testenv"
)

// TestConnectionLossUnderLoad runs an api and a worker whose connections
// to RabbitMQ and MySQL go through proxies the test owns, under a simulate
// load, and breaks them one after the other: the api's broker link cut
// (503, then 200 again), the worker's broker link slowed and then reset,
// the worker's database link reset and cut. Afterwards every event that
// got a 200 is applied exactly once and only poison is parked.
func TestConnectionLossUnderLoad(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	apiRabbit := newProxy(t, "api-amqp", amqpHost())
	workerRabbit := newProxy(t, "worker-amqp", amqpHost())
	workerMySQL := newProxy(t, "worker-mysql", mysqlHost(t, s.dsn))
	api := s.start("api", map[string]string{"AMQP_URL": amqpVia(apiRabbit.Listen)})
	worker := s.start("worker", map[string]string{"AMQP_URL": amqpVia(workerRabbit.Listen), "MYSQL_DSN": s.dsnVia(workerMySQL.Listen)})
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(api.url("/readyz")); return c == 200 }, "api ready")
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(worker.url("/readyz")); return c == 200 }, "worker ready")

	begin := time.Now()
	l := startLoad(api, 900, 100, 11)
	var pr probes
	phase := func(name string, d time.Duration) {
		t.Logf("%6s %s", time.Since(begin).Round(10*time.Millisecond), name)
		time.Sleep(d)
	}

	phase("load", time.Second)
	// The api loses RabbitMQ: 503 at once, /readyz 503, then 200 again.
	apiRabbit.Stop()
	testenv.Eventually(t, 3*time.Second, func() bool { return pr.post(api) == http.StatusServiceUnavailable }, "api answers 503 while its broker link is cut")
	if c, _ := get(api.url("/readyz")); c != http.StatusServiceUnavailable {
		t.Errorf("api /readyz = %d while cut, want 503", c)
	}
	phase("api cut", 500*time.Millisecond)
	if err := apiRabbit.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() bool { return pr.post(api) == http.StatusOK }, "api answers 200 after the link is back")

	// The worker's broker link: slow, then reset.
	removeLatency := toxic(t, workerRabbit, "slow", "latency", "downstream", map[string]any{"latency": 300, "jitter": 100})
	phase("worker-rabbit slow", 1500*time.Millisecond)
	removeLatency()
	removeReset := toxic(t, workerRabbit, "reset", "reset_peer", "upstream", map[string]any{"timeout": 0})
	phase("worker-rabbit reset", time.Second)
	removeReset()
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(worker.url("/readyz")); return c == 200 }, "worker ready again after the reset")

	// The worker's database link: reset, then cut (an outage: pause, no attempt spent).
	removeDBReset := toxic(t, workerMySQL, "reset", "reset_peer", "upstream", map[string]any{"timeout": 0})
	phase("worker-mysql reset", time.Second)
	removeDBReset()
	workerMySQL.Stop()
	testenv.Eventually(t, 5*time.Second, func() bool {
		c, body := get(worker.url("/readyz"))
		return c == 503 && (strings.Contains(body, "database") || strings.Contains(body, "paused"))
	}, "worker not ready while MySQL is cut")
	phase("worker-mysql cut", time.Second)
	if err := workerMySQL.Start(); err != nil {
		t.Fatal(err)
	}
	phase("all links back", 0)

	// Bounds that catch a hang, not a speed: 900 events at 100/s take 9 s
	// on an idle machine and several times that on a busy one.
	sum := l.wait(t, 90*time.Second)
	t.Logf("simulate: sent %d, 2xx %d, non-2xx %v, transport errors %d, p50 %s p99 %s", sum.Sent, sum.OK, sum.NotOK, sum.TransportErrors, sum.Latency.P50, sum.Latency.P99)
	if sum.OK == 0 {
		t.Fatal("no event accepted")
	}
	accepted := append(append([]string{}, sum.Accepted...), pr.accepted...)
	s.checkApplied(t, accepted, sum.AcceptedPoison, 60*time.Second)
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(worker.url("/readyz")); return c == 200 }, "worker ready at the end")

	// What /metrics says of the run.
	_, apiMetrics := get("http://" + api.ops + "/metrics")
	if got, want := metric(apiMetrics, `billing_webhooks_total{code="200",outcome="accepted"}`), float64(sum.OK+len(pr.accepted)); got != want {
		t.Errorf("api billing_webhooks_total accepted = %v, want %v", got, want)
	}
	if got := metric(apiMetrics, `billing_webhooks_total{code="503",outcome="unavailable"}`); got < 1 {
		t.Errorf("api billing_webhooks_total unavailable = %v, want the 503s of the cut", got)
	}
	if got := metric(apiMetrics, "billing_publish_confirm_duration_seconds_count"); got < float64(sum.OK) {
		t.Errorf("publish confirm histogram count = %v, want at least %d", got, sum.OK)
	}
	var workerMetrics string
	_, parked := s.parkedN(t)
	testenv.Eventually(t, 12*time.Second, func() bool {
		_, workerMetrics = get(worker.url("/metrics"))
		return metric(workerMetrics, `billing_queue_messages{queue="`+s.topo.DLQ+`"}`) == float64(parked)
	}, "the DLQ depth gauge shows the %d parked messages (gauge %v)", parked, metric(workerMetrics, `billing_queue_messages{queue="`+s.topo.DLQ+`"}`))
	for _, c := range []struct {
		name string
		got  float64
		min  float64
	}{
		{"processed", sumMetric(workerMetrics, "billing_events_processed_total{", `outcome="processed"`), float64(len(accepted) - len(sum.AcceptedPoison) - 20)},
		{"duplicate", sumMetric(workerMetrics, "billing_events_processed_total{", `outcome="duplicate"`), 1},
		{"parked", sumMetric(workerMetrics, "billing_events_processed_total{", `outcome="parked"`), float64(len(sum.AcceptedPoison))},
		{"parked schema", metric(workerMetrics, `billing_events_parked_total{class="schema"}`), float64(len(sum.AcceptedPoison))},
		{"processing histogram", metric(workerMetrics, "billing_event_processing_duration_seconds_count"), float64(len(accepted))},
		{"build info", sumMetric(workerMetrics, "billing_build_info{", ""), 1},
	} {
		if c.got < c.min {
			t.Errorf("worker /metrics %s = %v, want at least %v", c.name, c.got, c.min)
		}
	}

	// Neither process restarted: each logged its start once and still runs.
	for _, p := range []*proc{api, worker} {
		select {
		case <-p.exited:
			t.Errorf("%s exited: %v", p.name, p.err)
		default:
		}
	}
	if n := worker.count("broker connection lost"); n == 0 {
		t.Error("the worker never lost its broker connection: the faults did not bite")
	}
	if n := api.count("broker connection lost"); n == 0 {
		t.Error("the api never lost its broker connection: the fault did not bite")
	}
	t.Logf("elapsed %s, %d events accepted (%d poison), worker reconnects %d", time.Since(begin).Round(time.Millisecond), len(accepted), len(sum.AcceptedPoison), worker.count("broker connected")-2)
}
