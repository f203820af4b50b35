package config_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/config"
	"github.com/stripe-billing/billing/consumer"
)

func env(vars map[string]string) func(string) string {
	return func(name string) string { return vars[name] }
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(nil))
	if err != nil {
		t.Fatalf("Load with no variables = %v, want the defaults", err)
	}
	if c.Namespace != "billing" || c.HTTPAddr != ":8080" || c.MetricsAddr != ":9090" ||
		c.WebhookMaxBodyBytes != 1<<20 || c.WebhookTolerance != 5*time.Minute || c.MaxAttempts != 8 ||
		len(c.RetryDelays) != 6 || c.RetryDelays[0] != 10*time.Second || c.RetryDelays[5] != 6*time.Hour ||
		c.StripeAPIBase != "https://api.stripe.com" || len(c.WebhookSecrets) != 0 || c.WebhookMaxInFlight != 128 {
		t.Errorf("defaults = %+v", c)
	}
	if !errors.Is(c.RequireWebhookSecret(), config.ErrMissingWebhookSecret) {
		t.Error("RequireWebhookSecret without a secret = nil, want ErrMissingWebhookSecret")
	}
	// No default DSN: none logs in as root, or as anyone nobody chose.
	if err := c.RequireMySQLDSN(); c.MySQLDSN != "" || !errors.Is(err, config.ErrMissingMySQLDSN) || !strings.Contains(err.Error(), "config: MYSQL_DSN: required") {
		t.Errorf("default MYSQL_DSN %q, RequireMySQLDSN = %v; want none, and an error naming MYSQL_DSN", c.MySQLDSN, err)
	}
	for _, dsn := range []string{
		"billing_app:pw@tcp(db:3306)/billing?parseTime=true&clientFoundRows=false",
		"billing_app:pw@tcp(db:3306)/billing?parseTime=1", // the driver reads it as true
	} {
		c, err = config.Load(env(map[string]string{"MYSQL_DSN": dsn}))
		if err != nil || c.RequireMySQLDSN() != nil {
			t.Errorf("MYSQL_DSN=%s: %v, %v; want accepted", dsn, err, c.RequireMySQLDSN())
		}
	}
}

func TestSecretsAreAListForRotation(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(map[string]string{"STRIPE_WEBHOOK_SECRET": " whsec_new , whsec_old ,"}))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.WebhookSecrets, "|") != "whsec_new|whsec_old" || c.RequireWebhookSecret() != nil {
		t.Errorf("secrets = %q, want [whsec_new whsec_old]", c.WebhookSecrets)
	}
}

