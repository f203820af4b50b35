package broker

// The message contract, in one place: how an event message is built, how
// it is copied for a retry or a replay, how its identity and origin are
// read, and the names of our headers.

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Headers of our own on retried and parked messages. None has the x- prefix:
// RabbitMQ owns those, and copying x-death into a republished message makes
// dead-letter cycle detection drop it silently.
const (
	// HeaderAttempt is the number of failed attempts so far. It is honoured
	// only on a delivery that came back from a delay tier.
	HeaderAttempt = "billing-attempt"
	// HeaderReplays counts how often a parked event was sent back by a
	// person or the sweep.
	HeaderReplays = "billing-replays"
	// HeaderRedrives counts the sweep's automatic re-drives of a parked event.
	HeaderRedrives = "billing-redrives"
	// HeaderReplaySource says who sent a parked event back through the
	// replay exchange: ReplaySourceCLI or ReplaySourceSweep; absent for
	// the UI's "Reject requeue false". A failure drops it, so a later
	// reject of the parked copy is not taken for the CLI's.
	HeaderReplaySource = "billing-replay-source"

	// The reason a message was parked in the DLQ.
	HeaderError         = "billing-error"
	HeaderErrorClass    = "billing-error-class"
	HeaderFirstFailedAt = "billing-first-failed-at" // RFC 3339, UTC
	HeaderLastFailedAt  = "billing-last-failed-at"  // RFC 3339, UTC
	HeaderSourceQueue   = "billing-source-queue"
	HeaderWorkerHost    = "billing-worker-host"
	HeaderParkedAt      = "billing-parked-at" // RFC 3339, UTC
)

// HeaderStripeSignature carries the Stripe-Signature header the api
// received with the event, unchanged: the worker checks it again against
// the body before applying the event. Retry and replay copies keep it, so
// an event replayed days later still proves it came from Stripe.
const HeaderStripeSignature = "stripe-signature"

// failureHeaders are the headers each failure writes afresh: a retry copy
// drops them, a replay copy keeps them (they say why it was parked).
var failureHeaders = []string{
	HeaderAttempt, HeaderReplays, HeaderReplaySource, HeaderError, HeaderErrorClass, HeaderFirstFailedAt,
	HeaderLastFailedAt, HeaderSourceQueue, HeaderWorkerHost, HeaderParkedAt,
}

// NewEvent is the message of one Stripe event, as the api publishes it and
// reconciliation enqueues it: persistent JSON, the event id as message id
// and its type as message type (the routing key is the type too). body is
// the event as Stripe sent it: re-encoding it would break its signature,
// which travels as header HeaderStripeSignature when there is one
// (reconciliation's events have none: the worker fetches them again).
func NewEvent(id, eventType string, body []byte, signature, appID string, at time.Time) amqp.Publishing {
	var h amqp.Table
	if signature != "" {
		h = amqp.Table{HeaderStripeSignature: signature}
	}
	return amqp.Publishing{
		Headers:      h,
		ContentType:  "application/json",
		DeliveryMode: amqp.Persistent,
		MessageId:    id,
		Type:         eventType,
		Timestamp:    at,
		AppId:        appID,
		Body:         body,
	}
}

// RetryCopy is the message a failed delivery is republished as, to a delay
// tier or the DLQ: the copy of d (see copyOf) without our per-failure
// headers, which the router sets afresh.
func RetryCopy(d amqp.Delivery) amqp.Publishing {
	return copyOf(d, failureHeaders...)
}

