package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/status"
)

// TestStatusCommand walks the "Move messages" typo trap: a parked event
// moved into a mistyped queue leaves the DLQ and `billing dlq list`, and
// `billing status` names it.
func TestStatusCommand(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q := newParkedQueues(t, ns)
	dsn := testenv.Database(t)
	getenv := dlqCmdEnv(ns, map[string]string{"MYSQL_DSN": dsn, "SWEEP_MIN_AGE": "15m"})
	store := testenv.StoreAt(t, dsn)
	now := time.Now()
	for _, id := range []string{"evt_perm", "evt_typo"} {
		if err := store.MarkDead(t.Context(), models.DeadEvent{ID: id, Type: "invoice.paid", Attempts: 1, LastError: "boom"}); err != nil {
			t.Fatal(err)
		}
		q.park(t, id, "invoice.paid", failure.Permanent, now.Add(-time.Minute))
	}
	q.waitReady(t, q.topo.DLQ, 2)
	if _, err := runCmd(t, getenv, "sweep"); err != nil {
		t.Fatal(err)
	}
	q.waitReady(t, q.topo.DLQ, 2)
	// What the mistyped shovel does: the DLQ's head message into a new
	// durable queue.
	typo := q.topo.DLQ + "x"
	if _, err := q.ch.QueueDeclare(typo, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	d, ok, err := q.ch.Get(q.topo.DLQ, false)
	if err != nil || !ok {
		t.Fatalf("get from the DLQ: %v, %v", ok, err)
	}
	moved := d.MessageId
	dc, err := q.ch.PublishWithDeferredConfirm("", typo, true, false, amqp.Publishing{MessageId: d.MessageId, Headers: d.Headers, Body: d.Body})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(t.Context()); !ok || err != nil {
		t.Fatalf("move to %s: %v, %v", typo, ok, err)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	q.waitReady(t, q.topo.DLQ, 1)

	mgmt := "--management-url=" + testenv.ManagementURL()
	testenv.Eventually(t, 10*time.Second, func() bool { n, _ := testenv.QueueDepth(typo); return n == 1 }, "the management API to count %s", typo)
	t.Run("JSON", func(t *testing.T) {
		out, err := runCmd(t, getenv, "status", "--json", mgmt)
		if exitCode(err) != 2 || !silent(err) {
			t.Fatalf("status --json = %v, want exit 2 (critical) with nothing more to print", err)
		}
		var rep status.Report
		if err := json.Unmarshal([]byte(out), &rep); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		if len(rep.Lost) != 1 || rep.Lost[0] != moved || !rep.LostCertain {
			t.Errorf("lost %v (certain %v), want [%s] for certain", rep.Lost, rep.LostCertain, moved)
		}
		if rep.DeadInLedger != 2 || rep.ParkedByClass["permanent"] != 1 || rep.LastSweep == nil || rep.LastSweep.Permanent != 2 {
			t.Errorf("report %+v: want 2 dead, 1 parked permanent, the sweep's pass with 2 for a person", rep)
		}
		if rep.Severity != status.Critical || len(rep.StrayQueues) != 1 || rep.StrayQueues[0].Name != typo || rep.StrayQueues[0].Messages != 1 {
			t.Errorf("severity %s, strays %+v: want critical and %s with 1 message", rep.Severity, rep.StrayQueues, typo)
		}
	})
	t.Run("Text", func(t *testing.T) {
		out, err := runCmd(t, getenv, "status", mgmt)
		if exitCode(err) != 2 {
			t.Fatalf("status = %v, want exit 2", err)
		}
		for _, want := range []string{
			q.topo.DLQ + "  ",
			"parked by class: permanent 1",
			"dead in the ledger: 2; oldest: evt_perm",
			"\nCRITICAL: no consumer on " + q.topo.Work + ": no worker is running\n",
			"\nCRITICAL: 1 event(s) dead in the ledger are in no queue of the topology, perhaps in the stray queue(s) " + typo + " (1): " + moved + "\n",
			"\nWARNING: stray queue " + typo + " holds 1 message(s)",
			"last sweep: ",
			"permanent 2",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("status output lacks %q:\n%s", want, out)
			}
		}
	})
	t.Run("Watch", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		// Stopped after the second report, as a person presses Ctrl-C.
		stdout := &reportCounter{stop: cancel, after: 2}
		var stderr strings.Builder
		err := run(ctx, []string{"status", "--json", "--watch", "100ms", "--management-url", "off"}, getenv, stdout, &stderr)
		if err != nil {
			t.Fatalf("status --watch: %v\n%s", err, stderr.String())
		}
		if stdout.reports < 2 || ctx.Err() != context.Canceled {
			t.Errorf("status --watch printed %d reports before the deadline, want 2 then stopped", stdout.reports)
		}
	})
}

// reportCounter counts the JSON reports written to it and calls stop after
// the after-th.
type reportCounter struct {
	stop    func()
	after   int
	reports int
}

func (r *reportCounter) Write(p []byte) (int, error) {
	r.reports += strings.Count(string(p), "\n")
	if r.reports >= r.after {
		r.stop()
	}
	return len(p), nil
}

// TestStatusExitCodes: 0 with nothing to report, 1 on a warning (the DLQ
// grew), for a monitoring check.
func TestStatusExitCodes(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q := newParkedQueues(t, ns)
	getenv := dlqCmdEnv(ns, map[string]string{"MYSQL_DSN": testenv.Database(t)})
	if _, err := testenv.Channel(t).Consume(q.topo.Work, "", false, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	out, err := runCmd(t, getenv, "status", "--management-url", testenv.ManagementURL())
	if err != nil || !strings.HasSuffix(out, "\nOK: nothing to report\n") {
		t.Fatalf("healthy status = %v (exit %d):\n%s", err, exitCode(err), out)
	}
	q.park(t, billingtest.NewEventID(), "invoice.paid", failure.Permanent, time.Now())
	q.waitReady(t, q.topo.DLQ, 1)
	out, err = runCmd(t, getenv, "status", "--management-url", "off")
	if exitCode(err) != 1 || !strings.HasSuffix(out, "\nWARNING: DLQ growing: 1 event(s) parked in the last 5m0s\n") {
		t.Errorf("status with a new parked event = %v (exit %d), want exit 1:\n%s", err, exitCode(err), out)
	}
}
