package bench_test

import (
	"context"
	"encoding/json"

	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/simulate"
)

type e2eConfig struct {
	Duration time.Duration
	Rate     float64
	Burst    int
}

type e2eResult struct {
	e2eConfig
	Events            int
	P50, P99          time.Duration
	APIRSS, WorkerRSS float64 // MiB
}

// accepted records, per event id, when the api's first 2xx for it
// arrived at the client.
type accepted struct {
	next http.RoundTripper
	mu   sync.Mutex
	at   map[string]time.Time
}

func (a *accepted) RoundTrip(req *http.Request) (*http.Response, error) {
	var ev struct {
		ID string `json:"id"`
	}
	if req.GetBody != nil {
		if b, err := req.GetBody(); err == nil {
			_ = json.NewDecoder(b).Decode(&ev)
		}
	}
	resp, err := a.next.RoundTrip(req)
	if err == nil && resp.StatusCode/100 == 2 && ev.ID != "" {
		now := time.Now()
		a.mu.Lock()
		if _, ok := a.at[ev.ID]; !ok {
			a.at[ev.ID] = now
		}
		a.mu.Unlock()
	}
	return resp, err
}

// process is one started subcommand of the built binary.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

// start runs `billing <sub>` with env on top of the environment; stderr
// goes to the test log when it fails.
func start(t *testing.T, bin, sub string, env ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, sub)
	cmd.Env = append(os.Environ(), env...)
	logf, err := os.Create(filepath.Join(t.TempDir(), sub+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{name: sub, cmd: cmd, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait(); logf.Close() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("billing %s: %v", sub, err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("billing %s did not stop within 30s of SIGTERM", sub)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("billing %s log:\n%s", sub, tail(string(b), 4000))
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// peakRSS reads VmHWM, the process's peak resident set, in MiB.
func (p *process) peakRSS(t *testing.T) float64 {
	t.Helper()
	return testenv.ProcStatusMiB(t, p.cmd.Process.Pid, "VmHWM")
}

// endToEnd builds the binary, runs `billing api` and `billing worker` on
// a fresh namespace and database, drives them with the simulate engine at
// cfg.Rate for cfg.Duration and then with a burst at concurrency 64, and
// measures the time from each event's 2xx to its processed_at, and both
// processes' peak RSS.
func endToEnd(t *testing.T, cfg e2eConfig) e2eResult {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "billing")
	build := exec.Command("go", "build", "-o", bin, "github.com/stripe-billing/billing/cmd/billing")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ns := testenv.Namespace(t)
	dsn := testenv.Database(t)
	apiAddr := testenv.FreeAddr(t)
	common := []string{"AMQP_URL=" + testenv.AMQPURL(), "BILLING_NAMESPACE=" + ns, "LOG_LEVEL=warn", "MYSQL_DSN=" + dsn}
	topology := exec.Command(bin, "topology") // as docker-compose does, once before the others
	topology.Env = common
	if out, err := topology.CombinedOutput(); err != nil {
		t.Fatalf("billing topology: %v\n%s", err, out)
	}
	apiProc := start(t, bin, "api", append(common, "HTTP_ADDR="+apiAddr, "METRICS_ADDR="+testenv.FreeAddr(t), "STRIPE_WEBHOOK_SECRET="+secret)...)
	workerProc := start(t, bin, "worker", append(common, "METRICS_ADDR="+testenv.FreeAddr(t), "STRIPE_WEBHOOK_SECRET="+secret)...)

	awaitReady(t, apiAddr)
	testenv.Eventually(t, 30*time.Second, func() bool {
		var q struct {
			Consumers int `json:"consumers"`
		}
		err := testenv.Management(http.MethodGet, "/api/queues/%2F/"+url.PathEscape(ns+".events.work"), nil, &q)
		return err == nil && q.Consumers > 0
	}, "worker consuming")

	rec := &accepted{next: httpClient(64).Transport, at: map[string]time.Time{}}
	client := &http.Client{Transport: rec, Timeout: 30 * time.Second}
	hook := "http://" + apiAddr + "/webhooks/stripe"
	steady := simulate.Config{
		URL: hook, Secret: secret, Count: int(cfg.Rate * cfg.Duration.Seconds()), Rate: cfg.Rate, Concurrency: 16,
		OutOfOrderRatio: 0.05, Seed: 1, // Start: by default, ends before now
	}
	sum, err := simulate.Run(context.Background(), steady, client)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Failed() {
		t.Fatalf("steady run: the api did not answer 2xx to everything: %+v", sum)
	}
	rec.mu.Lock()
	steadyIDs := make(map[string]time.Time, len(rec.at))
	for id, at := range rec.at {
		steadyIDs[id] = at
	}
	rec.mu.Unlock()

	burst := simulate.Config{
		URL: hook, Secret: secret, Count: cfg.Burst, Concurrency: 64,
		// Other objects than the steady run's, created in the past too: the
		// api refuses events created in the future.
		OutOfOrderRatio: 0.05, Seed: 2, Start: time.Now().Add(-48 * time.Hour).Truncate(time.Second),
	}
	if sum, err := simulate.Run(context.Background(), burst, client); err != nil || sum.Failed() {
		t.Fatalf("burst: %v %+v", err, sum)
	}

	store := openStore(t, dsn, settings(t))
	rec.mu.Lock()
	want := int64(len(rec.at))
	rec.mu.Unlock()
	var done int64
	testenv.Eventually(t, 5*time.Minute, func() bool {
		err := store.DB().Model(&models.StripeEvent{}).Where("status IN ?", []string{models.EventProcessed, models.EventIgnored}).Count(&done).Error
		return err == nil && done >= want
	}, "all %d accepted events processed", want)

	res := e2eResult{e2eConfig: cfg, Events: len(steadyIDs), APIRSS: apiProc.peakRSS(t), WorkerRSS: workerProc.peakRSS(t)}
	ids := make([]string, 0, len(steadyIDs))
	for id := range steadyIDs {
		ids = append(ids, id)
	}
	var lat []time.Duration
	for start := 0; start < len(ids); start += 500 {
		var rows []models.StripeEvent
		err := store.DB().Select("id", "processed_at").Where("id IN ?", ids[start:min(start+500, len(ids))]).Find(&rows).Error
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.ProcessedAt == nil {
				t.Fatalf("event %s has no processed_at", r.ID)
			}
			lat = append(lat, r.ProcessedAt.Sub(steadyIDs[r.ID]))
		}
	}
	if len(lat) != len(ids) {
		t.Fatalf("%d of %d accepted events have a ledger row", len(lat), len(ids))
	}
	res.P50, res.P99 = bench.Percentile(lat, .5), bench.Percentile(lat, .99)
	return res
}

func nproc() int { return runtime.NumCPU() }

func goVersion() string { return runtime.Version() }

// awaitReady waits until the api at addr answers /readyz with 200.
func awaitReady(t *testing.T, addr string) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, "api ready")
}
