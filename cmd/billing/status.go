package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/status"
)

const statusUsage = `Where things stand, without Grafana: each queue's ready messages and
consumers, events per minute (received, processed, parked) over --window,
the events waiting in the delay tiers, parked events by class, the oldest
parked event, events dead in the ledger but in no queue, the last sweep
pass, and then one line per finding:

  CRITICAL  no consumer on the work queue; events dead in the ledger and
            in no queue
  WARNING   the DLQ grew within --window; dead events perhaps on their way
            back; the last successful sweep older than twice its period
            (--sweep-period, or the period 'sweep --every' saved); a stray
            queue in the namespace, with its count; strays not checked

Exit code 0 healthy, 1 a warning, 2 critical (and 2 on a usage mistake),
for cron or a monitoring check; with --watch, 0.

Needs AMQP_URL and MYSQL_DSN (the support or sweep user is enough); queues
are read with passive declares and the DLQ as 'billing dlq list' reads it
(every message stays parked). Stray queues are listed with the management
API (--management-url; default AMQP_URL's host on port 15672 with its
credentials; off: not checked).

  billing status [--json] [--watch DURATION] [--window DURATION]
                 [--sweep-period DURATION] [--management-url URL|off]`

func runStatus(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "status", statusUsage)
	asJSON := fs.Bool("json", false, "print the report as one JSON object (one per refresh with --watch)")
	watch := fs.Duration("watch", 0, "refresh every `DURATION` until stopped (0: once)")
	window := fs.Duration("window", 5*time.Minute, "the span the per-minute rates average over")
	sweepPeriod := fs.Duration("sweep-period", 0, "how often cron runs the sweep (0: the period 'sweep --every' saved, if any)")
	mgmtURL := fs.String("management-url", "", "RabbitMQ's management API, to find stray queues (default: from AMQP_URL; off: not checked)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *watch < 0 || *window <= 0 || *sweepPeriod < 0 {
		return fmt.Errorf("%w: --watch and --sweep-period must not be negative, --window must be positive", errUsage)
	}
	cfg, logger, err := loadConfig(e, logFormat(*asJSON))
	if err != nil {
		return err
	}
	var queues status.QueueLister
	if *mgmtURL != "off" {
		u := *mgmtURL
		if u == "" {
			if u, err = broker.ManagementURL(cfg.AMQPURL); err != nil {
				return err
			}
		}
		vhost := "/"
		if uri, err := broker.ParseURL(broker.SplitURLs(cfg.AMQPURL)[0]); err == nil {
			vhost = uri.Vhost
		}
		m, err := broker.NewManagement(u, vhost)
		if err != nil {
			return fmt.Errorf("%w: --management-url: %v", errUsage, err)
		}
		queues = m
	}
	store, err := openStore(ctx, cfg, logger, "status", 2)
	if err != nil {
		return err
	}
	defer store.Close()
	s, err := openDLQ(ctx, cfg, logger, "billing-status", fullTopology(cfg))
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	defer s.close()
	r, err := status.New(status.Config{Topology: s.topo, Window: *window, SweepPeriod: *sweepPeriod, Queues: queues}, s.reader, s.dlq, store)
	if err != nil {
		return err
	}
	for {
		rep, err := r.Report(ctx)
		if ctx.Err() != nil {
			return nil // stopped
		}
		if err != nil {
			return err
		}
		if *asJSON {
			if err := json.NewEncoder(e.stdout).Encode(rep); err != nil {
				return err
			}
		} else {
			if *watch > 0 {
				fmt.Fprint(e.stdout, "\033[H\033[2J") // clear the terminal
			}
			rep.WriteText(e.stdout)
		}
		if *watch == 0 {
			if code := slices.Index(status.Severities, rep.Severity); code > 0 {
				return exitStatus(code)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*watch):
		}
	}
}
