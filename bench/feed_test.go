package bench_test

import (
	"fmt"
	"testing"

	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
)

// feedRuns are the processing runs with the change feed on (the worker
// as it ships) and off (CHANGE_FEED=off), and the outbox the last run
// with it on left.
type feedRuns struct {
	on, off             []bench.Stats
	rows, bodies, table int64 // the outbox's rows, bytes of their bodies, bytes of table and indexes
	events              int
}

// measureOn processes bodies with the feed on into a database of its
// own and keeps the outbox's size.
func (f *feedRuns) measureOn(t *testing.T, bodies [][]byte, batchSize int) error {
	t.Helper()
	dsn := testenv.Database(t)
	s, err := processingInto(t, dsn, bodies, batchSize)
	if err != nil {
		return err
	}
	f.on = append(f.on, s)
	db := openDB(t, dsn)
	defer db.Close()
	// ANALYZE TABLE makes information_schema's sizes today's.
	if _, err := db.Exec("ANALYZE TABLE change_outbox"); err != nil {
		return err
	}
	f.events = len(bodies)
	return db.QueryRow(`SELECT (SELECT COUNT(*) FROM change_outbox), (SELECT COALESCE(SUM(LENGTH(body)), 0) FROM change_outbox),
		(SELECT data_length + index_length FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'change_outbox')`).
		Scan(&f.rows, &f.bodies, &f.table)
}

// measureOff processes bodies with CHANGE_FEED=off.
func (f *feedRuns) measureOff(t *testing.T, bodies [][]byte, batchSize int) error {
	t.Helper()
	s, err := processingWith(t, testenv.Database(t), bodies, batchSize, false, ledger.WithoutChangeFeed())
	f.off = append(f.off, s)
	return err
}

// tableRows are the change feed's rows of the table: processing with the
// outbox on beside off, and the outbox's growth per event.
func (f *feedRuns) tableRows(batchSize int) []bench.Row {
	on, off := bench.Median(f.on), bench.Median(f.off)
	ratio := on.Rate() / off.Rate()
	perEvent := func(n int64) float64 { return float64(n) / float64(f.events) }
	return []bench.Row{
		{Part: "processing", What: fmt.Sprintf("%d queued lifecycle events, batch %d, change feed on: each change to the outbox in the records' transaction", f.events, batchSize),
			Figure: fmt.Sprintf("%s (%s)", bench.PerSecond(on.Rate(), "event"), on.CPU.PerThousand(f.events)),
			Limit:  fmt.Sprintf("%s (%s) CHANGE_FEED=off", bench.PerSecond(off.Rate(), "event"), off.CPU.PerThousand(f.events)),
			Ratio:  fmt.Sprintf("%.2f×", ratio), Target: "≥ 0.85×", Verdict: bench.AtLeast(ratio, 0.85, "%.2f×")},
		{Part: "cost", What: "the outbox's growth per lifecycle event (unpublished rows)",
			Figure: fmt.Sprintf("%.2f rows, %.0f bytes of JSON, %.0f bytes of table and indexes", perEvent(f.rows), perEvent(f.bodies), perEvent(f.table))},
	}
}
