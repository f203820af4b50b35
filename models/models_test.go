package models_test

import (
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"

	gormschema "gorm.io/gorm/schema"

	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/feed"
)

// tableModels is the model of every table the migrations create.
func tableModels() []gormschema.Tabler {
	return []gormschema.Tabler{
		models.StripeEvent{}, models.Customer{}, models.Subscription{}, models.SubscriptionItem{}, models.Invoice{},
		models.InvoicePayment{}, models.Payment{}, models.Refund{}, models.Dispute{}, models.CheckoutSession{},
		models.CreditNote{}, models.StatusChange{}, models.SweepCheckpoint{}, models.EventDiscard{},
		feed.Outbox{}, feed.Notice{},
		models.PaymentMethod{}, models.Product{}, models.Price{}, models.SubscriptionSchedule{},
	}
}

// column is a column of the migrated schema, from information_schema.
type column struct {
	dataType, columnType string
	nullable             bool
	timePrecision        sql.NullInt64
}

// migratedColumns returns every column of the tables of the migrated
// database by table and name, goose's own table and the views aside.
func migratedColumns(t *testing.T, s *models.Store) map[string]map[string]column {
	t.Helper()
	rows, err := s.DB().Raw(`SELECT c.table_name, c.column_name, c.data_type, c.column_type, c.is_nullable, c.datetime_precision
		FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
		WHERE c.table_schema = DATABASE() AND t.table_type = 'BASE TABLE' AND c.table_name <> 'goose_db_version'`).Rows()
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	tables := map[string]map[string]column{}
	for rows.Next() {
		var table, name, nullable string
		var c column
		if err := rows.Scan(&table, &name, &c.dataType, &c.columnType, &nullable, &c.timePrecision); err != nil {
			t.Fatal(err)
		}
		c.nullable = nullable == "YES"
		if tables[table] == nil {
			tables[table] = map[string]column{}
		}
		tables[table][name] = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return tables
}

// TestModelsMatchSchema holds the models against the migrated database, so
// that a migration and models.go cannot drift apart: every table has a
// model, every column a field, and every field a column of a type that
// holds it, NULL exactly where the field can be nil.
func TestModelsMatchSchema(t *testing.T) {
	t.Parallel()
	tables := migratedColumns(t, testenv.Store(t))
	for _, m := range tableModels() {
		s, err := models.Schema(m)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(s.Name, func(t *testing.T) {
			columns, ok := tables[s.Table]
			if !ok {
				t.Fatalf("table %s is not in the migrated schema", s.Table)
			}
			delete(tables, s.Table)
			for _, f := range s.Fields {
				c, ok := columns[f.DBName]
				if !ok {
					t.Errorf("field %s: no column %s.%s in the migrated schema", f.Name, s.Table, f.DBName)
					continue
				}
				delete(columns, f.DBName)
				if err := holds(f, c); err != nil {
					t.Errorf("field %s (%s), column %s.%s (%s): %v", f.Name, f.FieldType, s.Table, f.DBName, c.columnType, err)
				}
			}
			for name := range columns {
				t.Errorf("column %s.%s has no field in models.%s", s.Table, name, s.Name)
			}
		})
	}
	for table := range tables {
		t.Errorf("table %s has no model", table)
	}
}

// integerBits is the width of each MySQL integer type.
var integerBits = map[string]int{"tinyint": 8, "smallint": 16, "mediumint": 24, "int": 32, "bigint": 64}

// holds says why column c cannot store every value of field f, or nil.
func holds(f *gormschema.Field, c column) error {
	switch k := f.FieldType.Kind(); {
	case c.nullable && k != reflect.Pointer && k != reflect.Slice:
		return fmt.Errorf("column is NULL, field cannot be nil")
	case !c.nullable && (k == reflect.Pointer || k == reflect.Slice):
		return fmt.Errorf("column is NOT NULL, field can be nil")
	}
	unsigned := strings.HasSuffix(c.columnType, " unsigned")
	switch f.DataType {
	case gormschema.Bool:
		if c.columnType != "tinyint(1)" {
			return fmt.Errorf("want BOOLEAN (tinyint(1))")
		}
	case gormschema.Int, gormschema.Uint:
		bits := integerBits[c.dataType]
		// A sized field and its column are as wide as each other; Go's
		// int, which the counters use, may be an INT or a BIGINT.
		fits := bits == f.Size
		if k := f.IndirectFieldType.Kind(); k == reflect.Int || k == reflect.Uint {
			fits = bits == 32 || bits == 64
		}
		if !fits {
			return fmt.Errorf("want an integer column as wide as the field (%d bits)", f.Size)
		}
		if unsigned != (f.DataType == gormschema.Uint) {
			return fmt.Errorf("column and field differ in sign")
		}
	case gormschema.String:
		if !strings.Contains(c.dataType, "char") && !strings.Contains(c.dataType, "text") {
			return fmt.Errorf("want CHAR, VARCHAR or TEXT")
		}
	case gormschema.Bytes:
		if !strings.Contains(c.dataType, "blob") && !strings.Contains(c.dataType, "binary") {
			return fmt.Errorf("want BLOB or BINARY")
		}
	case "json":
		// MySQL has a JSON type; MariaDB's JSON is a LONGTEXT (whose
		// JSON_VALID check TestMigrateRecordsKeepsRows holds).
		if c.dataType != "json" && c.dataType != "longtext" {
			return fmt.Errorf("want JSON")
		}
		if f.IndirectFieldType.Kind() != reflect.String {
			return fmt.Errorf("a JSON field is a string of JSON text")
		}
	case gormschema.Time:
		if c.dataType != "datetime" || c.timePrecision.Int64 != 6 {
			return fmt.Errorf("want DATETIME(6): times keep microseconds")
		}
	default:
		return fmt.Errorf("no rule for data type %q", f.DataType)
	}
	return nil
}

// TestStripeIDIndexes holds every table with a stripe_id column to a
// unique key on it named StripeIDIndex: the worker locks a batch's rows
// through that key by name.
func TestStripeIDIndexes(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	var tables []string
	// Base tables only: the views over payments (charges,
	// payment_intents) have the column too, and no keys.
	err := s.DB().Raw(`SELECT c.table_name FROM information_schema.columns c
		JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
		WHERE c.table_schema = DATABASE() AND c.column_name = 'stripe_id' AND t.table_type = 'BASE TABLE'
		ORDER BY c.table_name`).Scan(&tables).Error
	if err != nil {
		t.Fatal(err)
	}
	if len(tables) < 8 {
		t.Fatalf("%d tables with a stripe_id column (%v): the query does not see the schema", len(tables), tables)
	}
	for _, table := range tables {
		var cols []string
		err := s.DB().Raw(`SELECT column_name FROM information_schema.statistics
			WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ? AND non_unique = 0 ORDER BY seq_in_index`,
			table, models.StripeIDIndex(table)).Scan(&cols).Error
		if err != nil {
			t.Fatal(err)
		}
		if len(cols) != 1 || cols[0] != "stripe_id" {
			t.Errorf("table %s: unique key %s is on %v, want (stripe_id)", table, models.StripeIDIndex(table), cols)
		}
	}
}
