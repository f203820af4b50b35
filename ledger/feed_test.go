package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/changes"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/feed"
)

// outbox is the change_outbox of s in seq order, one line per row: its
// id, object, sequence, routing key and body (not seq nor created_at,
// which depend on the database and the clock).
func outbox(t *testing.T, s *models.Store) []string {
	t.Helper()
	var rows []feed.Outbox
	if err := s.DB().Order("seq").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprintf("%s %s/%s #%d %s %s", r.ID, r.ObjectType, r.ObjectID, r.ObjectSeq, r.RoutingKey, r.Body)
	}
	return out
}

// countOutbox is how many rows change_outbox holds.
func countOutbox(t *testing.T, s *models.Store) int64 {
	t.Helper()
	var n int64
	if err := s.DB().Model(&feed.Outbox{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// objectTables are the tables of the feed's object types.
var objectTables = map[string]string{
	"customer": "customers", "subscription": "subscriptions", "invoice": "invoices", "invoice_payment": "invoice_payments",
	"charge": "payments", "payment_intent": "payments", "refund": "refunds", "dispute": "disputes",
	"checkout.session": "checkout_sessions", "credit_note": "credit_notes",
}

// checkSequences fails t unless every object's outbox rows are numbered
// 1..n without a gap, each row's body is its change with that sequence,
// and n is the object's change_seq.
func checkSequences(t *testing.T, s *models.Store) int {
	t.Helper()
	var rows []feed.Outbox
	if err := s.DB().Order("seq").Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	last := map[[2]string]uint64{}
	for _, r := range rows {
		var c changes.Change
		if err := json.Unmarshal([]byte(r.Body), &c); err != nil {
			t.Fatalf("outbox row %s: %v", r.ID, err)
		}
		key := [2]string{r.ObjectType, r.ObjectID}
		if want := last[key] + 1; r.ObjectSeq != want || c.Sequence != want || c.ID != r.ID || c.Key != r.RoutingKey {
			t.Errorf("%s/%s: row #%d (body #%d, %s) after #%d; want #%d", r.ObjectType, r.ObjectID, r.ObjectSeq, c.Sequence, c.ID, last[key], want)
		}
		last[key] = r.ObjectSeq
	}
	for key, n := range last {
		var seq uint64
		if err := s.DB().Table(objectTables[key[0]]).Where("stripe_id = ?", key[1]).Pluck("change_seq", &seq).Error; err != nil {
			t.Fatal(err)
		}
		if seq != n {
			t.Errorf("%s %s change_seq %d; want %d, its last change", key[0], key[1], seq, n)
		}
	}
	return len(last)
}

// TestChangeFeed holds the outbox the ledger writes: in the records'
// transaction, the same rows whichever way a batch is applied, none for
// an event that changes no record, numbered per object without a gap.
func TestChangeFeed(t *testing.T) {
	t.Parallel()

	t.Run("BatchAndEventByEventWriteTheSameRows", func(t *testing.T) {
		t.Parallel()
		stream := billingtest.Lifecycle(3, start)
		batched, p, fb := batchSetup(t)
		processBatches(t, p, stream, 16)
		if n := fb.n.Load(); n != 0 {
			t.Fatalf("%d batches applied event by event, want the sets", n)
		}
		one, pOne := setup(t) // WORKER_BATCH_SIZE=1
		for _, raw := range stream {
			process(t, pOne, raw, ledger.Processed)
		}
		// A currency too long for its column fails the sets' statement:
		// the batches run again event by event under savepoints.
		poison := billingtest.Event(billingtest.NewEventID(), "customer.updated", start.Add(time.Hour),
			map[string]any{"id": "cus_poison", "object": "customer", "currency": "usdx"})
		fallback, pFallback, fbFallback := batchSetup(t)
		for i := 0; i < len(stream); i += 16 {
			batch := append(slices.Clone(stream[i:min(i+16, len(stream))]), poison)
			if _, err := pFallback.ProcessBatch(context.Background(), batch); err != nil {
				t.Fatal(err)
			}
		}
		if n := fbFallback.n.Load(); n == 0 {
			t.Fatal("no batch applied event by event: the poison did not fail the sets")
		}
		want := outbox(t, batched)
		if len(want) < len(stream)/2 {
			t.Fatalf("%d outbox rows for %d events; want a change for most events", len(want), len(stream))
		}
		for name, s := range map[string]*models.Store{"event by event": one, "savepoint fallback": fallback} {
			if got := outbox(t, s); !slices.Equal(got, want) {
				t.Errorf("%s: outbox differs from the batches':\n got %q\nwant %q", name, got, want)
			}
		}
		checkSequences(t, batched)
	})
	t.Run("AnEventThatChangesNoRecordWritesNone", func(t *testing.T) {
		t.Parallel()
		s, p := setup(t)
		inv := func(status string, paid int64) map[string]any {
			return billingtest.Invoice("in_feed", "cus_feed", "", status, 900, paid)
		}
		paid := billingtest.Event(billingtest.NewEventID(), "invoice.paid", start.Add(time.Second), inv("paid", 900))
		process(t, p, paid, ledger.Processed)
		n := countOutbox(t, s)
		if n != 1 {
			t.Fatalf("%d outbox rows after a first event; want 1 (invoice.created)", n)
		}
		process(t, p, paid, ledger.Duplicate)
		process(t, p, billingtest.Event(billingtest.NewEventID(), "invoice.finalized", start, inv("open", 0)), ledger.Processed)
		process(t, p, billingtest.Event(billingtest.NewEventID(), "issuing_card.created", start, map[string]any{"id": "ic_1", "object": "issuing.card"}), ledger.Ignored)
		if got := countOutbox(t, s); got != n {
			t.Errorf("%d outbox rows after a redelivered, a stale and an ignored event; want %d", got, n)
		}
		if _, err := p.ProcessBatch(context.Background(), [][]byte{paid, paid}); err != nil {
			t.Fatal(err)
		}
		if got := countOutbox(t, s); got != n {
			t.Errorf("%d outbox rows after a redelivered batch; want %d", got, n)
		}
	})
	t.Run("RowsCommitAndRollBackWithTheRecords", func(t *testing.T) {
		t.Parallel()
		s, p := setup(t)
		// The ledger's rows of a batch are inserted after its outbox rows:
		// a failure there must take the outbox rows back with the records.
		// And a failure of the outbox's insert takes the records back.
		for _, ddl := range []string{
			`CREATE TRIGGER fail_ledger BEFORE INSERT ON stripe_events FOR EACH ROW
			 IF NEW.object_id = 'cus_after' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'test: fail after the outbox'; END IF`,
			`CREATE TRIGGER fail_outbox BEFORE INSERT ON change_outbox FOR EACH ROW
			 IF NEW.object_id = 'cus_outbox' THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'test: fail the outbox'; END IF`,
		} {
			if err := s.DB().Exec(ddl).Error; err != nil {
				t.Fatal(err)
			}
		}
		good := billingtest.Event(billingtest.NewEventID(), "customer.created", start, billingtest.Customer("cus_good", "g@example.com"))
		for _, id := range []string{"cus_after", "cus_outbox"} {
			bad := billingtest.Event(billingtest.NewEventID(), "customer.created", start, billingtest.Customer(id, "b@example.com"))
			if _, err := p.Process(context.Background(), bad); err == nil {
				t.Errorf("%s: Process succeeded; want the trigger's error", id)
			}
			outcomes, err := p.ProcessBatch(context.Background(), [][]byte{bad})
			if err != nil || outcomes[0].Err == nil {
				t.Errorf("%s: batch %v, %v; want the event's error", id, outcomes, err)
			}
		}
		process(t, p, good, ledger.Processed)
		var customers []string
		if err := s.DB().Table("customers").Order("stripe_id").Pluck("stripe_id", &customers).Error; err != nil {
			t.Fatal(err)
		}
		got := outbox(t, s)
		if !slices.Equal(customers, []string{"cus_good"}) || len(got) != 1 || !strings.Contains(got[0], "customer/cus_good #1 customer.created") {
			t.Errorf("customers %v, outbox %q; want cus_good alone in both", customers, got)
		}
	})
	t.Run("EveryVersionsLifecycleIsNumberedWithoutAGap", func(t *testing.T) {
		t.Parallel()
		for _, version := range billing.SupportedVersions() {
			t.Run(version, func(t *testing.T) {
				t.Parallel()
				s := testenv.Store(t)
				p := ledger.NewProcessor(s, slog.New(slog.DiscardHandler))
				var events [][]byte
				for seed := range 3 {
					events = append(events, billingtest.VersionLifecycle(version, seed).Events...)
				}
				processBatches(t, p, events, 16)
				if objects := checkSequences(t, s); objects < 3*7 {
					t.Errorf("changes of %d objects; want those of three lifecycles", objects)
				}
			})
		}
	})
	t.Run("OffWritesNone", func(t *testing.T) {
		t.Parallel()
		s := testenv.Store(t)
		p := ledger.NewProcessor(s, slog.New(slog.DiscardHandler), ledger.WithoutChangeFeed())
		processBatches(t, p, billingtest.Lifecycle(1, start), 16)
		var seqs []uint64
		if err := s.DB().Table("invoices").Pluck("change_seq", &seqs).Error; err != nil {
			t.Fatal(err)
		}
		if n := countOutbox(t, s); n != 0 || len(seqs) == 0 || slices.Max(seqs) != 0 {
			t.Errorf("%d outbox rows, invoices' change_seq %v; want none, 0", n, seqs)
		}
	})
}
