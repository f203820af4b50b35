// Package config owns every setting of the billing system: each one is read
// from the environment, has a documented default and is validated at start
// with an error that names the variable.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/api"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/metrics"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/notify"
	"github.com/stripe-billing/billing/reconcile"
	"github.com/stripe-billing/billing/retry"
)

// durationText writes d as the documentation does: "5m", not "5m0s".
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// durationsText writes a list of durations as RETRY_DELAYS takes it.
func durationsText(ds []time.Duration) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = durationText(d)
	}
	return strings.Join(out, ",")
}

// Var documents one environment variable. Vars is the single list the
// loader, the README table and the docker-compose test are checked against.
type Var struct {
	Name        string
	Default     string
	Description string
}

// Vars lists every environment variable the program reads. A default that
// a package also applies is that package's named constant.
var Vars = []Var{
	{"AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL, or a cluster's node URLs comma-separated, tried in turn ([scaling](docs/scaling.md))."},
	{"MYSQL_DSN", "", "MySQL DSN (go-sql-driver); needs `parseTime=true`, refuses `clientFoundRows=true`."},
	{"STRIPE_WEBHOOK_SECRET", "", "Webhook signing secret(s) `whsec_...`, a list to rotate; required by `api`, `worker`, `reprocess`."},
	{"STRIPE_API_KEY", "", "Stripe secret key: `worker` fetches what it cannot verify and ties' objects; `sweep` reconciles."},
	{"STRIPE_API_RATE", strconv.Itoa(reconcile.DefaultRate), "Stripe fetches a second per worker ([limits](docs/security.md#calls-to-stripe))."},
	{"STRIPE_API_CONCURRENCY", strconv.Itoa(reconcile.DefaultConcurrency), "Stripe fetches at once per worker."},
	{"STRIPE_API_BASE", reconcile.DefaultAPIBase, "Stripe API base URL: https, or http on loopback only."},
	{"HTTP_ADDR", api.DefaultAddr, "`api`'s port for Stripe: the webhook, /healthz, /readyz."},
	{"METRICS_ADDR", metrics.DefaultAddr, "/metrics, /healthz and a detailed /readyz of each server; keep it private."},
	{"BILLING_NAMESPACE", broker.DefaultNamespace, "Prefix of every exchange and queue name."},
	{"WEBHOOK_MAX_BODY_BYTES", strconv.Itoa(api.DefaultMaxBodyBytes), "Largest body; above it `api` says 413, `worker` parks."},
	{"WEBHOOK_MAX_INFLIGHT", strconv.Itoa(api.DefaultMaxInFlight), "Webhooks read and published at once; over it 503 before the body is read."},
	{"WEBHOOK_BODY_TIMEOUT", durationText(api.DefaultBodyTimeout), "Time to send the body once in flight; then 408."},
	{"WEBHOOK_MAX_CONNS", strconv.Itoa(api.DefaultMaxConns), "Most connections the api holds open."},
	{"WEBHOOK_TOLERANCE", durationText(api.DefaultTolerance), "Oldest signature the api accepts; also how far ahead a signature or an event's `created` may be."},
	{"PUBLISH_TIMEOUT", durationText(api.DefaultPublishTimeout), "Longest wait for a broker confirm before the api answers 503."},
	{"PUBLISHER_CHANNELS", strconv.Itoa(broker.DefaultPublisherChannels), "Confirm-mode channels in the api's publishing pool."},
	{"RETRY_DELAYS", durationsText(retry.DefaultDelays()), "Delay tiers for transient failures; the last one repeats."},
	{"MAX_ATTEMPTS", strconv.Itoa(retry.DefaultMaxAttempts), "Attempts before a transiently failing event is parked in the DLQ."},
	{"WORK_DELIVERY_LIMIT", strconv.Itoa(broker.DefaultDeliveryLimit), "Work queue's delivery limit: parks what crashes the worker each time."},
	{"DLQ_MAX_LENGTH", "", "DLQ length limit; past it, parking waits."},
	{"WORKER_CONCURRENCY", strconv.Itoa(consumer.DefaultConcurrency), "Batches processed at once by one worker (prefetch: twice this × `WORKER_BATCH_SIZE`)."},
	{"WORKER_BATCH_SIZE", strconv.Itoa(consumer.DefaultBatchSize), "Most events in one MySQL transaction (a bad one still fails alone); 1: each alone."},
	{"WORKER_BATCH_WAIT", durationText(consumer.DefaultBatchWait), "How long a worker waits to fill a batch; 0s: no wait."},
	{"SHUTDOWN_TIMEOUT", durationText(api.DefaultShutdownTimeout), "How long SIGTERM waits for in-flight requests and events."},
	{"SHUTDOWN_READY_DELAY", durationText(api.DefaultShutdownReadyDelay), "How long `api` serves on after SIGTERM with /readyz at 503 ([behind a balancer](docs/scaling.md#apis-behind-haproxy))."},
	{"DB_MAX_OPEN_CONNS", strconv.Itoa(models.DefaultMaxOpenConns), "MySQL pool: open connections."},
	{"DB_MAX_IDLE_CONNS", strconv.Itoa(models.DefaultMaxIdleConns), "MySQL pool: idle connections."},
	{"DB_CONN_MAX_LIFETIME", durationText(models.DefaultConnMaxLifetime), "MySQL pool: longest life of a connection."},
	{"SWEEP_MIN_AGE", durationText(maintenance.DefaultRedriveMinAge), "`sweep` re-drives transient parked events older than this."},
	{"SWEEP_LIMIT", strconv.Itoa(maintenance.DefaultRedriveLimit), "Most parked events `sweep` re-drives in one run."},
	{"SWEEP_MAX_REDRIVES", strconv.Itoa(maintenance.DefaultMaxRedrives), "Most automatic re-drives of one event by `sweep`."},
	{"LEDGER_PAYLOAD_RETENTION", durationText(maintenance.DefaultPayloadRetention), "How long `sweep` keeps a processed or ignored event's payload (not its row); `off`: for ever."},
	{"CHANGE_FEED", settingOn, "`off`: writes no change feed."},
	{"CHANGE_FEED_RETENTION", durationText(maintenance.DefaultChangeRetention), "How long `sweep` keeps a published change; `off`: for ever."},
	{"LOG_LEVEL", "info", "debug, info, warn or error."},
	{"QUORUM_INITIAL_GROUP_SIZE", "", "Members of each quorum queue (the cluster's size); unset: RabbitMQ's default."},
	{"SMTP_ADDR", notify.DefaultSMTPAddr, "`notify`'s SMTP server."},
	{"SMTP_FROM", notify.DefaultFrom, "`notify`'s sender."},
	{"NOTIFY_SUPPORT_EMAIL", "", "Gets opened disputes."},
	{"NOTIFY_TEMPLATES", "", "Directory of templates replacing the built-in ones."},
}

