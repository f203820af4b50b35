package models_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

// TestMigrateRecordsKeepsRows fills every table of the schema before
// migration 00003 (issue 11's) with two rows, migrates, and finds every
// row with every old value kept, the new columns NULL, the views showing
// one object each, metadata refusing text that is not JSON; then the
// rest of the migrations, and down to version 2 again, where the schema
// is the old one and the rows are still there.
func TestMigrateRecordsKeepsRows(t *testing.T) {
	t.Parallel()
	db, p := emptyMigrator(t)
	ctx := context.Background()
	if _, err := p.UpTo(ctx, 2); err != nil {
		t.Fatal(err)
	}
	oldSchema := testenv.Schema(t, db)
	tables := fillTables(t, db)
	if len(tables) < 11 {
		t.Fatalf("filled %d tables at version 2: %v", len(tables), tables)
	}
	before := readTables(t, db, tables)

	if _, err := p.UpTo(ctx, 3); err != nil {
		t.Fatalf("migrate to 00003: %v", err)
	}
	after := readTables(t, db, tables)
	for _, table := range tables {
		if len(after[table]) != len(before[table]) {
			t.Errorf("%s: %d rows after 00003, %d before", table, len(after[table]), len(before[table]))
			continue
		}
		for i, row := range after[table] {
			for col, v := range row {
				old, existed := before[table][i][col]
				switch {
				case existed && old != v:
					t.Errorf("%s row %d: %s = %s after 00003, %s before", table, i, col, v, old)
				case !existed && v != "NULL":
					t.Errorf("%s row %d: new column %s = %s, want NULL", table, i, col, v)
				}
			}
		}
	}
	for view, want := range map[string]string{"charges": "charge", "payment_intents": "payment_intent"} {
		var objects []string
		rows, err := db.QueryContext(ctx, "SELECT object FROM "+view)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var o string
			if err := rows.Scan(&o); err != nil {
				t.Fatal(err)
			}
			objects = append(objects, o)
		}
		rows.Close()
		if !slices.Equal(objects, []string{want}) {
			t.Errorf("view %s shows objects %v, want [%s]", view, objects, want)
		}
	}
	if _, err := db.ExecContext(ctx, "UPDATE customers SET metadata = 'not json'"); err == nil {
		t.Error("customers.metadata took text that is not JSON")
	}
	if _, err := db.ExecContext(ctx, `UPDATE customers SET metadata = '{"user_id":"u1"}'`); err != nil {
		t.Fatal(err)
	}
	var users int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM customers WHERE JSON_EXTRACT(metadata, '$.user_id') = 'u1'").Scan(&users); err != nil || users != 2 {
		t.Errorf("JSON_EXTRACT on customers.metadata: %d rows (%v), want 2", users, err)
	}

	if _, err := models.Migrate(ctx, db); err != nil {
		t.Fatalf("migrate the rest: %v", err)
	}
	if _, err := p.DownTo(ctx, 2); err != nil {
		t.Fatalf("migrate down to 2: %v", err)
	}
	if got := testenv.Schema(t, db); !slices.Equal(got, oldSchema) {
		t.Errorf("schema after down to 2 differs from version 2's:\n got  %q\n want %q", got, oldSchema)
	}
	if down := readTables(t, db, tables); !maps.EqualFunc(down, before, func(a, b []map[string]string) bool {
		return slices.EqualFunc(a, b, maps.Equal)
	}) {
		t.Errorf("rows after down to 2 differ:\n got  %v\n want %v", down, before)
	}
}

// fillTables inserts two rows into every table of db but goose's, each
// column given a value of its type (payments: a charge and a payment
// intent), and returns the tables' names.
func fillTables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query(`SELECT table_name, column_name, data_type, IFNULL(character_maximum_length, 0), column_type
		FROM information_schema.columns
		WHERE table_schema = DATABASE() AND table_name <> 'goose_db_version' ORDER BY table_name, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type col struct {
		name, dataType, columnType string
		maxLen                     int
	}
	columns := map[string][]col{}
	for rows.Next() {
		var table string
		var c col
		if err := rows.Scan(&table, &c.name, &c.dataType, &c.maxLen, &c.columnType); err != nil {
			t.Fatal(err)
		}
		columns[table] = append(columns[table], c)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	tables := slices.Sorted(maps.Keys(columns))
	for _, table := range tables {
		for i := 1; i <= 2; i++ {
			var names, marks []string
			var args []any
			for _, c := range columns[table] {
				var v any
				switch {
				case table == "payments" && c.name == "object":
					v = []string{"", models.ObjectCharge, models.ObjectPaymentIntent}[i]
				case c.columnType == "tinyint(1)":
					v = i % 2
				case strings.Contains(c.dataType, "int"):
					v = 10*i + len(c.name)
				case c.dataType == "datetime":
					v = fmt.Sprintf("2026-0%d-02 03:04:05.%06d", i, len(c.name))
				default: // char, varchar, text, blob
					s := fmt.Sprintf("%s_%d", c.name, i)
					if c.maxLen > 0 && len(s) > c.maxLen {
						s = s[len(s)-c.maxLen:]
					}
					v = s
				}
				names, marks, args = append(names, "`"+c.name+"`"), append(marks, "?"), append(args, v)
			}
			q := "INSERT INTO `" + table + "` (" + strings.Join(names, ", ") + ") VALUES (" + strings.Join(marks, ", ") + ")"
			if _, err := db.Exec(q, args...); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
	}
	return tables
}

// readTables reads every row of tables, ordered by their first column,
// each as its columns' values in text ("NULL" for NULL).
func readTables(t *testing.T, db *sql.DB, tables []string) map[string][]map[string]string {
	t.Helper()
	out := map[string][]map[string]string{}
	for _, table := range tables {
		rows, err := db.Query("SELECT * FROM `" + table + "` ORDER BY 1")
		if err != nil {
			t.Fatal(err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			values := make([]sql.NullString, len(cols))
			ptrs := make([]any, len(cols))
			for i := range values {
				ptrs[i] = &values[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			row := map[string]string{}
			for i, c := range cols {
				row[c] = "NULL"
				if values[i].Valid {
					row[c] = values[i].String
				}
			}
			out[table] = append(out[table], row)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
	}
	return out
}
