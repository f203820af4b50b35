package bench_test

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/internal/testenv"
)

// readyDelay is docker-compose.yml's SHUTDOWN_READY_DELAY for the apis
// behind HAProxy.
const readyDelay = 5 * time.Second

// TestBenchBalancer measures ingest through HAProxy with
// deploy/haproxy/haproxy.cfg (Debian's haproxy) in front of two `billing
// api` processes, against one api direct and the two direct with the load
// split by the client, at c=64, alternating round after round
// (BILLING_BENCH=1; BENCH_ROUNDS rounds of BENCH_OPS requests each); then
// how an api leaves under load through the balancer: from SIGTERM to
// HAProxy taking it out, and to its exit (SHUTDOWN_READY_DELAY 5s, as in
// compose, then the drain), with every answer a 200 meanwhile.
func TestBenchBalancer(t *testing.T) {
	if os.Getenv("BILLING_BENCH") != "1" {
		t.Skip("BILLING_BENCH=1 runs the balancer benchmark")
	}
	const conc = 64
	ops, rounds := testenv.EnvInt(t, "BENCH_OPS", 4000), testenv.EnvInt(t, "BENCH_ROUNDS", 3)
	bin := buildBinary(t)
	r := newRabbit(t)
	addrs := []string{testenv.FreeAddr(t), testenv.FreeAddr(t)}
	var apis []*process
	for _, addr := range addrs {
		apis = append(apis, start(t, bin, "api", "AMQP_URL="+testenv.AMQPURL(), "BILLING_NAMESPACE="+r.topo.Namespace,
			"STRIPE_WEBHOOK_SECRET="+secret, "SHUTDOWN_READY_DELAY="+readyDelay.String(),
			"HTTP_ADDR="+addr, "METRICS_ADDR="+testenv.FreeAddr(t)))
		awaitReady(t, addr)
	}
	lb := testenv.StartHAProxy(t, addrs)
	lb.WaitServer(t, "api1", "UP", 15*time.Second)
	lb.WaitServer(t, "api2", "UP", 15*time.Second)

	setups := []struct {
		name string
		urls []string
	}{
		{"1 api direct", []string{"http://" + addrs[0] + "/webhooks/stripe"}},
		{"2 apis direct, the load split by the client", []string{"http://" + addrs[0] + "/webhooks/stripe", "http://" + addrs[1] + "/webhooks/stripe"}},
		{"2 apis through HAProxy", []string{lb.URL + "/webhooks/stripe"}},
	}
	client := httpClient(conc)
	reqs := signEvents("balancer", 64)
	for _, s := range setups { // unmeasured: connections opened, stacks grown
		if _, err := postSplit(client, s.urls, reqs, conc, 4*conc); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
	r.purge(t)
	runs := make([][]bench.Stats, len(setups))
	for round := range rounds {
		for i, s := range setups {
			settle(t)
			st, err := postSplit(client, s.urls, reqs, conc, ops)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, s.name, err)
			}
			r.purge(t)
			runs[i] = append(runs[i], st)
			t.Logf("round %d, %s: %s, p50 %s, p99 %s", round, s.name, bench.PerSecond(st.Rate(), "req"), bench.Millis(st.Percentile(.5)), bench.Millis(st.Percentile(.99)))
		}
	}
	one := bench.Median(runs[0]).Rate()
	for i, s := range setups {
		m := bench.Median(runs[i])
		t.Logf("median of %d rounds, c=%d, %d requests: %s: %s, p99 %s, %.2f× 1 api direct", rounds, conc, ops, s.name,
			bench.PerSecond(m.Rate(), "req"), bench.Millis(m.Percentile(.99)), m.Rate()/one)
	}

	// An api leaves under load: SIGTERM api2 while requests flow through
	// the balancer.
	type loadResult struct {
		s   bench.Stats
		err error
	}
	loaded := make(chan loadResult, 1)
	go func() {
		s, err := postSplit(client, setups[2].urls, reqs, conc, 10*ops)
		loaded <- loadResult{s, err}
	}()
	time.Sleep(time.Second)
	sigterm := time.Now()
	if err := apis[1].cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var out time.Duration
	for out == 0 {
		if states, _ := lb.ServerStates(); states["api2"] == "DOWN" {
			out = time.Since(sigterm)
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case err := <-apis[1].done:
		if err != nil {
			t.Fatalf("api2 after SIGTERM: %v", err)
		}
	case <-time.After(readyDelay + 30*time.Second):
		t.Fatal("api2 did not exit after SIGTERM")
	}
	exited := time.Since(sigterm)
	apis[1].done <- nil // for start's cleanup
	res := <-loaded
	if res.err != nil {
		t.Fatalf("load through the balancer while api2 left: %v", res.err)
	}
	t.Logf("api2 left under load (%d requests through HAProxy, every one 200, %s, p99 %s): out of HAProxy %s after SIGTERM, exited %s after it (SHUTDOWN_READY_DELAY %s, then the drain: %s)",
		res.s.N, bench.PerSecond(res.s.Rate(), "req"), bench.Millis(res.s.Percentile(.99)),
		out.Round(time.Millisecond), exited.Round(time.Millisecond), readyDelay, (exited - readyDelay).Round(time.Millisecond))
}
