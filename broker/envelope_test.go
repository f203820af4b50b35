package broker_test

import (
	"reflect"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
)

var envTopo = broker.NewTopology("ns", []time.Duration{time.Minute, 5 * time.Minute}, 20)

// deaths is an x-death header, newest first, of queue and reason pairs.
func deaths(pairs ...string) amqp.Table {
	var entries []any
	for i := 0; i < len(pairs); i += 2 {
		entries = append(entries, amqp.Table{"queue": pairs[i], "reason": pairs[i+1], "count": int64(1), "exchange": ""})
	}
	return amqp.Table{"x-death": entries}
}

func TestReadAttempt(t *testing.T) {
	t.Parallel()
	withHeaders := amqp.Table{broker.HeaderAttempt: int32(3), broker.HeaderReplays: int32(2)}
	tests := []struct {
		name     string
		d        amqp.Delivery
		want     broker.Attempt
		wantNext int
	}{
		{"from the api", amqp.Delivery{Exchange: envTopo.Events}, broker.Attempt{Origin: broker.Fresh}, 1},
		{"back from a delay tier", amqp.Delivery{Exchange: envTopo.Return, Headers: withHeaders}, broker.Attempt{Origin: broker.Retried, Prior: 3, Replays: 2}, 4},
		{"tier header as a string", amqp.Delivery{Exchange: envTopo.Return, Headers: amqp.Table{broker.HeaderAttempt: "2"}}, broker.Attempt{Origin: broker.Retried, Prior: 2}, 3},
		{"UI publish with copied headers is fresh", amqp.Delivery{Exchange: envTopo.Events, Headers: withHeaders}, broker.Attempt{Origin: broker.Fresh, Replays: 2}, 1},
		{"DLQ reject requeue false is a replay", amqp.Delivery{Exchange: envTopo.Replay, Headers: withHeaders}, broker.Attempt{Origin: broker.Rejected, Replays: 3}, 1},
		{"UI move messages is a replay", amqp.Delivery{Exchange: "", RoutingKey: envTopo.Work, Headers: withHeaders}, broker.Attempt{Origin: broker.Moved, Replays: 3}, 1},
		{"first replay", amqp.Delivery{Exchange: envTopo.Replay}, broker.Attempt{Origin: broker.Rejected, Replays: 1}, 1},
		{"UI reject, as x-death says", amqp.Delivery{Exchange: envTopo.Replay, Headers: deaths(envTopo.DLQ, "rejected", envTopo.Work, "delivery_limit")},
			broker.Attempt{Origin: broker.Rejected, Replays: 1}, 1},
		{"the DLQ's delivery limit, no person", amqp.Delivery{Exchange: envTopo.Replay, Headers: deaths(envTopo.DLQ, "delivery_limit")},
			broker.Attempt{Origin: broker.DeadLettered, DeathReason: "delivery_limit", Replays: 1}, 1},
		{"a TTL policy on the DLQ, no person", amqp.Delivery{Exchange: envTopo.Replay, Headers: deaths(envTopo.DLQ, "expired")},
			broker.Attempt{Origin: broker.DeadLettered, DeathReason: "expired", Replays: 1}, 1},
		// The work queue's delivery limit parked it; a person rejected it
		// from the DLQ with an older RabbitMQ that wrote no entry of its own.
		{"another queue's death is not the DLQ's", amqp.Delivery{Exchange: envTopo.Replay, Headers: deaths(envTopo.Work, "delivery_limit")},
			broker.Attempt{Origin: broker.Rejected, Replays: 1}, 1},
		{"billing dlq replay", amqp.Delivery{Exchange: envTopo.Replay, Headers: amqp.Table{broker.HeaderReplaySource: "cli"}}, broker.Attempt{Origin: broker.ReplayedByCLI, Replays: 1}, 1},
		{"the sweep's re-drive", amqp.Delivery{Exchange: envTopo.Replay, Headers: amqp.Table{broker.HeaderReplaySource: "sweep"}}, broker.Attempt{Origin: broker.Redriven, Replays: 1}, 1},
		{"a source header on a fresh event is no replay", amqp.Delivery{Exchange: envTopo.Events, Headers: amqp.Table{broker.HeaderReplaySource: "cli"}}, broker.Attempt{Origin: broker.Fresh}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := broker.ReadAttempt(tt.d, envTopo)
			if got != tt.want {
				t.Errorf("ReadAttempt = %+v, want %+v", got, tt.want)
			}
			if got.Number() != tt.wantNext {
				t.Errorf("Number = %d, want %d", got.Number(), tt.wantNext)
			}
			if got.Origin.Replay() != (tt.want.Origin != broker.Fresh && tt.want.Origin != broker.Retried) {
				t.Errorf("Replay = %v for origin %s", got.Origin.Replay(), got.Origin)
			}
		})
	}
}

