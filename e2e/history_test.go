package e2e

import (
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/history"
)

// TestHistoryEndToEnd posts a lifecycle of every supported API version to
// a running api and worker, two of its events late (sent once the rest
// is applied: an invoice.finalized after the invoice's payment failed,
// a customer.deleted older than the customer's last update): every ledger
// row names its object and says applied or stale, and `billing history`
// shows each invoice's timeline with the late finalization stale, as JSON
// and as a table; an id nothing knows exits 1.
func TestHistoryEndToEnd(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	api := s.startReady(nil)

	type sent struct {
		lc   billingtest.VersionedLifecycle
		late billingtest.Late
	}
	var all []sent
	var early, late []string
	post := func(raw []byte) string {
		t.Helper()
		if code := postSigned(api, raw); code != http.StatusOK {
			t.Fatalf("POST: %d", code)
		}
		return eventIDOf(t, raw)
	}
	var held [][]byte
	for i, v := range billing.SupportedVersions() {
		lc, l := billingtest.LateLifecycle(v, 20+i)
		all = append(all, sent{lc, l})
		for _, raw := range lc.Events {
			if id := eventIDOf(t, raw); id == l.Finalized || id == l.Deleted {
				held = append(held, raw)
				continue
			}
			early = append(early, post(raw))
		}
	}
	s.waitProcessed(t, early, 60*time.Second)
	for _, raw := range held {
		late = append(late, post(raw))
	}
	s.waitProcessed(t, late, 30*time.Second)

	// The ledger, from MySQL: each event's object, and applied or stale.
	rows, err := s.db.Query("SELECT id, IFNULL(object_type, ''), IFNULL(object_id, ''), IFNULL(applied, -1) FROM stripe_events")
	if err != nil {
		t.Fatal(err)
	}
	type ledgerRow struct {
		objectType, objectID string
		applied              int
	}
	ledger := map[string]ledgerRow{}
	for rows.Next() {
		var id string
		var r ledgerRow
		if err := rows.Scan(&id, &r.objectType, &r.objectID, &r.applied); err != nil {
			t.Fatal(err)
		}
		ledger[id] = r
	}
	rows.Close()
	for _, x := range all {
		for _, raw := range x.lc.Events {
			var ev struct {
				ID   string
				Data struct{ Object struct{ Object, ID string } }
			}
			if err := json.Unmarshal(raw, &ev); err != nil {
				t.Fatal(err)
			}
			r := ledger[ev.ID]
			ok := r.applied == 0 || r.applied == 1 // as the worker's batches ordered them
			switch ev.ID {
			case x.late.Finalized:
				ok = r.applied == 0 // stale
			case x.late.Deleted:
				ok = r.applied == 1 // stale by time, but it marks the customer deleted
			}
			if r.objectType != ev.Data.Object.Object || r.objectID != ev.Data.Object.ID || !ok {
				t.Errorf("%s %s: ledger names %q %q, applied %d (-1: NULL); want %q %q", x.lc.Version, ev.ID,
					r.objectType, r.objectID, r.applied, ev.Data.Object.Object, ev.Data.Object.ID)
			}
		}
	}

	run := func(args ...string) (string, error) {
		cmd := exec.Command(bin, append([]string{"history"}, args...)...)
		cmd.Env = s.env(nil)
		out, err := cmd.Output()
		return string(out), err
	}
	for _, x := range all {
		out, err := run("--json", x.lc.IDs.Invoice)
		if err != nil {
			t.Fatalf("billing history --json %s: %v\n%s", x.lc.IDs.Invoice, err, out)
		}
		var rep history.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("%s: %v\n%s", x.lc.Version, err, out)
		}
		i := slices.IndexFunc(rep.Events, func(e history.Event) bool { return e.ID == x.late.Finalized })
		if rep.Table != "invoices" || rep.Row["status"] != "paid" || i != 1 || rep.Events[i].Outcome != history.Stale ||
			*rep.Events[i].StatusBefore != "draft" || *rep.Events[i].StatusAfter != "open" {
			t.Errorf("%s: history of %s: %s", x.lc.Version, x.lc.IDs.Invoice, out)
		}
		for _, e := range rep.Events {
			if e.Outcome != history.Applied && e.Outcome != history.Stale {
				t.Errorf("%s: %s %s: outcome %q", x.lc.Version, e.ID, e.Type, e.Outcome)
			}
		}
	}
	x := all[len(all)-1]
	out, err := run(x.lc.IDs.Invoice)
	if err != nil || !regexp.MustCompile(x.late.Finalized+` +invoice\.finalized +draft -> open +stale\n`).MatchString(out) {
		t.Errorf("billing history %s: %v\n%s", x.lc.IDs.Invoice, err, out)
	}
	_, err = run("in_nobodyknows")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || !strings.Contains(string(exit.Stderr), "in_nobodyknows: no such object") {
		t.Errorf("unknown id: %v", err)
	}
}
