package billing

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"github.com/stripe-billing/billing/models"
)

// A handler decodes its event into a plan, the writes the event asks for
// in order, and writeSets applies the plans of a whole batch as sets: the
// rows of each table locked in one SELECT ... FOR UPDATE in key order
// (new objects first get stub rows in one INSERT), each object's events
// folded in Go in batch order by the rules of apply.go, the new states
// written in one multi-row upsert per table. A single event is a batch of
// one, so both ways share every rule.

// op is one write of a plan. Exactly one of change, ensure, link and
// settle is set.
type op struct {
	kind kind
	id   string
	// change applies what the event says of the object (applyChange).
	change *change
	// ensure: the row must exist; a stub when it is new. An object that
	// arrives after what references it finds its row.
	ensure bool
	// link fills the row's empty references with those it holds (a
	// pointer to the kind's model); no row, no link.
	link any
	// settle: the payment intent's links are settled from the rows once
	// the batch's rows are written (settleLinks).
	settle bool
}

// plan is what one event writes, in order.
type plan []op

// planner is a built-in handler: decode turns the event into its plan.
// As a Handler it applies the plan at once, a batch of one.
type planner struct {
	decode func(ev Event) (plan, error)
	now    func() time.Time
}

// Handle applies ev's plan in tx and records the statuses it reports.
func (p planner) Handle(ctx context.Context, tx *gorm.DB, ev Event) error {
	pl, err := p.decode(ev)
	if err != nil {
		return err
	}
	history, applied, err := writeSets(ctx, tx, []planned{{ev: ev, plan: pl}}, p.now())
	if err != nil {
		return err
	}
	if len(applied) > 0 {
		noteApplied(ctx, ev.ObjectID)
	}
	return models.RecordStatuses(tx, history)
}

// planned is an event and its plan.
type planned struct {
	ev   Event
	plan plan
}

// lockedRow is an object's row read under FOR UPDATE (or a stub this
// transaction inserted), as a pointer to its kind's model.
type lockedRow struct {
	v     reflect.Value
	read  reflect.Value // a copy of the row as read, to write only what changed; none for a fresh row
	dirty bool          // to be written
	fresh bool          // not in the table yet: inserted, changed or not
}

// wanted is why a row is wanted: the kind and envelope of the first event
// that asks for it, and whether a missing row becomes a stub.
type wanted struct {
	kind kind
	env  envelope
	stub bool
}

// tableSet is what a batch does to one table.
type tableSet struct {
	kinds  []kind             // the kinds of the table the batch writes, first seen first
	lock   map[string]*wanted // rows locked FOR UPDATE
	ensure map[string]*wanted // rows that must exist, not locked
	rows   map[string]*lockedRow
}

func (ts *tableSet) want(into map[string]*wanted, id string, k kind, env envelope, stub bool) {
	if w := into[id]; w != nil {
		if stub && !w.stub {
			*w = wanted{kind: k, env: env, stub: true}
		}
		return
	}
	into[id] = &wanted{kind: k, env: env, stub: stub}
	if !slices.ContainsFunc(ts.kinds, func(o kind) bool { return o.objectType == k.objectType }) {
		ts.kinds = append(ts.kinds, k)
	}
}

// itemWrite is a subscription's items as an applied event lists them.
type itemWrite struct {
	env   envelope
	sub   string
	items *items
}