// Every bad value is refused with an error naming its variable and the
// problem.
func TestBadValuesNameTheVariable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value, want string
	}{
		{"AMQP_URL", "rabbitmq:5672", "config: AMQP_URL: must be an amqp:// or amqps:// URL"},
		{"MYSQL_DSN", "root@tcp(db:3306)/billing", "config: MYSQL_DSN: must set parseTime=true"},
		{"MYSQL_DSN", "root@tcp(db:3306)/billing?parseTime=0", "config: MYSQL_DSN: must set parseTime=true"},
		// The driver's own parser says what is wrong.
		{"MYSQL_DSN", "garbage", "config: MYSQL_DSN: invalid DSN: missing the slash separating the database name"},
		{"MYSQL_DSN", "app:pw@tcp(db:3306)/billing?parseTime=maybe", "config: MYSQL_DSN: invalid bool value: maybe"},
		{"MYSQL_DSN", "app:pw@tcp(db:3306)/billing?parseTime=true&clientFoundRows=true", "config: MYSQL_DSN: clientFoundRows=true breaks duplicate detection"},
		{"MYSQL_DSN", "app:pw@tcp(db:3306)/billing?clientFoundRows=1&parseTime=true", "config: MYSQL_DSN: clientFoundRows=true breaks duplicate detection"},
		{"STRIPE_WEBHOOK_SECRET", "whsec_", "config: STRIPE_WEBHOOK_SECRET: a secret is more than whsec_"},
		{"STRIPE_WEBHOOK_SECRET", "whsec_ok, whsec_ ", "config: STRIPE_WEBHOOK_SECRET: a secret is more than whsec_"},
		{"STRIPE_WEBHOOK_SECRET", "whsec_ok,sk_live_oops", "config: STRIPE_WEBHOOK_SECRET: each secret must start with whsec_"},
		{"STRIPE_API_BASE", "api.stripe.com", "config: STRIPE_API_BASE: must be an https URL"},
		{"WEBHOOK_MAX_INFLIGHT", "0", `config: WEBHOOK_MAX_INFLIGHT: "0" is not a positive integer`},
		{"HTTP_ADDR", "8080", `config: HTTP_ADDR: "8080" is not host:port`},
		{"METRICS_ADDR", "localhost", `config: METRICS_ADDR: "localhost" is not host:port`},
		{"BILLING_NAMESPACE", "bad name", "config: BILLING_NAMESPACE: must be 1-64 letters"},
		{"WEBHOOK_MAX_BODY_BYTES", "1MB", `config: WEBHOOK_MAX_BODY_BYTES: "1MB" is not a positive integer`},
		{"WEBHOOK_TOLERANCE", "300", `config: WEBHOOK_TOLERANCE: "300" is not a positive duration`},
		{"PUBLISH_TIMEOUT", "-1s", `config: PUBLISH_TIMEOUT: "-1s" is not a positive duration`},
		{"PUBLISHER_CHANNELS", "0", `config: PUBLISHER_CHANNELS: "0" is not a positive integer`},
		{"RETRY_DELAYS", "10s,,1m", `config: RETRY_DELAYS: "" is not a positive duration`},
		{"RETRY_DELAYS", "10s,0s", `config: RETRY_DELAYS: "0s" is not a positive duration`},
		{"MAX_ATTEMPTS", "many", `config: MAX_ATTEMPTS: "many" is not a positive integer`},
		{"WORKER_CONCURRENCY", "-2", `config: WORKER_CONCURRENCY: "-2" is not a positive integer`},
		{"WORKER_BATCH_SIZE", "40000", "config: WORKER_BATCH_SIZE: each worker channel's prefetch, twice WORKER_BATCH_SIZE, must not exceed 65535"},
		{"WORKER_CONCURRENCY", "2048", "config: WORKER_CONCURRENCY: must not exceed 2047: each worker consumes on a channel of its own, and RabbitMQ's default channel_max is 2047"},
		{"WORKER_BATCH_WAIT", "-5ms", `config: WORKER_BATCH_WAIT: "-5ms" is not a duration`},
		{"DB_MAX_IDLE_CONNS", "100", "config: DB_MAX_IDLE_CONNS: must not exceed DB_MAX_OPEN_CONNS"},
		{"SWEEP_MIN_AGE", "soon", `config: SWEEP_MIN_AGE: "soon" is not a positive duration`},
		{"LOG_LEVEL", "verbose", "config: LOG_LEVEL: must be debug, info, warn or error"},
		{"LEDGER_PAYLOAD_RETENTION", "90d", `config: LEDGER_PAYLOAD_RETENTION: "90d" is neither a positive duration such as 2160h nor off`},
		{"LEDGER_PAYLOAD_RETENTION", "0", `config: LEDGER_PAYLOAD_RETENTION: "0" is neither a positive duration such as 2160h nor off`},
		{"LEDGER_PAYLOAD_RETENTION", "-1h", `config: LEDGER_PAYLOAD_RETENTION: "-1h" is neither a positive duration such as 2160h nor off`},
		{"CHANGE_FEED_RETENTION", "7d", `config: CHANGE_FEED_RETENTION: "7d" is neither a positive duration such as 2160h nor off`},
		{"LEDGER_PAYLOAD_RETENTION", "OFF", `config: LEDGER_PAYLOAD_RETENTION: "OFF" is neither a positive duration such as 2160h nor off`},
		{"CHANGE_FEED", "false", `config: CHANGE_FEED: "false" is neither on nor off`},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load(env(map[string]string{tt.name: tt.value}))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Load(%s=%q) = %v, want an error containing %q", tt.name, tt.value, err, tt.want)
			}
		})
	}
}

// LEDGER_PAYLOAD_RETENTION is a duration, 90 days by default, or off.
func TestPayloadRetention(t *testing.T) {
	t.Parallel()
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 90 * 24 * time.Hour},
		{"720h", 720 * time.Hour},
		{" 36h ", 36 * time.Hour},
		{"off", 0},
	}
	for _, tt := range tests {
		c, err := config.Load(env(map[string]string{"LEDGER_PAYLOAD_RETENTION": tt.value}))
		if err != nil || c.PayloadRetention != tt.want {
			t.Errorf("LEDGER_PAYLOAD_RETENTION=%q: %s, %v; want %s", tt.value, c.PayloadRetention, err, tt.want)
		}
	}
}

// CHANGE_FEED is on by default; off writes no outbox row.
func TestChangeFeed(t *testing.T) {
	t.Parallel()
	for value, want := range map[string]bool{"": true, "on": true, " off ": false} {
		c, err := config.Load(env(map[string]string{"CHANGE_FEED": value}))
		if err != nil || c.ChangeFeed != want {
			t.Errorf("CHANGE_FEED=%q: %v, %v; want %v", value, c.ChangeFeed, err, want)
		}
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	t.Parallel()
	_, err := config.Load(env(map[string]string{"MAX_ATTEMPTS": "0", "LOG_LEVEL": "loud", "HTTP_ADDR": "x"}))
	for _, name := range []string{"MAX_ATTEMPTS", "LOG_LEVEL", "HTTP_ADDR"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error %v does not name %s", err, name)
		}
	}
}

