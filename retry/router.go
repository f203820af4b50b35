package retry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/models"
)

// MaxErrorHeader bounds the billing-error header; longer messages are cut.
const MaxErrorHeader = 1024

// Ledger records a parked event in the database; *models.Store.
type Ledger interface {
	MarkDead(ctx context.Context, ev models.DeadEvent) error
}

// RouterConfig configures a Router.
type RouterConfig struct {
	Topology broker.Topology
	Policy   Policy
	// Host names the worker in billing-worker-host; default os.Hostname.
	Host string
	// Now is the clock of the failure timestamps; default time.Now.
	Now func() time.Time
	// LedgerTimeout bounds MarkDead; default 5s.
	LedgerTimeout time.Duration
}

// Router takes a failed delivery and either schedules it in a delay tier or
// parks it in the DLQ with the reason, always with a publisher confirm. It
// never acks: a nil error from Fail means the copy is safely in a queue and
// the caller may ack the original; any error means it must not.
type Router struct {
	cfg    RouterConfig
	logger *slog.Logger
	pub    Publisher
	ledger Ledger
}

// NewRouter returns a Router publishing through pub (a Publisher, declared
// in dlq.go: broker.Publisher on a connection used only for publishing). ledger may be nil
// (tests without a database); otherwise parked events are marked dead in it.
func NewRouter(cfg RouterConfig, logger *slog.Logger, pub Publisher, ledger Ledger) (*Router, error) {
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Topology.Delays) != len(cfg.Policy.Delays) {
		return nil, fmt.Errorf("retry: router: topology has %d tiers, policy %d", len(cfg.Topology.Delays), len(cfg.Policy.Delays))
	}
	if cfg.Topology.Work == "" {
		return nil, errors.New("retry: router: topology has no names")
	}
	if pub == nil {
		return nil, errors.New("retry: router: no publisher")
	}
	if cfg.Host == "" {
		cfg.Host, _ = os.Hostname()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LedgerTimeout <= 0 {
		cfg.LedgerTimeout = 5 * time.Second
	}
	if ledger != nil {
		// A typed nil pointer in the interface would panic on the first park.
		if s, ok := ledger.(*models.Store); ok && s == nil {
			ledger = nil
		}
	}
	return &Router{cfg: cfg, logger: logger, pub: pub, ledger: ledger}, nil
}

// Attempt is where a delivery stands in its retry schedule.
type Attempt struct {
	// Prior is the number of failed attempts before this delivery.
	Prior int
	// Replays counts how often a person or the sweep sent the event back
	// from the DLQ; carried along for visibility.
	Replays int
	// Replayed is true when this delivery itself is such a replay.
	Replayed bool
}

// Number is the 1-based number of the attempt this delivery is.
func (a Attempt) Number() int { return a.Prior + 1 }

// Attempt reads where d stands. The attempt header is honoured only on a
// delivery from the return exchange (it came back from a delay tier);
// anything else is a fresh start: an api publish or the UI's "Publish
// message" on the events exchange, a DLQ "Reject requeue false" through
// the replay exchange, or the UI's "Move messages" shovel through the
// default exchange. The last two are replays and count one more.
func (r *Router) Attempt(d amqp.Delivery) Attempt {
	a := Attempt{Replays: HeaderInt(d.Headers, HeaderReplays)}
	switch d.Exchange {
	case r.cfg.Topology.Return:
		a.Prior = HeaderInt(d.Headers, HeaderAttempt)
	case r.cfg.Topology.Replay, "":
		a.Replays++
		a.Replayed = true
	}
	return a
}

// Decision is what Fail did with a failed delivery.
type Decision struct {
	Class Class
	// Attempt is the number of failed attempts, this one included.
	Attempt int
	// Parked is true when the event went to the DLQ; otherwise it waits
	// in delay tier Tier.
	Parked bool
	Tier   int
}

// Decide is Fail without the side effects. Outage errors are the caller's
// to handle (pause and retry without spending an attempt); given one,
// Decide treats it as transient.
func (r *Router) Decide(d amqp.Delivery, cause error) Decision {
	n := r.Attempt(d).Number()
	class := Classify(cause)
	if class == Outage {
		class = Transient
	}
	dec := Decision{Class: class, Attempt: n, Tier: -1}
	// An exhausted event keeps the class transient, with billing-attempt =
	// MaxAttempts: every parked transient event is an exhausted one, and
	// the sweep may re-drive it; permanent ones wait for a person.
	if class == Permanent || r.cfg.Policy.Exhausted(n) {
		dec.Parked = true
		return dec
	}
	dec.Tier = r.cfg.Policy.Tier(n)
	return dec
}

