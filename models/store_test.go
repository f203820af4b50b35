package models_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"bad conn", driver.ErrBadConn, true},
		{"invalid conn", mysql.ErrInvalidConn, true},
		{"wrapped bad conn", fmt.Errorf("query: %w", driver.ErrBadConn), true},
		{"connection refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, true},
		{"server gone away", &mysql.MySQLError{Number: 2006, Message: "MySQL server has gone away"}, true},
		{"lost connection", &mysql.MySQLError{Number: 2013}, true},
		{"too many connections", &mysql.MySQLError{Number: 1040}, true},
		{"connection reset", syscall.ECONNRESET, true},
		{"conn done", sql.ErrConnDone, true},
		{"deadlock", &mysql.MySQLError{Number: 1213}, false},
		{"duplicate key", &mysql.MySQLError{Number: 1062}, false},
		{"syntax", &mysql.MySQLError{Number: 1064}, false},
		{"no rows", sql.ErrNoRows, false},
		{"caller canceled", context.Canceled, false},
		{"caller deadline", fmt.Errorf("q: %w", context.DeadlineExceeded), false},
		{"plain", errors.New("handler failed"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := models.IsUnavailable(tt.err); got != tt.want {
				t.Errorf("IsUnavailable(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestErrorClass(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"unavailable", fmt.Errorf("models: tx: %w: %w", models.ErrUnavailable, errors.New("EOF")), models.ErrorUnavailable},
		{"broken connection", driver.ErrBadConn, models.ErrorUnavailable},
		{"deadlock", fmt.Errorf("models: tx: %w", &mysql.MySQLError{Number: 1213}), models.ErrorDeadlock},
		{"lock wait timeout", &mysql.MySQLError{Number: 1205}, models.ErrorLockWaitTimeout},
		{"other MySQL error", &mysql.MySQLError{Number: 1064}, models.ErrorOther},
		{"not a database error", errors.New("bad event"), ""},
		{"caller canceled", context.Canceled, ""},
		{"no error", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := models.ErrorClass(tt.err); got != tt.want {
				t.Errorf("ErrorClass(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}

func TestUnreachableServerIsUnavailable(t *testing.T) {
	t.Parallel()
	const dsn = "root@tcp(127.0.0.1:1)/billing?parseTime=true&timeout=2s"
	ctx := context.Background()

	_, err := models.Open(ctx, dsn, models.PoolConfig{}, nil)
	if !errors.Is(err, models.ErrUnavailable) {
		t.Fatalf("Open: err = %v, want ErrUnavailable", err)
	}
	s, err := models.OpenLazy(dsn, models.PoolConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.InTx(ctx, func(tx *gorm.DB) error { return tx.Exec("SELECT 1").Error })
	if !errors.Is(err, models.ErrUnavailable) {
		t.Fatalf("InTx: err = %v, want ErrUnavailable", err)
	}
	var opErr *net.OpError
	if !errors.As(err, &opErr) {
		t.Errorf("InTx: err = %v lost its cause", err)
	}
	if err := s.MarkDead(ctx, models.DeadEvent{ID: "evt_1"}); !errors.Is(err, models.ErrUnavailable) {
		t.Errorf("MarkDead: err = %v, want ErrUnavailable", err)
	}
}

func TestInTxRetriesDeadlocks(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	tests := []struct {
		name      string
		failures  int
		err       error
		wantCalls int
		wantErr   bool
		// wantClasses is what the error observer is told, one per failure.
		wantClasses []string
	}{
		{"deadlock then success", 2, &mysql.MySQLError{Number: 1213}, 3, false, []string{"deadlock", "deadlock"}},
		{"lock wait timeout then success", 1, &mysql.MySQLError{Number: 1205}, 2, false, []string{"lock_wait_timeout"}},
		{"deadlock forever gives up", 100, &mysql.MySQLError{Number: 1213}, 5, true, slices.Repeat([]string{"deadlock"}, 5)},
		{"other error is not retried", 100, &mysql.MySQLError{Number: 1064}, 1, true, []string{"other"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			name := "retry-" + tt.name
			calls := 0
			var classes []string
			observed := s.Observed(func(class string) { classes = append(classes, class) })
			err := observed.InTx(ctx, func(tx *gorm.DB) error {
				calls++
				if err := tx.Create(&models.SweepCheckpoint{Name: name, Value: fmt.Sprint(calls), UpdatedAt: time.Now()}).Error; err != nil {
					return err
				}
				if calls <= tt.failures {
					return tt.err
				}
				return nil
			})
			if calls != tt.wantCalls || (err != nil) != tt.wantErr {
				t.Fatalf("calls = %d, err = %v; want %d calls, error %v", calls, err, tt.wantCalls, tt.wantErr)
			}
			if !slices.Equal(classes, tt.wantClasses) {
				t.Errorf("observed classes %v, want %v", classes, tt.wantClasses)
			}
			// Failed attempts were rolled back: only the last one's row, if any.
			got, err2 := s.Checkpoint(ctx, name)
			if err2 != nil {
				t.Fatal(err2)
			}
			want := ""
			if !tt.wantErr {
				want = fmt.Sprint(calls)
			}
			if got != want {
				t.Errorf("checkpoint = %q, want %q", got, want)
			}
		})
	}
}

// TestInTxSurvivesRealDeadlock provokes a real 1213: two transactions lock
// two rows in opposite orders. Both must commit in the end.
func TestInTxSurvivesRealDeadlock(t *testing.T) {
	t.Parallel()
	var deadlocks atomic.Int32
	s := testenv.Store(t).Observed(func(class string) {
		if class == models.ErrorDeadlock {
			deadlocks.Add(1)
		}
	})
	ctx := context.Background()
	for _, n := range []string{"a", "b"} {
		if err := s.SetCheckpoint(ctx, n, "0"); err != nil {
			t.Fatal(err)
		}
	}
	var calls atomic.Int32
	var ready sync.WaitGroup
	ready.Add(2)
	run := func(first, second string) error {
		attempt := 0
		return s.InTx(ctx, func(tx *gorm.DB) error {
			attempt++
			calls.Add(1)
			if err := tx.Exec("UPDATE sweep_checkpoints SET value = value + 1 WHERE name = ?", first).Error; err != nil {
				return err
			}
			if attempt == 1 {
				ready.Done()
				ready.Wait() // both hold their first row
			}
			return tx.Exec("UPDATE sweep_checkpoints SET value = value + 1 WHERE name = ?", second).Error
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- run("a", "b") }()
	go func() { errs <- run("b", "a") }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("InTx: %v", err)
		}
	}
	if calls.Load() < 3 || deadlocks.Load() < 1 {
		t.Errorf("calls = %d, deadlocks observed = %d: want a retry after an observed deadlock", calls.Load(), deadlocks.Load())
	}
	for _, n := range []string{"a", "b"} {
		if v, _ := s.Checkpoint(ctx, n); v != "2" {
			t.Errorf("checkpoint %s = %q, want 2 (each transaction applied once)", n, v)
		}
	}
}

// TestInTxReadsCommitted: a transaction of InTx sees what another
// committed after its first read (under REPEATABLE READ, MySQL's
// default, it would read its first snapshot again), on every connection
// of the pool.
func TestInTxReadsCommitted(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	if err := s.SetCheckpoint(ctx, "rc", "before"); err != nil {
		t.Fatal(err)
	}
	const txs = 3 // held open together: each on a connection of its own
	var ready, updated sync.WaitGroup
	ready.Add(txs)
	updated.Add(1)
	errs := make(chan error, txs)
	for range txs {
		go func() {
			errs <- s.InTx(ctx, func(tx *gorm.DB) error {
				var first, second string
				if err := tx.Raw("SELECT value FROM sweep_checkpoints WHERE name = 'rc'").Scan(&first).Error; err != nil {
					return err
				}
				ready.Done()
				updated.Wait()
				if err := tx.Raw("SELECT value FROM sweep_checkpoints WHERE name = 'rc'").Scan(&second).Error; err != nil {
					return err
				}
				if first != "before" || second != "after" {
					return fmt.Errorf("read %q then %q, want before then after", first, second)
				}
				return nil
			})
		}()
	}
	ready.Wait()
	if err := s.SetCheckpoint(ctx, "rc", "after"); err != nil {
		t.Fatal(err)
	}
	updated.Done()
	for range txs {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestMigrateTwice(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("mysql", testenv.EmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	if _, err := models.Migrate(ctx, db); err != nil {
		t.Fatalf("first Migrate: %v", err)
	}
	before := testenv.Schema(t, db)
	if !slices.ContainsFunc(before, func(c string) bool { return strings.HasPrefix(c, "stripe_events.redrives int") }) {
		t.Fatalf("schema lacks stripe_events.redrives: %v", before)
	}
	var wg sync.WaitGroup
	results := make([][]string, 2)
	errs := make([]error, 2)
	for i := range 2 { // two at once: the lock makes them take turns
		wg.Go(func() { results[i], errs[i] = models.Migrate(ctx, db) })
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil || len(results[i]) != 0 {
			t.Errorf("second Migrate: applied %v, err %v; want nothing", results[i], errs[i])
		}
	}
	if after := testenv.Schema(t, db); !slices.Equal(before, after) {
		t.Errorf("schema changed:\nbefore %v\nafter  %v", before, after)
	}
}

func TestMigrateFresh(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("mysql", testenv.EmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	// Every migration, in order: the embedded files, by name.
	want, err := fs.Glob(models.Migrations, "migrations/*.sql")
	if err != nil || len(want) < 2 {
		t.Fatalf("migration files %v, %v", want, err)
	}
	for i := range want {
		want[i] = path.Base(want[i])
	}
	applied, err := models.Migrate(ctx, db)
	if err != nil || !slices.Equal(applied, want) {
		t.Fatalf("Migrate on empty database: applied %v, err %v; want %v", applied, err, want)
	}
}

// TestDataErrorsAreSchema: a value its column cannot hold fails the same
// way on every attempt, so InTx and Savepoint mark it failure.Schema,
// naming the column, instead of leaving it transient; a duplicate key is
// no data error and stays unmarked.
func TestDataErrorsAreSchema(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	now := time.Now().UTC()
	insert := "INSERT INTO customers (stripe_id, email, currency, balance, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)"
	tests := []struct {
		name, column string
		number       uint16
		args         []any
	}{
		{"DataTooLong", "email", 1406, []any{"cus_long", strings.Repeat("a", 600) + "@example.com", "usd", 0, now, now}},
		{"IncorrectString", "currency", 1366, []any{"cus_euro", "a@example.com", "€", 0, now, now}},
		{"OutOfRange", "balance", 1264, []any{"cus_range", "a@example.com", "usd", "1e30", now, now}},
		{"CannotBeNull", "stripe_id", 1048, []any{nil, "a@example.com", "usd", 0, now, now}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check := func(how string, err error) {
				t.Helper()
				var me *mysql.MySQLError
				if !errors.As(err, &me) || me.Number != tt.number {
					t.Fatalf("%s: %v, want MySQL error %d", how, err, tt.number)
				}
				if c := failure.Of(err); c != failure.Schema {
					t.Errorf("%s: class %q, want schema", how, c)
				}
				if want := "column " + tt.column + " cannot hold"; !strings.Contains(err.Error(), want) {
					t.Errorf("%s: %q does not say %q", how, err, want)
				}
			}
			check("InTx", s.InTx(ctx, func(tx *gorm.DB) error { return tx.Exec(insert, tt.args...).Error }))
			var inner error
			err := s.InTx(ctx, func(tx *gorm.DB) error {
				_, inner = models.Savepoint(tx, "sp", func(tx *gorm.DB) error { return tx.Exec(insert, tt.args...).Error })
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			check("Savepoint", inner)
		})
	}
	t.Run("DuplicateKeyIsNotSchema", func(t *testing.T) {
		t.Parallel()
		row := []any{"cus_twice", "a@example.com", "usd", 0, now, now}
		if err := s.InTx(ctx, func(tx *gorm.DB) error { return tx.Exec(insert, row...).Error }); err != nil {
			t.Fatal(err)
		}
		err := s.InTx(ctx, func(tx *gorm.DB) error { return tx.Exec(insert, row...).Error })
		if err == nil || failure.Of(err) == failure.Schema {
			t.Errorf("a duplicate key: %v (class %q), want an error that is not schema", err, failure.Of(err))
		}
	})
}