// writeSets applies the plans of events, in order, within tx, and returns
// the status history they report and the ids of the events that changed
// their own object's row (the ledger's applied; the rows of other objects
// an event carries do not count). Every row a plan changes is locked
// before any is written; a tie that needs Stripe's object ends it with an
// errTie (see handle).
func writeSets(ctx context.Context, tx *gorm.DB, events []planned, now time.Time) (history []models.StatusChange, applied []string, err error) {
	sets := map[string]*tableSet{}
	set := func(k kind) *tableSet {
		ts := sets[k.table]
		if ts == nil {
			ts = &tableSet{lock: map[string]*wanted{}, ensure: map[string]*wanted{}, rows: map[string]*lockedRow{}}
			sets[k.table] = ts
		}
		return ts
	}
	type customerRef struct {
		owner *tableSet
		id    string
		env   envelope
		ref   ref
	}
	var customers []customerRef
	for _, pe := range events {
		env := envelopeOf(pe.ev)
		for _, o := range pe.plan {
			if o.id == "" {
				continue
			}
			ts := set(o.kind)
			switch {
			case o.change != nil:
				ts.want(ts.lock, o.id, o.kind, env, true)
				if c := o.change.customer; c != "" {
					customers = append(customers, customerRef{owner: ts, id: o.id, env: env, ref: c})
				}
			case o.ensure:
				ts.want(ts.ensure, o.id, o.kind, env, true)
			case o.link != nil:
				ts.want(ts.lock, o.id, o.kind, env, false)
			}
		}
	}
	// A row both ensured and linked is locked, and a stub when new.
	for _, ts := range sets {
		for id, e := range ts.ensure {
			if w := ts.lock[id]; w != nil {
				if !w.stub {
					*w = *e
				}
				delete(ts.ensure, id)
			}
		}
	}
	tables := slices.Sorted(maps.Keys(sets))
	for _, t := range tables {
		if err := lockRows(ctx, tx, sets[t], now); err != nil {
			return nil, nil, err
		}
	}
	// An object's customer must have a row; one the locked row already
	// names was made sure of by the event that linked it (customers are
	// never deleted).
	if len(customers) > 0 {
		cs := set(customerKind)
		for _, c := range customers {
			if cs.lock[string(c.ref)] != nil {
				continue
			}
			owner := c.owner.rows[c.id]
			k := c.owner.lock[c.id].kind
			if k.f.customer != nil {
				if v, _ := k.f.customer.ValueOf(ctx, owner.v); v != nil {
					if s, ok := v.(*string); ok && s != nil && *s == string(c.ref) {
						continue
					}
				}
			}
			cs.want(cs.ensure, string(c.ref), customerKind, c.env, true)
		}
	}
	for _, t := range slices.Sorted(maps.Keys(sets)) {
		if err := ensureRows(tx, sets[t], now); err != nil {
			return nil, nil, err
		}
	}

	var items []itemWrite
	var intents []string
	for _, pe := range events {
		ev := pe.ev
		for _, o := range pe.plan {
			if o.id == "" {
				continue
			}
			ts := sets[o.kind.table]
			switch {
			case o.change != nil:
				r := ts.rows[o.id]
				replaced, deleted, reported, err := applyChange(ctx, r.v, ev, now, *o.change)
				if err != nil {
					return nil, nil, err
				}
				r.dirty = r.dirty || replaced || deleted
				if (replaced || deleted) && o.id == ev.ObjectID && !slices.Contains(applied, ev.ID) {
					applied = append(applied, ev.ID)
				}
				if reported != "" {
					history = append(history, models.StatusChange{ObjectType: o.kind.objectType, ObjectID: o.id,
						Status: reported, EventID: ev.ID, OccurredAt: ev.Created, RecordedAt: now})
				}
				if replaced && o.change.items != nil {
					items = append(items, itemWrite{env: envelopeOf(ev), sub: o.id, items: o.change.items})
				}
			case o.link != nil:
				if r := ts.rows[o.id]; r != nil && fillRefs(ctx, o.kind, r.v, o.link) {
					r.dirty = true
				}
			case o.settle:
				if !slices.Contains(intents, o.id) {
					intents = append(intents, o.id)
				}
			}
		}
	}
	for _, t := range tables {
		if err := writeRows(ctx, tx, t, sets[t]); err != nil {
			return nil, nil, err
		}
	}
	if err := writeItems(tx, items, now); err != nil {
		return nil, nil, err
	}
	if err := settleLinks(tx, intents); err != nil {
		return nil, nil, err
	}
	return history, applied, nil
}