// TestCopies pins the message contract of a republished event: which
// properties and headers a retry copy and a replay copy keep.
func TestCopies(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	d := amqp.Delivery{
		Headers: amqp.Table{
			"x-death":                    []any{amqp.Table{"count": int64(1)}},
			"x-delivery-count":           int64(4),
			"X-First-Death-Queue":        "ns.events.work",
			"tenant":                     "acme", // someone else's header travels along
			broker.HeaderStripeSignature: "t=1,v1=abc",
			broker.HeaderAttempt:         int32(2),
			broker.HeaderReplays:         int32(1),
			broker.HeaderRedrives:        int32(1),
			broker.HeaderError:           "boom",
			broker.HeaderErrorClass:      "transient",
			broker.HeaderFirstFailedAt:   "2026-05-01T11:00:00Z",
			broker.HeaderLastFailedAt:    "2026-05-01T11:30:00Z",
			broker.HeaderSourceQueue:     "ns.events.work",
			broker.HeaderWorkerHost:      "w1",
			broker.HeaderParkedAt:        "2026-05-01T11:30:00Z",
		},
		ContentType: "application/json", ContentEncoding: "identity", DeliveryMode: amqp.Transient, Priority: 3,
		CorrelationId: "corr", ReplyTo: "reply", Expiration: "60000", MessageId: "evt_1", Timestamp: at,
		Type: "invoice.paid", UserId: "guest", AppId: "billing-api", Body: []byte(`{"id":"evt_1"}`),
		Exchange: "ns.events", RoutingKey: "invoice.paid",
	}
	props := amqp.Publishing{
		ContentType: "application/json", ContentEncoding: "identity", DeliveryMode: amqp.Transient, Priority: 3,
		CorrelationId: "corr", ReplyTo: "reply", MessageId: "evt_1", Timestamp: at,
		Type: "invoice.paid", AppId: "billing-api", Body: []byte(`{"id":"evt_1"}`),
	}
	with := func(h amqp.Table) amqp.Publishing { p := props; p.Headers = h; return p }
	ours := amqp.Table{
		"tenant":                     "acme",
		broker.HeaderStripeSignature: "t=1,v1=abc",
		broker.HeaderAttempt:         int32(2),
		broker.HeaderReplays:         int32(1),
		broker.HeaderError:           "boom",
		broker.HeaderErrorClass:      "transient",
		broker.HeaderFirstFailedAt:   "2026-05-01T11:00:00Z",
		broker.HeaderLastFailedAt:    "2026-05-01T11:30:00Z",
		broker.HeaderSourceQueue:     "ns.events.work",
		broker.HeaderWorkerHost:      "w1",
		broker.HeaderParkedAt:        "2026-05-01T11:30:00Z",
	}
	plus := func(h amqp.Table, k string, v any) amqp.Table {
		out := amqp.Table{k: v}
		for hk, hv := range h {
			if hk != k {
				out[hk] = hv
			}
		}
		return out
	}
	persistent := d
	persistent.DeliveryMode = 0
	tests := []struct {
		name string
		got  amqp.Publishing
		want amqp.Publishing
	}{
		// A retry keeps no x-* header and none of the per-failure ones,
		// which the router writes afresh; re-drives count on, and Stripe's
		// signature travels along for the worker to check again.
		{"retry", broker.RetryCopy(d), with(amqp.Table{"tenant": "acme", broker.HeaderStripeSignature: "t=1,v1=abc", broker.HeaderRedrives: int32(1)})},
		// A replay keeps our headers (the reason it was parked, Stripe's
		// signature) but no x-*.
		// It says who sent it back: the CLI or the sweep.
		{"replay", broker.ReplayCopy(d, false), with(plus(plus(ours, broker.HeaderRedrives, int32(1)), broker.HeaderReplaySource, "cli"))},
		{"sweep re-drive", broker.ReplayCopy(d, true), with(plus(plus(ours, broker.HeaderRedrives, int64(2)), broker.HeaderReplaySource, "sweep"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !reflect.DeepEqual(tt.got, tt.want) {
				t.Errorf("copy =\n%+v\nwant\n%+v", tt.got, tt.want)
			}
		})
	}
	t.Run("no delivery mode becomes persistent", func(t *testing.T) {
		t.Parallel()
		for _, m := range []amqp.Publishing{broker.RetryCopy(persistent), broker.ReplayCopy(persistent, false)} {
			if m.DeliveryMode != amqp.Persistent {
				t.Errorf("delivery mode %d, want persistent", m.DeliveryMode)
			}
		}
	})
}

func TestIdentity(t *testing.T) {
	t.Parallel()
	body := []byte(`{"id":"evt_body","type":"charge.refunded"}`)
	tests := []struct {
		name, id, typ    string
		body             []byte
		wantID, wantType string
	}{
		{"properties win", "evt_1", "invoice.paid", body, "evt_1", "invoice.paid"},
		{"hand-published: from the body", "", "", body, "evt_body", "charge.refunded"},
		{"type only from the body", "evt_1", "", body, "evt_1", "charge.refunded"},
		{"neither", "", "", []byte("not json"), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			id, typ := broker.Identity(tt.id, tt.typ, tt.body)
			if id != tt.wantID || typ != tt.wantType {
				t.Errorf("Identity = %q, %q; want %q, %q", id, typ, tt.wantID, tt.wantType)
			}
		})
	}
}

func TestNewEvent(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	want := amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: "evt_1",
		Type: "invoice.paid", Timestamp: at, AppId: "billing-api", Body: []byte(`{}`)}
	t.Run("Signed", func(t *testing.T) {
		t.Parallel()
		got := broker.NewEvent("evt_1", "invoice.paid", []byte(`{}`), "t=1,v1=abc", "billing-api", at)
		w := want
		w.Headers = amqp.Table{broker.HeaderStripeSignature: "t=1,v1=abc"}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("NewEvent = %+v, want %+v", got, w)
		}
	})
	t.Run("Unsigned", func(t *testing.T) {
		t.Parallel()
		got := broker.NewEvent("evt_1", "invoice.paid", []byte(`{}`), "", "billing-api", at)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("NewEvent = %+v, want %+v", got, want)
		}
	})
}
