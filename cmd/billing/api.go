package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stripe-billing/billing/api"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/metrics"
	"github.com/stripe-billing/billing/retry"
)

const apiUsage = `Serve POST /webhooks/stripe on HTTP_ADDR: verify the Stripe-Signature with
STRIPE_WEBHOOK_SECRET (required; comma-separated during rotation) and publish
the raw event to <BILLING_NAMESPACE>.events, answering 200 only once RabbitMQ
confirmed and routed it, else 503. Also GET /healthz and GET /readyz (ready
or not, no detail) there; GET /metrics (Prometheus), /healthz and /readyz
with its checks on METRICS_ADDR, a port for operators only.
The api starts even while RabbitMQ is down (it answers 503 until connected)
and never touches MySQL. On SIGTERM /readyz answers 503 at once, the rest is
served for SHUTDOWN_READY_DELAY more (a load balancer stops sending here),
then requests in flight finish within SHUTDOWN_TIMEOUT.`

func runAPI(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "api", apiUsage)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, logger, err := loadConfig(e, jsonLogs)
	if err != nil {
		return err
	}
	if err := cfg.RequireWebhookSecret(); err != nil {
		return err
	}
	topo := broker.NewTopology(cfg.Namespace, cfg.RetryDelays, cfg.WorkDeliveryLimit)
	conn := broker.NewConn(broker.ConnConfig{
		URL:            cfg.AMQPURL,
		Name:           "billing-api publisher",
		Topology:       topo,
		Backoff:        reconnectBackoff,
		DialTimeout:    5 * time.Second,
		CoalesceWrites: true,
	}, logger)
	pub := broker.NewPublisher(conn, cfg.PublisherChannels, cfg.PublishTimeout)
	reg := metrics.NewRegistry()
	m := metrics.New(reg)
	server, err := api.New(api.Config{
		Exchange:           topo.Events,
		Secrets:            cfg.WebhookSecrets,
		Tolerance:          cfg.WebhookTolerance,
		MaxBodyBytes:       cfg.WebhookMaxBodyBytes,
		MaxInFlight:        cfg.WebhookMaxInFlight,
		BodyTimeout:        cfg.WebhookBodyTimeout,
		MaxConns:           cfg.WebhookMaxConns,
		Addr:               cfg.HTTPAddr,
		PublishTimeout:     cfg.PublishTimeout,
		ShutdownTimeout:    cfg.ShutdownTimeout,
		ShutdownReadyDelay: cfg.ShutdownReadyDelay,
		Observer:           m,
	}, logger, pub)
	if err != nil {
		return err
	}
	ops, err := metrics.NewServer(metrics.ServerConfig{
		Addr: cfg.MetricsAddr, Registry: reg, Checks: append(publisherChecks(conn), metrics.Check{
			Name: "server", Down: "shutting down", Probe: func(context.Context) error {
				if server.Draining() {
					return errDraining
				}
				return nil
			}}),
	}, logger)
	if err != nil {
		return err
	}
	// The server does not wait for the broker: until the connection is up
	// it answers 503 and Stripe retries. The connection and the operators'
	// port outlive the server, so that requests in flight at SIGTERM still
	// get their confirms while the server says not ready and drains.
	connCtx, stopConn := context.WithCancel(context.WithoutCancel(ctx))
	defer stopConn()
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return conn.Run(connCtx) })
	g.Go(func() error {
		defer stopConn()
		return server.Run(ctx)
	})
	g.Go(func() error { return ops.Run(connCtx) })
	return g.Wait()
}

// errDraining is the api's reason for not being ready after SIGTERM.
var errDraining = errors.New("api: shutting down")

// errBlocked is the api's reason for not being ready during a resource alarm.
var errBlocked = errors.New("broker: publishing blocked by a memory or disk alarm")

// publisherChecks are the api's readiness on METRICS_ADDR: the publishing
// connection is up ("broker") and no resource alarm blocks it ("publishing").
func publisherChecks(conn *broker.Conn) []metrics.Check {
	return []metrics.Check{
		{Name: "broker", Probe: func(context.Context) error {
			if !conn.Ready() {
				return broker.ErrUnavailable
			}
			return nil
		}},
		{Name: "publishing", Down: "blocked", Probe: func(context.Context) error {
			if conn.Blocked() {
				return errBlocked
			}
			return nil
		}},
	}
}

// reconnectBackoff waits 100ms·2ⁿ, capped at 10s, shortened by up to half
// at random, so that many api replicas do not redial in step after a
// broker restart.
func reconnectBackoff(attempt int) time.Duration {
	return retry.Backoff(attempt, 100*time.Millisecond, 10*time.Second, 0.5, rand.Float64)
}
