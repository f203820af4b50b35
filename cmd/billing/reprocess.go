package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
)

const reprocessUsage = `Apply ledger events again, from their stored payloads, through this
release's handlers: an event a worker of an older release ignored (no
handler for its type yet), one parked dead, or a whole rebuild. Events are
applied in Stripe's order (created, then the tie rules), each in its own
transaction that marks it processed; applying is idempotent, so running
twice changes nothing. Each payload is checked again first: its stored
Stripe-Signature with STRIPE_WEBHOOK_SECRET (any age), else, with
STRIPE_API_KEY, Stripe's copy fetched by id; an event created more than
WEBHOOK_TOLERANCE in the future is refused. An event that fails the check
is skipped, with the reason. With STRIPE_API_KEY set, same-second ties are
settled by the object fetched from Stripe, as the worker does.

  billing reprocess [--type T,...] [--status S,...] [--since WHEN] [--until WHEN] [--dry-run]

WHEN is an RFC 3339 time (2026-03-01T00:00:00Z) or a duration before now
(72h). Prints one line per event and a summary; exits non-zero when an
event failed (it is rolled back and left as it was) or was skipped.`

func runReprocess(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "reprocess", reprocessUsage)
	types := fs.String("type", "", "only events of these `types` (comma-separated; default all)")
	statuses := fs.String("status", models.EventIgnored, "only events with these ledger `statuses` (comma-separated: ignored, processed, dead)")
	since := fs.String("since", "", "only events Stripe created at or after `WHEN`")
	until := fs.String("until", "", "only events Stripe created before `WHEN`")
	dryRun := fs.Bool("dry-run", false, "print what would be applied, apply nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	now := time.Now()
	f := models.EventFilter{Types: commaList(*types), Statuses: commaList(*statuses)}
	for _, st := range f.Statuses {
		if st != models.EventIgnored && st != models.EventProcessed && st != models.EventDead {
			return fmt.Errorf("%w: --status %q: want ignored, processed or dead", errUsage, st)
		}
	}
	var err error
	if f.Since, err = parseWhen(*since, now); err != nil {
		return fmt.Errorf("%w: --since: %v", errUsage, err)
	}
	if f.Until, err = parseWhen(*until, now); err != nil {
		return fmt.Errorf("%w: --until: %v", errUsage, err)
	}
	cfg, logger, err := loadConfig(e, textLogs)
	if err != nil {
		return err
	}
	if err := cfg.RequireWebhookSecret(); err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, logger, "reprocess", 2)
	if err != nil {
		return err
	}
	defer store.Close()
	fetcher, err := stripeFetcher(cfg, nil)
	if err != nil {
		return err
	}
	v, err := newVerifier(cfg, fetcher)
	if err != nil {
		return err
	}
	rp, err := ledger.NewReprocessor(ledger.NewProcessor(store, logger, processorOptions(cfg, fetcher)...), v)
	if err != nil {
		return err
	}
	rep, err := rp.Run(ctx, f, *dryRun, func(r ledger.Reprocessed) { r.WriteText(e.stdout) })
	rep.WriteText(e.stdout, *dryRun)
	if err != nil {
		return err
	}
	return rep.Problem(*dryRun)
}

// commaList splits a comma-separated flag value, dropping empty items.
func commaList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// parseWhen reads an RFC 3339 time or a duration before now; "" is no
// bound.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a positive duration", s)
	}
	return now.Add(-d), nil
}
