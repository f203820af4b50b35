package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stripe-billing/billing/backfill"
	"github.com/stripe-billing/billing/ledger"
)

const backfillUsage = `Imports the objects the account had before its events began, from
Stripe's list endpoints (customers, subscriptions, invoices, payment
intents, charges, refunds, disputes, checkout sessions, credit notes), page
by page at STRIPE_API_RATE, STRIPE_API_CONCURRENCY kinds at once, 429s
and 5xx tried again after a pause. Each page is folded by the rules events are folded by
(an event created after the fetch wins) and written with its cursor in one
transaction: a kill loses nothing, and a rerun continues from the saved
cursors. A kind already done is not fetched again. Needs STRIPE_API_KEY
(read rights on every kind) and MYSQL_DSN.

  billing backfill [--account acct_... | --all-accounts] [--kind K,...]
                   [--created-since WHEN] [--created-until WHEN] [--api-version V]
                   [--slices N] [--restart] [--dry-run]

WHEN is an RFC 3339 time or a duration before now (720h); a range has
cursors of its own.

Shows each kind's counts, rate and time left (estimated from the objects'
created times), redrawn on a terminal, else a line every 10s; then a
summary per kind. Exits 1 when a kind failed
(the line names it and what to do) or an object could not be read.`

func runBackfill(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "backfill", backfillUsage)
	account := fs.String("account", "", "import this Connect `account`'s objects (default the platform's own)")
	kinds := fs.String("kind", "", "only these `kinds` (comma-separated: "+strings.Join(backfill.KindNames(), ", ")+")")
	dryRun := fs.Bool("dry-run", false, "print what would be fetched, fetch nothing")
	all := fs.Bool("all-accounts", false, "import every connected account's objects, listed from Stripe, one after another")
	since := fs.String("created-since", "", "only objects Stripe created at or after `WHEN`")
	until := fs.String("created-until", "", "only objects Stripe created before `WHEN`")
	slices := fs.Int("slices", 1, "split each kind into `N` created ranges imported side by side (raise STRIPE_API_CONCURRENCY to match)")
	restart := fs.Bool("restart", false, "start each kind from the newest object again, whatever cursor was saved")
	version := fs.String("api-version", "", "list the objects in this Stripe API `version` (default stripe-go's pinned one); from 2025-03-31.basil invoices come with their payments")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	now := time.Now()
	from, err := parseWhen(*since, now)
	if err != nil {
		return fmt.Errorf("%w: --created-since: %v", errUsage, err)
	}
	to, err := parseWhen(*until, now)
	if err != nil {
		return fmt.Errorf("%w: --created-until: %v", errUsage, err)
	}
	cfg, logger, err := loadConfig(e, textLogs)
	if err != nil {
		return err
	}
	if cfg.StripeAPIKey == "" && !*dryRun {
		return errors.New("backfill: STRIPE_API_KEY is required: the objects are listed from Stripe's API")
	}
	fetcher, err := stripeFetcher(cfg, nil)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, logger, "backfill", 4)
	if err != nil {
		return err
	}
	defer store.Close()
	bcfg := backfill.Config{Account: *account, Kinds: commaList(*kinds), Livemode: strings.Contains(cfg.StripeAPIKey, "_live_"),
		Concurrency: cfg.StripeAPIConcurrency, CreatedFrom: from, CreatedUntil: to, APIVersion: *version, Restart: *restart, Slices: *slices}
	var lister backfill.Lister
	if fetcher != nil {
		lister = fetcher
	}
	apply := ledger.NewProcessor(store, logger, processorOptions(cfg, nil)...)
	accounts := []string{*account}
	if *all {
		if *account != "" {
			return fmt.Errorf("%w: --all-accounts or --account, not both", errUsage)
		}
		if *dryRun {
			fmt.Fprintln(e.stdout, "accounts: GET /v1/accounts?limit=100 and every next page, then each account's kinds as --account shows them")
			fmt.Fprintln(e.stdout, "dry run: nothing was fetched")
			return nil
		}
		platform, err := backfill.New(bcfg, logger, lister, apply, store)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if accounts, err = platform.Accounts(ctx); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "%d connected account(s)\n", len(accounts))
	}
	failed := 0
	var errs []error
	for _, acct := range accounts {
		bcfg.Account = acct
		b, err := backfill.New(bcfg, logger, lister, apply, store)
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		if *all {
			fmt.Fprintf(e.stdout, "account %s:\n", acct)
		}
		n, err := backfillAccount(ctx, e, b, *dryRun)
		failed += n
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("backfill: %d object(s) could not be read (logged with their ids; the cursors moved past them, a rerun does not fetch them again): the rest is imported", failed)
	}
	return nil
}

// backfillAccount runs (or, dry, plans) b, one account's backfill, and
// prints its lines; failed counts the objects that could not be read.
func backfillAccount(ctx context.Context, e env, b *backfill.Backfill, dryRun bool) (failed int, err error) {
	if dryRun {
		return 0, b.WritePlan(ctx, e.stdout)
	}
	progress := backfill.NewProgress(e.stdout, backfill.Terminal(e.stdout), backfill.ProgressConfig{Origin: b.Origin(ctx)})
	reports, err := b.Run(ctx, progress.Update)
	return backfill.WriteSummary(e.stdout, reports), err
}
