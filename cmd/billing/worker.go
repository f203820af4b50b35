package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/config"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/retry"
)

const (
	// handlerTimeout bounds one event's processing; an overrun is a
	// transient failure and goes to the next delay tier.
	handlerTimeout = 30 * time.Second
	// jitter spreads the in-process waits (reconnects, outage probes) of
	// many workers; the delay tiers themselves are fixed queue TTLs.
	jitter = 0.2
)

func runWorker(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "worker", `Consume <namespace>.events.work and apply each Stripe event to MySQL exactly
once. Failures go to the delay tiers (RETRY_DELAYS, MAX_ATTEMPTS) or are
parked in <namespace>.events.dlq with the reason; while MySQL is unreachable
the worker pauses and spends no attempts. SIGTERM drains in-flight events
within SHUTDOWN_TIMEOUT. Settings come from the environment.`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, logger, err := loadConfig(e)
	if err != nil {
		return err
	}
	w, err := newWorker(cfg, logger)
	if err != nil {
		return err
	}
	return w.run(ctx)
}

// worker is the wiring of `billing worker`: a consuming and a publishing
// connection, the store, the retry router and the consumer.
type worker struct {
	cfg     config.Config
	logger  *slog.Logger
	topo    broker.Topology
	policy  retry.Policy
	backoff func(attempt int) time.Duration
	consume *broker.Conn
	publish *broker.Conn
	// observer is the seam for /metrics (another issue); nil for now.
	observer consumer.Observer
}

func newWorker(cfg config.Config, logger *slog.Logger) (*worker, error) {
	policy := retry.Policy{Delays: cfg.RetryDelays, MaxAttempts: cfg.MaxAttempts, Jitter: jitter}
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("worker: RETRY_DELAYS/MAX_ATTEMPTS: %w", err)
	}
	w := &worker{
		cfg: cfg, logger: logger, policy: policy,
		topo: broker.NewTopology(cfg.Namespace, cfg.RetryDelays, cfg.WorkDeliveryLimit),
		backoff: func(n int) time.Duration {
			return retry.Backoff(n, 100*time.Millisecond, 10*time.Second, jitter, rand.Float64)
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
	return w, nil
}

// run works until ctx is canceled. The connections outlive the consumer:
// it still acks its in-flight events after the cancel.
func (w *worker) run(ctx context.Context) error {
	connCtx, stopConns := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConns()
	var g errgroup.Group
	g.Go(func() error { return w.consume.Run(connCtx) })
	g.Go(func() error { return w.publish.Run(connCtx) })
	g.Go(func() error {
		defer stopConns()
		return w.work(ctx)
	})
	return g.Wait()
}

func (w *worker) work(ctx context.Context) error {
	store, err := w.openStore(ctx)
	if err != nil || store == nil {
		return err
	}
	defer store.Close()
	pub := broker.NewPublisher(w.publish, w.cfg.WorkerConcurrency, w.cfg.PublishTimeout)
	router, err := retry.NewRouter(retry.RouterConfig{Topology: w.topo, Policy: w.policy}, w.logger, pub, store)
	if err != nil {
		return err
	}
	handler := consumer.Chain(consumer.Process(billing.NewProcessor(store, w.logger)),
		consumer.Recover(w.logger), consumer.Log(w.logger), consumer.Timeout(handlerTimeout))
	c, err := consumer.New(consumer.Config{
		Queue:           w.topo.Work,
		Concurrency:     w.cfg.WorkerConcurrency,
		ShutdownTimeout: w.cfg.ShutdownTimeout,
		Name:            "billing-worker",
		Ping:            store.Ping,
		Jitter:          jitter,
		Observer:        w.observer,
	}, w.logger, w.consume, handler, router)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// openStore opens the database, waiting with backoff while it is
// unreachable: the worker starts whatever MySQL's state and takes work
// once it answers. Other errors (a bad DSN) end the worker. A nil store
// and nil error mean ctx ended the wait.
func (w *worker) openStore(ctx context.Context) (*models.Store, error) {
	pool := models.PoolConfig{
		MaxOpenConns: w.cfg.DBMaxOpenConns, MaxIdleConns: w.cfg.DBMaxIdleConns, ConnMaxLifetime: w.cfg.DBConnMaxLifetime,
	}
	for n := 0; ; n++ {
		store, err := models.Open(ctx, w.cfg.MySQLDSN, pool, w.logger)
		if err == nil {
			return store, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if !errors.Is(err, models.ErrUnavailable) {
			return nil, fmt.Errorf("worker: MYSQL_DSN: %w", err)
		}
		wait := w.backoff(n)
		w.logger.Warn("database unavailable: waiting before taking work", "error", err, "retry_in", wait.String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-t.C:
		}
	}
}
