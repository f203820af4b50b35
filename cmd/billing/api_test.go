package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/api"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/config"
	"github.com/stripe-billing/billing/internal/testenv"
)

const apiTestSecret = "whsec_cmd_test"

// apiTestEnv is a getenv over vars; nothing else is set.
func apiTestEnv(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestAPIRequiresWebhookSecret(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"api"}, apiTestEnv(nil), &stdout, &stderr)
	if !errors.Is(err, config.ErrMissingWebhookSecret) || !strings.Contains(err.Error(), "STRIPE_WEBHOOK_SECRET") {
		t.Fatalf("run api without a secret = %v, want an error naming STRIPE_WEBHOOK_SECRET", err)
	}
	if exitCode(err) != 1 {
		t.Errorf("exit code = %d, want 1", exitCode(err))
	}
}

func TestAPIHelp(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"api", "--help"}, apiTestEnv(nil), &stdout, &stderr); err != nil {
		t.Fatalf("run api --help = %v, want nil", err)
	}
	for _, want := range []string{"usage: billing api", "POST /webhooks/stripe", "STRIPE_WEBHOOK_SECRET"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("usage %q lacks %q", stdout.String(), want)
		}
	}
}

// TestAPIServesAndShutsDown runs the real subcommand: it must serve a
// signed event into the work queue, then stop cleanly on cancel.
func TestAPIServesAndShutsDown(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	testenv.Declare(t, broker.NewTopology(ns, []time.Duration{time.Second}, 0)) // startAPI's RETRY_DELAYS
	const shutdown = 2 * time.Second
	a := startAPI(t, map[string]string{
		"AMQP_URL":          testenv.AMQPURL(),
		"BILLING_NAMESPACE": ns,
		"SHUTDOWN_TIMEOUT":  shutdown.String(),
	})
	testenv.Eventually(t, 10*time.Second, func() bool { return a.get(t, "/readyz") == http.StatusOK },
		"api never became ready on %s", a.base)

	body := []byte(`{"id":"evt_cmd_1","object":"event","type":"invoice.paid","created":1700000000,"api_version":"2023-10-16","data":{"object":{"id":"in_1","object":"invoice"}}}`)
	resp, signature := a.post(t, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /webhooks/stripe = %d, want 200", resp.StatusCode)
	}

	ch := testenv.Channel(t)
	work := broker.NewTopology(ns, nil, 0).Work
	d, ok, err := ch.Get(work, true)
	if err != nil || !ok || !bytes.Equal(d.Body, body) || d.MessageId != "evt_cmd_1" {
		t.Fatalf("%s: got ok=%v err=%v body %q, want the posted event", work, ok, err, d.Body)
	}

	if code, _ := httpGet(a.base + "/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics on HTTP_ADDR = %d, want 404: metrics are on METRICS_ADDR only", code)
	}
	if code, body := httpGet(a.ops + "/metrics"); code != http.StatusOK ||
		!strings.Contains(body, `billing_webhooks_total{code="200",outcome="accepted"} 1`) ||
		!strings.Contains(body, "billing_publish_confirm_duration_seconds_count 1") {
		t.Errorf("GET /metrics = %d, want the accepted webhook and one publish counted:\n%s", code, body)
	}

	a.stop(t, shutdown+5*time.Second)
	logs := a.stderr.String()
	if strings.Contains(logs, apiTestSecret) || strings.Contains(logs, signature) {
		t.Error("logs contain the secret or the signature header")
	}
	if !strings.Contains(logs, `"event_id":"evt_cmd_1"`) {
		t.Errorf("no request log line with the event id in:\n%s", logs)
	}
}

// TestAPIStartsWithBrokerDown: the api must not wait for RabbitMQ; it
// serves, answers 503 to webhooks and to /readyz, and still stops cleanly.
func TestAPIStartsWithBrokerDown(t *testing.T) {
	t.Parallel()
	const shutdown = 2 * time.Second
	a := startAPI(t, map[string]string{
		"AMQP_URL":          "amqp://guest:guest@127.0.0.1:1/",
		"BILLING_NAMESPACE": testenv.Namespace(t),
		"SHUTDOWN_TIMEOUT":  shutdown.String(),
	})
	testenv.Eventually(t, 10*time.Second, func() bool { return a.get(t, "/healthz") == http.StatusOK },
		"api never served /healthz on %s", a.base)
	// The public /readyz says no more than "not ready"; which check failed
	// is on METRICS_ADDR, a word per check, the error in the log.
	if code, body := httpGet(a.base + "/readyz"); code != http.StatusServiceUnavailable || body != `{"error":"not ready"}`+"\n" {
		t.Errorf("public /readyz = %d %q, want 503 {\"error\":\"not ready\"} while the broker is down", code, body)
	}
	if code, body := httpGet(a.ops + "/readyz"); code != http.StatusServiceUnavailable || body != `{"broker":"down","publishing":"ok","server":"ok","status":"not ready"}`+"\n" {
		t.Errorf("METRICS_ADDR /readyz = %d %q, want 503 with broker down", code, body)
	}
	body := []byte(`{"id":"evt_cmd_2","object":"event","type":"invoice.paid","created":1700000000,"data":{"object":{"id":"in_1"}}}`)
	resp, _ := a.post(t, body)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Errorf("POST /webhooks/stripe = %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if _, body := httpGet(a.ops + "/metrics"); !strings.Contains(body, `billing_webhooks_total{code="503",outcome="unavailable"} 1`) {
		t.Errorf("/metrics does not count the 503:\n%s", body)
	}
	a.stop(t, shutdown+5*time.Second)
}

