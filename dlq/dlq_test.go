package dlq_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/dlq/dlqtest"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestDLQListShowsParkedEventsAndKeepsThem(t *testing.T) {
	t.Parallel()
	e := dlqtest.NewEnv(t, 20)
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	e.Park(t, "evt_perm", "invoice.paid", failure.Permanent, now.Add(-2*time.Hour), nil)
	e.Park(t, "evt_trans", "customer.updated", failure.Transient, now.Add(-30*time.Minute), amqp.Table{broker.HeaderReplays: int32(2), broker.HeaderRedrives: int32(1)})
	e.Park(t, "evt_third", "charge.refunded", failure.Permanent, now.Add(-time.Minute), nil)
	e.WaitReady(t, e.Topo.DLQ, 3)
	q := e.Queue(t, now)

	tests := []struct {
		name  string
		limit int
		want  []string
	}{
		{"all", 0, []string{"evt_perm", "evt_trans", "evt_third"}},
		{"limit", 2, []string{"evt_perm", "evt_trans"}},
		{"again, same order", 0, []string{"evt_perm", "evt_trans", "evt_third"}},
	}
	for _, tt := range tests {
		got, err := q.List(context.Background(), tt.limit)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if g := strings.Join(dlqtest.EventIDs(got), ","); g != strings.Join(tt.want, ",") {
			t.Fatalf("%s: listed %s, want %s", tt.name, g, strings.Join(tt.want, ","))
		}
		e.WaitReady(t, e.Topo.DLQ, 3)
		if tt.name == "all" {
			p := got[1]
			want := dlq.Parked{
				EventID: "evt_trans", Type: "customer.updated", Class: failure.Transient, Attempts: 3,
				Error:    "billing: transient failure of evt_trans",
				ParkedAt: now.Add(-30 * time.Minute), AgeSeconds: 1800,
				FirstFailedAt: now.Add(-31 * time.Minute), LastFailedAt: now.Add(-30 * time.Minute),
				SourceQueue: e.Topo.Work, WorkerHost: "worker-1", Replays: 2, Redrives: 1,
			}
			if p != want {
				t.Errorf("parked = %+v\nwant     %+v", p, want)
			}
		}
	}
	if n := e.Ready(t, e.Topo.Work); n != 0 {
		t.Errorf("listing put %d messages in the work queue", n)
	}
	// Back to back, as support runs it: each list finds every message,
	// though a quorum queue requeues the previous list's asynchronously.
	for i := range 10 {
		got, err := q.List(context.Background(), 0)
		if err != nil || len(got) != 3 {
			t.Fatalf("list %d right after another: %d messages (%v), want 3", i, len(got), err)
		}
	}
}

// A worker that dies on a message looks to the broker like a consumer that
// takes the delivery and goes away without an ack. The work queue's
// x-delivery-limit must park it after the limit, with no billing-* headers.
func TestAMessageThatKillsTheWorkerOnEveryDeliveryIsParkedByTheDeliveryLimit(t *testing.T) {
	t.Parallel()
	const limit = 2
	e := dlqtest.NewEnv(t, limit)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	body := dlqtest.ParkedBody("evt_crash", "invoice.created")
	err := e.Pub.Publish(ctx, e.Topo.Events, "invoice.created", amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: "evt_crash", Type: "invoice.created", Body: body,
	})
	if err != nil {
		t.Fatal(err)
	}
	deliveries := 0
	for e.Ready(t, e.Topo.DLQ) == 0 {
		if deliveries > limit+1 {
			t.Fatalf("still not parked after %d deliveries with x-delivery-limit %d", deliveries, limit)
		}
		ch, err := e.Raw.Channel()
		if err != nil {
			t.Fatal(err)
		}
		msgs, err := ch.ConsumeWithContext(ctx, e.Topo.Work, "", false, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-msgs:
			deliveries++
		case <-time.After(2 * time.Second):
			// The message is on its way to the DLQ.
		}
		ch.Close() // the "crash": the delivery returns unacked
		testenv.Eventually(t, 3*time.Second, func() bool { return e.Ready(t, e.Topo.Work)+e.Ready(t, e.Topo.DLQ) == 1 }, "the message back in a queue")
	}
	if deliveries != limit+1 {
		t.Errorf("parked after %d deliveries, want %d (x-delivery-limit %d)", deliveries, limit+1, limit)
	}
	now := time.Now()
	got, err := e.Queue(t, now).List(ctx, 0)
	if err != nil || len(got) != 1 {
		t.Fatalf("list = %+v, %v; want the one parked message", got, err)
	}
	p := got[0]
	if p.EventID != "evt_crash" || p.Type != "invoice.created" || p.Class != failure.DeliveryLimit || p.SourceQueue != e.Topo.Work {
		t.Errorf("parked = %+v; want evt_crash, invoice.created, class %s from %s", p, failure.DeliveryLimit, e.Topo.Work)
	}
	if p.Attempts != 1 || !strings.Contains(p.Error, "x-delivery-limit") {
		t.Errorf("attempts = %d, error %q; want the x-death count 1 and the limit named", p.Attempts, p.Error)
	}
	if p.ParkedAt.IsZero() || p.AgeSeconds < 0 || p.AgeSeconds > 60 {
		t.Errorf("parked at %s, age %.1fs: want the x-death time of a moment ago", p.ParkedAt, p.AgeSeconds)
	}
	e.WaitReady(t, e.Topo.DLQ, 1)
}

