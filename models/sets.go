package models

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

// The set writer: the statements that write a batch's Stripe objects as
// sets. The rows of each table a batch changes are locked in one SELECT
// ... FOR UPDATE in key order (LockObjects), rows that must exist get
// stubs in one INSERT (EnsureObjects), and the new states the domain
// folded are written in one multi-row upsert per table (WriteObjects).
// Which row becomes what is billing's to say; this file only turns rows
// into statements, with every table and column name taken from the
// models, so that a column is named in its migration and its struct.

// ErrRerun: a row this transaction found missing (a ledger row, an
// object's) was created by another transaction meanwhile. Nothing of the
// transaction may commit; run it again, and it sees the row.
var ErrRerun = errors.New("models: a row was created by another transaction meanwhile")

// objectTable is a table of Stripe objects as the set writer sees it,
// resolved once from its model.
type objectTable struct {
	table                              string
	model                              reflect.Type
	id, stripeID, createdAt, updatedAt *schema.Field
	object                             *schema.Field // payments.object; nil elsewhere
	stub                               []*schema.Field
	byName                             map[string]*schema.Field
	selected                           []*schema.Field // every column, in the order of lockHead's SELECT
	lockHead                           string          // SELECT ... WHERE stripe_id IN (
	lockTail                           string          // ) ORDER BY ... FOR UPDATE
}

var objectTables sync.Map // reflect.Type of the model → *objectTable

// tableOf resolves the table of row, a pointer to an object table's
// model (Customer, Invoice, ...).
func tableOf(row any) (*objectTable, error) {
	t := reflect.TypeOf(row)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if ot, ok := objectTables.Load(t); ok {
		return ot.(*objectTable), nil
	}
	model, ok := reflect.New(t).Interface().(schema.Tabler)
	if !ok {
		return nil, fmt.Errorf("models: %s is not a table model", t)
	}
	s, err := Schema(model)
	if err != nil {
		return nil, err
	}
	ot := &objectTable{table: s.Table, model: t, byName: s.FieldsByName, id: s.PrioritizedPrimaryField}
	for name, f := range map[string]**schema.Field{"StripeID": &ot.stripeID, "CreatedAt": &ot.createdAt, "UpdatedAt": &ot.updatedAt} {
		if *f = s.FieldsByName[name]; *f == nil {
			return nil, fmt.Errorf("models: %s has no %s column", s.Table, name)
		}
	}
	if ot.id == nil || !ot.id.AutoIncrement {
		return nil, fmt.Errorf("models: %s has no auto-increment primary key", s.Table)
	}
	ot.object = s.FieldsByName["Object"]
	for _, name := range StubFields {
		if f := s.FieldsByName[name]; f != nil {
			ot.stub = append(ot.stub, f)
		}
	}
	for _, name := range s.DBNames {
		ot.selected = append(ot.selected, s.FieldsByDBName[name])
	}
	// Through the unique key: on a small table the optimizer would rather
	// scan it, which locks, and waits for, every row.
	ot.lockHead = "SELECT " + strings.Join(s.DBNames, ", ") + " FROM " + s.Table + " FORCE INDEX (" + StripeIDIndex(s.Table) + ") WHERE " +
		ot.stripeID.DBName + " IN ("
	ot.lockTail = ") ORDER BY " + ot.stripeID.DBName + " FOR UPDATE"
	got, _ := objectTables.LoadOrStore(t, ot)
	return got.(*objectTable), nil
}

// mustTable is tableOf at start-up: it panics, as regexp.MustCompile
// does, on a model that is no table of Stripe objects.
func mustTable(row any) *objectTable {
	ot, err := tableOf(row)
	if err != nil {
		panic(err)
	}
	return ot
}

// col is the column of field name; it panics on a field with none: the
// statements are built at start-up, before any event is applied.
func (ot *objectTable) col(name string) string {
	f := ot.byName[name]
	if f == nil || f.DBName == "" {
		panic(fmt.Sprintf("models: %s has no column for field %s", ot.table, name))
	}
	return f.DBName
}

// StubFields are the fields of a row that only knows its id, as the
// first event that names an object makes it: the rest waits for the
// object's own events. Object is set on the payments table only.
var StubFields = []string{"StripeID", "Livemode", "Account", "CreatedAt", "UpdatedAt", "Object"}

