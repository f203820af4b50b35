package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stripe-billing/billing/history"
	"github.com/stripe-billing/billing/models"
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
		rep, err := history.OfCustomer(ctx, store, ids[0])
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
	rep, err := history.Of(ctx, store, ids[0])
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
			created = timeCell(*o.Created)
		}
		steps := make([]string, len(o.Timeline))
		for i, s := range o.Timeline {
			steps[i] = cell(s.Status) + " " + timeCell(s.At)
			if s.Source != models.SourceEvent {
				steps[i] += " (" + cell(s.Source) + ")" // no event of Stripe's: a backfill's or an audit's fetch
			}
		}
		timeline := strings.Join(steps, " <- ")
		if timeline == "" {
			timeline = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", cell(o.ID), created, cell(ptrText(o.Status)), timeline)
	}
	_ = w.Flush()
}

// printHistory prints rep for a person. Every value goes through cell:
// customers write names and emails, and the ledger keeps what Stripe sent.
func printHistory(e env, rep history.Report) {
	if rep.Table == "" {
		fmt.Fprintf(e.stdout, "%s: no row in any table (the ledger alone knows it)\n", cell(rep.ID))
	} else {
		fmt.Fprintf(e.stdout, "%s: row in %s\n", cell(rep.ID), rep.Table)
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		for _, c := range rep.Columns {
			if c.Name == "id" {
				continue // the table's own key, of no use to anyone asking
			}
			fmt.Fprintf(w, "  %s\t%s\n", c.Name, cell(oneLine(valueText(c.Value), 120)))
		}
		_ = w.Flush()
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
			created = timeCell(*ev.Created)
		}
		status := cell(ptrText(ev.StatusBefore)) + " -> " + cell(ptrText(ev.StatusAfter))
		if ev.StatusBefore == nil && ev.StatusAfter == nil {
			status = "-"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", created, timeCell(ev.Received), cell(ev.ID), cell(ev.Type), status, ev.Outcome)
		if ev.Error != nil && ev.Outcome == history.Dead {
			dead = append(dead, fmt.Sprintf("%s: %s", cell(ev.ID), cell(oneLine(*ev.Error, 300))))
		}
		for _, d := range ev.Discards {
			discarded = append(discarded, fmt.Sprintf("%s: discarded %s by %s (%d cop(ies)): %s", cell(ev.ID), timeCell(d.At), cell(d.By), d.Copies, cell(oneLine(d.Reason, 300))))
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
		return timeCell(x)
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
