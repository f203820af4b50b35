package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/retry"
)

// dlqCmdEnv is the environment of a dlq or sweep command on namespace ns.
func dlqCmdEnv(ns string, extra map[string]string) func(string) string {
	vars := map[string]string{"AMQP_URL": testenv.AMQPURL(), "BILLING_NAMESPACE": ns, "LOG_LEVEL": "warn"}
	for k, v := range extra {
		vars[k] = v
	}
	return func(name string) string { return vars[name] }
}

// runCmd runs billing with args and returns its stdout.
func runCmd(t *testing.T, getenv func(string) string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	err := run(ctx, args, getenv, &stdout, &stderr)
	if err != nil {
		t.Logf("billing %s: %v\nstderr: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), err
}

// parkedQueues declares ns's topology and returns a confirm channel on it.
type parkedQueues struct {
	topo broker.Topology
	ch   *amqp.Channel
}

func newParkedQueues(t *testing.T, ns string) parkedQueues {
	t.Helper()
	// The tiers of the default RETRY_DELAYS: status and sweep check for them.
	topo := testenv.Declare(t, broker.NewTopology(ns, retry.DefaultDelays(), 20))
	ch := testenv.Channel(t)
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	return parkedQueues{topo: topo, ch: ch}
}

// park puts an event in the DLQ as the consumer's router does.
func (q parkedQueues) park(t *testing.T, id, typ string, class failure.Class, parkedAt time.Time) {
	t.Helper()
	dc, err := q.ch.PublishWithDeferredConfirm(q.topo.Dead, typ, true, false, amqp.Publishing{
		Headers: amqp.Table{
			broker.HeaderAttempt:     int32(1),
			broker.HeaderError:       "billing: cannot apply " + id,
			broker.HeaderErrorClass:  string(class),
			broker.HeaderParkedAt:    parkedAt.UTC().Format(time.RFC3339Nano),
			broker.HeaderSourceQueue: q.topo.Work,
		},
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Type: typ,
		Body: []byte(`{"id":"` + id + `","object":"event","type":"` + typ + `"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := dc.WaitContext(context.Background()); !ok || err != nil {
		t.Fatalf("park %s: ack %v, %v", id, ok, err)
	}
}

func (q parkedQueues) ready(t *testing.T, queue string) int {
	t.Helper()
	info, err := q.ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return info.Messages
}

func (q parkedQueues) waitReady(t *testing.T, queue string, n int) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() bool { return q.ready(t, queue) == n }, "%s to hold %d messages (has %d)", queue, n, q.ready(t, queue))
}

// ids removes every message of queue and returns their event ids in order.
func (q parkedQueues) ids(t *testing.T, queue string) []string {
	t.Helper()
	var out []string
	for {
		d, ok, err := q.ch.Get(queue, true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return out
		}
		out = append(out, d.MessageId)
	}
}

func TestDLQCommandUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
	}{
		{"no action", []string{"dlq"}},
		{"unknown action", []string{"dlq", "purge"}},
		{"replay without a selector", []string{"dlq", "replay"}},
		{"replay with two selectors", []string{"dlq", "replay", "--all", "--type", "invoice.paid"}},
		{"replay with a dry run only", []string{"dlq", "replay", "--dry-run"}},
		{"negative limit", []string{"dlq", "list", "--limit", "-1"}},
		{"stray argument", []string{"dlq", "list", "evt_1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// No broker at this address: a usage error must come first.
			_, err := runCmd(t, dlqCmdEnv("unused", map[string]string{"AMQP_URL": "amqp://guest:guest@127.0.0.1:1/"}), tt.args...)
			if err == nil || exitCode(err) != 2 {
				t.Fatalf("err = %v (exit %d), want a usage error, exit 2", err, exitCode(err))
			}
		})
	}
}

func TestDLQCommandListAndReplay(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q := newParkedQueues(t, ns)
	getenv := dlqCmdEnv(ns, nil)
	now := time.Now()
	q.park(t, "evt_a", "invoice.paid", failure.Permanent, now.Add(-2*time.Hour))
	q.park(t, "evt_b", "customer.updated", failure.Transient, now.Add(-time.Hour))
	q.park(t, "evt_c", "invoice.paid", failure.Permanent, now.Add(-time.Minute))
	q.waitReady(t, q.topo.DLQ, 3)

	out, err := runCmd(t, getenv, "dlq", "list", "--json")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("list --json printed %d lines, want 3:\n%s", len(lines), out)
	}
	var first dlq.Parked
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first.EventID != "evt_a" || first.Class != failure.Permanent || first.Error != "billing: cannot apply evt_a" || first.AgeSeconds < 7190 || first.AgeSeconds > 7300 {
		t.Errorf("first = %+v", first)
	}

	out, err = runCmd(t, getenv, "dlq", "list", "--limit", "2")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"EVENT ID", "PARKED AT", "evt_a", "invoice.paid", "permanent", "evt_b", "transient", "2h0m0s", "billing: cannot apply evt_b",
		now.Add(-2 * time.Hour).UTC().Format(time.RFC3339), "2 parked event(s) shown"} {
		if !strings.Contains(out, want) {
			t.Errorf("list output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "evt_c") {
		t.Errorf("--limit 2 shows evt_c:\n%s", out)
	}

	out, err = runCmd(t, getenv, "dlq", "replay", "--type", "invoice.paid", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "would move evt_a") || !strings.Contains(out, "would move evt_c") || !strings.Contains(out, "nothing was moved") {
		t.Errorf("dry run output:\n%s", out)
	}
	q.waitReady(t, q.topo.DLQ, 3)
	if n := q.ready(t, q.topo.Work); n != 0 {
		t.Fatalf("dry run put %d messages in the work queue", n)
	}

	if out, err = runCmd(t, getenv, "dlq", "replay", "--event", "evt_b"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "moved evt_b customer.updated") || !strings.Contains(out, "moved 1 message(s) of 1 event(s)") {
		t.Errorf("replay --event output:\n%s", out)
	}
	q.waitReady(t, q.topo.DLQ, 2)
	if got := q.ids(t, q.topo.Work); strings.Join(got, ",") != "evt_b" {
		t.Errorf("work queue holds %v, want evt_b", got)
	}

	if _, err = runCmd(t, getenv, "dlq", "replay", "--event", "evt_b"); err == nil || exitCode(err) != 1 {
		t.Errorf("replaying an event no longer parked = %v, want exit 1", err)
	}

	q.park(t, "evt_d", "charge.refunded", failure.Permanent, now)
	q.waitReady(t, q.topo.DLQ, 3)
	if out, err = runCmd(t, getenv, "dlq", "replay", "--all", "--limit", "2"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "moved 2 message(s) of 2 event(s)") {
		t.Errorf("replay --all --limit 2 output:\n%s", out)
	}
	q.waitReady(t, q.topo.DLQ, 1)
	if got := q.ids(t, q.topo.Work); strings.Join(got, ",") != "evt_a,evt_c" {
		t.Errorf("work queue holds %v, want evt_a,evt_c", got)
	}
	if got := q.ids(t, q.topo.DLQ); strings.Join(got, ",") != "evt_d" {
		t.Errorf("DLQ holds %v, want evt_d", got)
	}
}

// TestDLQListEscapes parks a hand-made message whose id clears the screen
// and breaks the line and whose type sets the terminal's title: `dlq list`
// prints them quoted, one row per event, and not a control byte.
func TestDLQListEscapes(t *testing.T) {
	t.Parallel()
	ns := testenv.Namespace(t)
	q := newParkedQueues(t, ns)
	const id, typ = "evt_\x1b[2J\nevt_fake", "invoice.paid\x1b]0;pwned\x07"
	q.park(t, id, typ, failure.Permanent, time.Now())
	q.park(t, "evt_plain_1", "invoice.paid", failure.Permanent, time.Now())

	out, err := runCmd(t, dlqCmdEnv(ns, nil), "dlq", "list")
	if err != nil {
		t.Fatal(err)
	}
	if i := strings.IndexFunc(out, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }); i >= 0 {
		t.Errorf("output holds control byte %q at %d:\n%q", out[i], i, out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 4 { // header, two events, the count
		t.Fatalf("%d lines, want 4:\n%s", len(lines), out)
	}
	for _, want := range []string{strconv.Quote(id), strconv.Quote(typ), "evt_plain_1  ", "invoice.paid  "} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}
