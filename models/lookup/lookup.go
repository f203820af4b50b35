// Package lookup is the store's read side for a person: the reads behind
// `billing history` (an object's row, its ledger events, statuses and
// discards; a customer's objects) and `billing audit` (the rows compared
// with Stripe). It writes nothing. It is part of the store (package
// models) with a package of its own so that models stays one reading's
// size; models keeps the schema and every statement that writes.
package lookup

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"

	"github.com/stripe-billing/billing/models"
)

// Reader reads the store outside a transaction.
type Reader struct {
	db *gorm.DB
}

// New returns the reader of store.
func New(store *models.Store) Reader { return Reader{db: store.DB()} }

// Column is one column of a row and its value: nil for NULL, else a
// string, bool, int64, uint64 or time.Time (UTC).
type Column struct {
	Name  string
	Value any
}

// ObjectRow is the stored row of a Stripe object.
type ObjectRow struct {
	Table   string
	Columns []Column // in the model's order
}

// Value returns the value of column name, nil when NULL or absent.
func (r ObjectRow) Value(name string) any {
	for _, c := range r.Columns {
		if c.Name == name {
			return c.Value
		}
	}
	return nil
}

// FindObject returns the row of Stripe object stripeID from whichever
// object table holds it (models.ObjectTables); models.ErrNotFound when
// none does. Each table is read by its unique key on stripe_id.
func (r Reader) FindObject(ctx context.Context, stripeID string) (ObjectRow, error) {
	for _, m := range models.ObjectTables() {
		sch, err := models.Schema(m)
		if err != nil {
			return ObjectRow{}, err
		}
		row := reflect.New(sch.ModelType)
		err = r.db.WithContext(ctx).Where("stripe_id = ?", stripeID).Take(row.Interface()).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			continue
		}
		if err != nil {
			return ObjectRow{}, models.Translate("find "+sch.Table+" "+stripeID, err)
		}
		out := ObjectRow{Table: sch.Table}
		for _, f := range sch.Fields {
			if f.DBName == "" {
				continue
			}
			v, _ := f.ValueOf(ctx, row.Elem())
			out.Columns = append(out.Columns, Column{Name: f.DBName, Value: plain(v)})
		}
		return out, nil
	}
	return ObjectRow{}, fmt.Errorf("models: find object %s: %w", stripeID, models.ErrNotFound)
}

// plain is a model field's value without its pointer, times in UTC.
func plain(v any) any {
	rv := reflect.ValueOf(v)
	for rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil
		}
		rv = rv.Elem()
	}
	switch x := rv.Interface().(type) {
	case time.Time:
		return x.UTC()
	case string, bool, int64, uint64:
		return x
	}
	switch {
	case rv.CanInt():
		return rv.Int()
	case rv.CanUint():
		return rv.Uint()
	}
	return rv.Interface()
}

// ObjectEvents returns the ledger events of Stripe object objectID, in
// Stripe's order (created, then received), without their payloads; none
// when the ledger names no such object. The (object_type, object_id,
// created) index serves it: one range per object type the ledger knows,
// which a loose scan of that index lists.
func (r Reader) ObjectEvents(ctx context.Context, objectID string) ([]models.StripeEvent, error) {
	db := r.db.WithContext(ctx)
	var types []string
	if err := db.Model(&models.StripeEvent{}).Distinct("object_type").Where("object_type IS NOT NULL").Pluck("object_type", &types).Error; err != nil {
		return nil, models.Translate("ledger object types", err)
	}
	if len(types) == 0 {
		return nil, nil
	}
	var out []models.StripeEvent
	err := db.Omit("payload").Where("object_type IN ? AND object_id = ?", types, objectID).
		Order("created IS NOT NULL, created, received_at, id").Find(&out).Error
	if err != nil {
		return nil, models.Translate("events of "+objectID, err)
	}
	return out, nil
}

// StatusChanges returns the statuses recorded for object objectID of the
// types objectTypes (Stripe's names), in the order they occurred.
func (r Reader) StatusChanges(ctx context.Context, objectTypes []string, objectID string) ([]models.StatusChange, error) {
	if len(objectTypes) == 0 {
		return nil, nil
	}
	var out []models.StatusChange
	err := r.db.WithContext(ctx).Where("object_type IN ? AND object_id = ?", objectTypes, objectID).
		Order("occurred_at, id").Find(&out).Error
	if err != nil {
		return nil, models.Translate("status history of "+objectID, err)
	}
	return out, nil
}

// SampleObjects reads up to n rows (every row when n <= 0) of the table
// of model (a model value, such as models.Invoice{}), in random order when n > 0,
// as pointers to the model: what `billing audit` compares with Stripe.
// object, when not "", keeps the payments rows of that object; ids, when
// not nil, the rows of those Stripe ids.
func (r Reader) SampleObjects(ctx context.Context, model schema.Tabler, object string, ids []string, n int) ([]any, error) {
	rows := reflect.New(reflect.SliceOf(reflect.TypeOf(model)))
	q := r.db.WithContext(ctx).Table(model.TableName())
	if object != "" {
		q = q.Where("object = ?", object)
	}
	switch {
	case ids != nil && len(ids) == 0:
		return nil, nil
	case ids != nil:
		q = q.Where("stripe_id IN ?", ids)
	}
	if n > 0 {
		q = q.Order("RAND()").Limit(n)
	} else {
		q = q.Order("id")
	}
	if err := q.Find(rows.Interface()).Error; err != nil {
		return nil, models.Translate("sample "+model.TableName(), err)
	}
	out := make([]any, rows.Elem().Len())
	for i := range out {
		out[i] = rows.Elem().Index(i).Addr().Interface()
	}
	return out, nil
}

// Discards returns the discards of the events ids, oldest first.
func (r Reader) Discards(ctx context.Context, ids []string) ([]models.EventDiscard, error) {
	var out []models.EventDiscard
	if len(ids) == 0 {
		return out, nil
	}
	err := r.db.WithContext(ctx).Where("event_id IN ?", ids).Order("discarded_at, id").Find(&out).Error
	return out, models.Translate("discards", err)
}

// Event reads the ledger row id without its payload; models.ErrNotFound when
// there is none.
func (r Reader) Event(ctx context.Context, id string) (models.StripeEvent, error) {
	var ev models.StripeEvent
	err := r.db.WithContext(ctx).Omit("payload").Where("id = ?", id).Take(&ev).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ev, fmt.Errorf("models: event %s: %w", id, models.ErrNotFound)
	}
	return ev, models.Translate("event "+id, err)
}
