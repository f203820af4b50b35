package config_test

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"gopkg.in/yaml.v3"

	"github.com/stripe-billing/billing/api"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/config"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

// stack is everything the compose checks read, parsed afresh for each case
// so that a case may break its own copy.
type stack struct {
	top          map[string]any            // docker-compose.yml, top level
	services     map[string]map[string]any // merge keys (<<) resolved by yaml.v3
	plugins      string                    // deploy/rabbitmq/enabled_plugins
	dockerfile   string
	dockerignore string
	depsUp       string // scripts/deps-up.sh, which `make test` uses
	rabbitConf   string // deploy/rabbitmq/rabbitmq.conf
	clusterConf  string // deploy/rabbitmq/cluster.conf, the cluster profile's
	definitions  definitions
	mysqlInit    string // deploy/mysql/init/01-users.sql
	mysqlGrants  string // deploy/mysql/grants.sql, run by compose's grants
	prometheus   string // deploy/prometheus/prometheus.yml
	grafanaDash  string // deploy/grafana/provisioning/dashboards/billing.yml
	grafanaData  string // deploy/grafana/provisioning/datasources/prometheus.yml
	haproxy      string // deploy/haproxy/haproxy.cfg
}

// definitions is deploy/rabbitmq/definitions.json, the parts compose uses.
type definitions struct {
	Users []struct {
		Name     string `json:"name"`
		Password string `json:"password"`
		Tags     string `json:"tags"`
	} `json:"users"`
	Permissions []struct {
		User      string `json:"user"`
		Vhost     string `json:"vhost"`
		Configure string `json:"configure"`
		Write     string `json:"write"`
		Read      string `json:"read"`
	} `json:"permissions"`
}

// rabbitRoles is the RabbitMQ role of each billing service (migrate has
// no broker user); the user is billing-<role>.
var rabbitRoles = map[string]broker.Role{
	"topology": broker.RoleTopology, "api": broker.RoleAPI, "worker": broker.RoleWorker, "sweep": broker.RoleSweep,
	"relay": broker.RoleRelay, "notify": broker.RoleNotify,
}

// mysqlRoles is the models.Grants role of each service's MySQL user, which
// is billing_<role> (api and topology have none).
var mysqlRoles = map[string]string{"migrate": "migrate", "worker": "worker", "sweep": "sweep", "relay": "relay", "notify": "notify"}

// billingServices run the image built from the Dockerfile.
var billingServices = []string{"api", "migrate", "notify", "relay", "sweep", "topology", "worker"}

func loadStack(t *testing.T) *stack {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	s := &stack{
		plugins:      string(read("deploy/rabbitmq/enabled_plugins")),
		dockerfile:   string(read("Dockerfile")),
		dockerignore: string(read(".dockerignore")),
		depsUp:       string(read("scripts/deps-up.sh")),
		rabbitConf:   string(read("deploy/rabbitmq/rabbitmq.conf")),
		clusterConf:  string(read("deploy/rabbitmq/cluster.conf")),
		mysqlInit:    string(read("deploy/mysql/init/01-users.sql")),
		mysqlGrants:  string(read("deploy/mysql/grants.sql")),
		prometheus:   string(read("deploy/prometheus/prometheus.yml")),
		grafanaDash:  string(read("deploy/grafana/provisioning/dashboards/billing.yml")),
		grafanaData:  string(read("deploy/grafana/provisioning/datasources/prometheus.yml")),
		haproxy:      string(read(testenv.HAProxyConfigFile)),
	}
	if err := json.Unmarshal(read("deploy/rabbitmq/definitions.json"), &s.definitions); err != nil {
		t.Fatalf("deploy/rabbitmq/definitions.json: %v", err)
	}
	if err := yaml.Unmarshal(read("docker-compose.yml"), &s.top); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	services, ok := s.top["services"].(map[string]any)
	if !ok {
		t.Fatal("docker-compose.yml: no services")
	}
	s.services = map[string]map[string]any{}
	for name, v := range services {
		svc, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("docker-compose.yml: service %s is not a mapping", name)
		}
		s.services[name] = svc
	}
	return s
}

// env returns a service's environment as written (map or KEY=VALUE list).
func (s *stack) env(service string) map[string]string {
	out := map[string]string{}
	switch e := s.services[service]["environment"].(type) {
	case map[string]any:
		for k, v := range e {
			if v == nil {
				v = ""
			}
			out[k] = fmt.Sprint(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(fmt.Sprint(kv), "=")
			out[k] = v
		}
	}
	return out
}

var interpolation = regexp.MustCompile(`\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}`)

// expandedEnv is env with compose interpolation applied as on a host where
// no variable is set: ${X:-default} becomes default, ${X} nothing, $$ a $.
func (s *stack) expandedEnv(service string) map[string]string {
	out := s.env(service)
	for k, v := range out {
		out[k] = interpolation.ReplaceAllStringFunc(v, func(m string) string {
			if m == "$$" {
				return "$"
			}
			return interpolation.FindStringSubmatch(m)[2]
		})
	}
	return out
}

func (s *stack) set(service, key string, value any) {
	env, ok := s.services[service]["environment"].(map[string]any)
	if !ok {
		env = map[string]any{}
	}
	// Copy: services that share an anchor share the map.
	cp := map[string]any{}
	for k, v := range env {
		cp[k] = v
	}
	if value == nil {
		delete(cp, key)
	} else {
		cp[key] = value
	}
	s.services[service]["environment"] = cp
}

func strs(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		out := make([]string, len(v))
		for i, x := range v {
			out[i] = fmt.Sprint(x)
		}
		return out
	}
	return nil
}

// dependsOn returns target → condition of a service's long-form depends_on.
func (s *stack) dependsOn(service string) map[string]string {
	out := map[string]string{}
	switch d := s.services[service]["depends_on"].(type) {
	case map[string]any:
		for target, v := range d {
			cond, _ := v.(map[string]any)["condition"].(string)
			out[target] = cond
		}
	case []any:
		for _, target := range d {
			out[fmt.Sprint(target)] = "service_started"
		}
	}
	return out
}

