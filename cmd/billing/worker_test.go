package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/retry"
)

func workerEnv(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestWorkerHelp(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"worker", "--help"}, workerEnv(nil), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v", err)
	}
	if !strings.HasPrefix(stdout.String(), "usage: billing worker") || !strings.Contains(stdout.String(), "SHUTDOWN_TIMEOUT") {
		t.Errorf("stdout = %q, want the worker's usage", stdout.String())
	}
}

func TestWorkerRejectsBadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		vars map[string]string
		want string
	}{
		{"zero attempts", map[string]string{"MAX_ATTEMPTS": "0"}, "MAX_ATTEMPTS"},
		{"bad delays", map[string]string{"RETRY_DELAYS": "10s,soon"}, "RETRY_DELAYS"},
		{"bad concurrency", map[string]string{"WORKER_CONCURRENCY": "-1"}, "WORKER_CONCURRENCY"},
		// Without the webhook secret nothing could be verified.
		{"no webhook secret", map[string]string{}, "STRIPE_WEBHOOK_SECRET"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := run(ctx, []string{"worker"}, workerEnv(tt.vars), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run = %v, want an error naming %s", err, tt.want)
			}
		})
	}
}

func TestWorkerAppliesAnEventAndStopsOnCancel(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	topo := testenv.Declare(t, broker.NewTopology(ns, []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}, 20))
	dsn := testenv.Database(t)
	vars := map[string]string{
		"AMQP_URL":           testenv.AMQPURL(),
		"MYSQL_DSN":          dsn,
		"BILLING_NAMESPACE":  ns,
		"RETRY_DELAYS":       "50ms,100ms",
		"MAX_ATTEMPTS":       "3",
		"WORKER_CONCURRENCY": "2",
		"SHUTDOWN_TIMEOUT":   "2s",
		"LOG_LEVEL":          "info",
		"METRICS_ADDR":       "127.0.0.1:0",
		// No STRIPE_API_KEY: what is not signed is parked unverified.
		"STRIPE_WEBHOOK_SECRET": testenv.WebhookSecret,
	}
	worker := start(t, workerEnv(vars), "worker")
	stderr := &worker.stderr

	ch := testenv.Channel(t)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	body := billingtest.Event("evt_WorkerCmd1", "customer.created", time.Now(), billingtest.Customer("cus_WorkerCmd1", "a@example.com"))
	publishConfirmed(t, ch, topo.Events, "customer.created", testenv.Signed(amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: "evt_WorkerCmd1", Type: "customer.created", Body: body,
	}))

	store := testenv.StoreAt(t, dsn)
	testenv.Eventually(t, 10*time.Second, func() bool {
		var ev models.StripeEvent
		var c models.Customer
		_ = store.DB().Where("id = ?", "evt_WorkerCmd1").Take(&ev).Error
		_ = store.DB().Where("stripe_id = ?", "cus_WorkerCmd1").Take(&c).Error
		return ev.Status == models.EventProcessed && c.Email != nil && *c.Email == "a@example.com"
	}, "event applied to MySQL (worker log: %s)", stderr.String())

	base := "http://" + metricsAddr(t, stderr)
	testenv.Eventually(t, 5*time.Second, func() bool { code, _ := httpGet(base + "/readyz"); return code == 200 }, "/readyz 200")
	testenv.Eventually(t, 10*time.Second, func() bool {
		code, body := httpGet(base + "/metrics")
		return code == 200 &&
			strings.Contains(body, `billing_events_processed_total{outcome="processed",type="customer.created"} 1`) &&
			strings.Contains(body, `billing_queue_messages{queue="`+topo.DLQ+`"} 0`) &&
			strings.Contains(body, "billing_build_info{") &&
			metricValue(body, "billing_oldest_parked_event_age_seconds") == 0
	}, "/metrics counts the event and polls the queue depths")

	// A signed event whose invoice lacks what its handler needs is
	// parked (schema): the ledger's oldest dead event shows.
	publishConfirmed(t, ch, topo.Events, "invoice.paid", testenv.Signed(amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: "evt_WorkerBad", Type: "invoice.paid",
		Body: fmt.Appendf(nil, `{"id":"evt_WorkerBad","object":"event","type":"invoice.paid","created":%d,"data":{"object":{"id":"in_1","object":"invoice"}}}`, time.Now().Unix()),
	}))
	testenv.Eventually(t, 15*time.Second, func() bool {
		_, body := httpGet(base + "/metrics")
		return metricValue(body, `billing_events_parked_total{class="schema"}`) == 1 &&
			metricValue(body, "billing_oldest_parked_event_age_seconds") > 0
	}, "/metrics shows the parked event and its age")

	// An unsigned event (a hand-made publish) is parked unverified, and
	// counted by reason.
	forged := billingtest.Event("evt_WorkerForged", "customer.created", time.Now(), billingtest.Customer("cus_WorkerForged", "f@example.com"))
	publishConfirmed(t, ch, topo.Events, "customer.created", amqp.Publishing{DeliveryMode: amqp.Persistent, Body: forged})
	testenv.Eventually(t, 15*time.Second, func() bool {
		_, body := httpGet(base + "/metrics")
		return metricValue(body, `billing_events_parked_total{class="unverified"}`) == 1 &&
			metricValue(body, `billing_events_unverified_total{reason="no_api_key"}`) == 1
	}, "/metrics counts the unverified event")
	var n int64
	if err := store.DB().Model(&models.Customer{}).Where("stripe_id = ?", "cus_WorkerForged").Count(&n).Error; err != nil || n != 0 {
		t.Errorf("forged customer rows = %d, %v; want none", n, err)
	}

	worker.stop(t, 5*time.Second)
}

