package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/history"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/lookup"
)

// TestDLQCommandListNeedsNoTiers: `dlq list` runs on a namespace whose
// delay tiers differ from RETRY_DELAYS (here: none), and shows an event
// parked twice on one line with its copies.
func TestDLQCommandListNeedsNoTiers(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	topo := testenv.Declare(t, broker.NewTopology(ns, nil, 20))
	q := parkedQueues{topo: topo, ch: testenv.Channel(t)}
	if err := q.ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	twice, once := billingtest.NewEventID(), billingtest.NewEventID()
	now := time.Now()
	q.park(t, twice, "invoice.paid", failure.Permanent, now.Add(-time.Hour))
	q.park(t, once, "invoice.paid", failure.Permanent, now.Add(-time.Hour))
	q.park(t, twice, "invoice.paid", failure.Permanent, now.Add(-time.Minute))
	q.waitReady(t, topo.DLQ, 3)
	out, err := runCmd(t, dlqCmdEnv(ns, map[string]string{"RETRY_DELAYS": "10s,1m"}), "dlq", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^EVENT ID +COPIES +TYPE`),
		regexp.MustCompile(`(?m)^` + twice + ` +2 +invoice\.paid +permanent `),
		regexp.MustCompile(`(?m)^` + once + ` +1 +invoice\.paid `),
		regexp.MustCompile(`(?m)^2 parked event\(s\) shown, 3 message\(s\) in ` + regexp.QuoteMeta(topo.DLQ) + `$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("list lacks %s:\n%s", want, out)
		}
	}
	q.waitReady(t, topo.DLQ, 3)
	if got := strings.Join(q.ids(t, topo.DLQ), ","); got != strings.Join([]string{twice, once, twice}, ",") {
		t.Errorf("DLQ after list: %s", got)
	}
}