// Config holds every setting, parsed and validated.
type Config struct {
	AMQPURL              string
	MySQLDSN             string
	WebhookSecrets       []string
	StripeAPIKey         string
	StripeAPIBase        string
	StripeAPIRate        int
	StripeAPIConcurrency int
	HTTPAddr             string
	MetricsAddr          string
	Namespace            string
	WebhookMaxBodyBytes  int64
	WebhookMaxInFlight   int
	WebhookBodyTimeout   time.Duration
	WebhookMaxConns      int
	WebhookTolerance     time.Duration
	PublishTimeout       time.Duration
	PublisherChannels    int
	RetryDelays          []time.Duration
	MaxAttempts          int
	WorkDeliveryLimit    int
	WorkerConcurrency    int
	WorkerBatchSize      int
	WorkerBatchWait      time.Duration
	ShutdownTimeout      time.Duration
	ShutdownReadyDelay   time.Duration
	DBMaxOpenConns       int
	DBMaxIdleConns       int
	DBConnMaxLifetime    time.Duration
	SweepMinAge          time.Duration
	SweepLimit           int
	SweepMaxRedrives     int
	// PayloadRetention is 0 when LEDGER_PAYLOAD_RETENTION is off.
	PayloadRetention time.Duration
	// ChangeRetention is 0 when CHANGE_FEED_RETENTION is off.
	ChangeRetention time.Duration
	// ChangeFeed: each change goes to the outbox with its record
	// (CHANGE_FEED on, the default).
	ChangeFeed bool
	LogLevel   string
	// QuorumInitialGroupSize is 0 when unset.
	QuorumInitialGroupSize int
	// DLQMaxLength is 0 when DLQ_MAX_LENGTH is unset.
	DLQMaxLength int
	SMTPAddr     string
	SMTPFrom     string
	// NotifySupportEmail and NotifyTemplates are "" when unset.
	NotifySupportEmail string
	NotifyTemplates    string
}

