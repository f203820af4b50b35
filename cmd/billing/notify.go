package main

import (
	"context"
	"fmt"

	"github.com/stripe-billing/billing/feedtail"
	"github.com/stripe-billing/billing/notify"
)

func runNotify(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "notify", "Emails a failed payment to its customer, an opened dispute to NOTIFY_SUPPORT_EMAIL (docs/changes.md).")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	cfg, logger, err := loadConfig(e, jsonLogs)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, logger, "notify", 4)
	if err != nil {
		return err
	}
	defer store.Close()
	return notify.Serve(ctx, notify.Config{SMTPAddr: cfg.SMTPAddr, From: cfg.SMTPFrom, Support: cfg.NotifySupportEmail,
		Templates: cfg.NotifyTemplates}, logger, store, cfg.AMQPURL, fullTopology(cfg), cfg.MetricsAddr)
}

func runChanges(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "changes tail", "Prints the change feed, one line per change, from now until stopped.")
	key := fs.String("key", "#", "binding `KEY` to <ns>.changes: 'subscription.#', '*.status.#'")
	if len(args) == 0 || args[0] != "tail" {
		return &flagError{fs, fmt.Errorf("%w: changes needs tail", errUsage)}
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	cfg, _, err := loadConfig(e, textLogs)
	if err != nil {
		return err
	}
	return feedtail.Follow(ctx, cfg.AMQPURL, cfg.Namespace, *key, e.stdout)
}
