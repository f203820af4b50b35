//go:build serial

package e2e

// These tests restart or starve the shared RabbitMQ and MariaDB: they run
// alone, under an exclusive lock, with -p 1 (`make test` runs them after
// the parallel tests):
//
//	flock -o -x /tmp/billing-servers.lock go test -tags serial -p 1 -run '^TestSerial' ./e2e
//
// (-o: a server restarted by a test must not inherit the lock's descriptor.)
// Each restores the servers when it ends, failed or not.

import (
	"context"
	"net"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/testenv"
)

// rabbitmqctl runs rabbitmqctl against the test broker's node (the
// default one, or the one TEST_RABBITMQ_CTL names), failing the test when
// it fails.
func rabbitmqctl(t *testing.T, timeout time.Duration, args ...string) {
	t.Helper()
	cmd := testenv.RabbitCtl(args...)
	sh(t, timeout, cmd[0], cmd[1:]...)
}

func rabbitmqctlErr(timeout time.Duration, args ...string) error {
	cmd := testenv.RabbitCtl(args...)
	return shErr(timeout, cmd[0], cmd[1:]...)
}

// startRabbitMQ starts the test broker's node after `rabbitmqctl stop`.
func startRabbitMQ(timeout time.Duration) error {
	cmd := testenv.RabbitStart()
	return shErr(timeout, cmd[0], cmd[1:]...)
}

// sh runs a command, failing the test when it fails.
func sh(t *testing.T, timeout time.Duration, name string, args ...string) {
	t.Helper()
	if err := shErr(timeout, name, args...); err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
}

func shErr(timeout time.Duration, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return &cmdError{err: err, out: string(out)}
	}
	return nil
}

type cmdError struct {
	err error
	out string
}

func (e *cmdError) Error() string { return e.err.Error() + ": " + e.out }

func listening(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func managementUp() bool {
	return testenv.Management(http.MethodGet, "/api/overview", nil, nil) == nil
}

func waitFor(what string, within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
	return true
}

// restoreServers brings RabbitMQ (app running, default watermark,
// management API answering) and MariaDB back when t ends, whatever it did.
// Without the servers' own tools on this host (the servers run in docker
// compose, say) the test cannot restart them and is skipped, saying so.
// The RabbitMQ node is the one the tests use (testenv.RabbitCtl): the
// default node, or the RabbitMQ 4 node of scripts/rabbitmq4.sh.
func restoreServers(t *testing.T) {
	for _, tool := range []string{testenv.RabbitCtl()[0], testenv.RabbitStart()[0], "start-stop-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found: the serial tests restart the local RabbitMQ and MariaDB", tool)
		}
	}
	amqpAddr := testenv.AMQPAddr()
	t.Cleanup(func() {
		if !listening(amqpAddr) {
			_ = rabbitmqctlErr(30*time.Second, "start_app")
		}
		if !listening(amqpAddr) {
			_ = startRabbitMQ(2 * time.Minute)
		}
		if !waitFor("RabbitMQ", 60*time.Second, func() bool { return listening(amqpAddr) }) {
			t.Errorf("RabbitMQ did not come back on %s", amqpAddr)
		}
		if err := rabbitmqctlErr(30*time.Second, "set_vm_memory_high_watermark", "0.4"); err != nil {
			t.Errorf("reset the memory watermark: %v", err)
		}
		if !waitFor("management", 60*time.Second, managementUp) {
			t.Error("the RabbitMQ management API did not come back")
		}
		if !listening("127.0.0.1:3306") {
			startMariaDB(t)
		}
	})
}

func startMariaDB(t *testing.T) {
	_ = shErr(10*time.Second, "install", "-d", "-o", "mysql", "-g", "mysql", "/run/mysqld")
	if err := shErr(30*time.Second, "start-stop-daemon", "--start", "--oknodo", "--background", "--exec", "/usr/sbin/mariadbd", "--", "--user=mysql"); err != nil {
		t.Errorf("start MariaDB: %v", err)
	}
	if !waitFor("MariaDB", 60*time.Second, func() bool { return listening("127.0.0.1:3306") }) {
		t.Error("MariaDB did not come back on 3306")
	}
}

// stopLoad ends the load and returns its summary.
func (l *load) stop() {
	l.cancel()
	<-l.done
}

func running(t *testing.T, ps ...*proc) {
	t.Helper()
	for _, p := range ps {
		select {
		case <-p.exited:
			t.Errorf("%s exited: %v", p.name, p.err)
		default:
		}
	}
}