// ErrMissingWebhookSecret is returned by RequireWebhookSecret.
var ErrMissingWebhookSecret = errors.New("config: STRIPE_WEBHOOK_SECRET: required by the api, the worker and reprocess, not set")

// ErrMissingMySQLDSN is returned by RequireMySQLDSN. There is no default
// DSN: a default would log in as some user nobody chose (root, once).
var ErrMissingMySQLDSN = errors.New("config: MYSQL_DSN: required by this command, not set (the DSN of the role's own MySQL user)")

// maxPrefetch is the largest prefetch count AMQP 0-9-1 can carry. A
// worker channel's prefetch is twice the batch size
// (consumer.ChannelPrefetch; config_test holds the two together), so the
// batch size stops at half of it.
const (
	maxPrefetch        = 65535
	maxWorkerBatchSize = maxPrefetch / 2
)

var namespacePattern = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// Load reads every variable through getenv (os.Getenv in production, a map
// in tests), applies defaults and validates. All problems are reported at
// once, each naming its variable.
func Load(getenv func(string) string) (Config, error) {
	l := loader{getenv: getenv}
	c := Config{
		AMQPURL:              l.str("AMQP_URL"),
		MySQLDSN:             l.str("MYSQL_DSN"),
		WebhookSecrets:       l.list("STRIPE_WEBHOOK_SECRET"),
		StripeAPIKey:         l.str("STRIPE_API_KEY"),
		StripeAPIBase:        strings.TrimRight(l.str("STRIPE_API_BASE"), "/"),
		StripeAPIRate:        l.positiveInt("STRIPE_API_RATE"),
		StripeAPIConcurrency: l.positiveInt("STRIPE_API_CONCURRENCY"),
		HTTPAddr:             l.addr("HTTP_ADDR"),
		MetricsAddr:          l.addr("METRICS_ADDR"),
		Namespace:            l.str("BILLING_NAMESPACE"),
		WebhookMaxBodyBytes:  int64(l.positiveInt("WEBHOOK_MAX_BODY_BYTES")),
		WebhookMaxInFlight:   l.positiveInt("WEBHOOK_MAX_INFLIGHT"),
		WebhookBodyTimeout:   l.positiveDuration("WEBHOOK_BODY_TIMEOUT"),
		WebhookMaxConns:      l.positiveInt("WEBHOOK_MAX_CONNS"),
		WebhookTolerance:     l.positiveDuration("WEBHOOK_TOLERANCE"),
		PublishTimeout:       l.positiveDuration("PUBLISH_TIMEOUT"),
		PublisherChannels:    l.positiveInt("PUBLISHER_CHANNELS"),
		RetryDelays:          l.durations("RETRY_DELAYS"),
		MaxAttempts:          l.positiveInt("MAX_ATTEMPTS"),
		WorkDeliveryLimit:    l.positiveInt("WORK_DELIVERY_LIMIT"),
		WorkerConcurrency:    l.positiveInt("WORKER_CONCURRENCY"),
		WorkerBatchSize:      l.positiveInt("WORKER_BATCH_SIZE"),
		WorkerBatchWait:      l.nonNegativeDuration("WORKER_BATCH_WAIT"),
		ShutdownTimeout:      l.positiveDuration("SHUTDOWN_TIMEOUT"),
		ShutdownReadyDelay:   l.nonNegativeDuration("SHUTDOWN_READY_DELAY"),
		DBMaxOpenConns:       l.positiveInt("DB_MAX_OPEN_CONNS"),
		DBMaxIdleConns:       l.positiveInt("DB_MAX_IDLE_CONNS"),
		DBConnMaxLifetime:    l.positiveDuration("DB_CONN_MAX_LIFETIME"),
		SweepMinAge:          l.positiveDuration("SWEEP_MIN_AGE"),
		SweepLimit:           l.positiveInt("SWEEP_LIMIT"),
		SweepMaxRedrives:     l.positiveInt("SWEEP_MAX_REDRIVES"),
		PayloadRetention:     l.retention("LEDGER_PAYLOAD_RETENTION"),
		ChangeRetention:      l.retention("CHANGE_FEED_RETENTION"),
		ChangeFeed:           l.onOff("CHANGE_FEED"),
		LogLevel:             l.str("LOG_LEVEL"),
		SMTPAddr:             l.addr("SMTP_ADDR"),
		SMTPFrom:             l.str("SMTP_FROM"),
		NotifySupportEmail:   l.str("NOTIFY_SUPPORT_EMAIL"),
		NotifyTemplates:      l.str("NOTIFY_TEMPLATES"),
	}
	urls := l.list("AMQP_URL")
	if len(urls) == 0 {
		l.fail("AMQP_URL", "must be an amqp:// or amqps:// URL, or a comma-separated list of them")
	}
	for i, u := range urls {
		// The dialer's own parser. Its error is not shown: net/url's
		// quotes the whole URL, password included.
		if _, err := amqp.ParseURI(u); err != nil {
			l.fail("AMQP_URL", fmt.Sprintf("must be an amqp:// or amqps:// URL (entry %d of %d does not parse as amqp://user:password@host:port/vhost; percent-encode reserved characters of the user name and password, RFC 3986 §3.2.1)", i+1, len(urls)))
		}
	}
	if v := l.str("QUORUM_INITIAL_GROUP_SIZE"); v != "" {
		c.QuorumInitialGroupSize = l.positiveInt("QUORUM_INITIAL_GROUP_SIZE")
	}
	if v := l.str("DLQ_MAX_LENGTH"); v != "" {
		c.DLQMaxLength = l.positiveInt("DLQ_MAX_LENGTH")
	}

	// Whether plain http may carry the API key (loopback only) is checked
	// by reconcile, which sends it.
	if u, err := url.Parse(c.StripeAPIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.fail("STRIPE_API_BASE", "must be an https URL such as https://api.stripe.com")
	}
	if c.MySQLDSN != "" {
		// The driver's own parser: what it accepts (parseTime=1 too) is
		// what the program will run with. Its errors quote no password.
		dsn, err := mysql.ParseDSN(c.MySQLDSN)
		switch {
		case err != nil:
			l.fail("MYSQL_DSN", err.Error()+" (go-sql-driver format: user:password@tcp(host:3306)/billing?parseTime=true)")
		case !dsn.ParseTime:
			l.fail("MYSQL_DSN", "must set parseTime=true")
		case dsn.ClientFoundRows:
			// With it MySQL reports an INSERT IGNORE or upsert of an
			// existing row as a row affected: the ledger's claim would
			// count a duplicate event as new.
			l.fail("MYSQL_DSN", "clientFoundRows=true breaks duplicate detection (a duplicate event would count as new): remove it")
		}
	}
	for _, s := range c.WebhookSecrets {
		if !strings.HasPrefix(s, webhookSecretPrefix) {
			l.fail("STRIPE_WEBHOOK_SECRET", "each secret must start with whsec_")
			break
		}
		if s == webhookSecretPrefix {
			l.fail("STRIPE_WEBHOOK_SECRET", "a secret is more than whsec_: copy the whole signing secret")
			break
		}
	}
	if !namespacePattern.MatchString(c.Namespace) {
		l.fail("BILLING_NAMESPACE", "must be 1-64 letters, digits, '.', '_' or '-'")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		l.fail("LOG_LEVEL", "must be debug, info, warn or error")
	}
	if c.WorkerBatchSize > maxWorkerBatchSize {
		l.fail("WORKER_BATCH_SIZE", fmt.Sprintf("each worker channel's prefetch, twice WORKER_BATCH_SIZE, must not exceed %d", maxPrefetch))
	}
	if c.WorkerConcurrency > consumer.MaxConcurrency {
		l.fail("WORKER_CONCURRENCY", fmt.Sprintf("must not exceed %d: each worker consumes on a channel of its own, and RabbitMQ's default channel_max is %d", consumer.MaxConcurrency, consumer.MaxConcurrency))
	}
	for _, name := range []string{"SMTP_FROM", "NOTIFY_SUPPORT_EMAIL"} {
		if v := l.str(name); v != "" {
			if a, err := mail.ParseAddress(v); err != nil || a.Name != "" {
				l.fail(name, "must be one bare email address, such as billing@example.com")
			}
		}
	}
	if c.DBMaxIdleConns > c.DBMaxOpenConns {
		l.fail("DB_MAX_IDLE_CONNS", "must not exceed DB_MAX_OPEN_CONNS")
	}
	return c, errors.Join(l.errs...)
}

