package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/stripe-billing/billing/ledger"

	"golang.org/x/sync/errgroup"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/config"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/metrics"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/reconcile"
	"github.com/stripe-billing/billing/retry"
	"github.com/stripe-billing/billing/verify"
)

const (
	// depthInterval is how often the worker polls its queue depths and
	// the age of the oldest parked event and the count of dead ones.
	depthInterval = 5 * time.Second
	// pingTimeout bounds the database ping of /readyz.
	pingTimeout = time.Second
)

func runWorker(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "worker", `Consume <namespace>.events.work and apply each Stripe event to MySQL exactly
once. Each message is verified first: its forwarded Stripe-Signature
against STRIPE_WEBHOOK_SECRET (required), else, with STRIPE_API_KEY, the
event is fetched from Stripe by id and Stripe's copy is applied; anything
else is parked as unverified. Failures go to the delay tiers (RETRY_DELAYS,
MAX_ATTEMPTS) or are parked in <namespace>.events.dlq with the reason; while
MySQL is unreachable the worker pauses and spends no attempts. With
STRIPE_API_KEY set, two events of one object in one second that nothing in
their payloads orders are settled by the object fetched from Stripe; without
it, by event id. SIGTERM drains in-flight events
within SHUTDOWN_TIMEOUT. GET /metrics, /healthz and /readyz are served on
METRICS_ADDR. Settings come from the environment.`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, logger, err := loadConfig(e, jsonLogs)
	if err != nil {
		return err
	}
	if err := errors.Join(cfg.RequireWebhookSecret(), cfg.RequireMySQLDSN()); err != nil {
		return err
	}
	tuneWorkerRuntime(e.getenv, logger)
	w, err := newWorker(cfg, logger)
	if err != nil {
		return err
	}
	return w.run(ctx)
}

// worker is the wiring of `billing worker`: a consuming and a publishing
// connection, the store, the retry router and the consumer, plus the
// metrics server and the queue-depth poller.
type worker struct {
	cfg     config.Config
	logger  *slog.Logger
	topo    broker.Topology
	policy  retry.Policy
	backoff func(attempt int) time.Duration
	consume *broker.Conn
	publish *broker.Conn
	metrics *metrics.Metrics
	server  *metrics.Server
	poller  *metrics.QueueDepthPoller
	parked  *metrics.ParkedPoller
	// store and consumer exist once work has opened the database; /readyz
	// reads them from the server's goroutines.
	store    atomic.Pointer[models.Store]
	consumer atomic.Pointer[consumer.Consumer]
}

func newWorker(cfg config.Config, logger *slog.Logger) (*worker, error) {
	policy := retry.Policy{Delays: cfg.RetryDelays, MaxAttempts: cfg.MaxAttempts, Jitter: consumer.DefaultJitter}
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("worker: RETRY_DELAYS/MAX_ATTEMPTS: %w", err)
	}
	w := &worker{
		cfg: cfg, logger: logger, policy: policy,
		topo: broker.NewTopology(cfg.Namespace, cfg.RetryDelays, cfg.WorkDeliveryLimit),
		backoff: func(n int) time.Duration {
			return retry.Backoff(n, consumer.DefaultRepublishMin, consumer.DefaultRepublishMax, consumer.DefaultJitter, rand.Float64)
		},
	}
	conn := func(name string) *broker.Conn {
		return broker.NewConn(broker.ConnConfig{
			URL: cfg.AMQPURL, Name: name, Topology: w.topo, Backoff: w.backoff, DialTimeout: 5 * time.Second,
		}, logger)
	}
	// Two connections: amqp091 channels must not be shared between
	// consuming and publishing, and a publisher blocked by a resource alarm
	// must not stall acks.
	w.consume = conn("billing-worker consumer")
	w.publish = conn("billing-worker publisher")

	reg := metrics.NewRegistry()
	w.metrics = metrics.New(reg)
	var err error
	w.server, err = metrics.NewServer(metrics.ServerConfig{
		Addr: cfg.MetricsAddr, Registry: reg, Checks: w.checks(), ReadyTimeout: pingTimeout,
	}, logger)
	if err != nil {
		return nil, err
	}
	w.poller, err = metrics.NewQueueDepthPoller(depthInterval, logger, w.metrics, metrics.QueueDepths(w.publish, w.topo.Queues()))
	if err != nil {
		return nil, err
	}
	w.parked, err = metrics.NewParkedPoller(depthInterval, pingTimeout, logger, w.metrics, func(ctx context.Context) (int, time.Time, error) {
		store := w.store.Load()
		if store == nil {
			return 0, time.Time{}, errors.New("database not open yet")
		}
		d, err := store.Dead(ctx)
		return d.Count, d.OldestReceivedAt, err
	})
	if err != nil {
		return nil, err
	}
	return w, nil
}

// run works until ctx is canceled. The connections outlive the consumer:
// it still acks its in-flight events after the cancel. A failure of the
// metrics server (its address taken) stops the whole worker.
func (w *worker) run(ctx context.Context) error {
	connCtx, stopConns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConns()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.consume.Run(connCtx) })
	g.Go(func() error { return w.publish.Run(connCtx) })
	g.Go(func() error {
		defer stopConns()
		return w.work(ctx)
	})
	g.Go(func() error { return w.server.Run(ctx) })
	g.Go(func() error { return w.poller.Run(ctx) })
	g.Go(func() error { return w.parked.Run(ctx) })
	return g.Wait()
}

