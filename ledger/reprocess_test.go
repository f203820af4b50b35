package ledger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/verify"
)

// reprocess runs a Reprocessor over p's store and returns its report and
// the outcome of each event, as "type outcome".
func reprocess(t *testing.T, p *ledger.Processor, f models.EventFilter, dryRun bool) (ledger.ReprocessReport, []string) {
	t.Helper()
	var outcomes []string
	rp, err := ledger.NewReprocessor(p, testenv.Verifier(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := rp.Run(context.Background(), f, dryRun, func(r ledger.Reprocessed) {
		if r.Err != nil {
			t.Errorf("reprocess %s %s: %v", r.ID, r.Type, r.Err)
		}
		outcomes = append(outcomes, r.Type+" "+r.Outcome)
	})
	if err != nil {
		t.Fatal(err)
	}
	return rep, outcomes
}

// TestReprocessAppliesAnIgnoredEvent: a worker of an older release
// without a handler for charge.refunded records the event ignored with
// its payload; today's handlers apply it from the ledger, once.
func TestReprocessAppliesAnIgnoredEvent(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	old := ledger.NewProcessor(s, nil, ledger.WithoutHandlers("charge.refunded"))
	charge := billingtest.Charge("ch_rp", "cus_rp", "pi_rp", "", "succeeded", 2000)
	process(t, old, billingtest.Event(billingtest.NewEventID(), "charge.succeeded", start, charge), ledger.Processed)
	charge["amount_refunded"] = 500
	refundedID := billingtest.NewEventID()
	refunded := billingtest.Event(refundedID, "charge.refunded", start.Add(time.Minute), charge)
	process(t, old, refunded, ledger.Ignored)

	var row models.StripeEvent
	if err := s.DB().Where("id = ?", refundedID).Take(&row).Error; err != nil {
		t.Fatal(err)
	}
	if row.Status != models.EventIgnored || !bytes.Equal(row.Payload, refunded) {
		t.Fatalf("ledger row of the ignored event: status %q, payload kept %v", row.Status, bytes.Equal(row.Payload, refunded))
	}
	refundedOf := func() int64 {
		var pay models.Payment
		if err := s.DB().Where("stripe_id = ?", "ch_rp").Take(&pay).Error; err != nil {
			t.Fatal(err)
		}
		if pay.AmountRefunded == nil {
			return -1
		}
		return *pay.AmountRefunded
	}
	ignored := models.EventFilter{Types: []string{"charge.refunded"}, Statuses: []string{models.EventIgnored}}

	t.Run("OlderReleaseStillHasNoHandler", func(t *testing.T) {
		rep, outcomes := reprocess(t, old, ignored, false)
		if rep.NoHandler != 1 || !slices.Equal(outcomes, []string{"charge.refunded no handler"}) || refundedOf() != 0 {
			t.Errorf("report %+v, outcomes %v, refunded %d", rep, outcomes, refundedOf())
		}
	})
	today := ledger.NewProcessor(s, nil)
	t.Run("DryRun", func(t *testing.T) {
		before := snapshot(t, s)
		rep, outcomes := reprocess(t, today, ignored, true)
		if rep.Matched != 1 || rep.Applied != 0 || !slices.Equal(outcomes, []string{"charge.refunded would apply"}) {
			t.Errorf("dry run: report %+v, outcomes %v", rep, outcomes)
		}
		if after := snapshot(t, s); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("a dry run changed rows")
		}
	})
	t.Run("Applies", func(t *testing.T) {
		rep, outcomes := reprocess(t, today, ignored, false)
		if rep.Applied != 1 || !slices.Equal(outcomes, []string{"charge.refunded applied"}) {
			t.Errorf("report %+v, outcomes %v", rep, outcomes)
		}
		if err := s.DB().Where("id = ?", refundedID).Take(&row).Error; err != nil {
			t.Fatal(err)
		}
		if refundedOf() != 500 || row.Status != models.EventProcessed || row.Applied == nil || !*row.Applied {
			t.Errorf("after reprocess: refunded %d, ledger %q applied %v; want 500, processed, applied", refundedOf(), row.Status, row.Applied)
		}
	})
	t.Run("Idempotent", func(t *testing.T) {
		before := snapshot(t, s)
		rep, _ := reprocess(t, today, models.EventFilter{}, false)
		if rep.Matched != 2 || rep.Applied != 2 {
			t.Errorf("report %+v, want both events applied again", rep)
		}
		if after := snapshot(t, s); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("reprocessing again changed rows:\nbefore %v\nafter  %v", before, after)
		}
		rep, _ = reprocess(t, today, ignored, false)
		if rep.Matched != 0 {
			t.Errorf("the event is still selected as ignored: %+v", rep)
		}
	})
}

