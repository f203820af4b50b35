package status

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stripe-billing/billing/internal/termtext"
)

// WriteText writes rep for a person (`billing status`). Values read from
// messages go through termtext: anyone who can publish to the broker
// writes them.
func (rep Report) WriteText(out io.Writer) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "billing status at %s\n\n", rep.At.Format(time.RFC3339))
	fmt.Fprintln(w, "QUEUE\tROLE\tREADY\tCONSUMERS")
	for _, q := range rep.Queues {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", q.Name, q.Role, q.Messages, q.Consumers)
	}
	_ = w.Flush()
	window := time.Duration(rep.WindowSeconds * float64(time.Second))
	fmt.Fprintf(out, "\nper minute over %s: received %.1f, processed %.1f, parked %.1f; in delay tiers now: %d\n",
		window, rep.PerMinute.Received, rep.PerMinute.Processed, rep.PerMinute.Parked, rep.Retrying)
	var classes []string
	for _, c := range rep.Classes() {
		classes = append(classes, fmt.Sprintf("%s %d", termtext.Cell(c), rep.ParkedByClass[c]))
	}
	if len(classes) == 0 {
		classes = []string{"none"}
	}
	fmt.Fprintf(out, "parked by class: %s\n", strings.Join(classes, ", "))
	oldest := "none"
	if o := rep.OldestParked; o != nil {
		oldest = fmt.Sprintf("%s, received %s (%s ago)", termtext.Cell(o.EventID), o.ReceivedAt.Format(time.RFC3339), (time.Duration(o.AgeSeconds) * time.Second).String())
	}
	fmt.Fprintf(out, "dead in the ledger: %d; oldest: %s\n", rep.DeadInLedger, oldest)
	sweep := "none recorded"
	if s := rep.LastSweep; s != nil {
		reconciled := "not reconciled"
		if s.Reconciled != nil {
			reconciled = fmt.Sprintf("reconciled %d", *s.Reconciled)
		}
		success := "never"
		if !s.LastSuccess.IsZero() {
			success = s.LastSuccess.Format(time.RFC3339)
		}
		sweep = fmt.Sprintf("%s: re-driven %d, permanent %d, out of re-drives %d, waiting %d, %s, errors %d; last success %s",
			s.At.Format(time.RFC3339), s.Redriven, s.Permanent, s.OutOfRedrives, s.Waiting, reconciled, len(s.Errors), success)
	}
	fmt.Fprintf(out, "last sweep: %s\n\n", sweep)
	if len(rep.Findings) == 0 {
		fmt.Fprintln(out, "OK: nothing to report")
	}
	for _, f := range rep.Findings {
		fmt.Fprintf(out, "%s: %s\n", strings.ToUpper(f.Severity), termtext.Cell(f.Message))
	}
}
