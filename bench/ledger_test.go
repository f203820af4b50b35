package bench_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/simulate/stripeevent"
)

// fillChunk is the most rows one fill statement of the benchmark
// inserts: a transaction whose undo log stays small.
const fillChunk = 100_000

// fillLedger adds n processed events to the ledger of db in INSERT ...
// SELECT statements of chunk rows over MariaDB's SEQUENCE engine, each
// received 8 seconds after the one before (n = 1M spans 92 days back from
// now) with payload (nil: none, as after the retention). The ids have
// Stripe's form ("evt_" and 24 characters of stripeevent.IDAlphabet) and are random,
// as Stripe's are: the first four characters, which place an id in the
// id index, are spread evenly over the alphabet. Each names a customer of
// its own, whose id is random the same way, as in the object index of a
// real ledger (and of the events the benchmark processes into it: see
// stripeevent.LifecycleIDs). The rows go in order of
// receipt, as the worker writes them, so the fill appends to the table
// and inserts at random only into the id and object indexes, which is
// what keeps a million rows to tens of seconds.
func fillLedger(ctx context.Context, db *sql.DB, n, chunk int, payload []byte) error {
	now := time.Now().UTC()
	salt := now.UnixNano()
	const space = 62 * 62 * 62 * 62
	// The four characters of stripeevent.IDAlphabet that spell v, a random number
	// in [0, space).
	prefix := func(v string) string {
		var digits []string
		for _, place := range []int{62 * 62 * 62, 62 * 62, 62, 1} {
			digits = append(digits, fmt.Sprintf("SUBSTRING('%s', FLOOR(%s / %d) MOD 62 + 1, 1)", stripeevent.IDAlphabet, v, place))
		}
		return strings.Join(digits, ", ")
	}
	id := fmt.Sprintf("CONCAT('evt_', %s, LEFT(MD5(CONCAT(seq, '/', ?)), 20))", prefix("k"))
	object := fmt.Sprintf("CONCAT('cus_', %s, LEFT(MD5(CONCAT(seq, '/cus/', ?)), 10))", prefix("c"))
	for from := 1; from <= n; from += chunk {
		to := min(from+chunk-1, n)
		_, err := db.ExecContext(ctx, fmt.Sprintf(`INSERT INTO stripe_events
			(id, type, api_version, created, object_type, object_id, status, attempts, payload, received_at, processed_at)
			SELECT %s, 'customer.updated', '2023-10-16', t, 'customer', %s, 'processed', 1, ?, t, t
			FROM (SELECT seq, CONV(LEFT(MD5(CONCAT(?, '/', seq)), 8), 16, 10) MOD %d AS k,
			  CONV(LEFT(MD5(CONCAT(?, '/cus/', seq)), 8), 16, 10) MOD %d AS c,
			  ? - INTERVAL (%d - seq) * 8 SECOND AS t FROM seq_%d_to_%d) s
			ORDER BY seq`, id, object, space, space, n, from, to), salt, salt, payload, salt, salt, now)
		if err != nil {
			return fmt.Errorf("bench: fill ledger rows %d-%d: %w", from, to, err)
		}
	}
	return nil
}