// Locked is an object's row read under FOR UPDATE. Row, a pointer to its
// model, is what the batch makes of it; the row as read is kept so that
// WriteObjects writes only what changed.
type Locked struct {
	Row  any
	read reflect.Value
}

// LockObjects reads the rows of ids (sorted, of model's table; model is a
// pointer to the table's model) FOR UPDATE, in key order, and returns
// those it found by Stripe id. Under READ COMMITTED a missing row takes
// no gap lock: two first events of one object meet on the unique key when
// they insert it (WriteObjects), and the later one is run again.
//
// The columns are scanned straight into the model's fields: GORM's Scan
// looks each column's field up again for every row.
func LockObjects(tx *gorm.DB, model any, ids []string) (map[string]*Locked, error) {
	ot, err := tableOf(model)
	if err != nil {
		return nil, err
	}
	q := ot.lockHead + "?" + strings.Repeat(", ?", len(ids)-1) + ot.lockTail
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	ctx := tx.Statement.Context
	rows, err := tx.Statement.ConnPool.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("models: lock %d %s rows: %w", len(ids), ot.table, err)
	}
	defer rows.Close()
	out := make(map[string]*Locked, len(ids))
	dest := make([]any, len(ot.selected))
	for rows.Next() {
		row := reflect.New(ot.model)
		for i, f := range ot.selected {
			dest[i] = f.ReflectValueOf(ctx, row).Addr().Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("models: lock %d %s rows: %w", len(ids), ot.table, err)
		}
		read := reflect.New(ot.model)
		read.Elem().Set(row.Elem()) // the fold sets fields, never what they point to
		id := ot.stripeID.ReflectValueOf(ctx, row).String()
		out[id] = &Locked{Row: row.Interface(), read: read}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("models: lock %d %s rows: %w", len(ids), ot.table, err)
	}
	return out, nil
}

// EnsureObjects makes sure a row exists for each of stubs (rows of one
// table, as pointers to its model, holding StubFields), without locking
// an existing one: an invoice may arrive before its customer. The missing
// ones are inserted as they are, in one statement.
func EnsureObjects(tx *gorm.DB, stubs []any) error {
	if len(stubs) == 0 {
		return nil
	}
	ot, err := tableOf(stubs[0])
	if err != nil {
		return err
	}
	ctx := tx.Statement.Context
	ids := make([]string, len(stubs))
	for i, s := range stubs {
		ids[i] = ot.stripeID.ReflectValueOf(ctx, reflect.ValueOf(s)).String()
	}
	var found []string
	if err := tx.Table(ot.table).Where(ot.stripeID.DBName+" IN ?", ids).Pluck(ot.stripeID.DBName, &found).Error; err != nil {
		return fmt.Errorf("models: find %d %s rows: %w", len(ids), ot.table, err)
	}
	missing := slices.DeleteFunc(slices.Clone(stubs), func(s any) bool {
		return slices.Contains(found, ot.stripeID.ReflectValueOf(ctx, reflect.ValueOf(s)).String())
	})
	if len(missing) == 0 {
		return nil
	}
	if _, err := ot.insert(tx, missing, ot.stub, "INSERT IGNORE INTO", ""); err != nil {
		return fmt.Errorf("models: insert %d %s stubs: %w", len(missing), ot.table, err)
	}
	return nil
}

// ObjectWrites is what a batch writes to one table: Changed, rows it
// locked (LockObjects) whose fields it changed, and Fresh, rows that were
// missing, as pointers to the model. Fields names the model fields an
// event or a link may change.
type ObjectWrites struct {
	Changed []*Locked
	Fresh   []any
	Fields  []string
}