func TestSerialRabbitMQRestart(t *testing.T) {
	restoreServers(t)
	s := newStack(t)
	api := s.start("api", nil)
	worker := s.start("worker", nil)
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(worker.url("/readyz")); return c == 200 }, "worker ready")
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(api.url("/readyz")); return c == 200 }, "api ready")
	begin := time.Now()
	step := func(name string) { t.Logf("%6s %s", time.Since(begin).Round(10*time.Millisecond), name) }
	l := startLoad(api, 4000, 100, 31)
	var pr probes
	time.Sleep(time.Second)

	step("rabbitmqctl stop_app")
	rabbitmqctl(t, 60*time.Second, "stop_app")
	testenv.Eventually(t, 5*time.Second, func() bool { return pr.post(api) == http.StatusServiceUnavailable }, "api 503 while RabbitMQ is stopped")
	if c, _ := get(worker.url("/readyz")); c != http.StatusServiceUnavailable {
		t.Errorf("worker /readyz = %d while RabbitMQ is stopped, want 503", c)
	}
	time.Sleep(time.Second)
	step("rabbitmqctl start_app")
	rabbitmqctl(t, 60*time.Second, "start_app")
	testenv.Eventually(t, 30*time.Second, func() bool { return pr.post(api) == http.StatusOK }, "api 200 after start_app")
	step("api answers 200")
	time.Sleep(time.Second)

	step("rabbitmqctl stop (full restart)")
	rabbitmqctl(t, 60*time.Second, "stop")
	testenv.Eventually(t, 5*time.Second, func() bool { return pr.post(api) == http.StatusServiceUnavailable }, "api 503 while RabbitMQ is down")
	if err := startRabbitMQ(2 * time.Minute); err != nil {
		t.Fatalf("start RabbitMQ: %v", err)
	}
	if !waitFor("RabbitMQ", 60*time.Second, func() bool { return listening(testenv.AMQPAddr()) }) {
		t.Fatal("RabbitMQ did not start")
	}
	step("AMQP answers")
	testenv.Eventually(t, 30*time.Second, func() bool { return pr.post(api) == http.StatusOK }, "api 200 after the restart")
	step("api answers 200")
	if !waitFor("management", 60*time.Second, managementUp) {
		t.Fatal("management API did not come back")
	}
	step("management API answers")
	time.Sleep(time.Second)
	l.stop()
	sum := l.summary
	t.Logf("simulate: sent %d, 2xx %d, non-2xx %v, transport errors %d", sum.Sent, sum.OK, sum.NotOK, sum.TransportErrors)
	accepted := append(append([]string{}, sum.Accepted...), pr.accepted...)
	s.checkApplied(t, accepted, sum.AcceptedPoison, 60*time.Second)
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(worker.url("/readyz")); return c == 200 }, "worker ready again")
	running(t, api, worker)
	step("all applied")
}

func TestSerialMariaDBRestart(t *testing.T) {
	restoreServers(t)
	s := newStack(t)
	api := s.start("api", nil)
	worker := s.start("worker", nil)
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(worker.url("/readyz")); return c == 200 }, "worker ready")
	begin := time.Now()
	step := func(name string) { t.Logf("%6s %s", time.Since(begin).Round(10*time.Millisecond), name) }
	l := startLoad(api, 3000, 100, 41)
	time.Sleep(time.Second)

	step("stop mariadbd")
	sh(t, 60*time.Second, "start-stop-daemon", "--stop", "--retry", "30", "--exec", "/usr/sbin/mariadbd")
	if !waitFor("MariaDB down", 30*time.Second, func() bool { return !listening("127.0.0.1:3306") }) {
		t.Fatal("MariaDB still listening")
	}
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(worker.url("/readyz")); return c == http.StatusServiceUnavailable }, "worker not ready without MySQL")
	time.Sleep(2 * time.Second)
	if n := s.ready(s.topo.DLQ); n > 2*len(l.summary.AcceptedPoison)+5 {
		t.Logf("DLQ holds %d during the outage", n)
	}
	step("start mariadbd")
	startMariaDB(t)
	step("3306 answers")
	testenv.Eventually(t, 30*time.Second, func() bool { c, _ := get(worker.url("/readyz")); return c == 200 }, "worker ready after MySQL is back")
	step("worker ready")
	time.Sleep(time.Second)
	l.stop()
	sum := l.summary
	t.Logf("simulate: sent %d, 2xx %d, non-2xx %v, transport errors %d", sum.Sent, sum.OK, sum.NotOK, sum.TransportErrors)
	if len(sum.NotOK) != 0 || sum.TransportErrors != 0 {
		t.Errorf("the api failed requests while MySQL was down: %v, %d transport errors (it never touches MySQL)", sum.NotOK, sum.TransportErrors)
	}
	s.checkApplied(t, sum.Accepted, sum.AcceptedPoison, 60*time.Second)
	running(t, api, worker)
	step("all applied")
}

func TestSerialMemoryAlarm(t *testing.T) {
	restoreServers(t)
	s := newStack(t)
	const publishTimeout = time.Second // PUBLISH_TIMEOUT of s.env
	api := s.start("api", nil)
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(api.url("/readyz")); return c == 200 }, "api ready")
	var pr probes
	if c := pr.post(api); c != http.StatusOK {
		t.Fatalf("before the alarm: %d", c)
	}
	rabbitmqctl(t, 30*time.Second, "set_vm_memory_high_watermark", "0.0001")
	var slowest time.Duration
	testenv.Eventually(t, 10*time.Second, func() bool {
		start := time.Now()
		c := pr.post(api)
		slowest = max(slowest, time.Since(start))
		return c == http.StatusServiceUnavailable
	}, "api 503 during the memory alarm")
	for range 5 {
		start := time.Now()
		if c := pr.post(api); c != http.StatusServiceUnavailable {
			t.Errorf("during the alarm: %d, want 503", c)
		}
		slowest = max(slowest, time.Since(start))
	}
	// Generous, under the probe client's 5s timeout: catches a publish
	// blocked by the alarm past PUBLISH_TIMEOUT, not a slow machine.
	if slowest > publishTimeout+3*time.Second {
		t.Errorf("slowest answer during the alarm took %s, want PUBLISH_TIMEOUT %s and no hang", slowest, publishTimeout)
	}
	if c, _ := get(api.url("/readyz")); c != http.StatusServiceUnavailable {
		t.Errorf("/readyz = %d during the alarm, want 503", c)
	}
	rabbitmqctl(t, 30*time.Second, "set_vm_memory_high_watermark", "0.4")
	testenv.Eventually(t, 10*time.Second, func() bool { return pr.post(api) == http.StatusOK }, "api 200 once the alarm cleared")
	t.Logf("slowest 503 during the alarm: %s", slowest.Round(time.Millisecond))
	worker := s.start("worker", nil)
	s.checkApplied(t, pr.accepted, nil, 30*time.Second)
	running(t, api, worker)
}
