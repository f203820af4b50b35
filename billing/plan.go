package billing

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/stripe-billing/billing/changes"
	"github.com/stripe-billing/billing/models"
)

// A decoder (handlers.go) turns its event into a plan, the writes the
// event asks for in order, and a Batch folds the plans of a whole batch:
// the store locks the rows of each table the batch names (Batch.ToLock)
// and makes sure of those that must exist (Batch.ToEnsure); Fold then
// folds each object's events in batch order by the rules of apply.go and
// says what each table's rows become, for the store to write as sets. A
// single event is a batch of one, so both ways share every rule. Nothing
// here reads or writes the database.

// op is one write of a plan. Exactly one of change, ensure, link, settle
// and refund is set.
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
	// refund names a refund of this charge that failed or was canceled:
	// when the change before it took the refund there from a status the
	// charge's amount_refunded may count, the row's amount may no longer
	// be Stripe's figure, and no charge event says so: the fold asks for
	// the charge (a *Tie), unless its row is as new as the event.
	refund string
}

// plan is what one event writes, in order.
type plan []op

// Planned is an event and its plan (PlanOf).
type Planned struct {
	Event Event
	plan  plan
}

// lockedRow is an object's row as the store read it under FOR UPDATE
// (or a fresh one, for an object with no row yet): v points to its model.
type lockedRow struct {
	v      reflect.Value
	locked *models.Locked // nil for a fresh row
	dirty  bool           // to be written
	fresh  bool           // not in the table yet: inserted, changed or not
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

// customerRef is an object's customer, whose row must exist.
type customerRef struct {
	owner *tableSet
	id    string
	env   envelope
	ref   ref
}

// Batch is the plans of a batch's events on their way to rows.
type Batch struct {
	events    []Planned
	now       time.Time
	sets      map[reflect.Type]*tableSet
	order     []reflect.Type // the tables in the order they are locked and written
	customers []customerRef
	noChanges bool // OmitChanges
}

// OmitChanges makes Fold say no change (Folded.Changes) and leave every
// row's ChangeSeq as it is: the change feed is off.
func (b *Batch) OmitChanges() { b.noChanges = true }

// NewBatch gathers the rows the plans of events name, each event stamped
// at now.
func NewBatch(events []Planned, now time.Time) *Batch {
	b := &Batch{events: events, now: now, sets: map[reflect.Type]*tableSet{}}
	for _, pe := range events {
		env := envelopeOf(pe.Event)
		for _, o := range pe.plan {
			if o.id == "" {
				continue
			}
			ts := b.set(o.kind)
			switch {
			case o.change != nil:
				ts.want(ts.lock, o.id, o.kind, env, true)
				if c := o.change.customer; c != "" {
					b.customers = append(b.customers, customerRef{owner: ts, id: o.id, env: env, ref: c})
				}
			case o.ensure:
				ts.want(ts.ensure, o.id, o.kind, env, true)
			case o.link != nil || o.refund != "":
				ts.want(ts.lock, o.id, o.kind, env, false)
			}
		}
	}
	// A row both ensured and linked is locked, and a stub when new.
	for _, ts := range b.sets {
		for id, e := range ts.ensure {
			if w := ts.lock[id]; w != nil {
				if !w.stub {
					*w = *e
				}
				delete(ts.ensure, id)
			}
		}
	}
	return b
}

func (b *Batch) set(k kind) *tableSet {
	ts := b.sets[k.model]
	if ts == nil {
		ts = &tableSet{lock: map[string]*wanted{}, ensure: map[string]*wanted{}, rows: map[string]*lockedRow{}}
		b.sets[k.model] = ts
		// In the order of the models' names, so that every batch locks
		// the tables in one order.
		i, _ := slices.BinarySearchFunc(b.order, k.model, func(a, t reflect.Type) int { return strings.Compare(a.Name(), t.Name()) })
		b.order = slices.Insert(b.order, i, k.model)
	}
	return ts
}

// Rows are rows of one table a batch names: Model points to the table's
// model, IDs are sorted.
type Rows struct {
	Model any
	IDs   []string
}

// ToLock lists the rows to lock, table by table in one order: the store
// reads them FOR UPDATE and hands them to Locked.
func (b *Batch) ToLock() []Rows {
	var out []Rows
	for _, t := range b.order {
		if ts := b.sets[t]; len(ts.lock) > 0 {
			out = append(out, Rows{Model: reflect.New(t).Interface(), IDs: slices.Sorted(maps.Keys(ts.lock))})
		}
	}
	return out
}

// Locked takes the rows the store found of r, one of ToLock's; a missing
// row that may be created becomes a fresh row, in memory: it is inserted
// with its state once the batch is folded.
func (b *Batch) Locked(r Rows, found map[string]*models.Locked) {
	ts := b.sets[reflect.TypeOf(r.Model).Elem()]
	for _, id := range r.IDs {
		if l := found[id]; l != nil {
			ts.rows[id] = &lockedRow{v: reflect.ValueOf(l.Row), locked: l}
			continue
		}
		if w := ts.lock[id]; w.stub {
			ts.rows[id] = &lockedRow{v: b.stub(w, id), fresh: true}
		}
	}
}

// stub is the row of an object that only knows its id (models.StubFields).
func (b *Batch) stub(w *wanted, id string) reflect.Value {
	k := w.kind
	row := reflect.New(k.model)
	assign(k.f.stripeID, row, id)
	assign(k.f.livemode, row, w.env.livemode)
	assign(k.f.account, row, w.env.account)
	assign(k.f.createdAt, row, b.now)
	assign(k.f.updatedAt, row, b.now)
	if k.f.object != nil {
		assign(k.f.object, row, k.object)
	}
	return row
}

// ToEnsure lists, table by table, the stub rows of the objects that must
// exist without being locked, once the locked rows are in (Locked): the
// store inserts those that are missing.
func (b *Batch) ToEnsure() [][]any {
	// An object's customer must have a row; one the locked row already
	// names was made sure of by the event that linked it (customers are
	// never deleted).
	if len(b.customers) > 0 {
		cs := b.set(customerKind)
		for _, c := range b.customers {
			if cs.lock[string(c.ref)] != nil {
				continue
			}
			k := c.owner.lock[c.id].kind
			if k.f.customer != nil {
				if s, ok := k.f.customer.of(c.owner.rows[c.id].v).Interface().(*string); ok && s != nil && *s == string(c.ref) {
					continue
				}
			}
			cs.want(cs.ensure, string(c.ref), customerKind, c.env, true)
		}
	}
	var out [][]any
	for _, t := range b.order {
		ts := b.sets[t]
		if len(ts.ensure) == 0 {
			continue
		}
		stubs := make([]any, 0, len(ts.ensure))
		for _, id := range slices.Sorted(maps.Keys(ts.ensure)) {
			stubs = append(stubs, b.stub(ts.ensure[id], id).Interface())
		}
		out = append(out, stubs)
	}
	return out
}

// Folded is what a batch's events make of its rows.
type Folded struct {
	// Writes are the rows to write, a table each.
	Writes []models.ObjectWrites
	// Items are the subscriptions' item lists of the applied events.
	Items []models.ItemList
	// Intents are the payment intents whose links to invoices and
	// charges are settled from the rows once written (models.SettleLinks).
	Intents []string
	// History is the status each event reports of its objects.
	History []models.StatusChange
	// Applied lists the events that changed their own object's row (the
	// ledger's applied; the rows of other objects an event carries do
	// not count).
	Applied []string
	// ByEventID are the ties settled by event id.
	ByEventID []TieByEventID
	// Changes are the changes of the rows that matter to other services
	// (changes.go), in fold order: the outbox's rows. Each took its
	// row's next ChangeSeq, which Writes write.
	Changes []changes.Change
}

// Fold folds the events, in order, into the locked rows. Every row a
// plan changes is locked before any is written; a tie that needs
// Stripe's object ends it with a *Tie (ties).
func (b *Batch) Fold(ties Ties) (Folded, error) {
	var f Folded
	t := &tieRule{Ties: ties}
	for _, pe := range b.events {
		ev := pe.Event
		var last struct { // the last change of the event's plan
			id, from string
			replaced bool
		}
		from := len(f.Changes) // where the event's changes start
		for _, o := range pe.plan {
			if o.id == "" {
				continue
			}
			ts := b.sets[o.kind.model]
			switch {
			case o.change != nil:
				r := ts.rows[o.id]
				last.id, last.from = o.id, o.kind.stateOf(r.v).Status
				var before reflect.Value // the row before the change, for the feed
				if !b.noChanges {
					before = reflect.New(o.kind.model)
					before.Elem().Set(r.v.Elem()) // the fold sets fields, never what they point to
				}
				replaced, deleted, reported, err := applyChange(r.v, ev, b.now, *o.change, t)
				if err != nil {
					return Folded{}, err
				}
				last.replaced = replaced
				r.dirty = r.dirty || replaced || deleted
				if !b.noChanges && (replaced || deleted) {
					f.Changes = changesOf(f.Changes, from, o.kind, o.id, r.v, before, ev, replaced, deleted)
				}
				if (replaced || deleted) && o.id == ev.ObjectID && !slices.Contains(f.Applied, ev.ID) {
					f.Applied = append(f.Applied, ev.ID)
				}
				if reported != "" {
					f.History = append(f.History, models.StatusChange{ObjectType: o.kind.objectType, ObjectID: o.id,
						Status: reported, EventID: ev.ID, OccurredAt: ev.Created, RecordedAt: b.now, Source: sourceOf(ev)})
				}
				if replaced && o.change.items != nil {
					f.Items = append(f.Items, itemList(ev, o.id, o.change.items))
				}
			case o.link != nil:
				if r := ts.rows[o.id]; r != nil && fillRefs(o.kind, r.v, o.link) {
					r.dirty = true
				}
			case o.settle:
				if !slices.Contains(f.Intents, o.id) {
					f.Intents = append(f.Intents, o.id)
				}
			case o.refund != "":
				if !t.Fetch || last.id != o.refund || !last.replaced || !refundCounted(last.from) {
					continue
				}
				if r := ts.rows[o.id]; r == nil || o.kind.stateOf(r.v).Created.Before(ev.Created) {
					ref := ObjectRef{Type: o.kind.objectType, ID: o.id, APIVersion: ev.APIVersion, Account: ev.Account}
					return Folded{}, &Tie{Ref: ref, Event: ev.ID}
				}
			}
		}
	}
	for _, typ := range b.order {
		ts := b.sets[typ]
		var w models.ObjectWrites
		for _, id := range slices.Sorted(maps.Keys(ts.rows)) {
			switch r := ts.rows[id]; {
			case r.fresh:
				w.Fresh = append(w.Fresh, r.v.Interface())
			case r.dirty:
				w.Changed = append(w.Changed, r.locked)
			}
		}
		if len(w.Changed)+len(w.Fresh) == 0 {
			continue
		}
		for _, k := range ts.kinds {
			for _, name := range k.writes {
				if !slices.Contains(w.Fields, name) {
					w.Fields = append(w.Fields, name)
				}
			}
		}
		f.Writes = append(f.Writes, w)
	}
	f.ByEventID = t.byEventID
	return f, nil
}
