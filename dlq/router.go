package dlq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/retry"
	"github.com/stripe-billing/billing/verify"
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
	Policy   retry.Policy
	// Host names the worker in billing-worker-host; default os.Hostname.
	Host string
	// Now is the clock of the failure timestamps; default time.Now.
	Now func() time.Time
	// LedgerTimeout bounds MarkDead; default 5s.
	LedgerTimeout time.Duration
	// Secrets are the webhook secrets, as the worker's: a parked message's
	// body goes to the ledger only when its forwarded Stripe-Signature
	// signs it with one of them. None: no body goes.
	Secrets []string
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
// A nil logger discards.
func NewRouter(cfg RouterConfig, logger *slog.Logger, pub Publisher, ledger Ledger) (*Router, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Policy.Validate(); err != nil {
		return nil, err
	}
	if len(cfg.Topology.Delays) != len(cfg.Policy.Delays) {
		return nil, fmt.Errorf("dlq: router: topology has %d tiers, policy %d", len(cfg.Topology.Delays), len(cfg.Policy.Delays))
	}
	if cfg.Topology.Work == "" {
		return nil, errors.New("dlq: router: topology has no names")
	}
	if pub == nil {
		return nil, errors.New("dlq: router: no publisher")
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

// Attempt reads where d stands in its retry schedule (broker.ReadAttempt).
func (r *Router) Attempt(d amqp.Delivery) broker.Attempt {
	return broker.ReadAttempt(d, r.cfg.Topology)
}

// Decide is Fail without the side effects: failure.Decide on the class of
// cause at d's attempt. Outage errors are the caller's to handle (pause
// and retry without spending an attempt); given one, Decide treats it as
// transient.
func (r *Router) Decide(d amqp.Delivery, cause error) failure.Decision {
	return failure.Decide(failure.Of(cause), r.Attempt(d).Number(), r.cfg.Policy)
}

// Fail schedules d in its next delay tier or parks it in the DLQ, as
// Decide says, and returns once the broker confirmed the copy. On an error
// nothing was confirmed and d must not be acked.
func (r *Router) Fail(ctx context.Context, d amqp.Delivery, cause error) (failure.Decision, error) {
	dec := r.Decide(d, cause)
	now := r.cfg.Now().UTC()
	a := r.Attempt(d)
	msg := broker.RetryCopy(d)
	h := msg.Headers
	h[broker.HeaderAttempt] = int32(dec.Attempt)
	if a.Replays > 0 {
		h[broker.HeaderReplays] = int32(a.Replays)
	}
	// The first failure survives retries and replays alike: a replay is a
	// fresh attempt, but the event has been failing since then.
	first := now
	if t, err := time.Parse(time.RFC3339Nano, broker.HeaderString(d.Headers, broker.HeaderFirstFailedAt)); err == nil {
		first = t
	}
	h[broker.HeaderFirstFailedAt] = first.Format(time.RFC3339Nano)
	h[broker.HeaderLastFailedAt] = now.Format(time.RFC3339Nano)
	h[broker.HeaderError] = TruncateError(cause.Error(), MaxErrorHeader)
	h[broker.HeaderErrorClass] = string(dec.Class)

	// Parked under the event type, the api's routing key: a replay through
	// the default exchange ("Move messages") arrives keyed by the work
	// queue's name, which a person copying the key into
	// "Publish message" must not find on the parked message.
	key := d.Type
	if key == "" {
		key = d.RoutingKey
	}
	if !dec.Parked {
		key = r.cfg.Topology.TierName(dec.Tier)
		if err := r.pub.Publish(ctx, r.cfg.Topology.Retry, key, msg); err != nil {
			return dec, fmt.Errorf("dlq: schedule %s in tier %s: %w", d.MessageId, key, err)
		}
		return dec, nil
	}
	h[broker.HeaderSourceQueue] = r.cfg.Topology.Work
	h[broker.HeaderWorkerHost] = r.cfg.Host
	h[broker.HeaderParkedAt] = now.Format(time.RFC3339Nano)
	if err := r.pub.Publish(ctx, r.cfg.Topology.Dead, key, msg); err != nil {
		return dec, fmt.Errorf("dlq: park %s: %w", d.MessageId, err)
	}
	r.markDead(ctx, d, dec, h[broker.HeaderError].(string))
	return dec, nil
}

// markDead records the parking in the ledger, best effort: the DLQ holds
// the event whatever the database says. The body goes with it only when
// the forwarded Stripe-Signature signs it (any age, as the worker
// checks), keyed by the body's own id: the ledger holds a payload only
// once it is verified. A message parked for another reason than being
// unverified (Stripe unreachable while the worker tried to fetch its
// copy, or a copy fetched from Stripe that then failed) leaves a row
// naming the event without a payload, which `billing reprocess`, a
// takeover and reconciliation ignore (docs/design.md). A message found
// unverified leaves no row at all: a flood of forgeries writes nothing.
func (r *Router) markDead(ctx context.Context, d amqp.Delivery, dec failure.Decision, reason string) {
	if r.ledger == nil || dec.Class == failure.Unverified {
		return
	}
	ev := models.DeadEvent{Attempts: dec.Attempt, LastError: reason}
	ev.ID, ev.Type = broker.Identity(d.MessageId, d.Type, d.Body)
	sig := broker.HeaderString(d.Headers, broker.HeaderStripeSignature)
	if len(sig) <= models.MaxSignature && verify.Signature(d.Body, sig, r.cfg.Secrets, 0, time.Time{}) == nil {
		if id, typ := broker.Identity("", "", d.Body); id != "" {
			ev.ID, ev.Type, ev.Payload, ev.Signature = id, typ, d.Body, sig
		}
	}
	switch err := verify.Form(ev.ID, ev.Type); {
	case errors.Is(err, verify.ErrBadID):
		return // no Stripe event id to key a row on; the DLQ headers say why
	case err != nil:
		ev.Type = "" // not a Stripe event type: the row names the event by its id
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.LedgerTimeout)
	defer cancel()
	if err := r.ledger.MarkDead(ctx, ev); err != nil {
		r.logger.Warn("parked event not marked dead in the ledger", "event_id", ev.ID, "event_type", ev.Type, "error", err)
	}
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
