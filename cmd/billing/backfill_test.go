package main

import (
	"context"
	"strings"
	"testing"

	"github.com/stripe-billing/billing/audit"
	"github.com/stripe-billing/billing/backfill"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

// TestBackfill imports stripe-mock's fixture of every kind (Stripe's own
// shapes of 2023-10-16) into a fresh database; a dry run then, and a
// second run, fetch nothing.
func TestBackfill(t *testing.T) {
	t.Parallel()
	dsn := testenv.Database(t)
	getenv := apiTestEnv(map[string]string{"MYSQL_DSN": dsn, "STRIPE_API_KEY": "sk_test_123", "STRIPE_API_BASE": testenv.StripeMock(t)})

	if out, err := runCmd(t, getenv, "backfill", "--dry-run", "--created-since", "2026-01-01T00:00:00Z", "--kind", "customers"); err != nil ||
		!strings.Contains(out, "customers: GET /v1/customers?created%5Bgte%5D=1767225600&limit=100 on the platform") {
		t.Errorf("backfill --dry-run --created-since = %v:\n%s", err, out)
	}
	if out, err := runCmd(t, getenv, "backfill", "--dry-run", "--api-version", "2025-05-28.basil", "--kind", "invoices"); err != nil ||
		!strings.Contains(out, "invoices: GET /v1/invoices?expand%5B%5D=data.payments&limit=100") {
		t.Errorf("backfill --dry-run --api-version basil = %v:\n%s", err, out)
	}
	if _, err := runCmd(t, getenv, "backfill", "--created-until", "yesterday"); exitCode(err) != 2 {
		t.Errorf("--created-until yesterday = %v; want a usage error", err)
	}
	out, err := runCmd(t, getenv, "backfill", "--dry-run")
	if err != nil || !strings.Contains(out, "customers: GET /v1/customers?limit=100 on the platform") ||
		!strings.Contains(out, "subscriptions: GET /v1/subscriptions?limit=100&status=all") {
		t.Fatalf("backfill --dry-run = %v:\n%s", err, out)
	}
	out, err = runCmd(t, getenv, "backfill")
	if err != nil {
		t.Fatalf("backfill = %v:\n%s", err, out)
	}
	for _, k := range backfill.KindNames() {
		// The charge carries its refunds: whichever of the two kinds is
		// written first writes the refund's row, the other nothing.
		if !strings.Contains(out, k+": done: 1 fetched in 1 pages, 1 written, 0 failed") &&
			(k != "refunds" || !strings.Contains(out, k+": done: 1 fetched in 1 pages, 0 written, 0 failed")) {
			t.Errorf("output lacks %s imported:\n%s", k, out)
		}
	}
	store := testenv.StoreAt(t, dsn)
	for _, m := range []any{&models.Customer{}, &models.Subscription{}, &models.Invoice{}, &models.Refund{}, &models.Dispute{},
		&models.CheckoutSession{}, &models.CreditNote{}} {
		var n int64
		if err := store.DB().Model(m).Where("last_event_id LIKE 'backfill\\_%'").Count(&n).Error; err != nil || n != 1 {
			t.Errorf("%T rows from the backfill: %d, %v; want 1", m, n, err)
		}
	}
	// A customer's history says which statuses came from the backfill.
	var inv models.Invoice
	if err := store.DB().Take(&inv).Error; err != nil || inv.CustomerID == nil {
		t.Fatalf("the invoice: %+v, %v", inv, err)
	}
	if out, err := runCmd(t, getenv, "history", *inv.CustomerID); err != nil || !strings.Contains(out, " (backfill)") {
		t.Errorf("history %s = %v; want the invoice's status from the backfill:\n%s", *inv.CustomerID, err, out)
	}
	out, err = runCmd(t, getenv, "backfill")
	if err != nil || strings.Contains(out, "page 1") || !strings.Contains(out, "customers: done before: 0 fetched") {
		t.Errorf("second backfill = %v; want nothing fetched:\n%s", err, out)
	}
	// --restart fetches a kind done before from the newest again, and
	// writes nothing twice; each kind's progress is a plain line here.
	out, err = runCmd(t, getenv, "backfill", "--restart", "--kind", "customers")
	if err != nil || !strings.Contains(out, "customers: 1 fetched, 0 written, 0 failed, done\ncustomers: done: 1 fetched in 1 pages, 0 written") {
		t.Errorf("backfill --restart = %v; want the customers fetched again, none written:\n%s", err, out)
	}
	// Stripe's objects are the rows' own: no drift, but for the customer
	// stripe-mock's objects name that is not in its customer list: its
	// row is a stub. A row gone wrong is named.
	out, err = runCmd(t, getenv, "audit")
	if exitCode(err) != 1 || !strings.Contains(out, "customers: 2 compared, 1 differ, 0 not compared; balance 1; currency 1; metadata 1; stripe_created 1") {
		t.Errorf("audit = %v; want the stub customer's fields named:\n%s", err, out)
	}
	for _, k := range backfill.KindNames()[1:] {
		if !strings.Contains(out, k+": 1 compared, 0 differ, 0 not compared\n") {
			t.Errorf("audit: %s not compared or differs:\n%s", k, out)
		}
	}
	if err := store.DB().Exec("UPDATE invoices SET amount_paid = amount_paid + 1").Error; err != nil {
		t.Fatal(err)
	}
	out, err = runCmd(t, getenv, "audit", "--kind", "invoices", "--sample", "5")
	if exitCode(err) != 1 || !strings.Contains(out, ": amount_paid: ours ") || !strings.Contains(out, "invoices: 1 compared, 1 differ, 0 not compared; amount_paid 1") {
		t.Errorf("audit after a change = %v; want exit 1 naming amount_paid:\n%s", err, out)
	}
	if v, err := store.Checkpoint(context.Background(), audit.LastCheckpoint); err != nil || !strings.Contains(v, `"compared":1,"differ":1`) {
		t.Errorf("the audit's saved summary %q, %v; want one compared, differing", v, err)
	}
	out, err = runCmd(t, getenv, "audit", "--kind", "invoices", "--fix")
	if err != nil || !strings.Contains(out, "invoices: 1 compared, 1 differ, 0 not compared; amount_paid 1; 1 fixed") {
		t.Errorf("audit --fix = %v; want the invoice fixed:\n%s", err, out)
	}
	if out, err := runCmd(t, getenv, "audit", "--kind", "invoices"); err != nil {
		t.Errorf("audit after the fix = %v; want no drift:\n%s", err, out)
	}
	// Every connected account stripe-mock lists (one), each with cursors
	// of its own.
	out, err = runCmd(t, getenv, "backfill", "--all-accounts", "--kind", "customers")
	if err != nil || !strings.Contains(out, "1 connected account(s)\naccount acct_") || !strings.Contains(out, "customers: done: 1 fetched in 1 pages") {
		t.Errorf("backfill --all-accounts = %v; want the account's customers imported:\n%s", err, out)
	}
	if _, err := runCmd(t, getenv, "backfill", "--all-accounts", "--account", "acct_1"); exitCode(err) != 2 {
		t.Errorf("--all-accounts with --account = %v; want a usage error", err)
	}
	if out, err := runCmd(t, getenv, "backfill", "--kind", "payouts"); exitCode(err) != 2 {
		t.Errorf("backfill --kind payouts = %v (exit %d); want a usage error:\n%s", err, exitCode(err), out)
	}
}
