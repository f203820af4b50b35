package e2e

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

// TestVersionedRecords posts signed events of three API versions (the
// 2023-10-16 shapes, basil's and the newest) to a running api and checks
// in MySQL what the running worker made of them: each version's
// lifecycles leave their records, links, subscription items, billed
// periods, livemode and Connect account included, and what support and
// finance ask of them (checkout sessions, credit notes, metadata, invoice
// tax, discounts and paid_at, the charge's payment method summary,
// the charges view live mode and the platform's only); a later payload
// without the amounts leaves them alone; a payload without a field its
// handler needs is parked at once with class schema, naming the field and
// the version; an invoice.upcoming is not parked.
func TestVersionedRecords(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api := s.startReady(nil)

	// Distinct seeds: object ids depend on the seed only. Seeds 3, 6 and 9
	// are Connect events, odd seeds live mode.
	var want billingtest.Records
	var ids []string
	seed := 0
	for _, v := range []string{"2023-10-16", "2025-05-28.basil", "2026-08-26.dahlia"} {
		for range 3 {
			seed++
			l := billingtest.VersionLifecycle(v, seed)
			want = want.Add(l.Want)
			for _, raw := range l.Events {
				if code := postSigned(api, raw); code != http.StatusOK {
					t.Fatalf("POST %s event: %d", v, code)
				}
				ids = append(ids, eventIDOf(t, raw))
			}
		}
	}
	s.waitProcessed(t, ids, 30*time.Second)
	store := s.store(t)
	got := checkRecords(t, store, want)
	if len(got.InvoicePayments) != 6 || len(got.SubscriptionItems) != 18 {
		t.Errorf("%d invoice payments and %d subscription items, want 6 (basil and dahlia) and 18", len(got.InvoicePayments), len(got.SubscriptionItems))
	}
	if len(got.CheckoutSessions) != 18 || len(got.CreditNotes) != 18 {
		t.Errorf("%d checkout sessions and %d credit notes, want 18 and 18", len(got.CheckoutSessions), len(got.CreditNotes))
	}
	var charges, users, live int
	err := s.db.QueryRow(`SELECT COUNT(*), COUNT(DISTINCT JSON_VALUE(metadata, '$.user_id')), (SELECT COUNT(*) FROM charges)
		FROM payments WHERE object = 'charge'
		AND payment_method_last4 IS NOT NULL AND JSON_VALUE(metadata, '$.set_on') = 'charge'`).Scan(&charges, &users, &live)
	if err != nil || charges != 18 || users != 9 || live != 6 {
		t.Errorf("charges with a card summary and metadata: %d of %d users, %d in the view (%v); want 18 of 9, 6 (seeds 1, 5, 7)", charges, users, live, err)
	}

	// A newer invoice payload without its amounts, one without its status,
	// and an invoice preview.
	const v = "2025-05-28.basil"
	sparseID, noStatusID, upcomingID := billingtest.NewEventID(), billingtest.NewEventID(), billingtest.NewEventID()
	invoice := want.Invoices[0].StripeID
	sparse := versionedEvent(t, v, sparseID, "invoice.updated", map[string]any{"id": invoice, "object": "invoice", "status": "paid"})
	var lastEvent string // the sparse event must be applied, not stale
	noStatus := stripefixture.Object(v, "invoice")
	noStatus["id"] = "in_nostatus"
	delete(noStatus, "status")
	upcoming := stripefixture.Object(v, "invoice")
	delete(upcoming, "id")
	for _, raw := range [][]byte{sparse, versionedEvent(t, v, noStatusID, "invoice.paid", noStatus),
		versionedEvent(t, v, upcomingID, "invoice.upcoming", upcoming)} {
		if code := postSigned(api, raw); code != http.StatusOK {
			t.Fatalf("POST: %d", code)
		}
	}
	s.waitProcessed(t, []string{sparseID, upcomingID}, 15*time.Second)
	testenv.Eventually(t, 15*time.Second, func() bool { return s.ledger(t)[noStatusID] == models.EventDead }, "evt_nostatus parked")
	if st := s.ledger(t)[upcomingID]; st != models.EventIgnored {
		t.Errorf("invoice.upcoming: ledger %q, want ignored", st)
	}
	after, err := billingtest.ReadRecords(store.DB())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.QueryRow("SELECT last_event_id FROM invoices WHERE stripe_id = ?", invoice).Scan(&lastEvent); err != nil || lastEvent != sparseID {
		t.Errorf("invoice %s last applied event %q (%v), want evt_sparse", invoice, lastEvent, err)
	}
	if a, w := after.Tables()["invoices"], want.Tables()["invoices"]; !slices.Equal(a, w) {
		t.Errorf("invoices after a payload without amounts:\n got  %q\n want %q", a, w)
	}
	parked := s.peekDLQ(t)
	if len(parked) != 1 {
		t.Fatalf("DLQ holds %d messages, want evt_nostatus alone", len(parked))
	}
	class, reason := broker.HeaderString(parked[0].Headers, broker.HeaderErrorClass), broker.HeaderString(parked[0].Headers, broker.HeaderError)
	if parked[0].MessageId != noStatusID || class != "schema" || !strings.Contains(reason, "invoice.status is missing") || !strings.Contains(reason, v) {
		t.Errorf("parked %s class %q reason %q, want evt_nostatus, schema, naming invoice.status and %s", parked[0].MessageId, class, reason, v)
	}
}

// versionedEvent is a live-mode event of API version v, newer than every
// event of the lifecycles.
func versionedEvent(t *testing.T, v, id, typ string, object map[string]any) []byte {
	t.Helper()
	// Now: later than every lifecycle event, and not in the future, which
	// the api refuses.
	b, err := json.Marshal(map[string]any{"id": id, "object": "event", "type": typ, "api_version": v,
		"created": time.Now().Unix(), "livemode": true, "data": map[string]any{"object": object}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// store opens the stack's database as the worker does, closed when t ends.
func (s *stack) store(t *testing.T) *models.Store {
	t.Helper()
	store, err := models.Open(context.Background(), s.dsn, models.PoolConfig{MaxOpenConns: 2, MaxIdleConns: 1, ConnMaxLifetime: time.Minute},
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return store
}

// checkRecords reads the billing records and reports each table that is
// not want's.
func checkRecords(t *testing.T, store *models.Store, want billingtest.Records) billingtest.Records {
	t.Helper()
	got, err := billingtest.ReadRecords(store.DB())
	if err != nil {
		t.Fatal(err)
	}
	for table, rows := range want.Tables() {
		if g := got.Tables()[table]; !slices.Equal(g, rows) {
			t.Errorf("%s: %d rows, want %d:\n got  %.3000q\n want %.3000q", table, len(g), len(rows), g, rows)
		}
	}
	return got
}

func eventIDOf(t *testing.T, raw []byte) string {
	t.Helper()
	var e struct{ ID string }
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	return e.ID
}

// waitProcessed waits until every one of ids is processed or ignored in
// the ledger.
func (s *stack) waitProcessed(t *testing.T, ids []string, within time.Duration) {
	t.Helper()
	var missing []string
	testenv.Eventually(t, within, func() bool {
		ledger := s.ledger(t)
		missing = missing[:0]
		for _, id := range ids {
			if st := ledger[id]; st != models.EventProcessed && st != models.EventIgnored {
				missing = append(missing, id+"="+st)
			}
		}
		return len(missing) == 0
	}, "events applied (not yet: %v)", &missing)
}
