package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/stripe-billing/billing/simulate"
)

const simulateUsage = `Post realistic signed Stripe events (customer lifecycles: subscriptions,
invoices, payment intents, charges, refunds, disputes) to the api and print
what it answered. The signing secret is the first of STRIPE_WEBHOOK_SECRET.
Exits non-zero when any request got a non-2xx answer or none at all.
Poison events are valid signed events: the api answers 200 and the worker
parks them. Every event is a test-mode event (livemode false). The target
must be on this machine unless --allow-remote.`

func runSimulate(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "simulate [flags]", simulateUsage)
	url := fs.String("url", "http://127.0.0.1:8080/webhooks/stripe", "webhook endpoint of the api")
	allowRemote := fs.Bool("allow-remote", false, "allow a --url that is not on this machine")
	count := fs.Int("count", 1000, "requests to send, duplicates included")
	rate := fs.Float64("rate", 100, "requests started per second at most (0 = unlimited)")
	concurrency := fs.Int("concurrency", 8, "requests in flight at most")
	duplicates := fs.Float64("duplicates", 0.05, "fraction of requests that redeliver an earlier event")
	outOfOrder := fs.Float64("out-of-order", 0.1, "fraction of events delivered after a newer event of their customer")
	poison := fs.Float64("poison", 0, "fraction of events the worker can never decode (parked in the DLQ)")
	seed := fs.Int64("seed", 1, "seed of the stream and its shuffles")
	customers := fs.Int("customers", 50, "customer lifecycles interleaved at once")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of one request")
	asJSON := fs.Bool("json", false, "print the summary as JSON (with the accepted event ids)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, _, err := loadConfig(e, logFormat(*asJSON))
	if err != nil {
		return err
	}
	if err := cfg.RequireWebhookSecret(); err != nil {
		return err
	}
	if *concurrency <= 0 || *customers <= 0 {
		return fmt.Errorf("%w: --concurrency and --customers must be positive", errUsage)
	}

	client := &http.Client{Transport: &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		MaxIdleConns:        *concurrency,
		MaxIdleConnsPerHost: *concurrency,
		IdleConnTimeout:     30 * time.Second,
	}}
	defer client.CloseIdleConnections()
	summary, runErr := simulate.Run(ctx, simulate.Config{
		URL:             *url,
		AllowRemote:     *allowRemote,
		Secret:          cfg.WebhookSecrets[0],
		Count:           *count,
		Rate:            *rate,
		Concurrency:     *concurrency,
		DuplicateRatio:  *duplicates,
		OutOfOrderRatio: *outOfOrder,
		PoisonRatio:     *poison,
		Seed:            *seed,
		Customers:       *customers,
		RequestTimeout:  *timeout,
	}, client)
	if runErr != nil && summary.Sent == 0 && !errors.Is(runErr, context.Canceled) && !errors.Is(runErr, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", errUsage, runErr) // the configuration was refused
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(summary); err != nil {
			return fmt.Errorf("simulate: write summary: %w", err)
		}
	} else if err := summary.Print(e.stdout); err != nil {
		return fmt.Errorf("simulate: write summary: %w", err)
	}
	if runErr != nil {
		return fmt.Errorf("simulate: stopped after %d of %d requests: %w", summary.Sent, *count, runErr)
	}
	if summary.Failed() {
		notOK := 0
		for _, n := range summary.NotOK {
			notOK += n
		}
		return fmt.Errorf("simulate: %d of %d requests failed (%d non-2xx, %d transport errors)",
			notOK+summary.TransportErrors, summary.Sent, notOK, summary.TransportErrors)
	}
	return nil
}