func TestWorkerStartsWhileMySQLIsDown(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	testenv.Declare(t, broker.NewTopology(ns, retry.DefaultDelays(), 0))
	vars := map[string]string{
		"AMQP_URL":              testenv.AMQPURL(),
		"MYSQL_DSN":             "root@tcp(127.0.0.1:1)/billing?parseTime=true&timeout=200ms",
		"BILLING_NAMESPACE":     ns,
		"LOG_LEVEL":             "info",
		"METRICS_ADDR":          "127.0.0.1:0",
		"STRIPE_WEBHOOK_SECRET": testenv.WebhookSecret,
	}
	worker := start(t, workerEnv(vars), "worker")
	stderr := &worker.stderr
	testenv.Eventually(t, 5*time.Second, func() bool {
		return strings.Contains(stderr.String(), "database unavailable")
	}, "the worker reports it waits for the database")
	base := "http://" + metricsAddr(t, stderr)
	if code, _ := httpGet(base + "/healthz"); code != 200 {
		t.Errorf("/healthz = %d while MySQL is down, want 200 (alive)", code)
	}
	// Once the broker connections are up, the database is what is missing.
	testenv.Eventually(t, 5*time.Second, func() bool {
		code, body := httpGet(base + "/readyz")
		return code == 503 && strings.Contains(body, `"database":"down"`) && !strings.Contains(body, "refused")
	}, "/readyz 503 naming the database while MySQL is down")
	worker.alive(t)
	worker.stop(t, 5*time.Second)
}

// metricsAddr waits for the worker's "metrics listening" log line and
// returns the address it names (METRICS_ADDR 127.0.0.1:0 picks a port).
func metricsAddr(t *testing.T, log *testenv.SyncBuffer) string {
	t.Helper()
	var addr string
	testenv.Eventually(t, 5*time.Second, func() bool {
		for _, line := range strings.Split(log.String(), "\n") {
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "metrics listening" {
				addr = rec.Addr
				return true
			}
		}
		return false
	}, "the worker logs its metrics address")
	return addr
}

func httpGet(url string) (int, string) {
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// publishConfirmed publishes msg mandatory and waits for its confirm.
func publishConfirmed(t *testing.T, ch *amqp.Channel, exchange, key string, msg amqp.Publishing) {
	t.Helper()
	dc, err := ch.PublishWithDeferredConfirm(exchange, key, true, false, msg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(t.Context()); !ok || err != nil {
		t.Fatalf("publish not confirmed: %v %v", ok, err)
	}
}