// rabbitUser returns the password and tags of a user in the definitions.
func (s *stack) rabbitUser(name string) (password, tags string, ok bool) {
	for _, u := range s.definitions.Users {
		if u.Name == name {
			return u.Password, u.Tags, true
		}
	}
	return "", "", false
}

var (
	createUser = regexp.MustCompile("CREATE USER '([^']+)'@'%' IDENTIFIED BY '([^']*)';")
	// Privileges, a column list included: "UPDATE (status)".
	grant = regexp.MustCompile("GRANT ([A-Z, ]+(?: \\([a-z_, ]+\\))?) ON `([^`]+)`\\.(\\*|`[^`]+`) TO '([^']+)'@'%';")
)

// mysqlUsers reads the init script and the table grants: user → password,
// and user → its grants ("<privileges> ON <database>.<table>"), sorted.
func (s *stack) mysqlUsers() (passwords map[string]string, grants map[string][]string) {
	passwords, grants = map[string]string{}, map[string][]string{}
	for _, m := range createUser.FindAllStringSubmatch(s.mysqlInit+s.mysqlGrants, -1) {
		passwords[m[1]] = m[2]
	}
	for _, m := range grant.FindAllStringSubmatch(s.mysqlInit+s.mysqlGrants, -1) {
		grants[m[4]] = append(grants[m[4]], m[1]+" ON "+m[2]+"."+strings.Trim(m[3], "`"))
	}
	for _, g := range grants {
		slices.Sort(g)
	}
	return passwords, grants
}

