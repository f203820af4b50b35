package models_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

// TestSavepointDeadlockRedoesTheWholeTransaction: two batches lock two
// rows in opposite orders, each row under its own savepoint. MySQL
// rolls the whole victim transaction back, so Savepoint must abort and
// InTx must redo the batch from its first unit: each row ends with each
// batch's change exactly once.
func TestSavepointDeadlockRedoesTheWholeTransaction(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	for _, name := range []string{"a", "b"} {
		if err := s.SetCheckpoint(ctx, name, ""); err != nil {
			t.Fatal(err)
		}
	}
	var runs, aborts atomic.Int64
	var barrier sync.WaitGroup
	barrier.Add(2)
	batch := func(mark string, first, second string) error {
		var once sync.Once
		return s.InTx(ctx, func(tx *gorm.DB) error {
			runs.Add(1)
			for i, name := range []string{first, second} {
				abort, err := models.Savepoint(tx, "u"+name, func(tx *gorm.DB) error {
					return tx.Exec("UPDATE sweep_checkpoints SET value = CONCAT(value, ?) WHERE name = ?", mark, name).Error
				})
				if abort {
					aborts.Add(1)
					return err
				}
				if err != nil {
					return err
				}
				if i == 0 {
					once.Do(func() { barrier.Done(); barrier.Wait() }) // both hold their first row
				}
			}
			return nil
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- batch("1", "a", "b") }()
	go func() { errs <- batch("2", "b", "a") }()
	for range 2 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatalf("batch: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("batches did not finish")
		}
	}
	if aborts.Load() == 0 || runs.Load() < 3 {
		t.Fatalf("%d runs, %d aborts: the test made no deadlock", runs.Load(), aborts.Load())
	}
	for _, name := range []string{"a", "b"} {
		v, err := s.Checkpoint(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != 2 || v == "11" || v == "22" {
			t.Errorf("row %s = %q, want each batch's mark once", name, v)
		}
	}
}

// TestSavepointRollsBackOnlyTheFailedUnit: a failed unit's statements are
// undone, the transaction goes on and commits the others.
func TestSavepointRollsBackOnlyTheFailedUnit(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		for _, name := range []string{"x", "y", "z"} {
			abort, err := models.Savepoint(tx, "sp_"+name, func(tx *gorm.DB) error {
				if err := tx.Create(&models.SweepCheckpoint{Name: name, Value: "v", UpdatedAt: time.Now()}).Error; err != nil {
					return err
				}
				if name == "y" {
					return boom
				}
				return nil
			})
			if abort {
				return err
			}
			if name == "y" && !errors.Is(err, boom) {
				t.Errorf("unit y: %v, want boom", err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	if err := s.DB().Model(&models.SweepCheckpoint{}).Order("name").Pluck("name", &names).Error; err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || names[0] != "x" || names[1] != "z" {
		t.Errorf("rows %v, want [x z]", names)
	}
}

// TestTransactionBeginsWithItsFirstStatement: a transaction's START
// TRANSACTION goes with its first statement (one round trip), and that
// statement is the transaction's: rolled back with it, whether it is
// sent as text or prepared; a transaction that runs nothing commits and
// rolls back without a word to MySQL.
func TestTransactionBeginsWithItsFirstStatement(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	rollback := errors.New("roll back")
	for _, tt := range []struct {
		name  string
		first func(tx *gorm.DB) error
	}{
		{"Exec", func(tx *gorm.DB) error { return models.SaveCheckpoint(tx, "lazy-exec", "v", time.Now()) }},
		{"Query", func(tx *gorm.DB) error {
			var n int64
			if err := tx.Raw("SELECT COUNT(*) FROM sweep_checkpoints").Scan(&n).Error; err != nil {
				return err
			}
			return models.SaveCheckpoint(tx, "lazy-query", "v", time.Now())
		}},
		{"Prepared", func(tx *gorm.DB) error {
			stmt, err := tx.Statement.ConnPool.PrepareContext(ctx, "INSERT INTO sweep_checkpoints (name, value, updated_at) VALUES (?, ?, ?)")
			if err != nil {
				return err
			}
			defer stmt.Close()
			_, err = stmt.ExecContext(ctx, "lazy-prepared", "v", time.Now().UTC())
			return err
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := s.InTx(ctx, func(tx *gorm.DB) error {
				if err := tt.first(tx); err != nil {
					return err
				}
				return rollback
			})
			if !errors.Is(err, rollback) {
				t.Fatalf("InTx = %v, want the rollback", err)
			}
			var n int64
			if err := s.DB().Table("sweep_checkpoints").Where("name LIKE ?", "lazy-%").Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%d sweep_checkpoints rows after the rollback, want 0: the first statement ran outside the transaction", n)
			}
		})
	}
	t.Run("Empty", func(t *testing.T) {
		if err := s.InTx(ctx, func(*gorm.DB) error { return nil }); err != nil {
			t.Errorf("empty commit: %v", err)
		}
		if err := s.InTx(ctx, func(*gorm.DB) error { return rollback }); !errors.Is(err, rollback) {
			t.Errorf("empty rollback: %v", err)
		}
	})
}