// webhookSecretPrefix begins every Stripe webhook signing secret.
const webhookSecretPrefix = "whsec_"

// RequireWebhookSecret reports whether the api and the worker can verify
// signatures.
func (c Config) RequireWebhookSecret() error {
	if len(c.WebhookSecrets) == 0 {
		return ErrMissingWebhookSecret
	}
	return nil
}

// RequireMySQLDSN reports whether a command that uses MySQL has a DSN.
func (c Config) RequireMySQLDSN() error {
	if c.MySQLDSN == "" {
		return ErrMissingMySQLDSN
	}
	return nil
}

type loader struct {
	getenv func(string) string
	errs   []error
}

func (l *loader) fail(name, problem string) {
	l.errs = append(l.errs, fmt.Errorf("config: %s: %s", name, problem))
}

func (l *loader) str(name string) string {
	if v := strings.TrimSpace(l.getenv(name)); v != "" {
		return v
	}
	for _, v := range Vars {
		if v.Name == name {
			return v.Default
		}
	}
	panic("config: undeclared variable " + name) // a programming error: add it to Vars
}

func (l *loader) list(name string) []string {
	var out []string
	for _, s := range strings.Split(l.str(name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (l *loader) addr(name string) string {
	v := l.str(name)
	if _, _, err := net.SplitHostPort(v); err != nil {
		l.fail(name, fmt.Sprintf("%q is not host:port", v))
	}
	return v
}

func (l *loader) positiveInt(name string) int {
	v := l.str(name)
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		l.fail(name, fmt.Sprintf("%q is not a positive integer", v))
		return 0
	}
	return n
}

func (l *loader) positiveDuration(name string) time.Duration {
	v := l.str(name)
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		l.fail(name, fmt.Sprintf("%q is not a positive duration such as 30s or 5m", v))
		return 0
	}
	return d
}

func (l *loader) nonNegativeDuration(name string) time.Duration {
	v := l.str(name)
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		l.fail(name, fmt.Sprintf("%q is not a duration such as 0s, 5ms or 1s", v))
		return 0
	}
	return d
}

// retentionOff is the value that keeps every payload. 0 is refused: it
// would read as "keep nothing" as well as "no limit".
const retentionOff = "off"

func (l *loader) retention(name string) time.Duration {
	v := l.str(name)
	if v == retentionOff {
		return 0
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		l.fail(name, fmt.Sprintf("%q is neither a positive duration such as %s nor %s", v, durationText(maintenance.DefaultPayloadRetention), retentionOff))
		return 0
	}
	return d
}

// The values of a setting that is on or off.
const (
	settingOn  = "on"
	settingOff = "off"
)

func (l *loader) onOff(name string) bool {
	switch v := l.str(name); v {
	case settingOn:
		return true
	case settingOff:
		return false
	default:
		l.fail(name, fmt.Sprintf("%q is neither %s nor %s", v, settingOn, settingOff))
		return false
	}
}

func (l *loader) durations(name string) []time.Duration {
	var out []time.Duration
	for _, s := range strings.Split(l.str(name), ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil || d <= 0 {
			l.fail(name, fmt.Sprintf("%q is not a positive duration", strings.TrimSpace(s)))
			return nil
		}
		out = append(out, d)
	}
	return out
}