// checks are /readyz: both broker connections up, the database open and
// answering a ping, and the consumer not paused by an outage.
func (w *worker) checks() []metrics.Check {
	return []metrics.Check{
		{Name: "broker", Probe: func(context.Context) error {
			switch {
			case !w.consume.Ready():
				return errors.New("broker: consuming connection down")
			case !w.publish.Ready():
				return errors.New("broker: publishing connection down")
			}
			return nil
		}},
		{Name: "database", Probe: func(ctx context.Context) error {
			store := w.store.Load()
			if store == nil {
				return errors.New("database: not connected yet")
			}
			return store.Ping(ctx)
		}},
		{Name: "consumer", Down: "paused", Probe: func(context.Context) error {
			if c := w.consumer.Load(); c != nil && c.Paused() {
				return errors.New("consumer paused: database outage")
			}
			return nil
		}},
	}
}

func (w *worker) work(ctx context.Context) error {
	store, err := w.openStore(ctx)
	if err != nil || store == nil {
		return err
	}
	defer store.Close()
	pub := broker.NewPublisher(w.publish, w.cfg.WorkerConcurrency, w.cfg.PublishTimeout)
	router, err := dlq.NewRouter(dlq.RouterConfig{Topology: w.topo, Policy: w.policy, Secrets: w.cfg.WebhookSecrets}, w.logger, pub, store)
	if err != nil {
		return err
	}
	fetcher, err := stripeFetcher(w.cfg, w.metrics)
	if err != nil {
		return err
	}
	if fetcher == nil {
		w.logger.Warn("STRIPE_API_KEY not set: messages without a valid signature (published by hand, enqueued by reconciliation) are parked as unverified")
	}
	v, err := newVerifier(w.cfg, fetcher)
	if err != nil {
		return err
	}
	proc := ledger.NewProcessor(store, w.logger, processorOptions(w.cfg, fetcher)...)
	one, batch := ledger.Handlers(proc)
	c, err := consumer.New(consumer.Config{
		Queue:           w.topo.Work,
		Concurrency:     w.cfg.WorkerConcurrency,
		BatchSize:       w.cfg.WorkerBatchSize,
		BatchWait:       w.cfg.WorkerBatchWait,
		Batch:           batch,
		ShutdownTimeout: w.cfg.ShutdownTimeout,
		Ping:            store.Ping,
		Verifier:        v,
		Observer:        metrics.NewEventObserver(w.metrics, w.topo, proc.Handled()),
	}, w.logger, w.consume, one, router)
	if err != nil {
		return err
	}
	w.store.Store(store)
	w.consumer.Store(c)
	defer w.store.Store(nil) // closed below: /readyz must not ping it
	return c.Run(ctx)
}

// stripeFetcher calls Stripe's API with STRIPE_API_KEY, within
// STRIPE_API_RATE and STRIPE_API_CONCURRENCY, counting its calls in m (may
// be nil); nil without a key.
func stripeFetcher(cfg config.Config, m *metrics.Metrics) (*reconcile.Fetcher, error) {
	if cfg.StripeAPIKey == "" {
		return nil, nil
	}
	return reconcile.NewFetcher(reconcile.FetcherConfig{
		APIKey: cfg.StripeAPIKey, APIBase: cfg.StripeAPIBase, Observe: m.StripeCall,
		Limits: reconcile.Limits{Rate: float64(cfg.StripeAPIRate), Concurrency: cfg.StripeAPIConcurrency},
	})
}

// newVerifier checks events with the api's webhook secrets and, with a
// fetcher, trusts Stripe's copy of the events it cannot verify: the
// worker's messages and reprocess's stored payloads alike.
func newVerifier(cfg config.Config, fetcher *reconcile.Fetcher) (*verify.Verifier, error) {
	vc := verify.Config{Secrets: cfg.WebhookSecrets, Tolerance: cfg.WebhookTolerance, MaxBodyBytes: cfg.WebhookMaxBodyBytes}
	if fetcher != nil {
		vc.Fetcher = fetcher
	}
	return verify.New(vc)
}

// processorOptions are the ledger.Processor's options: with a fetcher,
// same-second ties are settled by the object fetched from Stripe;
// CHANGE_FEED=off writes no change to the outbox.
func processorOptions(cfg config.Config, fetcher *reconcile.Fetcher) []ledger.Option {
	var opts []ledger.Option
	if fetcher != nil {
		opts = append(opts, ledger.WithObjectFetcher(fetcher))
	}
	if !cfg.ChangeFeed {
		opts = append(opts, ledger.WithoutChangeFeed())
	}
	return opts
}

// openStore opens the database, waiting while it is unreachable
// (models.OpenWhenUp); a nil store and nil error mean ctx ended the wait.
func (w *worker) openStore(ctx context.Context) (*models.Store, error) {
	pool := models.PoolConfig{
		MaxOpenConns: w.cfg.DBMaxOpenConns, MaxIdleConns: w.cfg.DBMaxIdleConns, ConnMaxLifetime: w.cfg.DBConnMaxLifetime,
	}
	store, err := models.OpenWhenUp(ctx, w.cfg.MySQLDSN, pool, w.logger, w.backoff)
	if err != nil {
		return nil, fmt.Errorf("worker: MYSQL_DSN: %w", err)
	}
	if store == nil {
		return nil, nil
	}
	return store.Observed(w.metrics.DBError), nil
}