// TestDLQCommandDiscard discards an event parked twice: both copies leave
// the DLQ, the others stay in order, MySQL keeps who, when and why, the
// ledger row stays marked discarded, and `history` and `dlq show` say so.
// Without --reason nothing happens; an event not parked is exit 1.
func TestDLQCommandDiscard(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q := newParkedQueues(t, ns)
	dsn := testenv.Database(t)
	store := testenv.StoreAt(t, dsn)
	getenv := dlqCmdEnv(ns, map[string]string{"MYSQL_DSN": dsn})
	poison, other, invoice := billingtest.NewEventID(), billingtest.NewEventID(), "in_"+strings.TrimPrefix(billingtest.NewEventID(), "evt_")
	now := time.Now()
	payload := billingtest.Event(poison, "invoice.paid", now.Add(-2*time.Hour), map[string]any{"object": "invoice", "id": invoice})
	if err := store.MarkDead(t.Context(), models.DeadEvent{ID: poison, Type: "invoice.paid", Payload: payload,
		Signature: testenv.Sign(payload, testenv.WebhookSecret, now), Attempts: 1, LastError: "schema"}); err != nil {
		t.Fatal(err)
	}
	q.park(t, poison, "invoice.paid", failure.Schema, now.Add(-time.Hour))
	q.park(t, other, "invoice.paid", failure.Schema, now.Add(-time.Hour))
	q.park(t, poison, "invoice.paid", failure.Schema, now.Add(-time.Minute))
	q.waitReady(t, q.topo.DLQ, 3)

	if _, err := runCmd(t, getenv, "dlq", "discard", poison); !errors.Is(err, errUsage) {
		t.Fatalf("discard without --reason = %v, want a usage error", err)
	}
	out, err := runCmd(t, getenv, "dlq", "show", poison)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{poison + ": 2 cop(ies) in the DLQ", "--- copy 2 of 2", "billing-error-class", `"type": "invoice.paid"`, "ledger: status dead"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}

	out, err = runCmd(t, getenv, "dlq", "discard", poison, "--reason", "a test event sent by hand", "--by", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "discarded "+poison+" invoice.paid: 2 cop(ies) taken off "+q.topo.DLQ+", recorded as discarded by alice") {
		t.Errorf("discard output:\n%s", out)
	}
	q.waitReady(t, q.topo.DLQ, 1)
	if got := strings.Join(q.ids(t, q.topo.DLQ), ","); got != other {
		t.Errorf("DLQ holds %s, want %s", got, other)
	}
	if n := q.ready(t, q.topo.Work); n != 0 {
		t.Errorf("discard put %d messages in the work queue", n)
	}
	ev, err := lookup.New(store).Event(t.Context(), poison)
	if err != nil || ev.Status != models.EventDiscarded {
		t.Errorf("ledger row: %+v, %v; want status discarded", ev, err)
	}
	ds, err := lookup.New(store).Discards(t.Context(), []string{poison})
	if err != nil || len(ds) != 1 || ds[0].DiscardedBy != "alice" || ds[0].Copies != 2 || ds[0].Reason != "a test event sent by hand" || ds[0].EventType != "invoice.paid" {
		t.Errorf("discards: %+v, %v", ds, err)
	}

	out, err = runCmd(t, getenv, "history", invoice, "--json")
	if err != nil {
		t.Fatal(err)
	}
	var rep history.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Events) != 1 || rep.Events[0].Outcome != history.Discarded || len(rep.Events[0].Discards) != 1 || rep.Events[0].Discards[0].By != "alice" {
		t.Errorf("history: %+v", rep.Events)
	}
	out, err = runCmd(t, getenv, "history", invoice)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^  ` + poison + `: discarded \S+ by alice \(2 cop\(ies\)\): a test event sent by hand$`).MatchString(out) {
		t.Errorf("history lacks the discard:\n%s", out)
	}

	if _, err := runCmd(t, getenv, "dlq", "discard", poison, "--reason", "again"); !errors.Is(err, dlq.ErrNotParked) || exitCode(err) != 1 {
		t.Errorf("discarding an event no longer parked = %v, want ErrNotParked, exit 1", err)
	}
	if _, err := runCmd(t, getenv, "dlq", "show", poison); !errors.Is(err, dlq.ErrNotParked) {
		t.Errorf("show of an event no longer parked = %v, want ErrNotParked", err)
	}
}

// parkOne parks one event in a namespace of its own.
func parkOne(t *testing.T) (ns string, q parkedQueues, id string) {
	t.Helper()
	ns = testenv.Namespace(t)
	q = newParkedQueues(t, ns)
	id = billingtest.NewEventID()
	q.park(t, id, "invoice.paid", failure.Permanent, time.Now())
	q.waitReady(t, q.topo.DLQ, 1)
	return ns, q, id
}

// TestDLQCommandDiscardNeedsMySQL: with MySQL unreachable nothing leaves
// the DLQ.
func TestDLQCommandDiscardNeedsMySQL(t *testing.T) {
	t.Parallel()
	ns, q, id := parkOne(t)
	getenv := dlqCmdEnv(ns, map[string]string{"MYSQL_DSN": "root@tcp(127.0.0.1:1)/billing?parseTime=true"})
	if _, err := runCmd(t, getenv, "dlq", "discard", id, "--reason", "x"); err == nil || !strings.Contains(err.Error(), "MYSQL_DSN") {
		t.Fatalf("discard without MySQL = %v, want an error naming MYSQL_DSN", err)
	}
	if got := q.ids(t, q.topo.DLQ); strings.Join(got, ",") != id {
		t.Errorf("DLQ holds %v, want %s", got, id)
	}
}

// TestDLQCommandReplaySelectors: --class, --type and --since combine;
// every copy of a selected event moves, with a summary of what moved.
func TestDLQCommandReplaySelectors(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q := newParkedQueues(t, ns)
	getenv := dlqCmdEnv(ns, nil)
	now := time.Now()
	oldT, newT, newP, newOther := billingtest.NewEventID(), billingtest.NewEventID(), billingtest.NewEventID(), billingtest.NewEventID()
	q.park(t, oldT, "invoice.paid", failure.Transient, now.Add(-3*time.Hour))
	q.park(t, newT, "invoice.paid", failure.Transient, now.Add(-10*time.Minute))
	q.park(t, newP, "invoice.paid", failure.Permanent, now.Add(-10*time.Minute))
	q.park(t, newOther, "customer.updated", failure.Transient, now.Add(-5*time.Minute))
	q.park(t, newT, "invoice.paid", failure.Transient, now.Add(-time.Minute))
	q.waitReady(t, q.topo.DLQ, 5)

	if _, err := runCmd(t, getenv, "dlq", "replay", "--since", "yesterday"); !errors.Is(err, errUsage) {
		t.Errorf("--since yesterday = %v, want a usage error", err)
	}
	out, err := runCmd(t, getenv, "dlq", "replay", "--class", "transient", "--since", "1h", "--type", "invoice.paid", "--rate", "50")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "moved 2 message(s) of 1 event(s) (by class: transient 2; by type: invoice.paid 2) to "+q.topo.Work+"; 3 message(s) looked at and left") {
		t.Errorf("replay output:\n%s", out)
	}
	q.waitReady(t, q.topo.DLQ, 3)
	if got := strings.Join(q.ids(t, q.topo.Work), ","); got != newT+","+newT {
		t.Errorf("work queue holds %s, want both copies of %s", got, newT)
	}
	if got := strings.Join(q.ids(t, q.topo.DLQ), ","); got != strings.Join([]string{oldT, newP, newOther}, ",") {
		t.Errorf("DLQ holds %s", got)
	}
}

// TestFlagErrorsPrintUsageOnce: a flag mistake prints the usage once, to
// stderr, and returns one error; --help prints it to stdout.
func TestFlagErrorsPrintUsageOnce(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"sweep", "--every", "5"}, {"dlq", "list", "--nope"}, {"history", "--nope", "cus_x"}, {"dlq", "discard", "--reason"}} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), args, func(string) string { return "" }, &stdout, &stderr)
		if !errors.Is(err, errUsage) {
			t.Errorf("billing %s = %v, want a usage error", strings.Join(args, " "), err)
		}
		if n := strings.Count(stderr.String(), "usage: billing"); n != 1 || stdout.Len() != 0 {
			t.Errorf("billing %s: usage %d times on stderr, stdout %q; want once on stderr:\n%s", strings.Join(args, " "), n, stdout.String(), stderr.String())
		}
		if strings.Contains(stderr.String(), err.Error()) {
			t.Errorf("billing %s: the error is printed besides the one main prints:\n%s", strings.Join(args, " "), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"dlq", "replay", "--help"}, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "usage: billing dlq replay") || strings.Count(stdout.String(), "usage: billing") != 1 || stderr.Len() != 0 {
		t.Errorf("--help: stdout %q, stderr %q", stdout.String(), stderr.String())
	}
}

// TestDLQCommandAsSupport runs `billing dlq` as the support role's users
// (broker.Permissions, and MySQL's from deploy/mysql): it lists, replays
// and discards its namespace's parked events; the DLQ of a namespace it
// has no read on is refused, and the error says so with the broker's own
// words and the permission lacked.
func TestDLQCommandAsSupport(t *testing.T) {
	t.Parallel()
	ns, q, id := parkOne(t)
	dsn := testenv.Database(t)
	mysqlUsers := testenv.MySQLUsersFromScripts(t, dsn, "../../deploy/mysql/init/01-users.sql", "../../deploy/mysql/grants.sql")
	support := dlqCmdEnv(ns, map[string]string{"AMQP_URL": testenv.RabbitUser(t, q.topo.Permissions()[broker.RoleSupport]), "MYSQL_DSN": mysqlUsers["support"]})

	out, err := runCmd(t, support, "dlq", "list")
	if err != nil || !strings.Contains(out, id) {
		t.Fatalf("dlq list as support = %v, want %s listed:\n%s", err, id, out)
	}
	if out, err = runCmd(t, support, "dlq", "replay", "--event", id); err != nil || !strings.Contains(out, "moved 1 message(s) of 1 event(s)") {
		t.Fatalf("dlq replay as support = %v, want one moved:\n%s", err, out)
	}
	q.waitReady(t, q.topo.Work, 1)
	q.waitReady(t, q.topo.DLQ, 0)

	byHand := billingtest.NewEventID()
	q.park(t, byHand, "invoice.paid", failure.Permanent, time.Now())
	q.waitReady(t, q.topo.DLQ, 1)
	if out, err = runCmd(t, support, "dlq", "discard", byHand, "--reason", "sent by hand", "--by", "support"); err != nil {
		t.Fatalf("dlq discard as support = %v:\n%s", err, out)
	}
	q.waitReady(t, q.topo.DLQ, 0)
	if ds, err := lookup.New(testenv.StoreAt(t, dsn)).Discards(t.Context(), []string{byHand}); err != nil || len(ds) != 1 || ds[0].DiscardedBy != "support" {
		t.Errorf("discards of %s: %+v, %v; want one by support", byHand, ds, err)
	}

	other, _, _ := parkOne(t)
	support = dlqCmdEnv(other, map[string]string{"AMQP_URL": support("AMQP_URL")})
	for _, args := range [][]string{{"dlq", "list"}, {"dlq", "replay", "--all"}} {
		_, err := runCmd(t, support, args...)
		dlqName := other + ".events.dlq"
		if err == nil || !strings.Contains(err.Error(), "the broker refused access, the user lacks read permission on the queue: ACCESS_REFUSED") ||
			!strings.Contains(err.Error(), "'"+dlqName+"'") {
			t.Errorf("billing %s on another namespace's DLQ as support = %v, want the broker's ACCESS_REFUSED naming read on %s", strings.Join(args, " "), err, dlqName)
		}
	}
}

// TestDLQPurgedBySupportLosesNoEvent: RabbitMQ lets the support user
// Purge the DLQ, since reading it allows that
// (docs/security.md#support-and-the-dlq). A purge deletes copies, not
// events: each parked event keeps its ledger row, `billing status` names
// it lost (exit 2), and `billing reprocess --status dead` applies the
// signed one from its payload and the unverified one from Stripe's copy,
// fetched by id (stripe-mock serves a plan.created, which has no handler).
func TestDLQPurgedBySupportLosesNoEvent(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q := newParkedQueues(t, ns)
	dsn := testenv.Database(t)
	store := testenv.StoreAt(t, dsn)
	now := time.Now()
	signed, unverified := billingtest.NewEventID(), billingtest.NewEventID()
	invoice := "in_" + strings.TrimPrefix(billingtest.NewEventID(), "evt_")
	payload := billingtest.Event(signed, "invoice.paid", now.Add(-2*time.Hour), billingtest.Invoice(invoice, "cus_purge", "", "paid", 900, 900))
	for _, ev := range []models.DeadEvent{
		{ID: signed, Type: "invoice.paid", Payload: payload, Signature: testenv.Sign(payload, testenv.WebhookSecret, now), Attempts: 8, LastError: "transient"},
		{ID: unverified, Type: "invoice.paid", Attempts: 1, LastError: "unverified"},
	} {
		if err := store.MarkDead(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	q.park(t, signed, "invoice.paid", failure.Transient, now.Add(-time.Hour))
	q.park(t, unverified, "invoice.paid", failure.Unverified, now.Add(-time.Hour))
	q.waitReady(t, q.topo.DLQ, 2)

	support := testenv.ManagementURLAs(t, testenv.RabbitUser(t, q.topo.Permissions()[broker.RoleSupport]))
	if err := testenv.ManagementAt(support, http.MethodDelete, "/api/queues/%2F/"+url.PathEscape(q.topo.DLQ)+"/contents", nil, nil); err != nil {
		t.Fatalf("Purge as support: %v", err)
	}
	q.waitReady(t, q.topo.DLQ, 0)

	getenv := dlqCmdEnv(ns, map[string]string{"MYSQL_DSN": dsn, "STRIPE_WEBHOOK_SECRET": testenv.WebhookSecret,
		"STRIPE_API_KEY": "sk_test_123", "STRIPE_API_BASE": testenv.StripeMock(t)})
	out, err := runCmd(t, getenv, "status", "--management-url=off")
	if exitCode(err) != 2 {
		t.Fatalf("status after the purge = %v, want exit 2:\n%s", err, out)
	}
	for _, id := range []string{signed, unverified} {
		if !regexp.MustCompile(`CRITICAL: 2 event\(s\) dead in the ledger are in no queue of the topology.*` + id).MatchString(out) {
			t.Errorf("status does not name %s lost:\n%s", id, out)
		}
	}

	out, err = runCmd(t, getenv, "reprocess", "--status", "dead")
	if err != nil {
		t.Fatalf("reprocess --status dead: %v\n%s", err, out)
	}
	if !strings.Contains(out, "reprocessed 2 event(s): 1 applied, 1 without a handler, 0 skipped (not verified), 0 failed") {
		t.Errorf("reprocess output:\n%s", out)
	}
	var inv models.Invoice
	if err := store.DB().Where("stripe_id = ?", invoice).Take(&inv).Error; err != nil || inv.Status == nil || *inv.Status != "paid" {
		t.Errorf("invoice after reprocess: %+v, %v; want it paid", inv, err)
	}
	for id, want := range map[string]string{signed: models.EventProcessed, unverified: models.EventIgnored} {
		ev, err := lookup.New(store).Event(t.Context(), id)
		if err != nil || ev.Status != want {
			t.Errorf("ledger row %s: %q, %v; want %s", id, ev.Status, err, want)
		}
	}
	out, err = runCmd(t, getenv, "status", "--management-url=off")
	if strings.Contains(out, "in no queue") {
		t.Errorf("status after reprocess still reports events lost (%v):\n%s", err, out)
	}
}
