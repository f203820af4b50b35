package main

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/metrics"
	"github.com/stripe-billing/billing/relay"
)

func runRelay(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "relay", `Publish the change outbox to <namespace>.changes (docs/design.md#the-change-feeds-relay);
one relay at a time, others wait. /metrics, /healthz, /readyz on METRICS_ADDR.`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, logger, err := loadConfig(e, jsonLogs)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, logger, "relay", 3)
	if err != nil {
		return err
	}
	defer store.Close()
	topo := fullTopology(cfg)
	conn := broker.NewConn(broker.ConnConfig{URL: cfg.AMQPURL, Name: "billing-relay", Topology: topo, Backoff: reconnectBackoff, DialTimeout: 5 * time.Second}, logger)
	reg := metrics.NewRegistry()
	r, rerr := relay.New(relay.Config{Exchange: topo.Changes}, logger, store, conn, metrics.New(reg))
	srv, err := metrics.NewServer(metrics.ServerConfig{Addr: cfg.MetricsAddr, Registry: reg, Checks: []metrics.Check{
		{Name: "database", Probe: store.Ping}, {Name: "broker", Probe: func(context.Context) error { _, err := conn.Connection(); return err }},
	}}, logger)
	if err = errors.Join(rerr, err); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error { return r.Run(gctx) })
	return g.Wait()
}