// Fail schedules d in its next delay tier or parks it in the DLQ, as
// Decide says, and returns once the broker confirmed the copy. On an error
// nothing was confirmed and d must not be acked.
func (r *Router) Fail(ctx context.Context, d amqp.Delivery, cause error) (Decision, error) {
	dec := r.Decide(d, cause)
	now := r.cfg.Now().UTC()
	a := r.Attempt(d)
	msg := amqp.Publishing{
		Headers:         carryHeaders(d.Headers),
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    d.DeliveryMode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
	if msg.DeliveryMode == 0 {
		msg.DeliveryMode = amqp.Persistent
	}
	h := msg.Headers
	h[HeaderAttempt] = int32(dec.Attempt)
	if a.Replays > 0 {
		h[HeaderReplays] = int32(a.Replays)
	}
	first := now
	if a.Prior > 0 {
		if t, err := time.Parse(time.RFC3339Nano, headerString(d.Headers, HeaderFirstFailedAt)); err == nil {
			first = t
		}
	}
	h[HeaderFirstFailedAt] = first.Format(time.RFC3339Nano)
	h[HeaderLastFailedAt] = now.Format(time.RFC3339Nano)
	h[HeaderError] = TruncateError(cause.Error(), MaxErrorHeader)
	h[HeaderErrorClass] = string(dec.Class)

	key := d.RoutingKey
	if !dec.Parked {
		key = r.cfg.Topology.TierName(dec.Tier)
		if err := r.pub.Publish(ctx, r.cfg.Topology.Retry, key, msg); err != nil {
			return dec, fmt.Errorf("retry: schedule %s in tier %s: %w", d.MessageId, key, err)
		}
		return dec, nil
	}
	h[HeaderSourceQueue] = r.cfg.Topology.Work
	h[HeaderWorkerHost] = r.cfg.Host
	h[HeaderParkedAt] = now.Format(time.RFC3339Nano)
	if err := r.pub.Publish(ctx, r.cfg.Topology.Dead, key, msg); err != nil {
		return dec, fmt.Errorf("retry: park %s: %w", d.MessageId, err)
	}
	r.markDead(ctx, d, dec, h[HeaderError].(string))
	return dec, nil
}

// markDead records the parking in the ledger, best effort: the DLQ holds
// the event whatever the database says.
func (r *Router) markDead(ctx context.Context, d amqp.Delivery, dec Decision, reason string) {
	if r.ledger == nil {
		return
	}
	id, typ := EventIdentity(d.MessageId, d.Type, d.Body)
	if id == "" {
		return // nothing to key a ledger row on; the DLQ headers say why
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.LedgerTimeout)
	defer cancel()
	err := r.ledger.MarkDead(ctx, models.DeadEvent{
		ID: id, Type: typ, Payload: d.Body, Attempts: dec.Attempt, LastError: reason,
	})
	if err != nil {
		r.logger.Warn("parked event not marked dead in the ledger", "event_id", id, "event_type", typ, "error", err)
	}
}

// EventIdentity returns a message's Stripe event id and type: from the
// message properties when set, else from the JSON body when it parses.
func EventIdentity(messageID, typ string, body []byte) (id, eventType string) {
	id, eventType = messageID, typ
	if id != "" && eventType != "" {
		return id, eventType
	}
	var ev struct {
		ID   string `json:"id"`
		Type string `json:"type"`
	}
	if json.Unmarshal(body, &ev) == nil {
		if id == "" {
			id = ev.ID
		}
		if eventType == "" {
			eventType = ev.Type
		}
	}
	return id, eventType
}

// carryHeaders copies the headers a republished message keeps: none of
// RabbitMQ's x-* (x-death above all: copied, it makes dead-letter cycle
// detection drop the message the second time it passes a tier) and none of
// our per-failure ones, which Fail sets afresh.
func carryHeaders(in amqp.Table) amqp.Table {
	out := amqp.Table{}
	for k, v := range in {
		if strings.HasPrefix(strings.ToLower(k), "x-") {
			continue
		}
		switch k {
		case HeaderAttempt, HeaderReplays, HeaderError, HeaderErrorClass, HeaderFirstFailedAt,
			HeaderLastFailedAt, HeaderSourceQueue, HeaderWorkerHost, HeaderParkedAt:
			continue
		}
		out[k] = v
	}
	return out
}

// TruncateError cuts s to at most max bytes on a UTF-8 boundary, marking
// the cut with "…".
func TruncateError(s string, max int) string {
	if len(s) <= max {
		return s
	}
	const mark = "…"
	cut := max - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// HeaderInt reads an integer header whatever its AMQP type: the broker,
// the management UI ("Publish message" sends strings) and other clients
// encode numbers differently. Missing or unreadable means 0.
func HeaderInt(h amqp.Table, key string) int {
	switch v := h[key].(type) {
	case int:
		return v
	case int8:
		return int(v)
	case int16:
		return int(v)
	case int32:
		return int(v)
	case int64:
		return int(v)
	case uint8:
		return int(v)
	case uint16:
		return int(v)
	case uint32:
		return int(v)
	case uint64:
		return int(v)
	case float32:
		return int(v)
	case float64:
		return int(v)
	case string:
		n, _ := strconv.Atoi(strings.TrimSpace(v))
		return n
	case []byte:
		n, _ := strconv.Atoi(strings.TrimSpace(string(v)))
		return n
	}
	return 0
}