// runningAPI is `billing api` running in the background.
type runningAPI struct {
	*running
	base string // HTTP_ADDR
	ops  string // METRICS_ADDR
}

// startAPI runs `billing api` on a free port with vars (plus the secret
// and short retry delays) as its whole environment.
func startAPI(t *testing.T, vars map[string]string) *runningAPI {
	t.Helper()
	addr, opsAddr := testenv.FreeAddr(t), testenv.FreeAddr(t) // 127.0.0.1:0 would not tell us the ports
	env := map[string]string{
		"HTTP_ADDR":             addr,
		"METRICS_ADDR":          opsAddr,
		"STRIPE_WEBHOOK_SECRET": "whsec_old," + apiTestSecret,
		"RETRY_DELAYS":          "1s",
		"PUBLISH_TIMEOUT":       "2s",
	}
	for k, v := range vars {
		env[k] = v
	}
	return &runningAPI{running: start(t, apiTestEnv(env), "api"), base: "http://" + addr, ops: "http://" + opsAddr}
}

// get returns the status of GET path, 0 when the server does not answer;
// it fails the test when run has already returned.
func (a *runningAPI) get(t *testing.T, path string) int {
	t.Helper()
	a.alive(t)
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(a.base + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// post sends body signed with the test secret to the webhook endpoint and
// returns the response (its body closed) and the signature header.
func (a *runningAPI) post(t *testing.T, body []byte) (*http.Response, string) {
	t.Helper()
	resp, sig, err := a.send(body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, sig
}

// send is post for a goroutine other than the test's: it returns the error.
func (a *runningAPI) send(body []byte) (*http.Response, string, error) {
	signed := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: apiTestSecret})
	req, err := http.NewRequest(http.MethodPost, a.base+"/webhooks/stripe", bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", signed.Header)
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return nil, "", err
	}
	resp.Body.Close()
	return resp, signed.Header, nil
}

func TestTopologyCommand(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	var stdout, stderr bytes.Buffer
	getenv := apiTestEnv(map[string]string{"AMQP_URL": testenv.AMQPURL(), "BILLING_NAMESPACE": ns, "RETRY_DELAYS": "1s,1m"})
	for i := range 2 { // idempotent
		stdout.Reset()
		if err := run(context.Background(), []string{"topology", "--management-url", testenv.ManagementURL()}, getenv, &stdout, &stderr); err != nil {
			t.Fatalf("run topology #%d = %v", i+1, err)
		}
	}
	topo := broker.NewTopology(ns, []time.Duration{time.Second, time.Minute}, 0)
	for _, name := range append(topo.Exchanges(), topo.Queues()...) {
		if !strings.Contains(stdout.String(), " "+name+"\n") {
			t.Errorf("output lacks %s:\n%s", name, stdout.String())
		}
	}
	for _, q := range topo.Queues() {
		if _, err := testenv.QueueDepth(q); err != nil {
			t.Errorf("queue %s not declared: %v", q, err)
		}
	}
}

func TestTopologyCommandBrokerDown(t *testing.T) {
	t.Parallel()
	getenv := apiTestEnv(map[string]string{"AMQP_URL": "amqp://billing:s3cret@127.0.0.1:1/"})
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"topology"}, getenv, &stdout, &stderr)
	if err == nil {
		t.Fatal("run topology with the broker down = nil, want an error")
	}
	msg := err.Error()
	if !strings.Contains(msg, "AMQP_URL") || !strings.Contains(msg, "127.0.0.1:1") || strings.Contains(msg, "s3cret") {
		t.Errorf("error = %q, want one naming AMQP_URL and the address, without the password", msg)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
}

