package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
)

// The project's scrape config and dashboards, relative to this package.
const (
	scrapeConfigFile = "../../deploy/prometheus/prometheus.yml"
	dashboardsGlob   = "../../deploy/grafana/dashboards/*.json"
)

// TestDashboardQueries runs Debian's Prometheus with the project's scrape
// config, its targets rewritten to a live api, worker and sweep of this
// test, and checks that every query of every dashboard returns data: a
// renamed metric, a wrong label or a job missing from the scrape config
// leaves a panel empty.
func TestDashboardQueries(t *testing.T) {
	t.Parallel()
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus; .ci/run installs it): dashboard queries not run")
	}
	ns := testenv.Namespace(t)
	testenv.Declare(t, broker.NewTopology(ns, []time.Duration{time.Second}, 20))
	dsn := testenv.Database(t)
	common := map[string]string{"AMQP_URL": testenv.AMQPURL(), "BILLING_NAMESPACE": ns, "LOG_LEVEL": "warn", "RETRY_DELAYS": "1s"}
	with := func(vars map[string]string) func(string) string {
		for k, v := range common {
			vars[k] = v
		}
		return workerEnv(vars)
	}
	api := startAPI(t, common)
	workerAddr, sweepAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	worker := start(t, with(map[string]string{"MYSQL_DSN": dsn, "METRICS_ADDR": workerAddr, "STRIPE_WEBHOOK_SECRET": apiTestSecret}), "worker")
	sweep := start(t, with(map[string]string{"MYSQL_DSN": dsn, "METRICS_ADDR": sweepAddr}), "sweep", "--every", "1s")

	targets := map[string]string{
		"billing-api":    strings.TrimPrefix(api.ops, "http://"),
		"billing-worker": workerAddr,
		"billing-sweep":  sweepAddr,
	}
	rabbit, rabbitPrometheus := true, testenv.RabbitPrometheusAddr()
	if code, _ := httpGet("http://" + rabbitPrometheus + "/metrics"); code != http.StatusOK {
		rabbit = false
		t.Logf("RabbitMQ's prometheus plugin does not answer on %s: the rabbitmq job and its panels are not checked", rabbitPrometheus)
	} else {
		targets["rabbitmq"] = rabbitPrometheus
	}
	prom := startPrometheus(t, promBin, targets, ns)

	// Webhooks all along, so that every rate and latency has samples.
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go func() {
		for i := 0; ctx.Err() == nil; i++ {
			id := fmt.Sprintf("evt_Dash%d", i)
			body := billingtest.Event(id, "customer.created", time.Now(), billingtest.Customer("cus_"+id, id+"@example.com"))
			_, _, _ = api.send(body) // a failure shows as an empty webhook panel
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	queries := dashboardExprs(t, ns)
	empty := map[string]string{}
	testenv.Eventually(t, 30*time.Second, func() bool {
		api.alive(t)
		worker.alive(t)
		sweep.alive(t)
		clear(empty)
		for where, expr := range queries {
			if !rabbit && strings.Contains(expr, "rabbitmq_") {
				continue
			}
			if n := prom.series(t, expr); n == 0 {
				empty[where] = expr
			}
		}
		return len(empty) == 0
	}, "every dashboard query to return data; still empty: %v", empty)
}

// dashboardExprs returns every target's expression of every dashboard, by
// dashboard, panel and refId, with Grafana's range variables made concrete
// for a 1s scrape interval and the namespace variable set to namespace.
func dashboardExprs(t *testing.T, namespace string) map[string]string {
	t.Helper()
	files, err := filepath.Glob(dashboardsGlob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards at %s: %v", dashboardsGlob, err)
	}
	out := map[string]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					RefID string `json:"refId"`
					Expr  string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				out[filepath.Base(f)+": "+p.Title+" "+tg.RefID] = strings.NewReplacer("$__rate_interval", "10s", "$namespace", namespace).Replace(tg.Expr)
			}
		}
	}
	return out
}

// prometheus is a Prometheus server of one test.
type prometheus struct{ base string }

// startPrometheus runs prom with the project's scrape config, each job's
// targets replaced by targets[job] (a job not in targets is dropped) and a
// 1s scrape interval, until the test ends. The namespace label the config
// gives each billing job is ns.
func startPrometheus(t *testing.T, prom string, targets map[string]string, ns string) prometheus {
	t.Helper()
	b, err := os.ReadFile(scrapeConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("%s: %v", scrapeConfigFile, err)
	}
	cfg["global"] = map[string]any{"scrape_interval": "1s", "evaluation_interval": "1s"}
	abs, err := filepath.Abs(filepath.Dir(scrapeConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var rules []any
	for _, r := range cfg["rule_files"].([]any) {
		rules = append(rules, filepath.Join(abs, fmt.Sprint(r)))
	}
	cfg["rule_files"] = rules
	var jobs []any
	seen := map[string]bool{}
	for _, j := range cfg["scrape_configs"].([]any) {
		job := j.(map[string]any)
		name := fmt.Sprint(job["job_name"])
		seen[name] = true
		if addr, ok := targets[name]; ok {
			job["static_configs"] = []any{map[string]any{"targets": []any{addr}}}
			if rules, ok := job["relabel_configs"].([]any); ok {
				for _, r := range rules {
					if rule := r.(map[string]any); rule["target_label"] == "namespace" {
						rule["replacement"] = ns
					}
				}
			}
			delete(job, "dns_sd_configs") // the compose replicas' names
			jobs = append(jobs, job)
		}
	}
	for name := range targets {
		if !seen[name] {
			t.Fatalf("%s has no job %s", scrapeConfigFile, name)
		}
	}
	cfg["scrape_configs"] = jobs
	dir := t.TempDir()
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	var log testenv.SyncBuffer
	cmd := exec.Command(prom, "--config.file="+file, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	p := prometheus{base: "http://" + addr}
	testenv.Eventually(t, 20*time.Second, func() bool {
		code, _ := httpGet(p.base + "/-/ready")
		return code == http.StatusOK
	}, "prometheus ready (log: %s)", log.String())
	return p
}

// series returns how many series expr yields now.
func (p prometheus) series(t *testing.T, expr string) int {
	t.Helper()
	code, body := httpGet(p.base + "/api/v1/query?query=" + url.QueryEscape(expr))
	if code != http.StatusOK {
		t.Fatalf("query %q: %d %s", expr, code, body)
	}
	var res struct {
		Data struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil {
		t.Fatalf("query %q: %v", expr, err)
	}
	return len(res.Data.Result)
}
