package history

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stripe-billing/billing/internal/termtext"
	"github.com/stripe-billing/billing/models"
)

// WriteText writes rep for a person (`billing history cus_...`): the
// customer's own report, then its objects.
func (rep CustomerReport) WriteText(out io.Writer) {
	rep.Report.WriteText(out)
	writeObjects(out, rep.Objects)
}

// writeObjects writes a customer's objects by kind, newest first, each
// with its status timeline, newest first.
func writeObjects(out io.Writer, objects []Object) {
	fmt.Fprintf(out, "\n%d object(s) of the customer, newest first, each with its statuses (newest first):\n", len(objects))
	kind := ""
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
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

// WriteText writes rep for a person (`billing history`). Every value goes
// through termtext: customers write names and emails, and the ledger
// keeps what Stripe sent.
func (rep Report) WriteText(out io.Writer) {
	if rep.Table == "" {
		fmt.Fprintf(out, "%s: no row in any table (the ledger alone knows it)\n", termtext.Cell(rep.ID))
	} else {
		fmt.Fprintf(out, "%s: row in %s\n", termtext.Cell(rep.ID), rep.Table)
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, c := range rep.Columns {
			if c.Name == "id" {
				continue // the table's own key, of no use to anyone asking
			}
			fmt.Fprintf(w, "  %s\t%s\n", c.Name, termtext.Cell(termtext.OneLine(valueText(c.Value), 120)))
		}
		_ = w.Flush()
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	fmt.Fprintf(out, "\n%d event(s), in Stripe's order (created, then received):\n", len(rep.Events))
	if len(rep.Events) == 0 {
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
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
		if ev.Error != nil && ev.Outcome == Dead {
			dead = append(dead, fmt.Sprintf("%s: %s", termtext.Cell(ev.ID), termtext.Cell(termtext.OneLine(*ev.Error, 300))))
		}
		for _, d := range ev.Discards {
			discarded = append(discarded, fmt.Sprintf("%s: discarded %s by %s (%d cop(ies)): %s", termtext.Cell(ev.ID), termtext.Time(d.At), termtext.Cell(d.By), d.Copies, termtext.Cell(termtext.OneLine(d.Reason, 300))))
		}
	}
	_ = w.Flush()
	if len(dead) > 0 {
		fmt.Fprintln(out, "\nparked (dead) events, with their last error; replay them as the runbook says:")
		for _, d := range dead {
			fmt.Fprintln(out, "  "+d)
		}
	}
	if len(discarded) > 0 {
		fmt.Fprintln(out, "\ndiscarded events (taken off the DLQ by a person):")
		for _, d := range discarded {
			fmt.Fprintln(out, "  "+d)
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

// ptrText is *s, "" for nil.
func ptrText(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
