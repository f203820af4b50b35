package dlq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stripe-billing/billing/internal/termtext"
	"github.com/stripe-billing/billing/models"
)

// WriteList writes parked as `billing dlq list` shows them: what the
// management UI shows of each parked event, the class, the times (UTC)
// and the whole reason (billing-error, at most MaxErrorHeader bytes),
// last so that a long one does not push the other columns.
func WriteList(out io.Writer, parked []Parked) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "EVENT ID\tCOPIES\tTYPE\tCLASS\tATTEMPTS\tREPLAYS\tFIRST FAILED\tPARKED AT\tAGE\tERROR")
	for _, p := range parked {
		age := "-"
		if !p.ParkedAt.IsZero() {
			age = (time.Duration(p.AgeSeconds) * time.Second).String()
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", termtext.Cell(p.EventID), max(p.Copies, 1), termtext.Cell(p.Type), termtext.Cell(string(p.Class)), p.Attempts, p.Replays,
			termtext.Time(p.FirstFailedAt), termtext.Time(p.ParkedAt), age, termtext.Cell(termtext.OneLine(p.Error, MaxErrorHeader)))
	}
	_ = w.Flush()
}

// Selector picks the parked events `billing dlq replay` moves: every
// field set must match; the zero Selector matches all.
type Selector struct {
	EventID, Type, Class string
	// Since keeps the events parked at or after it.
	Since time.Time
}

// Match is MoveOptions.Match.
func (s Selector) Match(_ context.Context, p Parked) (bool, error) {
	return (s.EventID == "" || p.EventID == s.EventID) && (s.Type == "" || p.Type == s.Type) &&
		(s.Class == "" || string(p.Class) == s.Class) && (s.Since.IsZero() || !p.ParkedAt.Before(s.Since)), nil
}

// WriteText writes what a replay moved (or, dry, would move) from the
// DLQ dlq to the work queue work, one line a message, then a summary.
func (r MoveResult) WriteText(out io.Writer, dryRun bool, work, dlq string) {
	verb := "moved"
	if dryRun {
		verb = "would move"
	}
	for _, p := range r.Moved {
		fmt.Fprintf(out, "%s %s %s (class %s, attempts %d)\n", verb, termtext.Cell(p.EventID), termtext.Cell(p.Type), termtext.Cell(string(p.Class)), p.Attempts)
	}
	if dryRun {
		fmt.Fprintf(out, "dry run: would move %s to %s; nothing was moved\n", movedSummary(r.Moved), work)
	} else {
		fmt.Fprintf(out, "moved %s to %s; %d message(s) looked at and left in %s\n", movedSummary(r.Moved), work, r.Left, dlq)
	}
}

// movedSummary says what moved: messages, events, and the count of each
// class and type, most first.
func movedSummary(moved []Parked) string {
	events := len(ByEvent(moved))
	s := fmt.Sprintf("%d message(s) of %d event(s)", len(moved), events)
	if len(moved) == 0 {
		return s
	}
	count := func(key func(Parked) string) string {
		n := map[string]int{}
		for _, p := range moved {
			n[termtext.Cell(key(p))]++
		}
		keys := make([]string, 0, len(n))
		for k := range n {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return n[keys[i]] > n[keys[j]] || n[keys[i]] == n[keys[j]] && keys[i] < keys[j] })
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %d", k, n[k])
		}
		return strings.Join(parts, ", ")
	}
	return s + " (by class: " + count(func(p Parked) string { return string(p.Class) }) +
		"; by type: " + count(func(p Parked) string { return p.Type }) + ")"
}

// LedgerReader is what `billing dlq show` reads of an event in MySQL
// (lookup.Reader).
type LedgerReader interface {
	Event(ctx context.Context, id string) (models.StripeEvent, error)
	Discards(ctx context.Context, ids []string) ([]models.EventDiscard, error)
}

// ReadLedger reads event id's ledger row and discards for NewShown: the
// ledger is a help, not a need (the DLQ alone says why), so a failure is
// a note, as is a missing row.
func ReadLedger(ctx context.Context, l LedgerReader, id string) (row *models.StripeEvent, discards []models.EventDiscard, note string) {
	ev, err := l.Event(ctx, id)
	switch {
	case errors.Is(err, models.ErrNotFound):
		note = "no row (an event never verified has none)"
	case err != nil:
		note = "not read: " + err.Error()
	default:
		row = &ev
	}
	if discards, err = l.Discards(ctx, []string{id}); err != nil && note == "" {
		note = "discards not read: " + err.Error()
	}
	return row, discards, note
}