// WriteObjects writes w in two statements at most: the changed rows in
// one multi-row INSERT ... ON DUPLICATE KEY UPDATE keyed by their primary
// key, the fresh ones in one INSERT that skips a row another transaction
// inserted since LockObjects looked, which is then ErrRerun.
//
// A changed row's upsert writes the columns that differ from the row as
// read in one row of the batch at least (and updated_at, which the
// insert needs); the others, most of a wide row, are left alone.
//
// The primary key makes the upsert of a changed row an update: InnoDB
// meets the duplicate in the clustered index, on a record the transaction
// already holds, before it writes anything. Keyed by stripe_id alone it
// first inserted each row into the clustered index under a new
// auto-increment id, met the duplicate in the unique index, where it took
// a next-key lock (a gap that a neighbouring batch's new row waits for),
// and rolled the insert back before updating.
func WriteObjects(tx *gorm.DB, w ObjectWrites) error {
	some := w.Fresh // a row of the table, to name it
	if len(w.Changed) > 0 {
		some = []any{w.Changed[0].Row}
	}
	if len(some) == 0 {
		return nil
	}
	ot, err := tableOf(some[0])
	if err != nil {
		return err
	}
	// The insert's own columns (never updated), then what may change.
	cols := []*schema.Field{ot.id, ot.stripeID, ot.createdAt}
	if ot.object != nil {
		cols = append(cols, ot.object)
	}
	insertOnly := len(cols)
	for _, name := range w.Fields {
		f := ot.byName[name]
		if f == nil || f.DBName == "" {
			return fmt.Errorf("models: %s has no column for field %s", ot.table, name)
		}
		if !slices.Contains(cols, f) {
			cols = append(cols, f)
		}
	}
	ctx := tx.Statement.Context
	if len(w.Changed) > 0 {
		slices.SortFunc(w.Changed, func(a, b *Locked) int { return ot.compareIDs(ctx, a.Row, b.Row) })
		written := slices.Clone(cols[:insertOnly])
		var update []string
		for _, f := range cols[insertOnly:] {
			if f == ot.updatedAt || slices.ContainsFunc(w.Changed, func(r *Locked) bool {
				return !reflect.DeepEqual(f.ReflectValueOf(ctx, reflect.ValueOf(r.Row)).Interface(), f.ReflectValueOf(ctx, r.read).Interface())
			}) {
				written = append(written, f)
				update = append(update, f.DBName+" = VALUES("+f.DBName+")")
			}
		}
		rows := make([]any, len(w.Changed))
		for i, r := range w.Changed {
			rows[i] = r.Row
		}
		if _, err := ot.insert(tx, rows, written, "INSERT INTO", " ON DUPLICATE KEY UPDATE "+strings.Join(update, ", ")); err != nil {
			return fmt.Errorf("models: write %d %s rows: %w", len(rows), ot.table, err)
		}
	}
	if len(w.Fresh) == 0 {
		return nil
	}
	// A fresh row has no id yet: auto-increment gives it one. An unchanged
	// row counts no affected row: a row that was there is left alone and
	// found by the count.
	slices.SortFunc(w.Fresh, func(a, b any) int { return ot.compareIDs(ctx, a, b) })
	n, err := ot.insert(tx, w.Fresh, cols[1:], "INSERT INTO", " ON DUPLICATE KEY UPDATE "+ot.stripeID.DBName+" = "+ot.stripeID.DBName)
	if err != nil {
		return fmt.Errorf("models: write %d new %s rows: %w", len(w.Fresh), ot.table, err)
	}
	if n != int64(len(w.Fresh)) {
		return fmt.Errorf("models: insert %d new %s rows: %w", len(w.Fresh), ot.table, ErrRerun)
	}
	return nil
}

// compareIDs orders two rows of the table by Stripe id: the order rows
// are written in, so that two batches wait for each other instead of
// deadlocking.
func (ot *objectTable) compareIDs(ctx context.Context, a, b any) int {
	return strings.Compare(ot.stripeID.ReflectValueOf(ctx, reflect.ValueOf(a)).String(),
		ot.stripeID.ReflectValueOf(ctx, reflect.ValueOf(b)).String())
}

// insert runs verb INTO the table (cols) VALUES one tuple per row, then
// tail, and returns the rows it affected.
func (ot *objectTable) insert(tx *gorm.DB, rows []any, cols []*schema.Field, verb, tail string) (int64, error) {
	ctx := tx.Statement.Context
	names := make([]string, len(cols))
	for i, f := range cols {
		names[i] = f.DBName
	}
	args := make([]any, 0, len(rows)*len(cols))
	for _, r := range rows {
		v := reflect.ValueOf(r)
		for _, f := range cols {
			a, _ := f.ValueOf(ctx, v)
			args = append(args, a)
		}
	}
	return ExecRows(tx, verb+" "+ot.table+" ("+strings.Join(names, ", ")+") VALUES ", len(cols), len(rows), tail, args)
}