// lockRows reads the rows ts locks in one SELECT ... FOR UPDATE in key
// order. A missing row that may be created becomes a fresh row, in
// memory: it is inserted with its state once the batch is folded
// (writeRows). Under READ COMMITTED a missing row takes no gap lock, so
// two first events for one object meet on the unique key when they
// insert it, and the one that finds it there is run again (errRerun).
func lockRows(ctx context.Context, tx *gorm.DB, ts *tableSet, now time.Time) error {
	if len(ts.lock) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(ts.lock))
	if err := readLocked(ctx, tx, ts, ids); err != nil {
		return err
	}
	for _, id := range ids {
		w := ts.lock[id]
		if ts.rows[id] != nil || !w.stub {
			continue
		}
		row := reflect.New(w.kind.model)
		for i, v := range stubValues(w, id, now) {
			assign(ctx, w.kind.stub[i], row, v)
		}
		ts.rows[id] = &lockedRow{v: row, fresh: true}
	}
	return nil
}

// readLocked reads the rows ids of ts's table FOR UPDATE into ts.rows,
// through the unique key: on a small table the optimizer would rather
// scan it, which locks, and waits for, every row. The columns are scanned
// straight into the model's fields: GORM's Scan looks each column's field
// up again for every row.
func readLocked(ctx context.Context, tx *gorm.DB, ts *tableSet, ids []string) error {
	k := ts.kinds[0]
	q := "SELECT " + k.selectCols + " FROM " + k.table + " FORCE INDEX (" + models.StripeIDIndex(k.table) + ") WHERE " +
		k.col.stripeID + " IN (?" + strings.Repeat(", ?", len(ids)-1) + ") ORDER BY " + k.col.stripeID + " FOR UPDATE"
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := tx.Statement.ConnPool.QueryContext(tx.Statement.Context, q, args...)
	if err != nil {
		return fmt.Errorf("billing: lock %d %s rows: %w", len(ids), k.table, err)
	}
	defer rows.Close()
	dest := make([]any, len(k.selected))
	for rows.Next() {
		row := reflect.New(k.model)
		for i, f := range k.selected {
			dest[i] = f.ReflectValueOf(ctx, row).Addr().Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("billing: lock %d %s rows: %w", len(ids), k.table, err)
		}
		id, _ := k.f.stripeID.ValueOf(ctx, row)
		read := reflect.New(k.model)
		read.Elem().Set(row.Elem()) // the fold sets fields, never what they point to
		ts.rows[id.(string)] = &lockedRow{v: row, read: read}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("billing: lock %d %s rows: %w", len(ids), k.table, err)
	}
	return nil
}

// stubValues are the values of w.kind.stub for the stub row id.
func stubValues(w *wanted, id string, now time.Time) []any {
	v := []any{id, w.env.livemode, w.env.account, now, now}
	if w.kind.f.object != nil {
		v = append(v, w.kind.object)
	}
	return v
}

// insertStubs inserts a row that only knows its id for each of ids
// (wanted by want), in one statement, unless one exists; it returns how
// many it inserted.
func insertStubs(tx *gorm.DB, want map[string]*wanted, ids []string, now time.Time) (int64, error) {
	k := want[ids[0]].kind
	cols := make([]string, len(k.stub))
	for i, f := range k.stub {
		cols[i] = f.DBName
	}
	args := make([]any, 0, len(ids)*len(cols))
	for _, id := range ids {
		args = append(args, stubValues(want[id], id, now)...)
	}
	n, err := models.ExecRows(tx, "INSERT IGNORE INTO "+k.table+" ("+strings.Join(cols, ", ")+") VALUES ", len(cols), len(ids), "", args)
	if err != nil {
		return 0, fmt.Errorf("billing: insert %d %s stubs: %w", len(ids), k.table, err)
	}
	return n, nil
}