func TestDLQMove(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC().Truncate(time.Millisecond)
	ids := []string{"evt_a", "evt_b", "evt_c", "evt_d"}
	typeOf := map[string]string{"evt_a": "invoice.paid", "evt_b": "customer.updated", "evt_c": "invoice.paid", "evt_d": "charge.refunded"}
	byID := func(id string) func(context.Context, dlq.Parked) (bool, error) {
		return func(_ context.Context, p dlq.Parked) (bool, error) { return p.EventID == id, nil }
	}
	byType := func(typ string) func(context.Context, dlq.Parked) (bool, error) {
		return func(_ context.Context, p dlq.Parked) (bool, error) { return p.Type == typ, nil }
	}
	slow := func(ctx context.Context, _ dlq.Parked) (bool, error) {
		select {
		case <-time.After(700 * time.Millisecond): // newDLQ's Idle is 500ms
		case <-ctx.Done():
		}
		return true, nil
	}
	tests := []struct {
		name      string
		opts      dlq.MoveOptions
		wantMoved []string
		wantLeft  []string // in DLQ order
	}{
		{"dry run moves nothing", dlq.MoveOptions{DryRun: true}, nil, ids},
		{"one event", dlq.MoveOptions{Match: byID("evt_c")}, []string{"evt_c"}, []string{"evt_a", "evt_b", "evt_d"}},
		{"by type", dlq.MoveOptions{Match: byType("invoice.paid")}, []string{"evt_a", "evt_c"}, []string{"evt_b", "evt_d"}},
		{"all, limit 2", dlq.MoveOptions{Limit: 2}, []string{"evt_a", "evt_b"}, []string{"evt_c", "evt_d"}},
		{"all", dlq.MoveOptions{}, ids, nil},
		// Time spent on a message (a slow confirm or ledger write) is not
		// idleness: the pass still reaches every message.
		{"all, each slower than Idle", dlq.MoveOptions{Match: slow}, ids, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := dlqtest.NewEnv(t, 20)
			sent := map[string]amqp.Publishing{}
			for _, id := range ids {
				sent[id] = e.Park(t, id, typeOf[id], failure.Permanent, now.Add(-time.Hour), amqp.Table{"x-custom": "dropped", "tenant": "acme"})
			}
			e.WaitReady(t, e.Topo.DLQ, len(ids))
			res, err := e.Queue(t, now).Move(context.Background(), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			wantIDs := tt.wantMoved
			if tt.opts.DryRun {
				wantIDs = ids
			}
			if g, w := strings.Join(dlqtest.EventIDs(res.Moved), ","), strings.Join(wantIDs, ","); g != w {
				t.Errorf("moved %s, want %s", g, w)
			}
			e.WaitReady(t, e.Topo.DLQ, len(tt.wantLeft))
			work := e.TakeAll(t, e.Topo.Work)
			var workIDs []string
			for _, d := range work {
				workIDs = append(workIDs, d.MessageId)
				dlqtest.CheckReplayCopy(t, d, sent[d.MessageId], e.Topo, false)
			}
			if g, w := strings.Join(workIDs, ","), strings.Join(tt.wantMoved, ","); g != w {
				t.Errorf("work queue holds %s, want %s", g, w)
			}
			var left []string
			for _, d := range e.TakeAll(t, e.Topo.DLQ) {
				left = append(left, d.MessageId)
			}
			if g, w := strings.Join(left, ","), strings.Join(tt.wantLeft, ","); g != w {
				t.Errorf("DLQ holds %s, want %s", g, w)
			}
		})
	}
}
