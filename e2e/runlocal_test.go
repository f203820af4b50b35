package e2e

import (
	"database/sql"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/testenv"
)

// TestRunLocal runs scripts/run-local.sh, docs/operations.md's way of
// running without Docker, against a fresh namespace and an empty
// database: it migrates, declares the topology and starts the api, the
// worker and the sweep; a signed event sent to the api is applied; on
// SIGTERM the script stops all three, exits 0 and leaves no port open.
func TestRunLocal(t *testing.T) {
	t.Parallel()
	ns, dsn := testenv.Namespace(t), testenv.EmptyDatabase(t)
	web, apiOps, workerOps, sweepOps := testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t), testenv.FreeAddr(t)
	log := &testenv.SyncBuffer{}
	cmd := exec.Command("bash", "../scripts/run-local.sh")
	cmd.Env = []string{
		"PATH=" + os.Getenv("PATH"),
		"BILLING_BIN=" + bin,
		"AMQP_URL=" + testenv.AMQPURL(),
		"MYSQL_DSN=" + dsn,
		"BILLING_NAMESPACE=" + ns,
		"STRIPE_WEBHOOK_SECRET=" + secret,
		"HTTP_ADDR=" + web,
		"API_METRICS_ADDR=" + apiOps,
		"WORKER_METRICS_ADDR=" + workerOps,
		"SWEEP_METRICS_ADDR=" + sweepOps,
		"SHUTDOWN_TIMEOUT=3s",
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			<-exited
		}
		if t.Failed() {
			t.Logf("run-local.sh output (last 6000 bytes):\n%s", tail(log.String(), 6000))
		}
	})
	for _, addr := range []string{web, apiOps, workerOps, sweepOps} {
		testenv.Eventually(t, 60*time.Second, func() bool {
			select {
			case <-exited:
				t.Fatalf("run-local.sh exited at start:\n%s", log.String())
			default:
			}
			c, _ := get("http://" + addr + "/readyz")
			return c == http.StatusOK
		}, "%s/readyz 200", addr)
	}

	id := billingtest.NewEventID()
	body := billingtest.Event(id, "customer.created", time.Now(), billingtest.Customer("cus_"+id[4:], id+"@example.com"))
	if code := postSigned(&proc{addr: web}, body); code != http.StatusOK {
		t.Fatalf("POST /webhooks/stripe = %d, want 200", code)
	}
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var status string
	testenv.Eventually(t, 30*time.Second, func() bool {
		return db.QueryRow("SELECT status FROM stripe_events WHERE id = ?", id).Scan(&status) == nil && status == "processed"
	}, "event %s processed (status %q)", id, &status)
	var customers int
	if err := db.QueryRow("SELECT COUNT(*) FROM customers WHERE stripe_id = ?", "cus_"+id[4:]).Scan(&customers); err != nil || customers != 1 {
		t.Errorf("customers with the event's id: %d (%v), want 1", customers, err)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatal("run-local.sh did not exit within 30s of SIGTERM")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("run-local.sh exit code %d after SIGTERM, want 0", code)
	}
	for _, addr := range []string{web, apiOps, workerOps, sweepOps} {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the script exited", addr)
		}
	}
}
