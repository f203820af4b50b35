package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stripe-billing/billing/history"
	"github.com/stripe-billing/billing/internal/termtext"
	"github.com/stripe-billing/billing/models"
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
		printHistory(e, rep.Report)
		printObjects(e, rep.Objects)
		return nil
	}
	rep, err := history.Of(ctx, lookup.New(store), ids[0])
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(e.stdout).Encode(rep)
	}
	printHistory(e, rep)
	return nil
}

// printObjects prints a customer's objects by kind, newest first, each
// with its status timeline, newest first.
func printObjects(e env, objects []history.Object) {
	fmt.Fprintf(e.stdout, "\n%d object(s) of the customer, newest first, each with its statuses (newest first):\n", len(objects))
	kind := ""
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, o := range objects {
		if o.Type != kind {
			kind = o.Type
			fmt.Fprintf(w, "\n%s\tCREATED\tSTATUS\tTIMELINE\n", strings.ToUpper(kind))
		}
		created := "-"
		if o.Created != nil {
			created = termtext.Time(*o.Created)
		}
		steps := make([]string, len(o.Timeline))
		for i, s := range o.Timeline {
			steps[i] = termtext.Cell(s.Status) + " " + termtext.Time(s.At)
			if s.Source != models.SourceEvent {
				steps[i] += " (" + termtext.Cell(s.Source) + ")" // no event of Stripe's: a backfill's or an audit's fetch
			}
		}
		timeline := strings.Join(steps, " <- ")
		if timeline == "" {
			timeline = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", termtext.Cell(o.ID), created, termtext.Cell(ptrText(o.Status)), timeline)
	}
	_ = w.Flush()
}

// printHistory prints rep for a person. Every value goes through cell:
// customers write names and emails, and the ledger keeps what Stripe sent.
func printHistory(e env, rep history.Report) {
	if rep.Table == "" {
		fmt.Fprintf(e.stdout, "%s: no row in any table (the ledger alone knows it)\n", termtext.Cell(rep.ID))
	} else {
		fmt.Fprintf(e.stdout, "%s: row in %s\n", termtext.Cell(rep.ID), rep.Table)
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, c := range rep.Columns {
			if c.Name == "id" {
				continue // the table's own key, of no use to anyone asking
			}
			fmt.Fprintf(w, "  %s\t%s\n", c.Name, termtext.Cell(termtext.OneLine(valueText(c.Value), 120)))
		}
		_ = w.Flush()
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(e.stdout, "note: %s\n", n)
	}
	fmt.Fprintf(e.stdout, "\n%d event(s), in Stripe's order (created, then received):\n", len(rep.Events))
	if len(rep.Events) == 0 {
		return
	}
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CREATED\tRECEIVED\tEVENT\tTYPE\tSTATUS\tOUTCOME")
	var dead, discarded []string
	for _, ev := range rep.Events {
		created := "-"
		if ev.Created != nil {
			created = termtext.Time(*ev.Created)
		}
		status := termtext.Cell(ptrText(ev.StatusBefore)) + " -> " + termtext.Cell(ptrText(ev.StatusAfter))
		if ev.StatusBefore == nil && ev.StatusAfter == nil {
			status = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", created, termtext.Time(ev.Received), termtext.Cell(ev.ID), termtext.Cell(ev.Type), status, ev.Outcome)
		if ev.Error != nil && ev.Outcome == history.Dead {
			dead = append(dead, fmt.Sprintf("%s: %s", termtext.Cell(ev.ID), termtext.Cell(termtext.OneLine(*ev.Error, 300))))
		}
		for _, d := range ev.Discards {
			discarded = append(discarded, fmt.Sprintf("%s: discarded %s by %s (%d cop(ies)): %s", termtext.Cell(ev.ID), termtext.Time(d.At), termtext.Cell(d.By), d.Copies, termtext.Cell(termtext.OneLine(d.Reason, 300))))
		}
	}
	_ = w.Flush()
	if len(dead) > 0 {
		fmt.Fprintln(e.stdout, "\nparked (dead) events, with their last error; replay them as the runbook says:")
		for _, d := range dead {
			fmt.Fprintln(e.stdout, "  "+d)
		}
	}
	if len(discarded) > 0 {
		fmt.Fprintln(e.stdout, "\ndiscarded events (taken off the DLQ by a person):")
		for _, d := range discarded {
			fmt.Fprintln(e.stdout, "  "+d)
		}
	}
}

// valueText renders a row value: "" for NULL, times in RFC 3339.
func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case time.Time:
		return termtext.Time(x)
	case string:
		return x
	}
	return fmt.Sprint(v)
}

func ptrText(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
