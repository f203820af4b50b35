package maintenance

import (
	"fmt"
	"io"
	"time"

	"github.com/stripe-billing/billing/internal/termtext"
)

// WriteText writes the pass's summary for a person (`billing sweep`):
// each re-driven event, then one line.
func (rep Report) WriteText(out io.Writer) {
	if rep.Skipped {
		fmt.Fprintln(out, "sweep: another sweep holds the lock; nothing done")
		return
	}
	for _, p := range rep.Redriven {
		fmt.Fprintf(out, "re-driven %s %s (re-drive %d)\n", termtext.Cell(p.EventID), termtext.Cell(p.Type), p.Redrives)
	}
	reconciled := "reconciliation off (STRIPE_API_KEY not set)"
	if r := rep.Reconciled; r != nil {
		reconciled = fmt.Sprintf("reconciled %d missing of %d listed since %s (%d of types the worker does not apply, not enqueued)",
			r.Enqueued, r.Listed, r.Since.UTC().Format(time.RFC3339), r.Unhandled)
	}
	fmt.Fprintf(out, "sweep: re-driven %d, left for a person %d (permanent %d, out of re-drives %d), waiting %d, %s, payloads pruned %d, changes pruned %d, errors %d\n",
		len(rep.Redriven), rep.LeftForPerson(), rep.Permanent, rep.OutOfRedrives, rep.Waiting, reconciled, rep.Pruned, rep.ChangesPruned, len(rep.Errors))
}