// The long-running commands only check the topology: on a namespace that
// `billing topology` never declared they stop and say what to run, and
// declare nothing.
func TestCommandsFailWithoutTopology(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"api"}, {"worker"}, {"dlq", "list"}} {
		t.Run(args[0], func(t *testing.T) {
			t.Parallel()
			ns := testenv.Namespace(t)
			getenv := apiTestEnv(map[string]string{
				"AMQP_URL": testenv.AMQPURL(), "BILLING_NAMESPACE": ns, "STRIPE_WEBHOOK_SECRET": apiTestSecret,
				"HTTP_ADDR": "127.0.0.1:0", "METRICS_ADDR": "127.0.0.1:0", "LOG_LEVEL": "error",
				"MYSQL_DSN": "root@tcp(127.0.0.1:1)/billing?parseTime=true&timeout=200ms",
			})
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			err := run(ctx, args, getenv, &stdout, &stderr)
			if !errors.Is(err, broker.ErrTopologyMissing) || !strings.Contains(err.Error(), ns+".events.work") ||
				!strings.Contains(err.Error(), "billing topology") {
				t.Fatalf("billing %s = %v, want ErrTopologyMissing naming %s.events.work and `billing topology`", strings.Join(args, " "), err, ns)
			}
			if _, err := testenv.QueueDepth(ns + ".events.work"); err == nil {
				t.Errorf("billing %s declared the work queue", args[0])
			}
		})
	}
}

// TestDevSecretWarning: every process that holds the webhook secret
// says so in its log when it is the development stack's (public) one;
// another secret draws no warning. The servers are unreachable and the
// context done: each command stops right after its start.
func TestDevSecretWarning(t *testing.T) {
	t.Parallel()
	// JSON from the services, plain text from reprocess: the message alone.
	const warning = `STRIPE_WEBHOOK_SECRET is the development secret`
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, cmd := range []string{"api", "worker", "sweep", "reprocess"} {
		for secret, warn := range map[string]bool{api.DevWebhookSecret: true, apiTestSecret + "," + api.DevWebhookSecret: true, apiTestSecret: false} {
			t.Run(cmd+"/"+secret, func(t *testing.T) {
				t.Parallel()
				var stdout, stderr bytes.Buffer
				_ = run(ctx, []string{cmd}, apiTestEnv(map[string]string{
					"AMQP_URL":              "amqp://guest:guest@127.0.0.1:1/",
					"MYSQL_DSN":             "nobody:pw@tcp(127.0.0.1:1)/billing?parseTime=true",
					"HTTP_ADDR":             "127.0.0.1:0",
					"METRICS_ADDR":          "127.0.0.1:0",
					"STRIPE_WEBHOOK_SECRET": secret,
				}), &stdout, &stderr)
				want := 0
				if warn {
					want = 1
				}
				if got := strings.Count(stderr.String(), warning); got != want {
					t.Errorf("billing %s with %s: %d warnings, want %d; log:\n%s", cmd, secret, got, want, stderr.String())
				}
			})
		}
	}
}

// TestAPIKeepsTheAMQPPasswordOutOfItsLog: a password with a bad percent
// escape is refused at start by variable name; a good one, on a broker
// that refuses the connection, never shows in the reconnect warnings.
func TestAPIKeepsTheAMQPPasswordOutOfItsLog(t *testing.T) {
	t.Parallel()
	t.Run("unparsable", func(t *testing.T) {
		t.Parallel()
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), []string{"api"}, apiTestEnv(map[string]string{
			"AMQP_URL": "amqp://billing:hunter%zz2@127.0.0.1:1/", "STRIPE_WEBHOOK_SECRET": apiTestSecret,
		}), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), "AMQP_URL") {
			t.Fatalf("run api = %v, want an error naming AMQP_URL", err)
		}
		if out := err.Error() + stdout.String() + stderr.String(); strings.Contains(out, "hunter") || strings.Contains(out, "%zz") {
			t.Errorf("error or output shows the password: %s", out)
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		a := startAPI(t, map[string]string{
			"AMQP_URL":          "amqp://billing:hunter%252@127.0.0.1:1/", // the password is hunter%2
			"BILLING_NAMESPACE": testenv.Namespace(t),
		})
		testenv.Eventually(t, 10*time.Second, func() bool {
			a.alive(t)
			return strings.Count(a.stderr.String(), `"msg":"broker connect failed"`) >= 2
		}, "the api never retried its connection")
		a.stop(t, 5*time.Second)
		if logs := a.stderr.String(); strings.Contains(logs, "hunter") {
			t.Errorf("log shows the password:\n%s", logs)
		}
	})
}