// lifecycles are customer lifecycles, in Stripe's order, for each
// supported API version: three built from that version's Stripe fixtures
// (live and test mode, a Connect account, several items, refunds, a
// dispute) with their TrafficLifecycles, plus, on 2023-10-16, the simulator's lifecycles.
func lifecycles() map[string][][]byte {
	out := map[string][][]byte{}
	for _, v := range billing.SupportedVersions() {
		for seed := 1; seed <= 3; seed++ {
			out[v] = append(out[v], billingtest.VersionLifecycle(v, seed).Events...)
			out[v] = append(out[v], billingtest.VersionTraffic(v, seed).Events...)
		}
	}
	out[billingtest.APIVersion] = append(out[billingtest.APIVersion], billingtest.Lifecycle(4, start)...)
	return out
}

// TestRebuildFromLedger: every billing table rebuilt from the ledger into
// a fresh database equals the one built incrementally from a shuffled,
// duplicated delivery; rebuilding again changes nothing.
func TestRebuildFromLedger(t *testing.T) {
	t.Parallel()
	for version, events := range lifecycles() {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			seed := uint64(time.Now().UnixNano())
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, seed))
			unknown := billingtest.Event(billingtest.NewEventID(), "issuing_card.created", start, map[string]any{"id": "ic_1", "object": "issuing.card"})
			deliveries := append(slices.Clone(events), unknown)
			for range len(events) / 4 {
				deliveries = append(deliveries, events[rng.IntN(len(events))])
			}
			rng.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
			incremental, p := setup(t)
			for _, raw := range deliveries {
				if _, err := p.ProcessSigned(context.Background(), raw, testenv.Sign(raw, testenv.WebhookSecret, time.Now())); err != nil {
					t.Fatal(err)
				}
			}

			rebuilt := testenv.Store(t)
			var rows []models.StripeEvent
			if err := incremental.DB().Find(&rows).Error; err != nil {
				t.Fatal(err)
			}
			if len(rows) != len(events)+1 {
				t.Fatalf("ledger has %d events, want %d", len(rows), len(events)+1)
			}
			if err := rebuilt.DB().Create(&rows).Error; err != nil {
				t.Fatal(err)
			}
			rp := ledger.NewProcessor(rebuilt, nil)
			rep, _ := reprocess(t, rp, models.EventFilter{}, false)
			if rep.Applied != len(events) || rep.NoHandler != 1 || rep.Failed != 0 {
				t.Errorf("rebuild report %+v, want %d applied and the unknown event without a handler", rep, len(events))
			}
			want := snapshot(t, incremental)
			got := snapshot(t, rebuilt)
			var tables []string
			if err := rebuilt.DB().Raw("SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'").Scan(&tables).Error; err != nil {
				t.Fatal(err)
			}
			if len(tables) < len(want) {
				t.Fatalf("information_schema lists tables %v, fewer than the %d compared", tables, len(want))
			}
			for _, table := range tables {
				// The migrations' own version table, the sweep's
				// bookmarks, support's discards, the change feed's
				// outbox and notify's notices are not billing records.
				if _, compared := want[table]; !compared && !slices.Contains([]string{"goose_db_version", "sweep_checkpoints", "event_discards", "change_outbox", "change_notices"}, table) {
					t.Errorf("table %s is not compared: add it to snapshot", table)
				}
			}
			for table := range want {
				// Invoice payments exist from 2025-03-31.basil on.
				noInvoicePayments := table == "invoice_payments" && !slices.ContainsFunc(events, func(e []byte) bool {
					return bytes.Contains(e, []byte(`"invoice_payment.paid"`))
				})
				if len(want[table]) == 0 && table != "payment_status_history" && !noInvoicePayments {
					t.Errorf("%s is empty: the lifecycle does not reach it", table)
				}
				if !slices.Equal(got[table], want[table]) {
					t.Errorf("%s rebuilt from the ledger differs from the incremental one:\ngot  %q\nwant %q", table, got[table], want[table])
				}
			}
			reprocess(t, rp, models.EventFilter{}, false)
			if again := snapshot(t, rebuilt); fmt.Sprint(again) != fmt.Sprint(got) {
				t.Errorf("rebuilding twice changed rows")
			}
		})
	}
}

