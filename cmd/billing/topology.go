package main

import (
	"context"
	"fmt"
	"time"

	"github.com/stripe-billing/billing/broker"
)

const topologyUsage = `Declare the RabbitMQ exchanges and queues of BILLING_NAMESPACE on AMQP_URL
and set their policies through the management API (--management-url;
default AMQP_URL's host on port 15672 with its credentials), print the
names declared and exit. Idempotent: safe to run again, and a changed
WORK_DELIVERY_LIMIT or DLQ_MAX_LENGTH applies in place; a queue that must
be rebuilt is named with the setting and the steps. The only command that
declares: api, worker, sweep and dlq check at start that the topology
exists and fail naming what is missing. Run it as a user with configure
permission on the namespace and the policymaker tag
(docs/operations.md#least-privilege).

  billing topology [--management-url URL]`

func runTopology(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "topology", topologyUsage)
	mgmtURL := fs.String("management-url", "", "RabbitMQ's management API, where the policies are set (default: from AMQP_URL)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, _, err := loadConfig(e, textLogs)
	if err != nil {
		return err
	}
	topo := broker.NewTopology(cfg.Namespace, cfg.RetryDelays, cfg.WorkDeliveryLimit)
	topo.QuorumInitialGroupSize = cfg.QuorumInitialGroupSize
	topo.DLQMaxLength = cfg.DLQMaxLength
	uri, err := broker.ParseURL(broker.SplitURLs(cfg.AMQPURL)[0])
	if err != nil {
		return fmt.Errorf("topology: AMQP_URL: %w", err)
	}
	u := *mgmtURL
	if u == "" {
		if u, err = broker.ManagementURL(cfg.AMQPURL); err != nil {
			return err
		}
	}
	api, err := broker.NewManagement(u, uri.Vhost)
	if err != nil {
		return fmt.Errorf("%w: --management-url: %v", errUsage, err)
	}
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
	if err := topo.Declare(ctx, ch, api); err != nil {
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