// An AMQP_URL that does not parse is refused at start by name, and the
// error shows no part of the password (net/url's own error would quote
// the whole URL, and the bad escape).
func TestAMQPURLErrorHidesThePassword(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"amqp://billing:hunter%zz2@rabbitmq:5672/",
		"amqp://billing:hunter 2@rabbitmq:5672/",
		"amqp://billing:hunter2@rabbitmq:notaport/",
	} {
		_, err := config.Load(env(map[string]string{"AMQP_URL": u}))
		if err == nil || !strings.Contains(err.Error(), "config: AMQP_URL: ") {
			t.Errorf("Load(AMQP_URL=%q) = %v, want an error naming AMQP_URL", u, err)
			continue
		}
		for _, leak := range []string{"hunter", "%zz", "billing:"} {
			if strings.Contains(err.Error(), leak) {
				t.Errorf("Load(AMQP_URL=%q) error %q shows %q", u, err, leak)
			}
		}
	}
	if _, err := config.Load(env(map[string]string{"AMQP_URL": "amqp://billing:p%25ss@rabbitmq:5672/"})); err != nil {
		t.Errorf("a percent-encoded password is refused: %v", err)
	}
}

// AMQP_URL may list a cluster's nodes; each entry is checked and named by
// its place, never quoted.
func TestAMQPURLList(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(map[string]string{"AMQP_URL": "amqp://b:p1@r1:5672/, amqp://b:p2@r2:5672/"}))
	if err != nil || c.AMQPURL == "" {
		t.Fatalf("a list of two URLs: %v", err)
	}
	_, err = config.Load(env(map[string]string{"AMQP_URL": "amqp://b:p1@r1:5672/,amqp://b:hunter%zz@r2:5672/"}))
	if err == nil || !strings.Contains(err.Error(), "config: AMQP_URL: ") || !strings.Contains(err.Error(), "entry 2 of 2") || strings.Contains(err.Error(), "hunter") {
		t.Errorf("a list with a bad second URL: %v, want entry 2 named, no password", err)
	}
	if _, err := config.Load(env(map[string]string{"AMQP_URL": " , "})); err == nil {
		t.Error("a list of no URL is accepted")
	}
}

func TestQuorumInitialGroupSize(t *testing.T) {
	t.Parallel()
	for v, want := range map[string]int{"": 0, "3": 3} {
		c, err := config.Load(env(map[string]string{"QUORUM_INITIAL_GROUP_SIZE": v}))
		if err != nil || c.QuorumInitialGroupSize != want {
			t.Errorf("QUORUM_INITIAL_GROUP_SIZE=%q: %d, %v; want %d", v, c.QuorumInitialGroupSize, err, want)
		}
	}
	for _, v := range []string{"0", "-1", "three"} {
		if _, err := config.Load(env(map[string]string{"QUORUM_INITIAL_GROUP_SIZE": v})); err == nil || !strings.Contains(err.Error(), "QUORUM_INITIAL_GROUP_SIZE") {
			t.Errorf("QUORUM_INITIAL_GROUP_SIZE=%q: %v, want an error naming it", v, err)
		}
	}
}

// STRIPE_API_BASE must be an http(s) URL; whether plain http may carry
// the key (loopback only) is reconcile's check, where the key is sent
// (reconcile's TestAPIBaseHTTPSUnlessLoopback).
func TestStripeAPIBaseIsAnHTTPURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base string
		ok   bool
	}{
		{"https://api.stripe.com", true},
		{"http://127.0.0.1:12111", true},
		{"api.stripe.com", false},
		{"ftp://127.0.0.1", false},
		{"https://", false},
	}
	for _, tt := range tests {
		_, err := config.Load(env(map[string]string{"STRIPE_API_BASE": tt.base}))
		switch {
		case tt.ok && err != nil:
			t.Errorf("STRIPE_API_BASE=%s refused: %v", tt.base, err)
		case !tt.ok && (err == nil || !strings.Contains(err.Error(), "config: STRIPE_API_BASE: must be")):
			t.Errorf("STRIPE_API_BASE=%s = %v, want refused naming STRIPE_API_BASE", tt.base, err)
		}
	}
}

// WORKER_BATCH_SIZE stops where the consumer's channel prefetch
// (consumer.ChannelPrefetch) would pass AMQP's 16-bit limit: config keeps
// the bound as a plain number, and this holds it to the consumer's rule.
func TestWorkerBatchSizeBoundIsTheConsumers(t *testing.T) {
	t.Parallel()
	largest := 1
	for consumer.ChannelPrefetch(largest+1) <= 65535 {
		largest++
	}
	if _, err := config.Load(env(map[string]string{"WORKER_BATCH_SIZE": strconv.Itoa(largest)})); err != nil {
		t.Errorf("WORKER_BATCH_SIZE=%d (prefetch %d) refused: %v", largest, consumer.ChannelPrefetch(largest), err)
	}
	if _, err := config.Load(env(map[string]string{"WORKER_BATCH_SIZE": strconv.Itoa(largest + 1)})); err == nil || !strings.Contains(err.Error(), "config: WORKER_BATCH_SIZE:") {
		t.Errorf("WORKER_BATCH_SIZE=%d (prefetch %d) = %v, want refused", largest+1, consumer.ChannelPrefetch(largest+1), err)
	}
}
