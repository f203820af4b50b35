package metrics_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/stripe-billing/billing/metrics"
)

// The alert rules and their unit tests, and the dashboards, relative to
// this package.
const (
	alertsFile     = "../deploy/prometheus/alerts.yml"
	alertTestsFile = "../deploy/prometheus/alerts_test.yml"
	dashboardGlob  = "../deploy/grafana/dashboards/*.json"
)

// external are the series a rule or panel may use that our processes do not
// export: Prometheus's own and rabbitmq_prometheus's (per-object metrics).
var external = []string{
	"up",
	"rabbitmq_queue_consumers",
	"rabbitmq_queue_messages_ready",
	"rabbitmq_queue_messages_unacked",
}

// TestAlertRules runs promtool's unit tests of every alert.
func TestAlertRules(t *testing.T) {
	t.Parallel()
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; .ci/run installs it): alert rules not evaluated")
	}
	out, err := exec.Command(promtool, "test", "rules", alertTestsFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules %s: %v\n%s", alertTestsFile, err, out)
	}
}

// TestAlertRulesEachTested checks that the unit tests make every alert of
// alerts.yml both fire and stay quiet at least once.
func TestAlertRulesEachTested(t *testing.T) {
	t.Parallel()
	var tests struct {
		Tests []struct {
			Name      string `yaml:"name"`
			AlertRule []struct {
				AlertName string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, alertTestsFile, &tests)
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRule {
			if len(a.ExpAlerts) > 0 {
				fires[a.AlertName] = true
			} else {
				quiet[a.AlertName] = true
			}
		}
	}
	rules := alertRules(t)
	if len(rules) == 0 {
		t.Fatalf("%s has no alerts", alertsFile)
	}
	for name := range rules {
		if !fires[name] || !quiet[name] {
			t.Errorf("alert %s: tested firing %v, tested quiet %v; want both", name, fires[name], quiet[name])
		}
	}
}

// TestQueriesUseRegisteredMetrics checks that every series a rule or a
// dashboard panel reads is one the processes register (or an external one):
// a renamed metric must not leave an alert that can never fire.
func TestQueriesUseRegisteredMetrics(t *testing.T) {
	t.Parallel()
	known := registeredNames(t)
	for _, n := range external {
		known[n] = true
	}
	queries := map[string]string{}
	for name, expr := range alertRules(t) {
		queries["alert "+name] = expr
	}
	for where, expr := range dashboardQueries(t) {
		queries[where] = expr
	}
	for where, expr := range queries {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric found in %q", where, expr)
		}
		for _, n := range names {
			if !known[n] {
				t.Errorf("%s: %s is registered by no process (expr %q)", where, n, expr)
			}
		}
	}
}

func TestMetricNames(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		`max by (queue) (billing_queue_messages{queue=~".*\\.events\\.dlq"}) > 0`:                           {"billing_queue_messages"},
		`absent(up{job="billing-worker"} == 1)`:                                                             {"up"},
		`histogram_quantile(0.99, sum by (le) (rate(billing_x_bucket[$__rate_interval]))) > 6 * 3600 + 1e3`: {"billing_x_bucket"},
		`max(a_total) > on() group_left(b) sum without (instance) (c)`:                                      {"a_total", "c"},
	}
	for expr, want := range tests {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %v, want %v", expr, got, want)
		}
	}
}

// registeredNames returns every series name the api, worker and sweep
// export: their registries are metrics.NewRegistry with metrics.New.
func registeredNames(t *testing.T) map[string]bool {
	t.Helper()
	reg := metrics.NewRegistry()
	rec := &describer{Registerer: reg}
	metrics.New(rec)
	names := map[string]bool{}
	for _, n := range rec.names {
		// A histogram's series; harmless extra names for the others.
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			names[n+suffix] = true
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		names[f.GetName()] = true
	}
	return names
}

// describer records the name of every collector registered through it,
// those of vectors without series included.
type describer struct {
	prometheus.Registerer
	names []string
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 8)
		go func() { c.Describe(ch); close(ch) }()
		for desc := range ch {
			if m := fqName.FindStringSubmatch(desc.String()); m != nil {
				d.names = append(d.names, m[1])
			}
		}
	}
	d.Registerer.MustRegister(cs...)
}

// alertRules returns the expression of every alert, by name.
func alertRules(t *testing.T) map[string]string {
	t.Helper()
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	readYAML(t, alertsFile, &file)
	out := map[string]string{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			out[r.Alert] = r.Expr
		}
	}
	return out
}

// dashboardQueries returns every panel target's expression, keyed by
// dashboard file and panel title.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(dashboardGlob)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range files {
		for _, p := range readDashboard(t, f).Panels {
			for i, target := range p.Targets {
				out[filepath.Base(f)+" panel "+p.Title+" #"+string(rune('A'+i))] = target.Expr
			}
		}
	}
	return out
}

// TestDashboardScopedByNamespace: the dashboards have a namespace
// variable and every query reads only that namespace's series: each
// billing_* selector names namespace="$namespace" (the label prometheus.yml
// gives each billing job's targets), each of RabbitMQ's its queue under
// $namespace.
func TestDashboardScopedByNamespace(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(dashboardGlob)
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	for _, f := range files {
		if d := readDashboard(t, f); !slices.ContainsFunc(d.Templating.List, func(v variable) bool {
			return v.Name == "namespace" && strings.Contains(v.Definition, "namespace")
		}) {
			t.Errorf("%s has no namespace variable", f)
		}
	}
	selector := regexp.MustCompile(`\b((?:billing|rabbitmq)_[a-z_]+)(\{[^}]*\})?`)
	for where, expr := range dashboardQueries(t) {
		for _, m := range selector.FindAllStringSubmatch(expr, -1) {
			want := `namespace="$namespace"`
			if strings.HasPrefix(m[1], "rabbitmq_") {
				want = `queue="$namespace.`
			}
			if !strings.Contains(m[2], want) {
				t.Errorf("%s: %s%s is not scoped by the namespace (want %s)", where, m[1], m[2], want)
			}
		}
	}
}

// variable is a dashboard's template variable.
type variable struct {
	Name       string `json:"name"`
	Definition string `json:"definition"`
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	Title      string `json:"title"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func readDashboard(t *testing.T, path string) dashboard {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return d
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

var (
	// What in PromQL is not a metric name: strings, label matchers, ranges,
	// grouping labels, Grafana variables and numbers.
	promqlNoise = []*regexp.Regexp{
		regexp.MustCompile(`"(?:[^"\\]|\\.)*"`),
		regexp.MustCompile(`\{[^}]*\}`),
		regexp.MustCompile(`\[[^\]]*\]`),
		regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`),
		regexp.MustCompile(`\$\w+`),
		regexp.MustCompile(`\b\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b`),
	}
	promqlIdent = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	promqlWords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "inf": true, "nan": true}
)

// metricNames returns the metric names expr reads, in order of appearance:
// identifiers that are not functions (followed by "("), keywords or labels.
func metricNames(expr string) []string {
	for _, re := range promqlNoise {
		expr = re.ReplaceAllString(expr, " ")
	}
	var names []string
	for _, m := range promqlIdent.FindAllStringSubmatch(expr, -1) {
		name := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(m[0]), "("))
		if m[1] != "" || promqlWords[strings.ToLower(name)] || slices.Contains(names, name) {
			continue
		}
		names = append(names, name)
	}
	return names
}