// ReplayCopy is the message a replay publishes for a parked delivery: a
// fresh attempt. The copy of d (see copyOf) keeps our headers, the reason
// it was parked included; billing-redrives is incremented for the sweep's
// re-drives.
//
// billing-replays is not incremented here: the copy goes through the
// replay exchange, as the management UI's "Reject requeue false" does, and
// the consumer counts every delivery from the default or the replay
// exchange as one more replay (see ReadAttempt). Counting in one place
// keeps the count right whichever way the event was sent back.
func ReplayCopy(d amqp.Delivery, redrive bool) amqp.Publishing {
	msg := copyOf(d)
	msg.Headers[HeaderReplaySource] = ReplaySourceCLI
	if redrive {
		msg.Headers[HeaderRedrives] = int64(HeaderInt(d.Headers, HeaderRedrives) + 1)
		msg.Headers[HeaderReplaySource] = ReplaySourceSweep
	}
	return msg
}

// Values of HeaderReplaySource.
const (
	ReplaySourceCLI   = "cli"
	ReplaySourceSweep = "sweep"
)

// copyOf republishes d: body and the properties of an event kept, the
// delivery mode persistent unless d said otherwise, and every header but
// RabbitMQ's x-* ones and those named in drop. x-death above all must go:
// copied, it makes dead-letter cycle detection drop the message the
// second time it passes a queue. user-id and expiration are not kept: the
// broker refuses a user-id other than the publishing connection's, and an
// expiration would let a retried or replayed event expire on its way.
func copyOf(d amqp.Delivery, drop ...string) amqp.Publishing {
	h := amqp.Table{}
	for k, v := range d.Headers {
		if strings.HasPrefix(strings.ToLower(k), "x-") || slices.Contains(drop, k) {
			continue
		}
		h[k] = v
	}
	mode := d.DeliveryMode
	if mode == 0 {
		mode = amqp.Persistent
	}
	return amqp.Publishing{
		Headers:         h,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    mode,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}

// Identity returns a message's Stripe event id and type: from the message
// properties when set, else from the JSON body when it parses (a message
// published by hand).
func Identity(messageID, messageType string, body []byte) (id, eventType string) {
	id, eventType = messageID, messageType
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

// Origin is the way a delivery reached the work queue, told by the
// exchange it was delivered from.
type Origin string

const (
	// Fresh: through the events exchange (the api, reconciliation, or the
	// UI's "Publish message" on that exchange).
	Fresh Origin = "fresh"
	// Retried: back from a delay tier through the return exchange.
	Retried Origin = "retry"
	// Rejected: a replay through the DLQ's own dead-letter exchange (the
	// UI's "Get messages, Reject requeue false").
	Rejected Origin = "reject"
	// Moved: a replay through the default exchange straight into the work
	// queue (the UI's "Move messages").
	Moved Origin = "move"
	// ReplayedByCLI: `billing dlq replay`, through the replay exchange.
	ReplayedByCLI Origin = ReplaySourceCLI
	// Redriven: the sweep's re-drive, through the replay exchange.
	Redriven Origin = ReplaySourceSweep
	// DeadLettered: the broker itself dead-lettered the parked message
	// through the DLQ's dead-letter exchange, no person involved: a
	// delivery limit on the DLQ (RabbitMQ 4 gives quorum queues one of 20
	// by default; each look raises the count), a TTL or a length limit a
	// policy set. x-death says which (Attempt.DeathReason).
	DeadLettered Origin = "dead_letter"
)

// Origins lists every origin that is a replay, in the order metrics and
// docs show them.
var Origins = []Origin{Moved, Rejected, ReplayedByCLI, Redriven, DeadLettered}

// OriginOf tells where d came from in topology t, and for a message the
// broker dead-lettered out of the DLQ, why (x-death's reason).
func OriginOf(d amqp.Delivery, t Topology) (Origin, string) {
	switch d.Exchange {
	case t.Return:
		return Retried, ""
	case t.Replay:
		// `billing dlq replay` and the sweep publish here and say so; a
		// person's "Reject requeue false" dead-letters with reason
		// rejected; anything else is the broker's own doing.
		switch HeaderString(d.Headers, HeaderReplaySource) {
		case ReplaySourceCLI:
			return ReplayedByCLI, ""
		case ReplaySourceSweep:
			return Redriven, ""
		}
		if reason := deathReason(d.Headers, t.DLQ); reason != "" && reason != "rejected" {
			return DeadLettered, reason
		}
		return Rejected, ""
	case "":
		return Moved, ""
	}
	return Fresh, ""
}

// deathReason is the reason of the newest x-death entry, when it is
// queue's (RabbitMQ keeps the newest first); "" when there is none.
func deathReason(h amqp.Table, queue string) string {
	deaths, _ := h["x-death"].([]any)
	if len(deaths) == 0 {
		return ""
	}
	death, _ := deaths[0].(amqp.Table)
	if q, _ := death["queue"].(string); q != queue {
		return ""
	}
	reason, _ := death["reason"].(string)
	return reason
}

// Replay reports whether the origin is a replay from the DLQ.
func (o Origin) Replay() bool { return slices.Contains(Origins, o) }

// Attempt is where a delivery stands in its retry schedule.
type Attempt struct {
	Origin Origin
	// DeathReason is x-death's reason when the broker dead-lettered the
	// message out of the DLQ (Origin DeadLettered): delivery_limit,
	// expired or maxlen.
	DeathReason string
	// Prior is the number of failed attempts before this delivery.
	Prior int
	// Replays counts how often a person or the sweep sent the event back
	// from the DLQ, this delivery included when it is such a replay.
	Replays int
}

// Number is the 1-based number of the attempt this delivery is.
func (a Attempt) Number() int { return a.Prior + 1 }

// ReadAttempt reads where d stands in topology t. The attempt header is
// honoured only on a delivery back from a delay tier; anything else is a
// fresh start, and a replay counts one more.
func ReadAttempt(d amqp.Delivery, t Topology) Attempt {
	origin, reason := OriginOf(d, t)
	a := Attempt{Origin: origin, DeathReason: reason, Replays: HeaderInt(d.Headers, HeaderReplays)}
	switch {
	case a.Origin == Retried:
		a.Prior = HeaderInt(d.Headers, HeaderAttempt)
	case a.Origin.Replay():
		a.Replays++
	}
	return a
}

// HeaderInt reads a count header whatever its AMQP type: the broker,
// the management UI ("Publish message" sends strings) and other clients
// encode numbers differently. Missing, unreadable, negative or above
// math.MaxInt32 means 0: no count of ours, and a forged one cannot make
// an attempt number negative or overflow it.
func HeaderInt(h amqp.Table, key string) int {
	var n int64
	switch v := h[key].(type) {
	case int:
		n = int64(v)
	case int8:
		n = int64(v)
	case int16:
		n = int64(v)
	case int32:
		n = int64(v)
	case int64:
		n = v
	case uint8:
		n = int64(v)
	case uint16:
		n = int64(v)
	case uint32:
		n = int64(v)
	case uint64:
		n = int64(min(v, math.MaxInt32+1))
	case float32:
		n = floatCount(float64(v))
	case float64:
		n = floatCount(v)
	case string:
		n, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	case []byte:
		n, _ = strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
	}
	if n < 0 || n > math.MaxInt32 {
		return 0
	}
	return int(n)
}

// floatCount is v truncated, or -1 when it is no number or out of a
// count's range (Go leaves converting those to an integer undefined).
func floatCount(v float64) int64 {
	if !(v >= 0 && v <= math.MaxInt32) { // NaN fails both
		return -1
	}
	return int64(v)
}

// HeaderString reads a text header; missing or of another type means "".
func HeaderString(h amqp.Table, key string) string {
	switch v := h[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

// HeaderTime reads a timestamp header, an AMQP timestamp or RFC 3339 text;
// missing or unreadable means the zero time.
func HeaderTime(h amqp.Table, key string) time.Time {
	switch v := h[key].(type) {
	case time.Time:
		return v
	case string:
		t, _ := time.Parse(time.RFC3339Nano, v)
		return t
	case []byte:
		t, _ := time.Parse(time.RFC3339Nano, string(v))
		return t
	}
	return time.Time{}
}
