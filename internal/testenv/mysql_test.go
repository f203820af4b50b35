package testenv

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	"github.com/stripe-billing/billing/models"
)

func TestDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cloned := open(t, Database(t))
	migrated := open(t, EmptyDatabase(t))
	if _, err := models.Migrate(ctx, migrated); err != nil {
		t.Fatal(err)
	}

	t.Run("SameSchemaAsMigrated", func(t *testing.T) {
		want, got := Schema(t, migrated), Schema(t, cloned)
		if len(want) == 0 || !slices.Equal(got, want) {
			t.Errorf("clone differs from a migrated database:\n got %q\nwant %q", got, want)
		}
	})
	t.Run("MigrateFindsItUpToDate", func(t *testing.T) {
		applied, err := models.Migrate(ctx, cloned)
		if err != nil || len(applied) != 0 {
			t.Errorf("Migrate on a clone: applied %v, err %v; want nothing", applied, err)
		}
	})
	t.Run("EmptyHasNoTables", func(t *testing.T) {
		if got := Schema(t, open(t, EmptyDatabase(t))); len(got) != 0 {
			t.Errorf("EmptyDatabase has tables %v", got)
		}
	})
}

// BenchmarkDatabase measures a test's database set-up: a clone of the
// migrated schema, against a migration from scratch.
func BenchmarkDatabase(b *testing.B) {
	b.Run("Clone", func(b *testing.B) {
		if _, err := migratedSchema(); err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			Database(b)
		}
	})
	b.Run("Migrate", func(b *testing.B) {
		for b.Loop() {
			db, err := sql.Open("mysql", EmptyDatabase(b))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := models.Migrate(context.Background(), db); err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	})
}

func open(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
