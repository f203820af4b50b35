package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stripe-billing/billing/status"
)

const statusUsage = `Where things stand, without Grafana: each queue's ready messages and
consumers, events per minute (received, processed, parked) over --window,
the events waiting in the delay tiers, parked events by class, the oldest
parked event, events dead in the ledger but in no queue (moved elsewhere,
say by a mistyped "Move messages" destination), and the last sweep pass.

Needs AMQP_URL and MYSQL_DSN only (the support or sweep user is enough):
queues are read with passive declares, which need no permission and no
management plugin, and the DLQ as 'billing dlq list' reads it (every
message stays parked).

  billing status [--json] [--watch DURATION] [--window DURATION]`

func runStatus(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "status", statusUsage)
	asJSON := fs.Bool("json", false, "print the report as one JSON object (one per refresh with --watch)")
	watch := fs.Duration("watch", 0, "refresh every `DURATION` until stopped (0: once)")
	window := fs.Duration("window", 5*time.Minute, "the span the per-minute rates average over")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *watch < 0 || *window <= 0 {
		return fmt.Errorf("%w: --watch must not be negative, --window must be positive", errUsage)
	}
	cfg, logger, err := loadConfig(e)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg, logger, "status", 2)
	if err != nil {
		return err
	}
	defer store.Close()
	s, err := openDLQ(ctx, cfg, logger, "billing-status", fullTopology(cfg))
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	defer s.close()
	r, err := status.New(status.Config{Topology: s.topo, Window: *window}, s.reader, s.dlq, store)
	if err != nil {
		return err
	}
	for {
		rep, err := r.Report(ctx)
		if ctx.Err() != nil {
			return nil // stopped
		}
		if err != nil {
			return err
		}
		if *asJSON {
			if err := json.NewEncoder(e.stdout).Encode(rep); err != nil {
				return err
			}
		} else {
			if *watch > 0 {
				fmt.Fprint(e.stdout, "\033[H\033[2J") // clear the terminal
			}
			printStatus(e, rep)
		}
		if *watch == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*watch):
		}
	}
}

// printStatus prints rep for a person. Values read from messages go
// through cell: anyone who can publish to the broker writes them.
func printStatus(e env, rep status.Report) {
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "billing status at %s\n\n", rep.At.Format(time.RFC3339))
	fmt.Fprintln(w, "QUEUE\tROLE\tREADY\tCONSUMERS")
	for _, q := range rep.Queues {
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\n", q.Name, q.Role, q.Messages, q.Consumers)
	}
	_ = w.Flush()
	window := time.Duration(rep.WindowSeconds * float64(time.Second))
	fmt.Fprintf(e.stdout, "\nper minute over %s: received %.1f, processed %.1f, parked %.1f; in delay tiers now: %d\n",
		window, rep.PerMinute.Received, rep.PerMinute.Processed, rep.PerMinute.Parked, rep.Retrying)
	var classes []string
	for _, c := range rep.Classes() {
		classes = append(classes, fmt.Sprintf("%s %d", cell(c), rep.ParkedByClass[c]))
	}
	if len(classes) == 0 {
		classes = []string{"none"}
	}
	fmt.Fprintf(e.stdout, "parked by class: %s\n", strings.Join(classes, ", "))
	oldest := "none"
	if o := rep.OldestParked; o != nil {
		oldest = fmt.Sprintf("%s, received %s (%s ago)", cell(o.EventID), o.ReceivedAt.Format(time.RFC3339), (time.Duration(o.AgeSeconds) * time.Second).String())
	}
	fmt.Fprintf(e.stdout, "dead in the ledger: %d; oldest: %s\n", rep.DeadInLedger, oldest)
	if len(rep.Lost) > 0 {
		ids := make([]string, len(rep.Lost))
		for i, id := range rep.Lost {
			ids[i] = cell(id)
		}
		fmt.Fprintf(e.stdout, "WARNING: %d event(s) dead in the ledger are not in the DLQ: %s\n", len(rep.Lost), strings.Join(ids, " "))
		if rep.LostCertain {
			fmt.Fprintln(e.stdout, "  No work or tier queue holds a message: they were moved elsewhere (a mistyped \"Move messages\" destination?). See the runbook.")
		} else {
			fmt.Fprintln(e.stdout, "  The work queue or a delay tier holds messages, or the DLQ was partly held by another reader: they may be on their way back. Run again.")
		}
	}
	sweep := "none recorded"
	if s := rep.LastSweep; s != nil {
		reconciled := "not reconciled"
		if s.Reconciled != nil {
			reconciled = fmt.Sprintf("reconciled %d", *s.Reconciled)
		}
		sweep = fmt.Sprintf("%s: re-driven %d, permanent %d, out of re-drives %d, waiting %d, %s, errors %d",
			s.At.Format(time.RFC3339), s.Redriven, s.Permanent, s.OutOfRedrives, s.Waiting, reconciled, len(s.Errors))
	}
	fmt.Fprintf(e.stdout, "last sweep: %s\n", sweep)
}