// TestReprocessOfAPrunedEventSaysSo: an ignored event whose payload the
// retention emptied cannot be applied from the ledger; a dry run says it
// would fail, and reprocessing it fails with ErrPayloadPruned and changes
// nothing.
func TestReprocessOfAPrunedEventSaysSo(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	old := ledger.NewProcessor(s, nil, ledger.WithoutHandlers("customer.created"))
	id := billingtest.NewEventID()
	process(t, old, billingtest.Event(id, "customer.created", start, billingtest.Customer("cus_pruned", "a@example.com")), ledger.Ignored)
	b, err := s.PrunePayloads(ctx, models.EventIgnored, models.PruneCursor{}, time.Now().Add(time.Hour), 10)
	if err != nil || b.Pruned != 1 {
		t.Fatalf("PrunePayloads = %+v, %v; want 1 pruned", b, err)
	}
	rp, err := ledger.NewReprocessor(ledger.NewProcessor(s, nil), testenv.Verifier(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, dryRun := range []bool{true, false} {
		var got []ledger.Reprocessed
		rep, err := rp.Run(ctx, models.EventFilter{Statuses: []string{models.EventIgnored}}, dryRun,
			func(r ledger.Reprocessed) { got = append(got, r) })
		if err != nil {
			t.Fatal(err)
		}
		want := map[bool]string{true: ledger.ReprocessWouldFail, false: ledger.ReprocessFailed}[dryRun]
		if rep.Failed != 1 || len(got) != 1 || got[0].Outcome != want || !errors.Is(got[0].Err, models.ErrPayloadPruned) || !strings.Contains(got[0].Err.Error(), id) {
			t.Fatalf("dry run %v: report %+v, outcomes %+v: want %q naming %s with ErrPayloadPruned", dryRun, rep, got, want, id)
		}
	}
	var n int64
	if err := s.DB().Model(&models.Customer{}).Count(&n).Error; err != nil || n != 0 {
		t.Errorf("customers = %d, %v; want none written", n, err)
	}
	var row models.StripeEvent
	if err := s.DB().Where("id = ?", id).Take(&row).Error; err != nil || row.Status != models.EventIgnored || row.Payload != nil {
		t.Errorf("ledger row %+v, %v: want ignored still, payload empty", row, err)
	}
}

// TestReprocessOrder: reprocessing applies ledger events in Stripe's order
// (created, then id), whatever order they were received in, across pages
// of the ledger. The final rows cannot show it (the state order makes most
// orders end alike), so the order of the outcomes does.
func TestReprocessOrder(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	const n = 1234 // more than a page
	rows := make([]models.StripeEvent, n)
	for i := range rows {
		// Few distinct seconds: most events tie on created, and the id
		// (random, not ordered in time) must settle them.
		created := start.Add(time.Duration(rng.IntN(40)) * time.Second)
		id := billingtest.NewEventID()
		rows[i] = models.StripeEvent{
			ID: id, Type: "issuing_card.created", APIVersion: "2023-10-16", Created: &created,
			Status:     models.EventIgnored,
			Payload:    billingtest.Event(id, "issuing_card.created", created, map[string]any{"id": "ic_" + id[4:], "object": "issuing.card"}),
			ReceivedAt: start.Add(time.Duration(i) * time.Millisecond),
		}
	}
	if err := s.DB().CreateInBatches(rows, 500).Error; err != nil {
		t.Fatal(err)
	}

	var got []ledger.Reprocessed
	rp, err := ledger.NewReprocessor(ledger.NewProcessor(s, nil), testenv.Verifier(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	_, err = rp.Run(context.Background(), models.EventFilter{}, false, func(r ledger.Reprocessed) {
		got = append(got, r)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("reprocessed %d events, want %d", len(got), n)
	}
	slices.SortFunc(rows, func(a, b models.StripeEvent) int {
		if c := a.Created.Compare(*b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for i, r := range got {
		if r.ID != rows[i].ID {
			t.Fatalf("event %d reprocessed is %s (created %s), want %s (created %s): not Stripe's order",
				i, r.ID, r.Created.Format(time.TimeOnly), rows[i].ID, rows[i].Created.Format(time.TimeOnly))
		}
	}
}

// stripeCopies is Stripe's Events API for a Reprocessor's verifier: the
// copies it knows, and a 500 for any other id.
type stripeCopies map[string][]byte

func (c stripeCopies) FetchEvent(_ context.Context, id, _ string) ([]byte, error) {
	if body, ok := c[id]; ok {
		return body, nil
	}
	return nil, errors.New("stripe: 500 Internal Server Error")
}

// TestReprocessVerifiesEachPayload: reprocess applies a stored payload
// only once it is verified again, in Stripe's order: a signed one parked
// dead is applied, and an unverified row is applied as Stripe's copy when
// Stripe serves one (its ledger row then holds that copy); a payload
// nothing signs (a row from before signatures were kept, holding a forged
// invoice.paid), one edited after signing (a stranger's account, a CR/LF
// in it) and a signed one created in 2100 are skipped, each saying why,
// and change nothing.
func TestReprocessVerifiesEachPayload(t *testing.T) {
	t.Parallel()
	s := testenv.Store(t)
	ctx := context.Background()
	p := ledger.NewProcessor(s, nil)
	sign := func(raw []byte) string { return testenv.Sign(raw, testenv.WebhookSecret, time.Now()) }
	withAccount := func(raw []byte, account string) []byte {
		var ev map[string]any
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		ev["account"] = account
		out, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	invoice := func(id, status string) map[string]any { return billingtest.Invoice(id, "cus_rv", "", status, 900, 0) }
	park := func(ev models.DeadEvent) {
		t.Helper()
		ev.Attempts, ev.LastError = 3, "parked"
		if err := s.MarkDead(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	process(t, p, billingtest.Event(billingtest.NewEventID(), "invoice.finalized", start, invoice("in_rv", "open")), ledger.Processed)

	future := billingtest.NewEventID()
	futureRaw := billingtest.Event(future, "invoice.paid", time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), invoice("in_rv", "paid"))
	park(models.DeadEvent{ID: future, Type: "invoice.paid", Payload: futureRaw, Signature: sign(futureRaw)})

	legacy := billingtest.NewEventID()
	legacyCreated := start.Add(time.Minute)
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		_, err := models.InsertEvents(tx, []models.StripeEvent{{ID: legacy, Type: "invoice.paid", Created: &legacyCreated, Status: models.EventDead,
			Payload: billingtest.Event(legacy, "invoice.paid", legacyCreated, invoice("in_rv", "paid")), ReceivedAt: time.Now()}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var edited []string
	for i, account := range []string{"acct_stranger", "acct_1\r\nX-Injected: 1"} {
		id := billingtest.NewEventID()
		raw := billingtest.Event(id, "invoice.paid", start.Add(time.Duration(2+i)*time.Minute), invoice("in_rv", "paid"))
		park(models.DeadEvent{ID: id, Type: "invoice.paid", Payload: withAccount(raw, account), Signature: sign(raw)})
		edited = append(edited, id)
	}

	voided := billingtest.NewEventID()
	voidedRaw := billingtest.Event(voided, "invoice.voided", start.Add(5*time.Minute), invoice("in_rv", "void"))
	park(models.DeadEvent{ID: voided, Type: "invoice.voided", Payload: voidedRaw, Signature: sign(voidedRaw)})

	// Parked unverified (Stripe unreachable when the worker asked): the
	// row names the event as claimed, without a payload.
	fetched := billingtest.NewEventID()
	park(models.DeadEvent{ID: fetched, Type: "invoice.paid"})
	fetchedCreated := start.Add(6 * time.Minute)
	stripeCopy := billingtest.Event(fetched, "invoice.finalized", fetchedCreated, invoice("in_rv2", "open"))

	type outcome struct{ id, outcome string }
	run := func(fetch verify.Fetcher) ([]outcome, map[string]ledger.Reprocessed) {
		t.Helper()
		rp, err := ledger.NewReprocessor(p, testenv.Verifier(t, fetch))
		if err != nil {
			t.Fatal(err)
		}
		var order []outcome
		byID := map[string]ledger.Reprocessed{}
		if _, err := rp.Run(ctx, models.EventFilter{Statuses: []string{models.EventDead}}, false, func(r ledger.Reprocessed) {
			order = append(order, outcome{r.ID, r.Outcome})
			byID[r.ID] = r
		}); err != nil {
			t.Fatal(err)
		}
		return order, byID
	}
	status := func(id string) string {
		var inv models.Invoice
		if err := s.DB().Where("stripe_id = ?", id).Take(&inv).Error; err != nil {
			return "none"
		}
		return *inv.Status
	}
	skippedFor := func(got map[string]ledger.Reprocessed, id string, reason verify.Reason) {
		t.Helper()
		if r := got[id]; r.Outcome != ledger.ReprocessSkipped || verify.ReasonOf(r.Err) != reason {
			t.Errorf("%s: %s (%v); want skipped, %s", id, r.Outcome, r.Err, reason)
		}
	}

	// Stripe's order: the row of unknown created first, then by created.
	want := []outcome{{fetched, ledger.ReprocessSkipped}, {legacy, ledger.ReprocessSkipped}, {edited[0], ledger.ReprocessSkipped},
		{edited[1], ledger.ReprocessSkipped}, {voided, ledger.ReprocessApplied}, {future, ledger.ReprocessSkipped}}
	order, got := run(nil)
	if !slices.Equal(order, want) {
		t.Errorf("without a Stripe API key: outcomes %v, want %v", order, want)
	}
	for _, id := range append([]string{fetched, legacy}, edited...) {
		skippedFor(got, id, verify.NoAPIKey)
	}
	skippedFor(got, future, verify.FutureCreated)
	if status("in_rv") != "void" || status("in_rv2") != "none" {
		t.Errorf("invoices in_rv %s, in_rv2 %s; want void (the signed parked event), none", status("in_rv"), status("in_rv2"))
	}

	// With Stripe's API: the unverified row is applied as Stripe's copy;
	// Stripe does not serve the others (here a 500), and the CR/LF
	// account is never sent: still skipped, the invoice still void.
	want[0].outcome = ledger.ReprocessApplied
	want = slices.DeleteFunc(want, func(o outcome) bool { return o.id == voided })
	order, got = run(stripeCopies{fetched: stripeCopy})
	if !slices.Equal(order, want) {
		t.Errorf("with Stripe's copies: outcomes %v, want %v", order, want)
	}
	for _, id := range []string{legacy, edited[0]} {
		if r := got[id]; r.Outcome != ledger.ReprocessSkipped || r.Err == nil || !strings.Contains(r.Err.Error(), "500") {
			t.Errorf("%s: %s (%v); want skipped, Stripe's 500", id, r.Outcome, r.Err)
		}
	}
	skippedFor(got, edited[1], verify.BadAccount)
	if status("in_rv") != "void" || status("in_rv2") != "open" {
		t.Errorf("invoices in_rv %s, in_rv2 %s; want void, open (Stripe's copy)", status("in_rv"), status("in_rv2"))
	}
	var row models.StripeEvent
	if err := s.DB().Where("id = ?", fetched).Take(&row).Error; err != nil {
		t.Fatal(err)
	}
	if row.Status != models.EventProcessed || row.Type != "invoice.finalized" || !bytes.Equal(row.Payload, stripeCopy) || row.Signature != nil ||
		row.Created == nil || !row.Created.Equal(fetchedCreated) || row.ObjectID == nil || *row.ObjectID != "in_rv2" {
		t.Errorf("ledger row of the fetched event %+v; want processed, Stripe's copy and its fields, no signature", row)
	}
}
