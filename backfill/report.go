package backfill

import (
	"context"
	"fmt"
	"io"
)

// WritePlan prints what a run would fetch, asking Stripe nothing (a dry
// run): each kind's first request, or that it is done.
func (b *Backfill) WritePlan(ctx context.Context, w io.Writer) error {
	plan, err := b.Plan(ctx)
	if err != nil {
		return err
	}
	for _, r := range plan {
		if r.Done {
			fmt.Fprintf(w, "%s: done before; nothing to fetch\n", r.Kind)
			continue
		}
		req := b.Request(r)
		on := "the platform"
		if req.Account != "" {
			on = req.Account
		}
		fmt.Fprintf(w, "%s: GET %s?%s on %s, then every next page\n", r.Kind, req.Path, req.Params.Encode(), on)
	}
	_, err = fmt.Fprintln(w, "dry run: nothing was fetched")
	return err
}

// WriteSummary prints a line per kind of a run's reports (done, done
// before, or NOT finished, with its counts) and returns how many objects
// could not be read.
func WriteSummary(w io.Writer, reports []KindReport) (failed int) {
	for _, r := range reports {
		state := "done"
		switch {
		case r.Done:
			state = "done before"
		case !r.Finished:
			state = "NOT finished"
		}
		fmt.Fprintf(w, "%s: %s: %d fetched in %d pages, %d written, %d failed\n", r.Kind, state, r.Fetched, r.Pages, r.Written, r.Failed)
		failed += r.Failed
	}
	return failed
}
