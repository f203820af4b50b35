package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/stripe-billing/billing/history"
	"github.com/stripe-billing/billing/models/lookup"
)

const historyUsage = `What happened to one Stripe object, and when: its current row (from
whichever table holds the id) and every ledger event of it in Stripe's
order (created, then received): event id, type, created, received, the
status before and after, and the outcome: applied (it changed the row),
stale (a newer event was applied first: only its status was recorded),
ignored (no handler), dead (parked: see 'billing dlq list'), discarded
(taken off the DLQ by 'billing dlq discard': who, when, why), processed
(recorded before outcomes were). Needs MYSQL_DSN only.

  billing history [--json] <stripe id>

For a customer (cus_...), then its subscriptions, invoices, payment
intents, charges, refunds, disputes, checkout sessions and credit notes,
newest first, each with the statuses its events reported, newest first
(--json: "objects").

Exits 1 when nothing is known of the id, 2 when it is not an object id.`

func runHistory(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "history", historyUsage)
	asJSON := fs.Bool("json", false, "print the report as one JSON object (schema: docs/runbook.md)")
	// The id may come before or after the flags.
	ids, err := parseFlagArgs(fs, args)
	if err != nil {
		return err
	}
	if len(ids) != 1 {
		return fmt.Errorf("%w: history takes one object id, got %d", errUsage, len(ids))
	}
	if err := history.CheckID(ids[0]); err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	cfg, logger, err := loadConfig(e, logFormat(*asJSON))
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, logger, "history", 2)
	if err != nil {
		return err
	}
	defer store.Close()
	if history.IsCustomer(ids[0]) {
		rep, err := history.OfCustomer(ctx, lookup.New(store), ids[0])
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(rep)
		}
		rep.WriteText(e.stdout)
		return nil
	}
	rep, err := history.Of(ctx, lookup.New(store), ids[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(rep)
	}
	rep.WriteText(e.stdout)
	return nil
}
