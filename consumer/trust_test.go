package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe-billing/billing/ledger"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/metrics"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/reconcile"
	"github.com/stripe-billing/billing/verify"
)

// stripe-mock serves its one fixture event, under the id asked for, for
// any id of Stripe's form: a plan.created of this price, created in 2009.
const (
	mockEventType = "plan.created"
	mockObjectID  = "price_1OPouiJN5vQBdWExAQaqTooZ"
)

// counting is an API base that counts its requests and answers 500.
func counting(t *testing.T, n *atomic.Int32) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(s.Close)
	return s.URL
}

// trusted is one worker (consumer, billing, router, ledger) with the
// verifier under test, its metrics and its logs.
type trusted struct {
	*harness
	store   *models.Store
	metrics *metrics.Metrics
	logs    *testenv.SyncBuffer
	out     *recorder
}

// startTrusted runs a worker whose verifier fetches from apiBase ("" for
// no Stripe API key), with maxBody its size cap when given; batch > 1
// runs the batch path.
func startTrusted(t *testing.T, apiBase string, batch int, maxBody ...int64) *trusted {
	t.Helper()
	m := metrics.New(metrics.NewRegistry())
	var fetch verify.Fetcher
	if apiBase != "" {
		f, err := reconcile.NewFetcher(reconcile.FetcherConfig{APIKey: "sk_test_123", APIBase: apiBase, Observe: m.StripeCall})
		if err != nil {
			t.Fatal(err)
		}
		fetch = f
	}
	return startVerifying(t, fetch, m, batch, false, append(maxBody, 0)[0])
}

