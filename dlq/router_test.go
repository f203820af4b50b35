package dlq_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/retry"
)

var testTopo = broker.NewTopology("ns", []time.Duration{time.Minute, 5 * time.Minute}, 20)

func testRouter(t *testing.T, topo broker.Topology, pub dlq.Publisher, ledger dlq.Ledger, now time.Time) *dlq.Router {
	t.Helper()
	r, err := dlq.NewRouter(dlq.RouterConfig{
		Topology: topo,
		Policy:   retry.Policy{Delays: topo.Delays, MaxAttempts: 4},
		Host:     "worker-1",
		Now:      func() time.Time { return now },
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), pub, ledger)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestDecide(t *testing.T) {
	t.Parallel()
	r := testRouter(t, testTopo, discardPublisher{}, nil, time.Now()) // MaxAttempts 4, 2 tiers
	back := func(prior int) amqp.Delivery {
		return amqp.Delivery{Exchange: testTopo.Return, Headers: amqp.Table{broker.HeaderAttempt: int32(prior)}}
	}
	fresh := amqp.Delivery{Exchange: testTopo.Events}
	transient := errors.New("lock wait")
	tests := []struct {
		name string
		d    amqp.Delivery
		err  error
		want failure.Decision
	}{
		{"first failure: tier 0", fresh, transient, failure.Decision{Class: failure.Transient, Attempt: 1, Tier: 0}},
		{"second failure: tier 1", back(1), transient, failure.Decision{Class: failure.Transient, Attempt: 2, Tier: 1}},
		{"third failure: last tier repeats", back(2), transient, failure.Decision{Class: failure.Transient, Attempt: 3, Tier: 1}},
		{"fourth failure: exhausted", back(3), transient, failure.Decision{Class: failure.Transient, Attempt: 4, Parked: true, Tier: -1}},
		{"permanent at once", fresh, failure.MarkPermanent(transient), failure.Decision{Class: failure.Permanent, Attempt: 1, Parked: true, Tier: -1}},
		{"permanent late", back(2), failure.MarkPermanent(transient), failure.Decision{Class: failure.Permanent, Attempt: 3, Parked: true, Tier: -1}},
		{"outage given anyway counts as transient", fresh, models.ErrUnavailable, failure.Decision{Class: failure.Transient, Attempt: 1, Tier: 0}},
		{"replayed exhausted event starts over", amqp.Delivery{Exchange: testTopo.Replay, Headers: amqp.Table{broker.HeaderAttempt: int32(4)}}, transient, failure.Decision{Class: failure.Transient, Attempt: 1, Tier: 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := r.Decide(tt.d, tt.err); got != tt.want {
				t.Errorf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTruncateError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"short stays", "boom", 10, "boom"},
		{"exact stays", "0123456789", 10, "0123456789"},
		{"long is cut with a mark", "0123456789abc", 10, "0123456…"},
		{"never splits a rune", "ééééé", 8, "éé…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := dlq.TruncateError(tt.in, tt.max)
			if got != tt.want || len(got) > tt.max {
				t.Errorf("TruncateError(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
		})
	}
}

func TestNewRouterRejectsMismatchedTiers(t *testing.T) {
	t.Parallel()
	_, err := dlq.NewRouter(dlq.RouterConfig{
		Topology: testTopo,
		Policy:   retry.Policy{Delays: []time.Duration{time.Second}, MaxAttempts: 3},
	}, slog.New(slog.NewTextHandler(io.Discard, nil)), discardPublisher{}, nil)
	if err == nil {
		t.Fatal("NewRouter accepted a policy with fewer tiers than the topology")
	}
}

type discardPublisher struct{}

func (discardPublisher) Publish(context.Context, string, string, amqp.Publishing) error { return nil }

// brokerSetup declares a fresh namespace and returns its topology, a
// confirm publisher on its own connection and a channel to inspect queues.
func brokerSetup(t *testing.T, delays []time.Duration) (broker.Topology, *broker.Publisher, *amqp.Channel) {
	t.Helper()
	topo := testenv.Declare(t, broker.NewTopology(testenv.Namespace(t), delays, 20))
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn := broker.NewConn(broker.ConnConfig{URL: testenv.AMQPURL(), Name: t.Name() + " publisher", Topology: topo}, logger)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = conn.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := conn.Await(wctx); err != nil {
		t.Fatal(err)
	}
	ch := testenv.Channel(t)
	return topo, broker.NewPublisher(conn, 2, 5*time.Second), ch
}

// getOne waits for a message on queue and acks it.
func getOne(t *testing.T, ch *amqp.Channel, queue string) amqp.Delivery {
	t.Helper()
	var got amqp.Delivery
	testenv.Eventually(t, 5*time.Second, func() bool {
		d, ok, err := ch.Get(queue, false)
		if err != nil {
			t.Fatalf("get %s: %v", queue, err)
		}
		if ok {
			got = d
			_ = d.Ack(false)
		}
		return ok
	}, "a message in %s", queue)
	return got
}

func original(topo broker.Topology) amqp.Delivery {
	return amqp.Delivery{
		Exchange:     topo.Return,
		RoutingKey:   topo.TierName(0),
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    "evt_Case1",
		Type:         "invoice.paid",
		Timestamp:    time.Unix(1700000000, 0),
		AppId:        "billing-api",
		Body:         []byte(`{"id":"evt_Case1","type":"invoice.paid"}`),
		Headers: amqp.Table{
			broker.HeaderAttempt:       int32(1),
			broker.HeaderFirstFailedAt: "2026-01-02T03:04:05Z",
			broker.HeaderReplays:       int32(1),
			"x-death":                  []any{amqp.Table{"count": int64(1), "queue": "q"}},
			"x-first-death-queue":      "q",
			"trace-id":                 "abc",
		},
	}
}

func TestFailSchedulesInTheNextTier(t *testing.T) {
	t.Parallel()
	topo, pub, ch := brokerSetup(t, []time.Duration{time.Minute, 2 * time.Minute})
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	r := testRouter(t, topo, pub, nil, now)
	dec, err := r.Fail(context.Background(), original(topo), errors.New("db: lock wait timeout"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (failure.Decision{Class: failure.Transient, Attempt: 2, Tier: 1}); dec != want {
		t.Fatalf("decision = %+v, want %+v", dec, want)
	}
	got := getOne(t, ch, topo.TierQueue(1))
	checkProperties(t, got)
	wantHeaders := map[string]any{
		broker.HeaderAttempt:       int32(2),
		broker.HeaderReplays:       int32(1),
		broker.HeaderFirstFailedAt: "2026-01-02T03:04:05Z",
		broker.HeaderLastFailedAt:  "2026-03-04T05:06:07Z",
		broker.HeaderError:         "db: lock wait timeout",
		broker.HeaderErrorClass:    "transient",
		"trace-id":                 "abc",
	}
	checkHeaders(t, got.Headers, wantHeaders)
	if n, _ := testenv.QueueDepth(topo.DLQ); n != 0 {
		t.Errorf("DLQ holds %d messages, want 0", n)
	}
}

func TestFailParksWithTheReason(t *testing.T) {
	t.Parallel()
	topo, pub, ch := brokerSetup(t, []time.Duration{time.Minute, 2 * time.Minute})
	store := testenv.Store(t)
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	r := testRouter(t, topo, pub, store, now)
	long := strings.Repeat("x", 3000)
	dec, err := r.Fail(context.Background(), original(topo), failure.MarkPermanent(errors.New("billing: malformed event: "+long)))
	if err != nil {
		t.Fatal(err)
	}
	if !dec.Parked || dec.Class != failure.Permanent || dec.Attempt != 2 {
		t.Fatalf("decision = %+v, want parked permanent attempt 2", dec)
	}
	got := getOne(t, ch, topo.DLQ)
	checkProperties(t, got)
	errHeader, _ := got.Headers[broker.HeaderError].(string)
	if len(errHeader) > dlq.MaxErrorHeader || !strings.HasPrefix(errHeader, "billing: malformed event: xxx") {
		t.Errorf("%s = %d bytes %.40q..., want the error cut to at most %d bytes", broker.HeaderError, len(errHeader), errHeader, dlq.MaxErrorHeader)
	}
	checkHeaders(t, got.Headers, map[string]any{
		broker.HeaderAttempt:       int32(2),
		broker.HeaderReplays:       int32(1),
		broker.HeaderErrorClass:    "permanent",
		broker.HeaderFirstFailedAt: "2026-01-02T03:04:05Z",
		broker.HeaderLastFailedAt:  "2026-03-04T05:06:07Z",
		broker.HeaderParkedAt:      "2026-03-04T05:06:07Z",
		broker.HeaderSourceQueue:   topo.Work,
		broker.HeaderWorkerHost:    "worker-1",
		broker.HeaderError:         errHeader,
		"trace-id":                 "abc",
	})
	var row struct {
		Status    string
		Attempts  int
		LastError string
	}
	if err := store.DB().Raw("SELECT status, attempts, last_error FROM stripe_events WHERE id = ?", "evt_Case1").Scan(&row).Error; err != nil {
		t.Fatal(err)
	}
	if row.Status != "dead" || row.Attempts != 2 || row.LastError != errHeader {
		t.Errorf("ledger row = %s attempts %d error %.40q, want dead attempts 2 with the header's error", row.Status, row.Attempts, row.LastError)
	}
}

// A replayed event that fails again keeps its first failure time and is
// parked under its event type, not the work queue's name it came back with.
func TestFailAfterAReplay(t *testing.T) {
	t.Parallel()
	topo, pub, ch := brokerSetup(t, []time.Duration{time.Minute})
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	r := testRouter(t, topo, pub, nil, now)
	d := original(topo)
	d.Exchange, d.RoutingKey = "", topo.Work // moved back from the DLQ
	d.Headers[broker.HeaderAttempt] = int32(5)
	d.Headers[broker.HeaderParkedAt] = "2026-01-03T00:00:00Z"
	dec, err := r.Fail(context.Background(), d, failure.MarkPermanent(errors.New("still broken")))
	if err != nil || !dec.Parked || dec.Attempt != 1 {
		t.Fatalf("Fail = %+v, %v; want parked on the replay's first attempt", dec, err)
	}
	got := getOne(t, ch, topo.DLQ)
	if got.RoutingKey != "invoice.paid" {
		t.Errorf("parked with routing key %q, want the event type invoice.paid", got.RoutingKey)
	}
	if first, last := got.Headers[broker.HeaderFirstFailedAt], got.Headers[broker.HeaderLastFailedAt]; first != "2026-01-02T03:04:05Z" || last != "2026-03-04T05:06:07Z" {
		t.Errorf("first failed at %v, last %v; want the first failure before the replay kept, the last now", first, last)
	}
	if replays := got.Headers[broker.HeaderReplays]; replays != int32(2) {
		t.Errorf("%s = %#v, want 2 (one more)", broker.HeaderReplays, replays)
	}
}

func TestFailDoesNotConfirmWhatIsNotQueued(t *testing.T) {
	t.Parallel()
	topo, pub, ch := brokerSetup(t, []time.Duration{time.Minute})
	r := testRouter(t, topo, pub, nil, time.Now())
	// Without the binding the tier is unroutable: the publish is returned.
	if err := ch.QueueUnbind(topo.TierQueue(0), topo.TierName(0), topo.Retry, nil); err != nil {
		t.Fatal(err)
	}
	d := original(topo)
	d.Exchange = topo.Events
	_, err := r.Fail(context.Background(), d, errors.New("transient"))
	if !errors.Is(err, broker.ErrUnroutable) {
		t.Fatalf("Fail = %v, want ErrUnroutable", err)
	}
}

func checkProperties(t *testing.T, got amqp.Delivery) {
	t.Helper()
	want := original(testTopo)
	if got.MessageId != want.MessageId || got.Type != want.Type || got.ContentType != want.ContentType ||
		got.DeliveryMode != want.DeliveryMode || !got.Timestamp.Equal(want.Timestamp) || got.AppId != want.AppId ||
		string(got.Body) != string(want.Body) {
		t.Errorf("properties not kept: got id %q type %q ct %q mode %d ts %s app %q body %s",
			got.MessageId, got.Type, got.ContentType, got.DeliveryMode, got.Timestamp, got.AppId, got.Body)
	}
}

func checkHeaders(t *testing.T, got amqp.Table, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("header %s = %#v, want %#v", k, got[k], v)
		}
	}
	for k := range got {
		if k == "x-delivery-count" {
			continue // stamped by the quorum queue on this very delivery
		}
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected header %s = %#v (x-* must never be copied)", k, got[k])
		}
	}
}

// TestRouterKeepsOnlySignedBodies: a parked message's body goes to the
// ledger only when its forwarded signature signs it with one of the
// router's secrets, under the body's own id; an unsigned body, one signed
// with another secret or edited after signing leaves a dead row naming
// the event without a payload, and a message parked unverified leaves no
// row.
func TestRouterKeepsOnlySignedBodies(t *testing.T) {
	t.Parallel()
	topo, pub, _ := brokerSetup(t, []time.Duration{time.Minute})
	store := testenv.Store(t)
	r, err := dlq.NewRouter(dlq.RouterConfig{Topology: topo, Policy: retry.Policy{Delays: topo.Delays, MaxAttempts: 2}, Secrets: []string{testenv.WebhookSecret}},
		nil, pub, store)
	if err != nil {
		t.Fatal(err)
	}
	body := func(id string) []byte {
		return []byte(`{"id":"` + id + `","type":"invoice.paid","created":1700000000,"data":{"object":{"object":"invoice","id":"in_r"}}}`)
	}
	park := func(messageID string, b []byte, signature string, cause error) {
		t.Helper()
		d := amqp.Delivery{Exchange: topo.Events, RoutingKey: "invoice.paid", MessageId: messageID, Type: "invoice.paid", Body: b,
			Headers: amqp.Table{}}
		if signature != "" {
			d.Headers[broker.HeaderStripeSignature] = signature
		}
		if dec, err := r.Fail(context.Background(), d, cause); err != nil || !dec.Parked {
			t.Fatalf("Fail = %+v, %v; want parked", dec, err)
		}
	}
	permanent := failure.MarkPermanent(errors.New("boom"))
	now := time.Now()
	signed, claimed := "evt_RouterSigned", "evt_RouterClaimed"
	park(claimed, body(signed), testenv.Sign(body(signed), testenv.WebhookSecret, now), permanent)
	unsigned := "evt_RouterUnsigned"
	park(unsigned, body(unsigned), "", permanent)
	otherSecret := "evt_RouterOtherSecret"
	park(otherSecret, body(otherSecret), testenv.Sign(body(otherSecret), "whsec_other", now), permanent)
	edited := "evt_RouterEdited"
	park(edited, append(body(edited), ' '), testenv.Sign(body(edited), testenv.WebhookSecret, now), permanent)
	forged := "evt_RouterUnverified"
	park(forged, body(forged), "", failure.MarkUnverified(errors.New("not Stripe's")))

	row := func(id string) (models.StripeEvent, bool) {
		var ev models.StripeEvent
		err := store.DB().Where("id = ?", id).Take(&ev).Error
		return ev, err == nil
	}
	if ev, ok := row(signed); !ok || string(ev.Payload) != string(body(signed)) || len(ev.Signature) == 0 || ev.Created == nil {
		t.Errorf("signed body: row %+v (found %v); want its payload, signature and created under the body's id", ev, ok)
	}
	if _, ok := row(claimed); ok {
		t.Errorf("a row under the message's claimed id %s, want it under the signed body's", claimed)
	}
	for _, id := range []string{unsigned, otherSecret, edited} {
		if ev, ok := row(id); !ok || ev.Status != models.EventDead || ev.Payload != nil || ev.Signature != nil || ev.Created != nil || ev.ObjectID != nil {
			t.Errorf("%s: row %+v (found %v); want dead, no payload, signature, created or object", id, ev, ok)
		}
	}
	if _, ok := row(forged); ok {
		t.Errorf("a row for the message parked unverified")
	}
}
