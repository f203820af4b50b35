package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

func TestReprocessRejectsBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"reprocess", "--status", "done"},
		{"reprocess", "--since", "yesterday"},
		{"reprocess", "--until", "-3h"},
		{"reprocess", "stray"},
	} {
		_, err := runCmd(t, workerEnv(nil), args...)
		if !errors.Is(err, errUsage) {
			t.Errorf("billing %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
}

// TestReprocessCommand: an event an older worker recorded ignored (its
// ledger row, payload and signature included, and nothing else) is listed
// by --dry-run, escaped, and applied by a run; a second run finds nothing
// ignored. A dead row whose payload nothing signs is skipped, saying why,
// and the run exits non-zero.
func TestReprocessCommand(t *testing.T) {
	t.Parallel()
	dsn := testenv.Database(t)
	store := testenv.StoreAt(t, dsn)
	at := time.Now().UTC().Truncate(time.Second)
	ignore := func(id, typ string, object map[string]any) {
		raw := billingtest.Event(id, typ, at, object)
		sig := testenv.Sign(raw, testenv.WebhookSecret, at)
		err := store.InTx(t.Context(), func(tx *gorm.DB) error {
			_, err := models.ClaimEvent(tx, &models.StripeEvent{ID: id, Type: typ, Created: &at, Status: models.EventIgnored, Payload: raw, Signature: []byte(sig), ReceivedAt: at})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	evID := billingtest.NewEventID()
	ignore(evID, "charge.refunded", billingtest.Charge("ch_cmd", "cus_cmd", "", "", "succeeded", 900))
	ignore("evt_\x1b[31mred", "no.such.type", map[string]any{"id": "x_1", "object": "x"})
	env := workerEnv(map[string]string{"MYSQL_DSN": dsn, "LOG_LEVEL": "warn", "STRIPE_WEBHOOK_SECRET": testenv.WebhookSecret})

	out, err := runCmd(t, env, "reprocess", "--dry-run", "--since", "1h")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"would apply " + evID + " charge.refunded (was ignored", `no handler "evt_\x1b[31mred" no.such.type`,
		"dry run: 2 event(s) match, 1 would be applied, 1 have no handler"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry run output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("dry run output carries a raw escape character:\n%q", out)
	}
	var n int64
	store.DB().Model(&models.Payment{}).Count(&n)
	if n != 0 {
		t.Fatalf("a dry run wrote %d payments", n)
	}

	out, err = runCmd(t, env, "reprocess", "--type", "charge.refunded,invoice.paid")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "applied "+evID) || !strings.Contains(out, "reprocessed 1 event(s): 1 applied, 0 without a handler, 0 skipped (not verified), 0 failed") {
		t.Errorf("output:\n%s", out)
	}
	var pay models.Payment
	if err := store.DB().Where("stripe_id = ?", "ch_cmd").Take(&pay).Error; err != nil || *pay.Status != "succeeded" || pay.Amount == nil || *pay.Amount != 900 {
		t.Errorf("charge after reprocess = %+v, %v", pay, err)
	}
	var ev models.StripeEvent
	if err := store.DB().Where("id = ?", evID).Take(&ev).Error; err != nil || ev.Status != models.EventProcessed {
		t.Errorf("ledger after reprocess: %q, %v", ev.Status, err)
	}
	out, err = runCmd(t, env, "reprocess", "--type", "charge.refunded")
	if err != nil || !strings.Contains(out, "reprocessed 0 event(s)") {
		t.Errorf("second run: %v\n%s", err, out)
	}

	// A dead row as a release before signatures were kept left it: its
	// payload (an invoice paid, dated 2100) is signed by nothing.
	forged := billingtest.NewEventID()
	created := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	raw := billingtest.Event(forged, "invoice.paid", created, billingtest.Invoice("in_cmd", "cus_cmd", "", "paid", 900, 900))
	err = store.InTx(t.Context(), func(tx *gorm.DB) error {
		_, err := models.InsertEvents(tx, []models.StripeEvent{{ID: forged, Type: "invoice.paid", Created: &created, Status: models.EventDead, Payload: raw, ReceivedAt: at}})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, env, "reprocess", "--status", "dead")
	if err == nil || !strings.Contains(err.Error(), "1 event(s) skipped") {
		t.Errorf("reprocess of an unsigned dead row: %v, want an error counting it skipped", err)
	}
	for _, want := range []string{"skipped " + forged + " invoice.paid (was dead, created 2100-01-01T00:00:00Z): not verified: verify: no_api_key",
		"reprocessed 1 event(s): 0 applied, 0 without a handler, 1 skipped (not verified), 0 failed"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if err := store.DB().Model(&models.Invoice{}).Count(&n).Error; err != nil || n != 0 {
		t.Errorf("invoices = %d, %v; want none written", n, err)
	}
}