// startVerifying runs a worker whose verifier fetches with fetch (nil: no
// Stripe API key), caps bodies at maxBody (0: the default) and counts in
// m. A flood's worker is the default
// worker's size (consumer.DefaultConcurrency batches), parks a failure
// after one attempt, logs nothing and marks no parked event dead in the
// ledger: thousands of messages, and none of that is what its test
// looks at.
func startVerifying(t *testing.T, fetch verify.Fetcher, m *metrics.Metrics, batch int, flood bool, maxBody int64) *trusted {
	t.Helper()
	attempts := 2
	if flood {
		attempts = 1
	}
	h := setup(t, []time.Duration{50 * time.Millisecond}, attempts)
	w := &trusted{harness: h, store: testenv.Store(t), logs: &testenv.SyncBuffer{}, out: &recorder{}, metrics: m}
	h.logger = slog.New(slog.NewTextHandler(w.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	router := h.router(w.store)
	if flood {
		h.logger = slog.New(slog.DiscardHandler)
		router = h.router(nil)
	}
	proc := ledger.NewProcessor(w.store, nil)
	h.start(process(proc), router, func(c *consumer.Config) {
		v, err := verify.New(verify.Config{Secrets: []string{testenv.WebhookSecret}, Fetcher: fetch, MaxBodyBytes: maxBody})
		if err != nil {
			t.Fatal(err)
		}
		c.Verifier = v
		c.Observer = observers{w.out, metrics.NewEventObserver(w.metrics, h.topo, proc.Handled())}
		if batch > 1 {
			c.BatchSize, c.BatchWait, c.Batch = batch, 50*time.Millisecond, processBatch(proc)
		}
		if flood {
			c.Concurrency = consumer.DefaultConcurrency
		}
	})
	return w
}

type observers []consumer.Observer

func (obs observers) Observe(o consumer.Outcome) {
	for _, ob := range obs {
		ob.Observe(o)
	}
}

// uiPublish publishes body to the events exchange as the management UI's
// "Publish message" does: no properties, no headers, through the HTTP API.
func (w *trusted) uiPublish(t *testing.T, routingKey string, body []byte) {
	t.Helper()
	var res struct {
		Routed bool `json:"routed"`
	}
	path := "/api/exchanges/%2F/" + url.PathEscape(w.topo.Events) + "/publish"
	err := testenv.Management(http.MethodPost, path, map[string]any{
		"properties": map[string]any{}, "routing_key": routingKey, "payload": string(body), "payload_encoding": "string",
	}, &res)
	if err != nil || !res.Routed {
		t.Fatalf("UI publish: routed %v, %v", res.Routed, err)
	}
}

// publishSigned publishes body as the api does, signed with secret at at,
// to exchange (the events exchange, or "" and the work queue for a replay
// as the UI's "Move messages" sends it).
func (w *trusted) publishSigned(t *testing.T, exchange, key string, body []byte, secret string, at time.Time) {
	t.Helper()
	id, typ := broker.Identity("", "", body)
	msg := broker.NewEvent(id, typ, body, testenv.Sign(body, secret, at), "billing-api", time.Now())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.events.Publish(ctx, exchange, key, msg); err != nil {
		t.Fatal(err)
	}
}

func (w *trusted) invoiceStatus(t *testing.T, id string) string {
	t.Helper()
	var status []string
	if err := w.store.DB().Model(&models.Invoice{}).Where("stripe_id = ?", id).Pluck("status", &status).Error; err != nil {
		t.Fatal(err)
	}
	if len(status) != 1 {
		return ""
	}
	return status[0]
}

// ledger returns the ledger row of event id; ok false when there is none.
func (w *trusted) ledger(t *testing.T, id string) (row models.StripeEvent, ok bool) {
	t.Helper()
	var rows []models.StripeEvent
	if err := w.store.DB().Where("id = ?", id).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	if len(rows) == 0 {
		return row, false
	}
	return rows[0], true
}

// openInvoice applies a signed invoice.finalized: invoice inv is open,
// as of created at.
func (w *trusted) openInvoice(t *testing.T, inv string, at time.Time) {
	t.Helper()
	body := billingtest.Event("evt_open_"+inv, "invoice.finalized", at, billingtest.Invoice(inv, "cus_1", "", "open", 2000, 0))
	w.publishSigned(t, w.topo.Events, "invoice.finalized", body, testenv.WebhookSecret, time.Now())
	testenv.Eventually(t, 10*time.Second, func() bool { return w.invoiceStatus(t, inv) == "open" }, "invoice %s open", inv)
}

// forgedPaid is the message the issue describes: invoice.paid for an open
// invoice, written by hand.
func forgedPaid(id, inv string, created time.Time) []byte {
	return billingtest.Event(id, "invoice.paid", created, billingtest.Invoice(inv, "cus_1", "", "paid", 2000, 2000))
}

// checkParkedUnverified takes the one parked message and checks it says
// unverified for reason, counted in the metric, kept out of the ledger,
// logged without its payload.
func (w *trusted) checkParkedUnverified(t *testing.T, id string, reason verify.Reason, payload []byte) {
	t.Helper()
	got := w.getDLQ(1, 10*time.Second)[0]
	if c := got.Headers[broker.HeaderErrorClass]; c != "unverified" {
		t.Errorf("parked class %v, want unverified", c)
	}
	if e, _ := got.Headers[broker.HeaderError].(string); !strings.Contains(e, string(reason)) || !strings.Contains(e, id) {
		t.Errorf("parked reason %q, want it to name %s and %s", e, reason, id)
	}
	if string(got.Body) != string(payload) {
		t.Errorf("parked body changed: %s", got.Body)
	}
	testenv.Eventually(t, 5*time.Second, func() bool {
		return testutil.ToFloat64(w.metrics.Unverified.WithLabelValues(string(reason))) == 1
	}, "billing_events_unverified_total{reason=%q} = 1", reason)
	if n := testutil.CollectAndCount(w.metrics.Unverified); n != 1 {
		t.Errorf("%d unverified series, want only %s", n, reason)
	}
	if _, ok := w.ledger(t, id); ok {
		t.Errorf("ledger has a row for unverified %s: a forged id would pass for known to reconciliation", id)
	}
	if logs := w.logs.String(); strings.Contains(logs, "hosted_invoice_url") || strings.Contains(logs, "invoice.stripe.com") {
		t.Errorf("logs carry the payload:\n%s", logs)
	}
}

// TestOnlyStripeWrites publishes what a person with access to the broker
// could, and checks that no billing row changes unless the event is signed
// with our secret or is Stripe's own copy (docs/security.md), on the
// single and the batch path alike.
func TestOnlyStripeWrites(t *testing.T) {
	t.Parallel()
	mock := testenv.StripeMock(t)
	for _, batch := range []int{1, 8} {
		t.Run(fmt.Sprintf("Batch%d", batch), func(t *testing.T) {
			t.Parallel()
			testOnlyStripeWrites(t, mock, batch)
		})
	}
}

func testOnlyStripeWrites(t *testing.T, mock string, batch int) {
	open := time.Now().Add(-time.Hour).Truncate(time.Second)

	t.Run("UnsignedWithKeyAppliesStripesCopy", func(t *testing.T) {
		t.Parallel()
		w := startTrusted(t, mock, batch)
		w.openInvoice(t, "in_ui", open)
		forged := forgedPaid("evt_ui_paid", "in_ui", open.Add(time.Second))
		w.uiPublish(t, "invoice.paid", forged)
		testenv.Eventually(t, 10*time.Second, func() bool { _, ok := w.ledger(t, "evt_ui_paid"); return ok }, "evt_ui_paid in the ledger")
		row, _ := w.ledger(t, "evt_ui_paid")
		if row.Type != mockEventType || !strings.Contains(string(row.Payload), mockObjectID) || strings.Contains(string(row.Payload), "in_ui") {
			t.Errorf("ledger row type %q payload %.200s: want Stripe's copy (%s of %s), not the message", row.Type, row.Payload, mockEventType, mockObjectID)
		}
		if s := w.invoiceStatus(t, "in_ui"); s != "open" {
			t.Errorf("invoice in_ui is %q, want open: the forged invoice.paid applied", s)
		}
		if n := w.ready(w.topo.DLQ); n != 0 {
			t.Errorf("%d parked, want none", n)
		}
	})

	t.Run("UnsignedWithoutKeyIsParkedUnverified", func(t *testing.T) {
		t.Parallel()
		w := startTrusted(t, "", batch)
		w.openInvoice(t, "in_nokey", open)
		forged := forgedPaid("evt_nokey_paid", "in_nokey", open.Add(time.Second))
		w.uiPublish(t, "invoice.paid", forged)
		w.checkParkedUnverified(t, "evt_nokey_paid", verify.NoAPIKey, forged)
		if s := w.invoiceStatus(t, "in_nokey"); s != "open" {
			t.Errorf("invoice is %q, want open", s)
		}
	})

	t.Run("ForgedCreatedIn2100CannotWinTies", func(t *testing.T) {
		t.Parallel()
		w := startTrusted(t, "", batch)
		w.openInvoice(t, "in_2100", open)
		year2100 := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
		// Unsigned, then signed with our own secret (as only a leaked
		// secret could): neither may stand as the newest event.
		w.uiPublish(t, "invoice.paid", forgedPaid("evt_2100_ui", "in_2100", year2100))
		w.publishSigned(t, w.topo.Events, "invoice.paid", forgedPaid("evt_2100_signed", "in_2100", year2100), testenv.WebhookSecret, time.Now())
		for _, d := range w.getDLQ(2, 10*time.Second) {
			if d.Headers[broker.HeaderErrorClass] != "unverified" {
				t.Errorf("%s parked as %v, want unverified", d.MessageId, d.Headers[broker.HeaderErrorClass])
			}
			e, _ := d.Headers[broker.HeaderError].(string)
			want := verify.NoAPIKey
			if d.MessageId == "evt_2100_signed" {
				want = verify.FutureCreated
			}
			if !strings.Contains(e, string(want)) {
				t.Errorf("%s parked for %q, want %s", d.MessageId, e, want)
			}
		}
		// The real void, a second after the invoice opened, applies.
		void := billingtest.Event("evt_2100_void", "invoice.voided", open.Add(2*time.Second), billingtest.Invoice("in_2100", "cus_1", "", "void", 2000, 0))
		w.publishSigned(t, w.topo.Events, "invoice.voided", void, testenv.WebhookSecret, time.Now())
		testenv.Eventually(t, 10*time.Second, func() bool { return w.invoiceStatus(t, "in_2100") == "void" }, "invoice in_2100 void")
	})

	t.Run("RotatedOutSecretWithKeyIsFetched", func(t *testing.T) {
		t.Parallel()
		w := startTrusted(t, mock, batch)
		w.openInvoice(t, "in_rot", open)
		w.publishSigned(t, w.topo.Events, "invoice.paid", forgedPaid("evt_rot_paid", "in_rot", open.Add(time.Second)), "whsec_rotated_out", time.Now())
		testenv.Eventually(t, 10*time.Second, func() bool { _, ok := w.ledger(t, "evt_rot_paid"); return ok }, "evt_rot_paid in the ledger")
		// The message's signature does not sign Stripe's copy: not kept.
		if row, _ := w.ledger(t, "evt_rot_paid"); row.Type != mockEventType || row.Signature != nil {
			t.Errorf("ledger type %q signature %q, want Stripe's copy's %q and no signature", row.Type, row.Signature, mockEventType)
		}
		if s := w.invoiceStatus(t, "in_rot"); s != "open" {
			t.Errorf("invoice is %q, want open", s)
		}
	})

	t.Run("RotatedOutSecretWithoutKeyIsUnverified", func(t *testing.T) {
		t.Parallel()
		w := startTrusted(t, "", batch)
		body := forgedPaid("evt_rot_nokey", "in_rot_nokey", open)
		w.publishSigned(t, w.topo.Events, "invoice.paid", body, "whsec_rotated_out", time.Now())
		w.checkParkedUnverified(t, "evt_rot_nokey", verify.NoAPIKey, body)
	})

	t.Run("SignedReplayDaysLaterIsApplied", func(t *testing.T) {
		t.Parallel()
		w := startTrusted(t, "", batch)
		w.openInvoice(t, "in_replay", open)
		paid := forgedPaid("evt_replay_paid", "in_replay", open.Add(time.Second))
		// What "Move messages" delivers from the DLQ: the default
		// exchange, the work queue, the signature three days old.
		w.publishSigned(t, "", w.topo.Work, paid, testenv.WebhookSecret, time.Now().Add(-72*time.Hour))
		testenv.Eventually(t, 10*time.Second, func() bool { return w.invoiceStatus(t, "in_replay") == "paid" }, "invoice in_replay paid")
	})

	t.Run("IDOnlyIsFetchedAndApplied", func(t *testing.T) {
		t.Parallel()
		w := startTrusted(t, mock, batch)
		w.uiPublish(t, "", []byte(`{"id": "evt_idonly_1"}`))
		testenv.Eventually(t, 10*time.Second, func() bool { _, ok := w.ledger(t, "evt_idonly_1"); return ok }, "evt_idonly_1 in the ledger")
		row, _ := w.ledger(t, "evt_idonly_1")
		if row.Type != mockEventType || row.Status != models.EventIgnored || !strings.Contains(string(row.Payload), mockObjectID) {
			t.Errorf("ledger row %s %s %.100s, want Stripe's %s, ignored", row.Type, row.Status, row.Payload, mockEventType)
		}
	})

	t.Run("UnknownToStripeIsUnverified", func(t *testing.T) {
		t.Parallel()
		w := startTrusted(t, testenv.StripeNotFound(t), batch)
		body := forgedPaid("evt_unknown_paid", "in_unknown", open)
		w.uiPublish(t, "invoice.paid", body)
		w.checkParkedUnverified(t, "evt_unknown_paid", verify.UnknownEvent, body)
	})

	t.Run("StripeDownIsTransient", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		w := startTrusted(t, counting(t, &calls), batch)
		w.uiPublish(t, "invoice.paid", forgedPaid("evt_down_paid", "in_down", open))
		got := w.getDLQ(1, 20*time.Second)[0] // 2 attempts, then parked as exhausted
		if c := got.Headers[broker.HeaderErrorClass]; c != "transient" || broker.HeaderInt(got.Headers, broker.HeaderAttempt) != 2 {
			t.Errorf("parked class %v after %v attempts, want transient after 2", c, got.Headers[broker.HeaderAttempt])
		}
		// The second attempt, 50 ms later, is within the fetcher's
		// negative cache (reconcile.DefaultNegativeTTL): not asked again.
		if n := calls.Load(); n != 1 {
			t.Errorf("Stripe asked %d times, want once", n)
		}
		if n := testutil.CollectAndCount(w.metrics.Unverified); n != 0 {
			t.Errorf("%d unverified series, want none: an outage is no forgery", n)
		}
	})

	t.Run("MalformedIDIsUnverifiedWithoutAFetch", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		w := startTrusted(t, counting(t, &calls), batch)
		body := []byte(`{"id": "evt_../../v1/customers", "type": "invoice.paid"}`)
		w.uiPublish(t, "invoice.paid", body)
		w.checkParkedUnverified(t, "evt_../../v1/customers", verify.BadID, body)
		if n := calls.Load(); n != 0 {
			t.Errorf("Stripe asked %d times for a malformed id, want never", n)
		}
	})
}
