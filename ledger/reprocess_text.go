package ledger

import (
	"fmt"
	"io"
	"time"

	"github.com/stripe-billing/billing/internal/termtext"
)

// WriteText writes r as `billing reprocess` prints each event: outcome,
// id, type, the status before, created, and the error if any.
func (r Reprocessed) WriteText(out io.Writer) {
	created := "-"
	if !r.Created.IsZero() {
		created = r.Created.UTC().Format(time.RFC3339)
	}
	line := fmt.Sprintf("%s %s %s (was %s, created %s)", r.Outcome, termtext.Cell(r.ID), termtext.Cell(r.Type), termtext.Cell(r.Status), created)
	if r.Err != nil {
		line += ": " + termtext.Cell(termtext.OneLine(r.Err.Error(), 300))
	}
	fmt.Fprintln(out, line)
}

// WriteText writes the run's counts in one line; dryRun says what would
// happen.
func (rep ReprocessReport) WriteText(out io.Writer, dryRun bool) {
	if dryRun {
		fmt.Fprintf(out, "dry run: %d event(s) match, %d would be applied, %d have no handler, %d skipped (not verified), %d would fail (payload pruned), %d previews (nothing to store); nothing was applied\n",
			rep.Matched, rep.Matched-rep.NoHandler-rep.Skipped-rep.Failed-rep.Previews, rep.NoHandler, rep.Skipped, rep.Failed, rep.Previews)
	} else {
		fmt.Fprintf(out, "reprocessed %d event(s): %d applied, %d without a handler, %d skipped (not verified), %d failed, %d previews (nothing to store)\n",
			rep.Matched, rep.Applied, rep.NoHandler, rep.Skipped, rep.Failed, rep.Previews)
	}
}

// Problem says what the run leaves to a person: events that failed (or
// would), else events skipped as not verified; nil when none.
func (rep ReprocessReport) Problem(dryRun bool) error {
	switch {
	case rep.Failed > 0 && dryRun:
		return fmt.Errorf("reprocess: %d event(s) would fail", rep.Failed)
	case rep.Failed > 0:
		return fmt.Errorf("reprocess: %d event(s) failed", rep.Failed)
	case rep.Skipped > 0:
		return fmt.Errorf("reprocess: %d event(s) skipped: their payloads are not verified", rep.Skipped)
	}
	return nil
}
