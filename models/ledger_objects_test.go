package models_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/lookup"
)

// ledgerObjectsVersion is the migration that names each event's object;
// the test fills a database at the version before it.
const ledgerObjectsVersion = 4

// TestLedgerObjectsMigration migrates a ledger filled by the schema before
// 00004 (Stripe's fixtures of one lifecycle, a preview without an id, dead
// rows whose payload is not JSON or missing): every row is kept, byte for
// byte, and names its object from its payload; applied stays NULL (not
// known for old rows); the two indexes exist with their columns. Down
// drops the columns and keeps the rows; up again refills them.
func TestLedgerObjectsMigration(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, p := emptyMigrator(t)
	if _, err := p.UpTo(ctx, ledgerObjectsVersion-1); err != nil {
		t.Fatal(err)
	}

	type old struct {
		id, typ, status string
		payload         []byte
		// want: the object the payload names ("" for NULL)
		objectType, objectID string
	}
	var rows []old
	for _, raw := range billingtest.VersionLifecycle("2025-05-28.basil", 1).Events {
		var ev struct {
			ID, Type string
			Data     struct{ Object struct{ Object, ID string } }
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, old{ev.ID, ev.Type, models.EventProcessed, raw, ev.Data.Object.Object, ev.Data.Object.ID})
	}
	previewID := billingtest.NewEventID()
	preview := billingtest.Event(previewID, "invoice.upcoming", time.Now(), map[string]any{"object": "invoice", "status": "draft"})
	rows = append(rows,
		old{previewID, "invoice.upcoming", models.EventIgnored, preview, "invoice", ""},
		old{billingtest.NewEventID(), "invoice.paid", models.EventDead, []byte("{not json"), "", ""},
		old{billingtest.NewEventID(), "", models.EventDead, nil, "", ""},
	)
	at := time.Now().UTC().Truncate(time.Microsecond)
	for _, r := range rows {
		_, err := db.ExecContext(ctx, `INSERT INTO stripe_events (id, type, status, attempts, payload, received_at, processed_at)
			VALUES (?, ?, ?, 1, ?, ?, ?)`, r.id, r.typ, r.status, r.payload, at, at)
		if err != nil {
			t.Fatal(err)
		}
	}

	applied, err := models.Migrate(ctx, db)
	if err != nil || !slices.Contains(applied, "00004_ledger_objects.sql") {
		t.Fatalf("Migrate: applied %v, %v", applied, err)
	}
	check := func(t *testing.T, withObjects bool) {
		t.Helper()
		cols := "id, type, status, payload, received_at, NULL, NULL, NULL"
		if withObjects {
			cols = "id, type, status, payload, received_at, object_type, object_id, applied"
		}
		got := map[string]old{}
		res, err := db.QueryContext(ctx, "SELECT "+cols+" FROM stripe_events")
		if err != nil {
			t.Fatal(err)
		}
		defer res.Close()
		for res.Next() {
			var r old
			var received time.Time
			var objectType, objectID sql.NullString
			var wasApplied sql.NullBool
			if err := res.Scan(&r.id, &r.typ, &r.status, &r.payload, &received, &objectType, &objectID, &wasApplied); err != nil {
				t.Fatal(err)
			}
			if !received.Equal(at) || wasApplied.Valid {
				t.Errorf("%s: received %v applied %v, want %v and NULL", r.id, received, wasApplied, at)
			}
			r.objectType, r.objectID = objectType.String, objectID.String
			got[r.id] = r
		}
		if err := res.Err(); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(rows) {
			t.Errorf("%d ledger rows, want the %d filled", len(got), len(rows))
		}
		for _, want := range rows {
			g := got[want.id]
			if !withObjects {
				want.objectType, want.objectID = "", ""
			}
			if g.typ != want.typ || g.status != want.status || !bytes.Equal(g.payload, want.payload) ||
				g.objectType != want.objectType || g.objectID != want.objectID {
				t.Errorf("row %s = %s %s object %q %q; want %s %s object %q %q (payload kept: %v)", want.id, g.typ, g.status,
					g.objectType, g.objectID, want.typ, want.status, want.objectType, want.objectID, bytes.Equal(g.payload, want.payload))
			}
		}
	}
	check(t, true)

	indexes := map[string]string{}
	res, err := db.QueryContext(ctx, `SELECT index_name, GROUP_CONCAT(column_name ORDER BY seq_in_index)
		FROM information_schema.statistics WHERE table_schema = DATABASE() AND table_name = 'stripe_events' GROUP BY index_name`)
	if err != nil {
		t.Fatal(err)
	}
	for res.Next() {
		var name, columns string
		if err := res.Scan(&name, &columns); err != nil {
			t.Fatal(err)
		}
		indexes[name] = columns
	}
	res.Close()
	for name, columns := range map[string]string{
		"idx_stripe_events_object":        "object_type,object_id,created",
		"idx_stripe_events_type_received": "type,received_at",
	} {
		if indexes[name] != columns {
			t.Errorf("index %s on %q, want %q (indexes: %v)", name, indexes[name], columns, indexes)
		}
	}

	if _, err := p.DownTo(ctx, ledgerObjectsVersion-1); err != nil {
		t.Fatalf("down: %v", err)
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.columns
		WHERE table_schema = DATABASE() AND table_name = 'stripe_events' AND column_name IN ('object_type', 'object_id', 'applied')`).Scan(&n); err != nil || n != 0 {
		t.Errorf("after down: %d of the columns left, %v", n, err)
	}
	check(t, false)
	if applied, err := models.Migrate(ctx, db); err != nil || !slices.ContainsFunc(applied, func(s string) bool { return strings.HasPrefix(s, "00004_") }) {
		t.Fatalf("Migrate again: applied %v, %v", applied, err)
	}
	check(t, true)
}

// TestMarkDeadNamesTheObject: a parked event shows in its object's
// history (ObjectEvents) in its place, its object and created read from
// the payload; one whose payload is not JSON names none.
func TestMarkDeadNamesTheObject(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	id := billingtest.NewEventID()
	created := time.Now().UTC().Truncate(time.Second)
	raw := billingtest.Event(id, "invoice.paid", created, billingtest.Invoice("in_parked", "cus_parked", "", "paid", 900, 900))
	if err := s.MarkDead(ctx, models.DeadEvent{ID: id, Type: "invoice.paid", Payload: raw, Signature: sig, Attempts: 8, LastError: "db down"}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkDead(ctx, models.DeadEvent{ID: billingtest.NewEventID(), Type: "invoice.paid", Payload: []byte("{bad"), Signature: sig, Attempts: 1, LastError: "x"}); err != nil {
		t.Fatal(err)
	}
	events, err := lookup.New(s).ObjectEvents(ctx, "in_parked")
	if err != nil || len(events) != 1 || events[0].ID != id || *events[0].ObjectType != "invoice" || events[0].Status != models.EventDead ||
		events[0].Created == nil || !events[0].Created.Equal(created) {
		t.Fatalf("ObjectEvents(in_parked) = %+v, %v; want the dead event", events, err)
	}
	var named int64
	s.DB().Model(&models.StripeEvent{}).Where("object_type IS NOT NULL OR object_id IS NOT NULL").Count(&named)
	if named != 1 {
		t.Errorf("%d rows name an object, want 1 (the bad payload names none)", named)
	}
}
