package main

import (
	"encoding/json"
	"errors"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/history"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
)

// TestHistoryCommand: the history of an invoice whose lifecycle (Stripe's
// fixtures, invoice.finalized late) the real Processor applied, as a
// table for people and as JSON, the id before or after --json; the
// customer's, whose name goes through cell.
func TestHistoryCommand(t *testing.T) {
	t.Parallel()
	dsn := testenv.Database(t)
	store := testenv.StoreAt(t, dsn)
	lc, late := billingtest.LateLifecycle(billing.SupportedVersions()[0], 5)
	p := ledger.NewProcessor(store, nil)
	for _, raw := range lc.Events {
		if _, err := p.Process(t.Context(), raw); err != nil {
			t.Fatal(err)
		}
	}
	// A name with an escape sequence, as a customer may type one.
	if err := store.DB().Model(&models.Customer{}).Where("stripe_id = ?", lc.IDs.Customer).Update("name", "Eve\x1b[2J").Error; err != nil {
		t.Fatal(err)
	}
	env := workerEnv(map[string]string{"MYSQL_DSN": dsn, "LOG_LEVEL": "warn"})

	out, err := runCmd(t, env, "history", lc.IDs.Invoice)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^` + lc.IDs.Invoice + `: row in invoices$`),
		regexp.MustCompile(`(?m)^  status +paid$`),
		regexp.MustCompile(`(?m)^CREATED +RECEIVED +EVENT +TYPE +STATUS +OUTCOME$`),
		regexp.MustCompile(`(?m)^\S+ +\S+ +evt_\w+ +invoice\.created +- -> draft +applied$`),
		regexp.MustCompile(`(?m)^\S+ +\S+ +` + late.Finalized + ` +invoice\.finalized +draft -> open +stale$`),
		regexp.MustCompile(`(?m)^\S+ +\S+ +evt_\w+ +invoice\.payment_failed +open -> open +applied$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}

	out, err = runCmd(t, env, "history", lc.IDs.Invoice, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep history.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, out)
	}
	if rep.ID != lc.IDs.Invoice || rep.Table != "invoices" || rep.Row["status"] != "paid" || len(rep.Events) != 5 ||
		rep.Events[1].ID != late.Finalized || rep.Events[1].Outcome != history.Stale {
		t.Errorf("--json report: %+v", rep)
	}

	out, err = runCmd(t, env, "history", "--json=false", lc.IDs.Customer)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^  name +"Eve\\x1b\[2J"$`).MatchString(out) {
		t.Errorf("the customer's name is not quoted:\n%q", out)
	}
	if strings.Contains(out, "\x1b") {
		t.Errorf("output carries a raw escape character:\n%q", out)
	}
	if !regexp.MustCompile(`(?m)^\S+ +\S+ +` + late.Deleted + ` +customer\.deleted +- +applied$`).MatchString(out) {
		t.Errorf("the late customer.deleted is not applied (it marks the row deleted):\n%s", out)
	}
}

// TestHistoryOfAnUnlinkedInvoice: an invoice of 2025-03-31.basil or later
// voided after a failed attempt, applied by a worker without
// STRIPE_API_KEY, says that its attempts are unknown, for people and in
// JSON.
func TestHistoryOfAnUnlinkedInvoice(t *testing.T) {
	t.Parallel()
	dsn := testenv.Database(t)
	store := testenv.StoreAt(t, dsn)
	f := billingtest.FailedAttempt("2025-05-28.basil", 6, false)
	p := ledger.NewProcessor(store, nil)
	for _, raw := range f.Events {
		if _, err := p.Process(t.Context(), raw); err != nil {
			t.Fatal(err)
		}
	}
	env := workerEnv(map[string]string{"MYSQL_DSN": dsn, "LOG_LEVEL": "warn"})
	out, err := runCmd(t, env, "history", f.IDs.Invoice)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "\nnote: "+history.Unlinked+"\n") {
		t.Errorf("output lacks the note that the attempts are unknown:\n%s", out)
	}
	out, err = runCmd(t, env, "history", f.IDs.Invoice, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep history.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !slices.Equal(rep.Notes, []string{history.Unlinked}) {
		t.Errorf("--json notes %q, %v; want the note", rep.Notes, err)
	}
}

// TestHistoryErrors: a bad id or stray arguments are usage errors (exit
// 2) before the database is opened; an id nothing knows exits 1 saying so.
func TestHistoryErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"history"},
		{"history", "in_1", "in_2"},
		{"history", "not an id"},
		{"history", "evt_1NvYyf2eZvKYlo2C"},
		{"history", "--jsn", "in_1"},
	} {
		_, err := runCmd(t, workerEnv(nil), args...)
		if !errors.Is(err, errUsage) || exitCode(err) != 2 {
			t.Errorf("billing %s: %v, want a usage error", strings.Join(args, " "), err)
		}
	}
	env := workerEnv(map[string]string{"MYSQL_DSN": testenv.Database(t), "LOG_LEVEL": "warn"})
	_, err := runCmd(t, env, "history", "in_nobodyknows")
	if !errors.Is(err, history.ErrUnknown) || exitCode(err) != 1 || !strings.Contains(err.Error(), "in_nobodyknows") {
		t.Errorf("unknown id: %v (exit %d), want ErrUnknown naming it, exit 1", err, exitCode(err))
	}
}

// TestHistoryOfACustomer: a customer's history lists its objects of every
// kind, as the lifecycle's records have them, each kind newest first, each
// with its status timeline newest first, the newest the row's status.
func TestHistoryOfACustomer(t *testing.T) {
	t.Parallel()
	dsn := testenv.Database(t)
	store := testenv.StoreAt(t, dsn)
	lc := billingtest.VersionLifecycle(billing.SupportedVersions()[0], 7)
	p := ledger.NewProcessor(store, nil)
	for _, raw := range lc.Events {
		if _, err := p.Process(t.Context(), raw); err != nil {
			t.Fatal(err)
		}
	}
	env := workerEnv(map[string]string{"MYSQL_DSN": dsn, "LOG_LEVEL": "warn"})
	out, err := runCmd(t, env, "history", "--json", lc.IDs.Customer)
	if err != nil {
		t.Fatal(err)
	}
	var rep history.CustomerReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if rep.ID != lc.IDs.Customer || rep.Table != "customers" || len(rep.Events) == 0 {
		t.Errorf("the customer's own report: %+v", rep.Report)
	}
	want := map[string]bool{}
	w := lc.Want
	for _, r := range w.Subscriptions {
		want["subscription "+r.StripeID] = true
	}
	for _, r := range w.Invoices {
		want["invoice "+r.StripeID] = true
	}
	for _, r := range w.Payments {
		want[r.Object+" "+r.StripeID] = true
	}
	for _, r := range w.Refunds {
		want["refund "+r.StripeID] = true
	}
	for _, r := range w.Disputes {
		want["dispute "+r.StripeID] = true
	}
	for _, r := range w.CheckoutSessions {
		want["checkout.session "+r.StripeID] = true
	}
	for _, r := range w.CreditNotes {
		want["credit_note "+r.StripeID] = true
	}
	got := map[string]bool{}
	kinds := []string{}
	for i, o := range rep.Objects {
		got[o.Type+" "+o.ID] = true
		if len(kinds) == 0 || kinds[len(kinds)-1] != o.Type {
			kinds = append(kinds, o.Type)
		} else if prev := rep.Objects[i-1]; prev.Created != nil && o.Created != nil && o.Created.After(*prev.Created) {
			t.Errorf("%s %s created after the %s before it: want newest first", o.Type, o.ID, prev.ID)
		}
		for j := 1; j < len(o.Timeline); j++ {
			if o.Timeline[j].At.After(o.Timeline[j-1].At) {
				t.Errorf("%s %s: timeline %+v not newest first", o.Type, o.ID, o.Timeline)
			}
		}
		if len(o.Timeline) > 0 && (o.Status == nil || *o.Status != o.Timeline[0].Status) {
			t.Errorf("%s %s: status %v, newest step %q", o.Type, o.ID, o.Status, o.Timeline[0].Status)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("objects %v\nwant %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
	if len(kinds) != 8 {
		t.Errorf("kinds %v, want all eight, each once", kinds)
	}

	out, err = runCmd(t, env, "history", lc.IDs.Customer)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^INVOICE +CREATED +STATUS +TIMELINE$`),
		regexp.MustCompile(`(?m)^CREDIT_NOTE +CREATED +STATUS +TIMELINE$`),
		regexp.MustCompile(`(?m)^` + lc.IDs.Subscription + ` +\S+ +\w+ +\w+ \S+( <- \w+ \S+)*$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}
