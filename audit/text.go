package audit

import (
	"fmt"
	"io"

	"github.com/stripe-billing/billing/internal/termtext"
)

// WriteText writes reports for a person (`billing audit`): each object
// Stripe does not know, each differing field and each object not
// compared, then one line a kind; fix adds what was fixed.
func WriteText(out io.Writer, reports []KindReport, fix bool) {
	for _, r := range reports {
		for _, o := range r.Drifted {
			if o.Missing {
				fmt.Fprintf(out, "%s %s: missing at Stripe, not deleted here\n", o.Ref.Type, o.Ref.ID)
			}
			for _, f := range o.Fields {
				fmt.Fprintf(out, "%s %s: %s: ours %s, Stripe's %s\n", o.Ref.Type, o.Ref.ID, f.Field, termtext.Cell(f.Ours), termtext.Cell(f.Stripes))
			}
		}
		for id, err := range r.Failed {
			fmt.Fprintf(out, "%s %s: not compared: %s\n", r.Kind, id, termtext.Cell(termtext.OneLine(err.Error(), 300)))
		}
		line := fmt.Sprintf("%s: %d compared, %d differ, %d not compared", r.Kind, r.Checked, len(r.Drifted), len(r.Failed))
		for _, f := range r.ByField() {
			line += fmt.Sprintf("; %s %d", f.Field, f.Objects)
		}
		if fix {
			line += fmt.Sprintf("; %d fixed", r.Fixed)
		}
		fmt.Fprintln(out, line)
	}
}

// Problem says what reports leave to a person: objects that differ from
// Stripe's and were not fixed, else objects not compared; nil when none.
func Problem(reports []KindReport) error {
	drifted, failed := 0, 0
	for _, r := range reports {
		drifted += len(r.Drifted) - r.Fixed
		failed += len(r.Failed)
	}
	switch {
	case drifted > 0:
		return fmt.Errorf("audit: %d object(s) differ from Stripe's (not fixed)", drifted)
	case failed > 0:
		return fmt.Errorf("audit: %d object(s) could not be compared", failed)
	}
	return nil
}
