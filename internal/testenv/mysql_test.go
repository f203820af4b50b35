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
		for _, q := range []string{
			`SELECT CONCAT_WS(' ', table_name, column_name, column_type, is_nullable, IFNULL(column_default, '-'), IFNULL(collation_name, '-'), extra)
				FROM information_schema.columns WHERE table_schema = DATABASE() ORDER BY table_name, ordinal_position`,
			`SELECT CONCAT_WS(' ', table_name, index_name, non_unique, seq_in_index, column_name)
				FROM information_schema.statistics WHERE table_schema = DATABASE() ORDER BY table_name, index_name, seq_in_index`,
			`SELECT CONCAT_WS(' ', table_name, engine, table_collation)
				FROM information_schema.tables WHERE table_schema = DATABASE() ORDER BY table_name`,
		} {
			want, got := column(t, migrated, q), column(t, cloned, q)
			if len(want) == 0 || !slices.Equal(got, want) {
				t.Errorf("clone differs from a migrated database:\n got %q\nwant %q", got, want)
			}
		}
	})
	t.Run("MigrateFindsItUpToDate", func(t *testing.T) {
		applied, err := models.Migrate(ctx, cloned)
		if err != nil || len(applied) != 0 {
			t.Errorf("Migrate on a clone: applied %v, err %v; want nothing", applied, err)
		}
	})
	t.Run("EmptyHasNoTables", func(t *testing.T) {
		if got := column(t, open(t, EmptyDatabase(t)), "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()"); len(got) != 0 {
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

func column(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