// ledgerBytes is the ledger table's size on disk (data and indexes),
// from statistics ANALYZE TABLE has just refreshed.
func ledgerBytes(ctx context.Context, db *sql.DB) (int64, error) {
	rows, err := db.QueryContext(ctx, "ANALYZE TABLE stripe_events")
	if err != nil {
		return 0, fmt.Errorf("bench: analyze ledger: %w", err)
	}
	_ = rows.Close()
	var n int64
	err = db.QueryRowContext(ctx, `SELECT data_length + index_length FROM information_schema.tables
		WHERE table_schema = DATABASE() AND table_name = 'stripe_events'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("bench: ledger size: %w", err)
	}
	return n, nil
}

// idIndexBytes is the size of the ledger's id index (the unique key that
// stops duplicates, which takes every new event at a random place), from
// the statistics ledgerBytes has just refreshed.
func idIndexBytes(ctx context.Context, db *sql.DB) (int64, error) {
	var n int64
	err := db.QueryRowContext(ctx, `SELECT stat_value * @@innodb_page_size FROM mysql.innodb_index_stats
		WHERE database_name = DATABASE() AND table_name = 'stripe_events' AND index_name = 'uq_stripe_events_id' AND stat_name = 'size'`).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("bench: id index size: %w", err)
	}
	return n, nil
}

// Server-wide InnoDB counters the ledger benchmark reads (globalStatus).
const (
	// poolReads counts pages read from disk: pages a statement needed
	// that were not in the buffer pool.
	poolReads = "Innodb_buffer_pool_reads"
	// dirtyPages counts buffer pool pages changed in memory and not yet
	// written to disk.
	dirtyPages = "Innodb_buffer_pool_pages_dirty"
)

// globalStatus reads the server's status variable name.
func globalStatus(ctx context.Context, db *sql.DB, name string) (int64, error) {
	var n int64
	if err := db.QueryRowContext(ctx, "SHOW GLOBAL STATUS LIKE ?", name).Scan(new(string), &n); err != nil {
		return 0, fmt.Errorf("bench: %s: %w", name, err)
	}
	return n, nil
}

// writeLedger writes to disk the pages of db's ledger still dirty in the
// buffer pool: FLUSH TABLES ... FOR EXPORT returns when InnoDB has written
// every one (the table is read-only meanwhile; UNLOCK TABLES ends it).
// A bulk fill leaves most of the buffer pool dirty, which InnoDB's page
// cleaner writes at innodb_io_capacity (200 pages a second by default)
// for a minute or more after; a ledger that grew over months has no such
// backlog, and measured on top of it every page a run reads waits for a
// dirty one to be written first. It waits at most a minute.
func writeLedger(ctx context.Context, db *sql.DB) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("bench: write ledger: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "FLUSH TABLES stripe_events FOR EXPORT"); err != nil {
		return fmt.Errorf("bench: write ledger: %w", err)
	}
	if _, err := conn.ExecContext(ctx, "UNLOCK TABLES"); err != nil {
		return fmt.Errorf("bench: write ledger: unlock: %w", err)
	}
	return nil
}

// ledgerFigures are the measurements of a ledger that has grown.
type ledgerFigures struct {
	rows, bareRows int
	fill           time.Duration
	// write is how long writing the fills' dirty pages took, and
	// dirtyBefore and dirtyAfter the server's dirty pages around it.
	write                   time.Duration
	dirtyBefore, dirtyAfter int64
	empty, full             bench.Stats
	// emptyReads and fullReads are InnoDB pages read from disk per event
	// processed (server-wide: other databases' reads count too).
	emptyReads, fullReads       float64
	withPayload, withoutPayload float64 // bytes per row of filled ledgers
	idIndex                     float64 // bytes per row of the filled ledger's id index
	perEvent                    float64 // bytes per event processed into an empty ledger
	payloadBytes                int
	prune                       bench.Stats // payloads emptied by the sweep's statements
}

// ledgerGrowth measures processing into a ledger of rows events beside an
// empty one, round after round (the median kept), once the fill's pages
// are written and its id index warmed by a run not measured, and what
// the ledger costs on disk per event with and without its payload.
func ledgerGrowth(t *testing.T, rows, rounds, events, batchSize int) ledgerFigures {
	t.Helper()
	ctx := context.Background()
	f := ledgerFigures{rows: rows}
	payload := lifecycleBodies(19, time.Now())[9] // a paid invoice, mid-sized
	f.payloadBytes = len(payload)
	fullDSN := testenv.Database(t)
	full := openDB(t, fullDSN)
	start := time.Now()
	if err := fillLedger(ctx, full, rows, fillChunk, payload); err != nil {
		t.Fatal(err)
	}
	f.fill = time.Since(start)
	size, err := ledgerBytes(ctx, full)
	if err != nil {
		t.Fatal(err)
	}
	f.withPayload = float64(size) / float64(rows)
	idSize, err := idIndexBytes(ctx, full)
	if err != nil {
		t.Fatal(err)
	}
	f.idIndex = float64(idSize) / float64(rows)
	// Rows without a payload are small: a fifth as many tell their size.
	f.bareRows = max(rows/5, 1)
	bare := openDB(t, testenv.Database(t))
	if err := fillLedger(ctx, bare, f.bareRows, fillChunk, nil); err != nil {
		t.Fatal(err)
	}
	bareSize, err := ledgerBytes(ctx, bare)
	if err != nil {
		t.Fatal(err)
	}
	f.withoutPayload = float64(bareSize) / float64(f.bareRows)
	if f.dirtyBefore, err = globalStatus(ctx, full, dirtyPages); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for _, db := range []*sql.DB{full, bare} {
		if err := writeLedger(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	f.write = time.Since(start)
	if f.dirtyAfter, err = globalStatus(ctx, full, dirtyPages); err != nil {
		t.Fatal(err)
	}

	// The fill leaves the filled ledger's id index, the one part of it
	// that every new event reads at a random place, mostly out of the
	// buffer pool, where a ledger in use keeps it: a run into it, not
	// measured, brings it back as processing does: three rounds' events,
	// which reach most of its leaves (without it the first filled round
	// read about twice the pages from disk per event of the later ones).
	warm := lifecycleBodies(3*events, time.Now().Add(-time.Duration(rounds+1)*time.Hour-30*time.Minute))
	if _, err := processingInto(t, fullDSN, warm, batchSize); err != nil {
		t.Fatal(err)
	}
	var empty, filled []bench.Stats
	for round := range rounds {
		bodies := lifecycleBodies(events, time.Now().Add(-time.Duration(round+1)*time.Hour))
		// reads runs fn and adds the pages it read from disk per event to *per.
		reads := func(per *float64, fn func() (bench.Stats, error)) bench.Stats {
			before, err := globalStatus(ctx, full, poolReads)
			if err != nil {
				t.Fatal(err)
			}
			s, err := fn()
			if err != nil {
				t.Fatal(err)
			}
			after, err := globalStatus(ctx, full, poolReads)
			if err != nil {
				t.Fatal(err)
			}
			*per += float64(after-before) / float64(events*rounds)
			return s
		}
		emptyRun := func() {
			dsn := testenv.Database(t)
			db := openDB(t, dsn)
			before, err := ledgerBytes(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			empty = append(empty, reads(&f.emptyReads, func() (bench.Stats, error) { return processingInto(t, dsn, bodies, batchSize) }))
			after, err := ledgerBytes(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			f.perEvent += float64(after-before) / float64(events*rounds)
		}
		fullRun := func() {
			bodies := lifecycleBodies(events, time.Now().Add(-time.Duration(round+1)*time.Hour-30*time.Minute))
			filled = append(filled, reads(&f.fullReads, func() (bench.Stats, error) { return processingInto(t, fullDSN, bodies, batchSize) }))
		}
		if round%2 == 0 { // each goes first in turn
			emptyRun()
			fullRun()
		} else {
			fullRun()
			emptyRun()
		}
		t.Logf("round %d: filled ledger %.0f event/s (%s), empty %.0f event/s (%s)", round+1,
			filled[round].Rate(), filled[round].CPU.PerThousand(events), empty[round].Rate(), empty[round].CPU.PerThousand(events))
	}
	f.empty, f.full = bench.Median(empty), bench.Median(filled)

	// The retention's statements over the oldest rows of the filled
	// ledger, as a sweep runs them (a batch at a time, up to its per-pass
	// limit), without the pause between batches.
	store := openStore(t, fullDSN, settings(t))
	var cur models.PruneCursor
	start = time.Now()
	for f.prune.N < maintenance.DefaultPruneLimit {
		b, err := store.PrunePayloads(ctx, models.EventProcessed, cur, time.Now(), maintenance.DefaultPruneBatch)
		if err != nil {
			t.Fatal(err)
		}
		f.prune.N += b.Pruned
		if b.Looked < maintenance.DefaultPruneBatch {
			break
		}
		cur = b.Next
	}
	f.prune.Elapsed = time.Since(start)
	return f
}

// rows are f's lines of the benchmark table.
func (f ledgerFigures) tableRows(events, batchSize int) []bench.Row {
	ratio := f.full.Rate() / f.empty.Rate()
	return []bench.Row{
		{Part: "ledger", What: fmt.Sprintf("%d queued lifecycle events → worker → MySQL, batch %d, into a ledger of %d events (filled in %.0f s) beside an empty one", events, batchSize, f.rows, f.fill.Seconds()),
			Figure: bench.PerSecond(f.full.Rate(), "event"), Limit: bench.PerSecond(f.empty.Rate(), "event") + " empty ledger",
			Ratio: fmt.Sprintf("%.2f×", ratio), Target: "≥ 0.85×", Verdict: bench.AtLeast(ratio, 0.85, "%.2f×")},
		{Part: "ledger", What: "the fills' pages still dirty in the buffer pool, written before measuring (FLUSH TABLES ... FOR EXPORT): server-wide dirty pages before → after",
			Figure: fmt.Sprintf("%d → %d pages in %.1f s", f.dirtyBefore, f.dirtyAfter, f.write.Seconds())},
		{Part: "ledger", What: "InnoDB pages read from disk per event processed, same runs (buffer pool misses, server-wide)",
			Figure: fmt.Sprintf("%.2f into the filled ledger", f.fullReads), Limit: fmt.Sprintf("%.2f empty ledger", f.emptyReads)},
		{Part: "ledger", What: fmt.Sprintf("bytes on disk per ledger row (data + indexes, after ANALYZE): %d rows with a %d-byte payload; %d rows without (as after the retention)", f.rows, f.payloadBytes, f.bareRows),
			Figure: fmt.Sprintf("%.0f B with, %.0f B without; of which the id index %.0f B", f.withPayload, f.withoutPayload, f.idIndex)},
		{Part: "ledger", What: fmt.Sprintf("ledger growth per event processed, %d lifecycle events (430-780 B) into an empty ledger, after ANALYZE", events),
			Figure: fmt.Sprintf("%.0f B", f.perEvent)},
		{Part: "ledger", What: fmt.Sprintf("payload retention: the sweep's prune statements (%d rows each, no pause), the oldest %d payloads of the filled ledger", maintenance.DefaultPruneBatch, f.prune.N),
			Figure: bench.PerSecond(f.prune.Rate(), "row")},
	}
}

// TestBenchLedger measures the ledger part of the table alone
// (BILLING_BENCH=1; BENCH_LEDGER_ROWS, default 1,000,000).
func TestBenchLedger(t *testing.T) {
	if os.Getenv("BILLING_BENCH") != "1" {
		t.Skip("BILLING_BENCH=1 runs the ledger benchmark")
	}
	cfg := settings(t)
	events := testenv.EnvInt(t, "BENCH_EVENTS", 19*200)
	f := ledgerGrowth(t, testenv.EnvInt(t, "BENCH_LEDGER_ROWS", 1_000_000), testenv.EnvInt(t, "BENCH_ROUNDS", 3), events, cfg.WorkerBatchSize)
	if err := bench.WriteTable(os.Stdout, f.tableRows(events, cfg.WorkerBatchSize)); err != nil {
		t.Fatal(err)
	}
}

// TestFillLedger checks the bulk fill the ledger benchmark relies on: n
// distinct processed events, spread back in time, with the payload given.
func TestFillLedger(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := openDB(t, testenv.Database(t))
	const n = 2507 // three statements
	if err := fillLedger(ctx, db, n, 1000, []byte(`{"id":"x"}`)); err != nil {
		t.Fatal(err)
	}
	var rows, ids, objects, payloads int
	var oldest, newest time.Time
	err := db.QueryRowContext(ctx, `SELECT COUNT(*), COUNT(DISTINCT id), COUNT(DISTINCT object_id), SUM(payload = '{"id":"x"}'), MIN(received_at), MAX(received_at)
		FROM stripe_events WHERE status = 'processed' AND id REGEXP '^evt_[0-9A-Za-z]{24}$'
		AND object_type = 'customer' AND object_id REGEXP '^cus_[0-9A-Za-z]{14}$'`).Scan(&rows, &ids, &objects, &payloads, &oldest, &newest)
	if err != nil {
		t.Fatal(err)
	}
	if rows != n || ids != n || objects != n || payloads != n {
		t.Errorf("%d rows, %d distinct ids and %d distinct customers of Stripe's form, %d with the payload; want %d each", rows, ids, objects, payloads, n)
	}
	// The ids spread over the whole space: among thousands, the first and
	// last are at its two ends.
	var first, last, firstObject, lastObject string
	if err := db.QueryRowContext(ctx, "SELECT MIN(id), MAX(id), MIN(object_id), MAX(object_id) FROM stripe_events").Scan(&first, &last, &firstObject, &lastObject); err != nil {
		t.Fatal(err)
	}
	if first[4] != '0' || last[4] != 'z' || firstObject[4] != '0' || lastObject[4] != 'z' {
		t.Errorf("ids from %s to %s, customers from %s to %s; want each from ..._0... to ..._z...", first, last, firstObject, lastObject)
	}
	if span := newest.Sub(oldest); span != (n-1)*8*time.Second {
		t.Errorf("received over %s, want %s", span, (n-1)*8*time.Second)
	}
	if size, err := ledgerBytes(ctx, db); err != nil || size < n*10 {
		t.Errorf("ledger size %d B, %v; want at least %d", size, err, n*10)
	}
}