// ensureRows makes sure the rows ts.ensure names exist, without locking
// an existing one: an invoice may arrive before its customer.
func ensureRows(tx *gorm.DB, ts *tableSet, now time.Time) error {
	if len(ts.ensure) == 0 {
		return nil
	}
	ids := slices.Sorted(maps.Keys(ts.ensure))
	k := ts.ensure[ids[0]].kind
	var found []string
	if err := tx.Table(k.table).Where(k.col.stripeID+" IN ?", ids).Pluck(k.col.stripeID, &found).Error; err != nil {
		return fmt.Errorf("billing: find %d %s rows: %w", len(ids), k.table, err)
	}
	missing := slices.DeleteFunc(ids, func(id string) bool { return slices.Contains(found, id) })
	if len(missing) == 0 {
		return nil
	}
	_, err := insertStubs(tx, ts.ensure, missing, now)
	return err
}

// errRerun: a row this transaction found missing (a ledger row, an
// object's) was created by another transaction meanwhile. Nothing of it
// may commit; run again, the transaction sees the row.
var errRerun = errors.New("billing: a row was created by another transaction meanwhile")

// writeRows writes the rows of table that the batch changed or created:
// the changed ones in one multi-row INSERT ... ON DUPLICATE KEY UPDATE
// keyed by their primary key, read by lockRows (each exists and is
// locked, so each is an update of the columns its kinds write), the fresh
// ones in one INSERT that skips a row another transaction inserted since
// lockRows looked, which is then errRerun.
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
func writeRows(ctx context.Context, tx *gorm.DB, table string, ts *tableSet) error {
	var changed, fresh []string
	for id, r := range ts.rows {
		switch {
		case r.fresh:
			fresh = append(fresh, id)
		case r.dirty:
			changed = append(changed, id)
		}
	}
	if len(changed)+len(fresh) == 0 {
		return nil
	}
	k := ts.kinds[0]
	// The insert's own columns (never updated), then what the kinds write.
	cols := []*schema.Field{k.f.id, k.f.stripeID, k.f.createdAt}
	if k.f.object != nil {
		cols = append(cols, k.f.object)
	}
	insertOnly := len(cols)
	for _, kk := range ts.kinds {
		for _, f := range kk.writes {
			if !slices.ContainsFunc(cols, func(c *schema.Field) bool { return c.DBName == f.DBName }) {
				cols = append(cols, f)
			}
		}
	}
	write := func(ids []string, cols []*schema.Field, onDuplicate string) (int64, error) {
		if len(ids) == 0 {
			return 0, nil
		}
		slices.Sort(ids)
		names := make([]string, len(cols))
		for i, f := range cols {
			names[i] = f.DBName
		}
		args := make([]any, 0, len(ids)*len(cols))
		for _, id := range ids {
			v := ts.rows[id].v
			for _, f := range cols {
				a, _ := f.ValueOf(ctx, v)
				args = append(args, a)
			}
		}
		n, err := models.ExecRows(tx, "INSERT INTO "+table+" ("+strings.Join(names, ", ")+") VALUES ", len(cols), len(ids),
			" ON DUPLICATE KEY UPDATE "+onDuplicate, args)
		if err != nil {
			return 0, fmt.Errorf("billing: write %d %s rows: %w", len(ids), table, err)
		}
		return n, nil
	}
	if len(changed) > 0 {
		written := slices.Clone(cols[:insertOnly])
		var update []string
		for _, f := range cols[insertOnly:] {
			if f.DBName == k.col.updatedAt || slices.ContainsFunc(changed, func(id string) bool {
				r := ts.rows[id]
				return !reflect.DeepEqual(f.ReflectValueOf(ctx, r.v).Interface(), f.ReflectValueOf(ctx, r.read).Interface())
			}) {
				written = append(written, f)
				update = append(update, f.DBName+" = VALUES("+f.DBName+")")
			}
		}
		if _, err := write(changed, written, strings.Join(update, ", ")); err != nil {
			return err
		}
	}
	// A fresh row has no id yet: auto-increment gives it one. An
	// unchanged row counts no affected row: a row that was there is left
	// alone and found by the count.
	n, err := write(fresh, cols[1:], k.col.stripeID+" = "+k.col.stripeID)
	if err != nil {
		return err
	}
	if n != int64(len(fresh)) {
		return fmt.Errorf("billing: insert %d new %s rows: %w", len(fresh), table, errRerun)
	}
	return nil
}
