package main

import (
	"context"
	"fmt"
	"time"

	"github.com/stripe-billing/billing/broker"
)

const topologyUsage = `Declare the RabbitMQ exchanges and queues of BILLING_NAMESPACE on AMQP_URL
(idempotent: safe to run again), print the names declared and exit. The only
command that declares: api, worker, sweep and dlq check at start that the
topology exists and fail naming what is missing. Run it as a user with
configure permission on the namespace (docs/operations.md#least-privilege).`

func runTopology(_ context.Context, e env, args []string) error {
	fs := newFlagSet(e, "topology", topologyUsage)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, _, err := loadConfig(e, textLogs)
	if err != nil {
		return err
	}
	topo := broker.NewTopology(cfg.Namespace, cfg.RetryDelays, cfg.WorkDeliveryLimit)
	topo.QuorumInitialGroupSize = cfg.QuorumInitialGroupSize
	// amqp091-go dials without a context; the dial timeout bounds it.
	conn, err := broker.Dial(cfg.AMQPURL, "billing topology", 5*time.Second)
	if err != nil {
		return fmt.Errorf("topology: connect to RabbitMQ at %s (AMQP_URL): %w", broker.RedactURL(cfg.AMQPURL), err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("topology: open channel: %w", err)
	}
	defer ch.Close()
	if err := topo.Declare(ch); err != nil {
		return fmt.Errorf("topology: %w", err)
	}
	for _, x := range topo.Exchanges() {
		fmt.Fprintln(e.stdout, "exchange", x)
	}
	for _, q := range topo.Queues() {
		fmt.Fprintln(e.stdout, "queue   ", q)
	}
	return nil
}