// wantGrants is a role's models.Grants as mysqlUsers writes them, sorted.
func wantGrants(role, database string) []string {
	var out []string
	for _, g := range models.Grants()[role] {
		out = append(out, g.Privileges+" ON "+database+"."+g.Table)
	}
	slices.Sort(out)
	return out
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// publishedTo reports whether a service publishes container port p (short
// syntax "host:container" or "container").
func (s *stack) publishes(service, p string) bool {
	for _, m := range strs(s.services[service]["ports"]) {
		if m == p || strings.HasSuffix(m, ":"+p) || strings.HasSuffix(m, ":"+p+"/tcp") {
			return true
		}
	}
	return false
}

// replicas is a service's deploy.replicas, 1 when unset.
func replicas(svc map[string]any) int {
	d, _ := svc["deploy"].(map[string]any)
	if n, ok := d["replicas"].(int); ok {
		return n
	}
	return 1
}

// haproxyStatsPort is where haproxy.cfg serves its stats and metrics.
const haproxyStatsPort = "8404"

var (
	haproxyWebhookBind = regexp.MustCompile(`(?m)^\s*bind :(\d+) # tests: the webhook address$`)
	haproxyStatsBind   = regexp.MustCompile(`(?m)^\s*bind :(\d+) # tests: the stats address$`)
	haproxyServers     = regexp.MustCompile(`(?m)^\s*server-template api 1-(\d+) api:(\d+) # tests: the apis$`)
	haproxyChecks      = regexp.MustCompile(`(?m)^\s*default-server check inter (\S+) fall (\d+) `)
)

// stages splits a Dockerfile into its build stages, by FROM line.
func stages(dockerfile string) [][]string {
	var out [][]string
	for _, line := range strings.Split(dockerfile, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(strings.ToUpper(line), "FROM ") {
			out = append(out, nil)
		}
		if len(out) > 0 {
			out[len(out)-1] = append(out[len(out)-1], line)
		}
	}
	return out
}

func TestCompose(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		check func(s *stack) error
		// breakIt makes one realistic mistake that check must catch.
		breakIt func(s *stack)
	}{
		{
			name: "no obsolete version key",
			check: func(s *stack) error {
				if _, ok := s.top["version"]; ok {
					return errors.New("top-level version: is obsolete in the compose spec")
				}
				return nil
			},
			breakIt: func(s *stack) { s.top["version"] = "3.8" },
		},
		{
			name: "billing services build from the Dockerfile",
			check: func(s *stack) error {
				var built []string
				for name, svc := range s.services {
					if b, ok := svc["build"]; ok {
						built = append(built, name)
						m, _ := b.(map[string]any)
						ctx, file := fmt.Sprint(b), "Dockerfile"
						if m != nil {
							ctx = fmt.Sprint(m["context"])
							if f, ok := m["dockerfile"]; ok {
								file = fmt.Sprint(f)
							}
						}
						if ctx != "." || file != "Dockerfile" {
							return fmt.Errorf("%s builds %s/%s, want ./Dockerfile", name, ctx, file)
						}
					}
				}
				slices.Sort(built)
				if !slices.Equal(built, billingServices) {
					return fmt.Errorf("services built from the Dockerfile: %v, want %v", built, billingServices)
				}
				return nil
			},
			breakIt: func(s *stack) { delete(s.services["sweep"], "build") },
		},
		{
			name: "every variable on a billing service is in config.Vars",
			check: func(s *stack) error {
				known := map[string]bool{}
				for _, v := range config.Vars {
					known[v.Name] = true
				}
				for _, svc := range billingServices {
					for k := range s.env(svc) {
						if !known[k] {
							return fmt.Errorf("%s sets %s, which config.Vars does not declare", svc, k)
						}
					}
				}
				return nil
			},
			breakIt: func(s *stack) { s.set("worker", "DATABASE_URL", "x") },
		},
		{
			name: "required variables are set",
			check: func(s *stack) error {
				want := map[string][]string{
					"api":      {"AMQP_URL", "STRIPE_WEBHOOK_SECRET", "HTTP_ADDR"},
					"worker":   {"AMQP_URL", "MYSQL_DSN", "METRICS_ADDR", "STRIPE_WEBHOOK_SECRET"},
					"sweep":    {"AMQP_URL", "MYSQL_DSN"},
					"migrate":  {"MYSQL_DSN"},
					"topology": {"AMQP_URL"},
				}
				for svc, names := range want {
					env := s.env(svc)
					for _, n := range names {
						if env[n] == "" {
							return fmt.Errorf("%s does not set %s", svc, n)
						}
					}
					if env["BILLING_NAMESPACE"] != "billing" {
						return fmt.Errorf("%s: BILLING_NAMESPACE = %q, want billing", svc, env["BILLING_NAMESPACE"])
					}
				}
				return nil
			},
			breakIt: func(s *stack) { s.set("migrate", "MYSQL_DSN", nil) },
		},
		{
			name: "the webhook secret comes from the host with a dev default",
			check: func(s *stack) error {
				// The worker checks again what the api checked: the same secret.
				want := "${STRIPE_WEBHOOK_SECRET:-" + api.DevWebhookSecret + "}" // the api warns of it
				for _, svc := range []string{"api", "worker"} {
					if got := s.env(svc)["STRIPE_WEBHOOK_SECRET"]; got != want {
						return fmt.Errorf("%s STRIPE_WEBHOOK_SECRET = %q, want %q", svc, got, want)
					}
				}
				return nil
			},
			breakIt: func(s *stack) { s.set("worker", "STRIPE_WEBHOOK_SECRET", "whsec_hardcoded") },
		},
		{
			name: "config.Load accepts every billing service's environment",
			check: func(s *stack) error {
				for _, svc := range billingServices {
					env := s.expandedEnv(svc)
					cfg, err := config.Load(func(k string) string { return env[k] })
					if err != nil {
						return fmt.Errorf("%s: %w", svc, err)
					}
					if svc == "api" || svc == "worker" {
						if err := cfg.RequireWebhookSecret(); err != nil {
							return fmt.Errorf("%s: %w", svc, err)
						}
					}
				}
				return nil
			},
			breakIt: func(s *stack) { s.set("worker", "MYSQL_DSN", "billing:pw@tcp(mysql:3306)/billing") },
		},
		{
			name: "each service connects as its role's RabbitMQ user",
			check: func(s *stack) error {
				for _, svc := range billingServices {
					raw, set := s.expandedEnv(svc)["AMQP_URL"]
					role, ok := rabbitRoles[svc]
					if !ok {
						if set {
							return fmt.Errorf("%s sets AMQP_URL but has no RabbitMQ role", svc)
						}
						continue
					}
					u, err := url.Parse(raw)
					if err != nil {
						return fmt.Errorf("%s AMQP_URL: %w", svc, err)
					}
					user := "billing-" + string(role)
					pw, _ := u.User.Password()
					if want, _, ok := s.rabbitUser(user); u.User.Username() != user || !ok || pw != want {
						return fmt.Errorf("%s AMQP_URL user %q, want %s with its password in definitions.json", svc, u.User.Username(), user)
					}
					if u.Host != "rabbitmq:5672" {
						return fmt.Errorf("%s AMQP_URL host %q, want rabbitmq:5672", svc, u.Host)
					}
				}
				return nil
			},
			breakIt: func(s *stack) { s.set("api", "AMQP_URL", "amqp://billing-worker:worker_dev_pw@rabbitmq:5672/") },
		},
		{
			name: "definitions.json grants each role broker.Permissions for namespace billing",
			check: func(s *stack) error {
				perms := broker.NewTopology("billing", nil, 0).Permissions()
				r := s.env("rabbitmq")
				want := map[string]broker.Permission{
					r["RABBITMQ_DEFAULT_USER"]: {Configure: ".*", Write: ".*", Read: ".*", Tags: "administrator"},
				}
				for _, role := range broker.Roles {
					want["billing-"+string(role)] = perms[role]
				}
				if len(s.definitions.Users) != len(want) || len(s.definitions.Permissions) != len(want) {
					return fmt.Errorf("definitions.json has %d users and %d permissions, want %d of each (the administrator and one per role)",
						len(s.definitions.Users), len(s.definitions.Permissions), len(want))
				}
				if pw, _, _ := s.rabbitUser(r["RABBITMQ_DEFAULT_USER"]); pw != r["RABBITMQ_DEFAULT_PASS"] {
					return errors.New("definitions.json lacks the administrator RABBITMQ_DEFAULT_USER/PASS (no default user is created when definitions are imported)")
				}
				for _, p := range s.definitions.Permissions {
					w, ok := want[p.User]
					_, tags, _ := s.rabbitUser(p.User)
					got := broker.Permission{Configure: p.Configure, Write: p.Write, Read: p.Read, Tags: tags}
					if !ok || p.Vhost != "/" || got != w {
						return fmt.Errorf("definitions.json: %s on vhost %q: %+v, want %+v", p.User, p.Vhost, got, w)
					}
				}
				if !regexp.MustCompile(`(?m)^load_definitions = /etc/rabbitmq/definitions.json$`).MatchString(s.rabbitConf) {
					return errors.New("rabbitmq.conf does not load_definitions = /etc/rabbitmq/definitions.json")
				}
				for _, mount := range []string{
					"./deploy/rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/20-billing.conf:ro",
					"./deploy/rabbitmq/definitions.json:/etc/rabbitmq/definitions.json:ro",
				} {
					if !slices.Contains(strs(s.services["rabbitmq"]["volumes"]), mount) {
						return fmt.Errorf("rabbitmq does not mount %s", mount)
					}
				}
				return nil
			},
			breakIt: func(s *stack) { s.definitions.Permissions[2].Write = "^billing\\." },
		},
		{
			name: "RabbitMQ's max_message_size is above the body cap, which api and worker share",
			check: func(s *stack) error {
				m := regexp.MustCompile(`(?m)^max_message_size = (\d+)$`).FindStringSubmatch(s.rabbitConf)
				if m == nil {
					return errors.New("rabbitmq.conf sets no max_message_size")
				}
				max, _ := strconv.ParseInt(m[1], 10, 64)
				caps := map[string]string{}
				for _, svc := range []string{"api", "worker"} {
					caps[svc] = cmp.Or(s.env(svc)["WEBHOOK_MAX_BODY_BYTES"], strconv.Itoa(api.DefaultMaxBodyBytes))
					if n, err := strconv.ParseInt(caps[svc], 10, 64); err != nil || n >= max {
						return fmt.Errorf("%s's WEBHOOK_MAX_BODY_BYTES %s is not below max_message_size %d: the api could not publish what it accepts", svc, caps[svc], max)
					}
				}
				if caps["api"] != caps["worker"] {
					return fmt.Errorf("WEBHOOK_MAX_BODY_BYTES: api %s, worker %s: the worker would park what the api accepts", caps["api"], caps["worker"])
				}
				return nil
			},
			breakIt: func(s *stack) {
				s.rabbitConf = regexp.MustCompile(`(?m)^max_message_size = \d+$`).ReplaceAllString(s.rabbitConf, "max_message_size = 1048576")
			},
		},
		{
			name: "each service's MYSQL_DSN is a user of the init script with its role's grants",
			check: func(s *stack) error {
				m := s.env("mysql")
				if m["MARIADB_DATABASE"] != "billing" {
					return fmt.Errorf("mysql MARIADB_DATABASE = %q, want billing", m["MARIADB_DATABASE"])
				}
				if m["MARIADB_USER"] != "" || m["MYSQL_USER"] != "" {
					return errors.New("mysql sets MARIADB_USER, a user with every privilege on the database: the init script creates the users")
				}
				const mount = "./deploy/mysql/init:/docker-entrypoint-initdb.d:ro"
				if !slices.Contains(strs(s.services["mysql"]["volumes"]), mount) {
					return fmt.Errorf("mysql does not mount %s", mount)
				}
				passwords, grants := s.mysqlUsers()
				for role := range models.Grants() {
					user := "billing_" + role
					if _, ok := passwords[user]; !ok {
						return fmt.Errorf("the init script creates no %s (role %s)", user, role)
					}
					if want := wantGrants(role, m["MARIADB_DATABASE"]); !slices.Equal(grants[user], want) {
						return fmt.Errorf("%s is granted %q, want models.Grants' %q", user, grants[user], want)
					}
				}
				if len(grants) != len(models.Grants()) {
					return fmt.Errorf("the scripts grant %d users, models.Grants has %d roles", len(grants), len(models.Grants()))
				}
				for _, svc := range billingServices {
					raw, set := s.expandedEnv(svc)["MYSQL_DSN"]
					role, ok := mysqlRoles[svc]
					if !ok {
						if set {
							return fmt.Errorf("%s sets MYSQL_DSN but needs no database", svc)
						}
						continue
					}
					dsn, err := mysql.ParseDSN(raw)
					if err != nil {
						return fmt.Errorf("%s MYSQL_DSN: %w", svc, err)
					}
					if pw, ok := passwords[dsn.User]; !ok || pw != dsn.Passwd {
						return fmt.Errorf("%s MYSQL_DSN user %q: not a user the init script creates with that password", svc, dsn.User)
					}
					if dsn.User != "billing_"+role {
						return fmt.Errorf("%s MYSQL_DSN user %s, want billing_%s", svc, dsn.User, role)
					}
					if dsn.Net != "tcp" || dsn.Addr != "mysql:3306" || dsn.DBName != m["MARIADB_DATABASE"] || !dsn.ParseTime {
						return fmt.Errorf("%s MYSQL_DSN: want tcp(mysql:3306)/%s?parseTime=true", svc, m["MARIADB_DATABASE"])
					}
				}
				return nil
			},
			breakIt: func(s *stack) {
				s.set("worker", "MYSQL_DSN", "billing_migrate:migrate_dev_pw@tcp(mysql:3306)/billing?parseTime=true")
			},
		},
		{
			name: "the worker's MySQL user may not delete ledger rows",
			check: func(s *stack) error {
				_, grants := s.mysqlUsers()
				for _, g := range grants["billing_worker"] {
					if strings.Contains(g, "DELETE") && !strings.HasSuffix(g, ".subscription_items") {
						return fmt.Errorf("billing_worker is granted %q", g)
					}
				}
				return nil
			},
			breakIt: func(s *stack) {
				s.mysqlInit = strings.Replace(s.mysqlInit, "GRANT SELECT, INSERT, UPDATE ON `billing`.* TO 'billing_worker'", "GRANT SELECT, INSERT, UPDATE, DELETE ON `billing`.* TO 'billing_worker'", 1)
			},
		},
		{
			name: "grants runs the table grants as root after migrate, on the mysql image",
			check: func(s *stack) error {
				g := s.services["grants"]
				if !slices.Contains(strs(g["volumes"]), "./deploy/mysql/grants.sql:/grants.sql:ro") {
					return errors.New("grants does not mount ./deploy/mysql/grants.sql:/grants.sql:ro")
				}
				if cmd := strings.Join(strs(g["command"]), " "); !strings.Contains(cmd, "-h mysql -uroot") || !strings.HasSuffix(cmd, "< /grants.sql") {
					return fmt.Errorf("grants command %q, want the mysql client as root on mysql, reading /grants.sql", cmd)
				}
				if g["image"] != s.services["mysql"]["image"] || s.env("grants")["MARIADB_ROOT_PASSWORD"] != s.env("mysql")["MARIADB_ROOT_PASSWORD"] {
					return errors.New("grants must use the mysql service's image and root password")
				}
				if fmt.Sprint(g["restart"]) != "no" {
					return errors.New("grants must run once (restart \"no\")")
				}
				return nil
			},
			breakIt: func(s *stack) { s.services["grants"]["volumes"] = []any{} },
		},
		{
			name: "credentials are not the defaults",
			check: func(s *stack) error {
				r, m := s.env("rabbitmq"), s.env("mysql")
				if u, p := r["RABBITMQ_DEFAULT_USER"], r["RABBITMQ_DEFAULT_PASS"]; u == "" || p == "" || u == "guest" || p == "guest" {
					return fmt.Errorf("rabbitmq credentials %q/%q: set RABBITMQ_DEFAULT_USER/PASS, not guest", u, p)
				}
				if m["MARIADB_ROOT_PASSWORD"] == "" {
					return errors.New("mysql has no MARIADB_ROOT_PASSWORD")
				}
				return nil
			},
			breakIt: func(s *stack) {
				s.services["rabbitmq"]["environment"].(map[string]any)["RABBITMQ_DEFAULT_USER"] = "guest"
			},
		},
		{
			name: "images are the servers the tests run",
			check: func(s *stack) error {
				// CI's MariaDB is Debian 12's 10.11, its haproxy Debian 12's
				// 2.6; RabbitMQ 4.0 is the newer of the two brokers the
				// tests run (README).
				want := map[string]string{"mysql": "mariadb:10.11", "rabbitmq": "rabbitmq:4.0-management", "haproxy": "haproxy:2.6"}
				for svc, img := range want {
					if got := s.services[svc]["image"]; got != img {
						return fmt.Errorf("%s image %v, want %s", svc, got, img)
					}
				}
				return nil
			},
			breakIt: func(s *stack) { s.services["mysql"]["image"] = "mysql:8.4" },
		},
		{
			name: "rabbitmq enables management and the shovel plugins",
			check: func(s *stack) error {
				body := strings.TrimSpace(s.plugins)
				if !strings.HasPrefix(body, "[") || !strings.HasSuffix(body, "].") {
					return fmt.Errorf("enabled_plugins %q is not an Erlang list ending in '.'", body)
				}
				var got []string
				for _, p := range strings.Split(strings.Trim(body, "[]."), ",") {
					got = append(got, strings.TrimSpace(p))
				}
				for _, p := range []string{"rabbitmq_management", "rabbitmq_shovel", "rabbitmq_shovel_management"} {
					if !slices.Contains(got, p) {
						return fmt.Errorf("enabled_plugins lacks %s", p)
					}
				}
				const mount = "./deploy/rabbitmq/enabled_plugins:/etc/rabbitmq/enabled_plugins:ro"
				if !slices.Contains(strs(s.services["rabbitmq"]["volumes"]), mount) {
					return fmt.Errorf("rabbitmq does not mount %s", mount)
				}
				return nil
			},
			breakIt: func(s *stack) {
				s.plugins = "[rabbitmq_management,rabbitmq_prometheus,rabbitmq_shovel_management]."
			},
		},
		{
			name: "monitoring profile: prometheus scrapes every process, grafana loads the dashboards",
			check: func(s *stack) error {
				for name, svc := range s.services {
					got := strs(svc["profiles"])
					monitoring := name == "prometheus" || name == "grafana"
					if monitoring != slices.Equal(got, []string{"monitoring"}) {
						return fmt.Errorf("%s has profiles %v: only prometheus and grafana are in [monitoring], the rest run without a profile", name, got)
					}
				}
				if !slices.Contains(strs(s.services["prometheus"]["volumes"]), "./deploy/prometheus:/etc/prometheus:ro") ||
					!slices.Contains(strs(s.services["prometheus"]["command"]), "--config.file=/etc/prometheus/prometheus.yml") {
					return errors.New("prometheus does not run with ./deploy/prometheus/prometheus.yml")
				}
				var cfg struct {
					RuleFiles     []string `yaml:"rule_files"`
					ScrapeConfigs []struct {
						Job           string `yaml:"job_name"`
						StaticConfigs []struct {
							Targets []string `yaml:"targets"`
						} `yaml:"static_configs"`
						DNSConfigs []struct {
							Names []string `yaml:"names"`
							Type  string   `yaml:"type"`
							Port  int      `yaml:"port"`
						} `yaml:"dns_sd_configs"`
					} `yaml:"scrape_configs"`
				}
				if err := yaml.Unmarshal([]byte(s.prometheus), &cfg); err != nil {
					return fmt.Errorf("prometheus.yml: %w", err)
				}
				// A target is host:port; a DNS-discovered one (every replica
				// of a service) is "dns A name:port".
				targets := map[string][]string{}
				for _, sc := range cfg.ScrapeConfigs {
					for _, st := range sc.StaticConfigs {
						targets[sc.Job] = append(targets[sc.Job], st.Targets...)
					}
					for _, d := range sc.DNSConfigs {
						for _, n := range d.Names {
							targets[sc.Job] = append(targets[sc.Job], fmt.Sprintf("dns %s %s:%d", d.Type, n, d.Port))
						}
					}
				}
				want := map[string]string{"rabbitmq": "rabbitmq:15692", "haproxy": "haproxy:" + haproxyStatsPort}
				for _, svc := range []string{"api", "worker", "sweep", "relay", "notify"} {
					want["billing-"+svc] = svc + ":" + port(s.expandedEnv(svc)["METRICS_ADDR"])
					if replicas(s.services[svc]) > 1 {
						want["billing-"+svc] = "dns A " + want["billing-"+svc]
					}
				}
				for job, target := range want {
					if !slices.Equal(targets[job], []string{target}) {
						return fmt.Errorf("prometheus.yml job %s scrapes %v, want [%s]", job, targets[job], target)
					}
				}
				if !slices.Equal(cfg.RuleFiles, []string{"alerts.yml"}) {
					return fmt.Errorf("prometheus.yml rule_files %v, want [alerts.yml]", cfg.RuleFiles)
				}
				if !strings.Contains(s.plugins, "rabbitmq_prometheus") {
					return errors.New("enabled_plugins lacks rabbitmq_prometheus, which the rabbitmq job scrapes")
				}
				vols := strs(s.services["grafana"]["volumes"])
				if !slices.Contains(vols, "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro") ||
					!slices.Contains(vols, "./deploy/grafana/dashboards:/etc/grafana/dashboards:ro") ||
					!strings.Contains(s.grafanaDash, "path: /etc/grafana/dashboards") {
					return errors.New("grafana does not provision deploy/grafana/dashboards from the path its provider reads")
				}
				if !strings.Contains(s.grafanaData, "url: http://prometheus:9090") {
					return errors.New("grafana's data source is not the prometheus service")
				}
				return nil
			},
			breakIt: func(s *stack) { s.prometheus = strings.Replace(s.prometheus, "worker:9090", "worker:9091", 1) },
		},
		{
			name: "every port is published on 127.0.0.1 only",
			check: func(s *stack) error {
				for name, svc := range s.services {
					for _, m := range strs(svc["ports"]) {
						if !strings.HasPrefix(m, "127.0.0.1:") || strings.Count(m, ":") != 2 {
							return fmt.Errorf("%s publishes %q, want 127.0.0.1:<host port>:<container port>", name, m)
						}
					}
				}
				return nil
			},
			breakIt: func(s *stack) { s.services["rabbitmq"]["ports"] = []any{"127.0.0.1:5672:5672", "15672:15672"} },
		},
		{
			name: "rabbitmq publishes AMQP and the management UI",
			check: func(s *stack) error {
				for _, p := range []string{"5672", "15672"} {
					if !s.publishes("rabbitmq", p) {
						return fmt.Errorf("rabbitmq does not publish %s", p)
					}
				}
				if !s.publishes("mysql", "3306") {
					return errors.New("mysql does not publish 3306 (make test uses it)")
				}
				return nil
			},
			breakIt: func(s *stack) { s.services["rabbitmq"]["ports"] = []any{"5672:5672"} },
		},
		{
			name: "depends_on conditions",
			check: func(s *stack) error {
				want := map[string]map[string]string{
					"migrate":  {"mysql": "service_healthy"},
					"topology": {"rabbitmq": "service_healthy"},
					"api":      {"rabbitmq": "service_healthy", "topology": "service_completed_successfully"},
					"grants":   {"migrate": "service_completed_successfully"},
					"worker": {
						"rabbitmq": "service_healthy",
						"mysql":    "service_healthy",
						"migrate":  "service_completed_successfully",
						"grants":   "service_completed_successfully",
						"topology": "service_completed_successfully",
					},
					"sweep":   {"migrate": "service_completed_successfully", "grants": "service_completed_successfully", "topology": "service_completed_successfully"},
					"haproxy": {"api": "service_healthy"},
				}
				for svc, deps := range want {
					got := s.dependsOn(svc)
					for target, cond := range deps {
						if got[target] != cond {
							return fmt.Errorf("%s depends on %s with %q, want %q", svc, target, got[target], cond)
						}
					}
				}
				// Every condition must be one its target can reach.
				for svc := range s.services {
					for target, cond := range s.dependsOn(svc) {
						dep, ok := s.services[target]
						switch {
						case !ok:
							return fmt.Errorf("%s depends on unknown service %s", svc, target)
						case cond == "service_healthy" && dep["healthcheck"] == nil:
							return fmt.Errorf("%s waits for %s to be healthy, which has no healthcheck", svc, target)
						case cond == "service_completed_successfully" && fmt.Sprint(dep["restart"]) != "no":
							return fmt.Errorf("%s waits for %s to complete, which does not have restart \"no\"", svc, target)
						}
					}
				}
				return nil
			},
			breakIt: func(s *stack) {
				s.services["worker"]["depends_on"].(map[string]any)["migrate"] = map[string]any{"condition": "service_started"}
			},
		},
		{
			name: "migrate and topology run once",
			check: func(s *stack) error {
				for _, svc := range []string{"migrate", "topology"} {
					if got := strs(s.services[svc]["command"]); !slices.Equal(got, []string{svc}) {
						return fmt.Errorf("%s command %v, want [%s]", svc, got, svc)
					}
					if r := fmt.Sprint(s.services[svc]["restart"]); r != "no" {
						return fmt.Errorf("%s restart %q, want \"no\"", svc, r)
					}
				}
				return nil
			},
			breakIt: func(s *stack) { s.services["topology"]["restart"] = "on-failure" },
		},
		{
			name: "long-running services run their subcommand",
			check: func(s *stack) error {
				for _, svc := range []string{"api", "worker"} {
					if got := strs(s.services[svc]["command"]); !slices.Equal(got, []string{svc}) {
						return fmt.Errorf("%s command %v, want [%s]", svc, got, svc)
					}
				}
				if got := strs(s.services["sweep"]["command"]); !slices.Equal(got, []string{"sweep", "--every", "5m"}) {
					return fmt.Errorf("sweep command %v, want [sweep --every 5m]", got)
				}
				return nil
			},
			breakIt: func(s *stack) { s.services["sweep"]["command"] = []any{"sweep"} },
		},
		{
			name: "healthchecks on every long-running service",
			check: func(s *stack) error {
				for name, svc := range s.services {
					if fmt.Sprint(svc["restart"]) == "no" { // migrate, topology, grants: run once
						continue
					}
					hc, _ := svc["healthcheck"].(map[string]any)
					if len(strs(hc["test"])) == 0 {
						return fmt.Errorf("%s has no healthcheck", name)
					}
				}
				return nil
			},
			breakIt: func(s *stack) { delete(s.services["api"], "healthcheck") },
		},
		{
			name: "api and worker ports match their listen addresses",
			check: func(s *stack) error {
				// The api's HTTP_ADDR is reached through haproxy (the
				// haproxy case checks that).
				for _, l := range []struct{ svc, v string }{
					{"api", "METRICS_ADDR"}, {"worker", "METRICS_ADDR"}, {"sweep", "METRICS_ADDR"},
				} {
					p := port(s.expandedEnv(l.svc)[l.v])
					if p == "" {
						return fmt.Errorf("%s: %s has no port", l.svc, l.v)
					}
					if !s.publishes(l.svc, p) {
						return fmt.Errorf("%s listens on %s (%s) but does not publish it", l.svc, p, l.v)
					}
				}
				// Each healthcheck probes the port of the process's own
				// server: the api's public one, the metrics one elsewhere.
				for svc, v := range map[string]string{"api": "HTTP_ADDR", "worker": "METRICS_ADDR", "sweep": "METRICS_ADDR"} {
					p := port(s.expandedEnv(svc)[v])
					hc, _ := s.services[svc]["healthcheck"].(map[string]any)
					if test := strings.Join(strs(hc["test"]), " "); !strings.Contains(test, ":"+p+"/healthz") {
						return fmt.Errorf("%s healthcheck %q does not probe :%s/healthz", svc, test, p)
					}
				}
				return nil
			},
			breakIt: func(s *stack) { s.set("api", "METRICS_ADDR", ":9191") },
		},
		{
			name: "Dockerfile builds ./cmd/billing with golang:1.26",
			check: func(s *stack) error {
				st := stages(s.dockerfile)
				if len(st) < 2 {
					return fmt.Errorf("Dockerfile has %d stages, want a builder and a runtime", len(st))
				}
				from := strings.Fields(st[0][0])
				if len(from) != 4 || from[1] != "golang:1.26" || !strings.EqualFold(from[2], "AS") {
					return fmt.Errorf("first stage %q, want FROM golang:1.26 AS <name>", st[0][0])
				}
				build := strings.Join(st[0], "\n")
				if !regexp.MustCompile(`CGO_ENABLED=0 go build .*-o /out/billing \./cmd/billing`).MatchString(build) {
					return errors.New("builder stage does not CGO_ENABLED=0 go build -o /out/billing ./cmd/billing")
				}
				if strings.Index(build, "go mod download") > strings.Index(build, "COPY . .") {
					return errors.New("builder stage must download modules before copying the source (layer cache)")
				}
				return nil
			},
			breakIt: func(s *stack) { s.dockerfile = strings.Replace(s.dockerfile, "./cmd/billing", "./cmd/other", 1) },
		},
		{
			name: "Dockerfile runtime stage runs billing as a non-root user",
			check: func(s *stack) error {
				st := stages(s.dockerfile)
				last := st[len(st)-1]
				if strings.Contains(last[0], "golang") {
					return fmt.Errorf("runtime stage %q ships the Go toolchain", last[0])
				}
				var entry, user string
				copied := false
				for _, l := range last {
					switch {
					case strings.HasPrefix(l, "ENTRYPOINT "):
						entry = strings.TrimSpace(strings.TrimPrefix(l, "ENTRYPOINT "))
					case strings.HasPrefix(l, "USER "):
						user = strings.TrimSpace(strings.TrimPrefix(l, "USER "))
					case strings.HasPrefix(l, "COPY --from=") && strings.Contains(l, "/out/billing"):
						copied = true
					}
				}
				if entry != `["billing"]` {
					return fmt.Errorf("runtime ENTRYPOINT %q, want [\"billing\"]", entry)
				}
				if user == "" || user == "root" || user == "0" {
					return fmt.Errorf("runtime USER %q, want a non-root user", user)
				}
				if !copied {
					return errors.New("runtime stage does not copy /out/billing from the builder")
				}
				return nil
			},
			breakIt: func(s *stack) { s.dockerfile = strings.Replace(s.dockerfile, "USER billing", "USER root", 1) },
		},
		{
			name: ".dockerignore keeps every Go package in the build context",
			check: func(s *stack) error {
				entries, err := os.ReadDir("..")
				if err != nil {
					return err
				}
				for _, line := range strings.Split(s.dockerignore, "\n") {
					pat := strings.TrimSuffix(strings.TrimSpace(line), "/")
					if pat == "" || strings.HasPrefix(pat, "#") || strings.HasPrefix(pat, "!") {
						continue
					}
					for _, e := range entries {
						if ok, _ := filepath.Match(pat, e.Name()); ok && (e.Name() == "go.mod" || e.Name() == "go.sum" || hasGo(filepath.Join("..", e.Name()))) {
							return fmt.Errorf(".dockerignore %q drops %s, which the build needs", line, e.Name())
						}
					}
				}
				return nil
			},
			breakIt: func(s *stack) { s.dockerignore += "\ncmd\n" },
		},
		{
			name: "the cluster profile forms three rabbitmq nodes into one cluster",
			check: func(s *stack) error {
				var nodes []string
				for name, svc := range s.services {
					if slices.Contains(strs(svc["profiles"]), "cluster") {
						nodes = append(nodes, name)
					}
				}
				slices.Sort(nodes)
				if want := []string{"rabbit1", "rabbit2", "rabbit3"}; !slices.Equal(nodes, want) {
					return fmt.Errorf("cluster profile services %v, want %v", nodes, want)
				}
				if !strings.Contains(s.clusterConf, "cluster_formation.peer_discovery_backend = classic_config") {
					return errors.New("cluster.conf does not use classic_config peer discovery")
				}
				const mount = "./deploy/rabbitmq/cluster.conf:/etc/rabbitmq/conf.d/30-cluster.conf:ro"
				cookie, hostPorts := "", map[string]string{}
				for i, name := range nodes {
					svc := s.services[name]
					if svc["image"] != s.services["rabbitmq"]["image"] {
						return fmt.Errorf("%s image %v, want the single node's %v", name, svc["image"], s.services["rabbitmq"]["image"])
					}
					// The node name rabbit@<hostname> must be one the others look for.
					node := fmt.Sprintf("cluster_formation.classic_config.nodes.%d = rabbit@%v", i+1, svc["hostname"])
					if svc["hostname"] != name || !strings.Contains(s.clusterConf, node) {
						return fmt.Errorf("%s: hostname %v, cluster.conf lacks %q", name, svc["hostname"], node)
					}
					c := s.env(name)["RABBITMQ_ERLANG_COOKIE"]
					if c == "" || (cookie != "" && c != cookie) {
						return fmt.Errorf("%s: Erlang cookie %q: the three need one shared cookie", name, c)
					}
					cookie = c
					if !slices.Contains(strs(svc["volumes"]), mount) {
						return fmt.Errorf("%s does not mount %s", name, mount)
					}
					if !s.publishes(name, "5672") {
						return fmt.Errorf("%s does not publish AMQP", name)
					}
					for _, m := range strs(svc["ports"]) {
						host := strings.Split(m, ":")[1]
						if other, taken := hostPorts[host]; taken || host == "5672" || host == "15672" {
							return fmt.Errorf("%s publishes host port %s, taken by %s or the single node", name, host, other)
						}
						hostPorts[host] = name
					}
					hc, _ := svc["healthcheck"].(map[string]any)
					if test := strings.Join(strs(hc["test"]), " "); !strings.Contains(test, "await_online_nodes 3") {
						return fmt.Errorf("%s healthcheck %q does not wait for the three nodes", name, test)
					}
				}
				return nil
			},
			breakIt: func(s *stack) {
				s.services["rabbit3"]["environment"] = map[string]any{"RABBITMQ_ERLANG_COOKIE": "another"}
			},
		},
		{
			name: "haproxy balances the api replicas and waits out their ready delay",
			check: func(s *stack) error {
				const mount = "./deploy/haproxy/haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"
				if !slices.Contains(strs(s.services["haproxy"]["volumes"]), mount) {
					return fmt.Errorf("haproxy does not mount %s", mount)
				}
				// The tests run this file: it must have the lines they swap.
				if _, err := testenv.HAProxyConfig(s.haproxy, "127.0.0.1:1", "127.0.0.1:2", []string{"127.0.0.1:3"}); err != nil {
					return err
				}
				apiEnv := s.expandedEnv("api")
				n := replicas(s.services["api"])
				if n < 2 {
					return fmt.Errorf("api runs %d replica(s), want 2 or more behind haproxy", n)
				}
				web, stats, servers := haproxyWebhookBind.FindStringSubmatch(s.haproxy), haproxyStatsBind.FindStringSubmatch(s.haproxy), haproxyServers.FindStringSubmatch(s.haproxy)
				if web == nil || stats == nil || servers == nil {
					return errors.New("haproxy.cfg lacks the webhook bind, the stats bind or the api server-template")
				}
				if !s.publishes("haproxy", web[1]) || !s.publishes("haproxy", stats[1]) || stats[1] != haproxyStatsPort {
					return fmt.Errorf("haproxy does not publish its webhook port %s and its stats port %s (want %s)", web[1], stats[1], haproxyStatsPort)
				}
				if s.publishes("api", port(apiEnv["HTTP_ADDR"])) {
					return errors.New("api publishes its webhook port: Stripe must reach the apis through haproxy")
				}
				if slots, _ := strconv.Atoi(servers[1]); slots < n || servers[2] != port(apiEnv["HTTP_ADDR"]) {
					return fmt.Errorf("haproxy's server-template: %s slots on api:%s, want at least the %d replicas on the api's HTTP_ADDR port %s",
						servers[1], servers[2], n, port(apiEnv["HTTP_ADDR"]))
				}
				if !strings.Contains(s.haproxy, "option httpchk GET /readyz") || !strings.Contains(s.haproxy, "http-check expect status 200") {
					return errors.New("haproxy.cfg does not check each api's /readyz for a 200")
				}
				// After SIGTERM an api must answer until haproxy has seen
				// enough failed checks to take it out.
				checks := haproxyChecks.FindStringSubmatch(s.haproxy)
				if checks == nil {
					return errors.New("haproxy.cfg has no default-server check inter <d> fall <n>")
				}
				inter, err := time.ParseDuration(checks[1])
				if err != nil {
					return fmt.Errorf("haproxy.cfg inter %q: %w", checks[1], err)
				}
				fall, _ := strconv.Atoi(checks[2])
				delay, err := time.ParseDuration(apiEnv["SHUTDOWN_READY_DELAY"])
				if err != nil || delay <= time.Duration(fall)*inter {
					return fmt.Errorf("api SHUTDOWN_READY_DELAY %q, want more than haproxy's fall %d × inter %s", apiEnv["SHUTDOWN_READY_DELAY"], fall, inter)
				}
				shutdown := api.DefaultShutdownTimeout
				if v := apiEnv["SHUTDOWN_TIMEOUT"]; v != "" {
					shutdown, _ = time.ParseDuration(v)
				}
				grace, err := time.ParseDuration(fmt.Sprint(s.services["api"]["stop_grace_period"]))
				if err != nil || grace <= delay+shutdown {
					return fmt.Errorf("api stop_grace_period %v, want more than SHUTDOWN_READY_DELAY + SHUTDOWN_TIMEOUT (%s): docker kills it then", s.services["api"]["stop_grace_period"], delay+shutdown)
				}
				return nil
			},
			breakIt: func(s *stack) { s.set("api", "SHUTDOWN_READY_DELAY", "2s") },
		},
		{
			name: "make test uses the compose credentials",
			check: func(s *stack) error {
				r, m := s.env("rabbitmq"), s.env("mysql")
				amqpUser := r["RABBITMQ_DEFAULT_USER"] + ":" + r["RABBITMQ_DEFAULT_PASS"] + "@127.0.0.1:"
				want := []string{
					"TEST_AMQP_URL='amqp://" + amqpUser + "5672/'",
					"TEST_RABBITMQ_API='http://" + amqpUser + "15672'",
					"TEST_MYSQL_DSN='root:" + m["MARIADB_ROOT_PASSWORD"] + "@tcp(127.0.0.1:3306)/",
					"docker compose up -d --wait",
					// The stack already up (README: docker compose up, then
					// make test) answers on the ports: its credentials still.
					"docker compose ps --status running --services",
				}
				for _, w := range want {
					if !strings.Contains(s.depsUp, w) {
						return fmt.Errorf("scripts/deps-up.sh does not contain %s", w)
					}
				}
				return nil
			},
			breakIt: func(s *stack) {
				s.services["mysql"]["environment"].(map[string]any)["MARIADB_ROOT_PASSWORD"] = "changed"
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.check(loadStack(t)); err != nil {
				t.Fatal(err)
			}
			broken := loadStack(t)
			tc.breakIt(broken)
			if err := tc.check(broken); err == nil {
				t.Fatal("check passed on a broken copy: it cannot fail")
			} else {
				t.Logf("broken copy rejected: %v", err)
			}
		})
	}
}

// hasGo reports whether dir holds Go files at any depth.
func hasGo(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".go") {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}
