// Package verify owns what the system trusts as Stripe's. An event is
// Stripe's when its body is signed with one of our webhook secrets (the
// Stripe-Signature header, checked by stripe-go) or when it is Stripe's
// own copy, fetched from the Events API by id; either way its envelope,
// read once (ReadEnvelope), must have the form Stripe gives it
// (CheckEvent), and it is handed on with the body (Event), so that
// nothing after reads the envelope again.
//
// The api refuses anything else with a 400. The worker checks every
// message again with a Verifier: whatever reached the broker another way
// than through the api (the management UI's "Publish message", a leaked
// password, reconciliation) proves nothing by being there.
package verify

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/failure"
)

// DefaultTolerance is how far an event's created time (and, at the api, a
// signature's timestamp) may lie in the future: clocks differ a little.
const DefaultTolerance = 5 * time.Minute

// DefaultMaxBodyBytes is the largest event body the api accepts and the
// worker reads (WEBHOOK_MAX_BODY_BYTES). Stripe publishes no limit; real
// invoices exceed 64 KiB.
const DefaultMaxBodyBytes = 1 << 20

// Errors of an event's form; the api answers each with a 400 and its text.
var (
	ErrBadID           = errors.New("event id is not a Stripe event id (evt_ then letters, digits or _, at most 255 bytes)")
	ErrBadType         = errors.New("event type is not a Stripe event type (lower-case letters, digits, _ or ., at most 255 bytes)")
	ErrFutureCreated   = errors.New("event created more than the tolerance in the future")
	ErrFutureSignature = errors.New("signature timestamp more than the tolerance in the future")
	ErrBadAccount      = errors.New("account is not a Stripe account id (acct_ then letters or digits, at most 255 bytes)")
	errNoAPIKey        = errors.New("no valid signature, and no Stripe API key to fetch the event from Stripe")
	errUnknownEvent    = errors.New("no valid signature, and Stripe does not know the event")
	errCopyDisagrees   = errors.New("Stripe's copy of the event has another id")
)

// CheckEvent is the one check of an event, the api's and the worker's:
// its form (CheckForm) and its created at most tolerance after now
// (ErrFutureCreated).
func CheckEvent(env Envelope, now time.Time, tolerance time.Duration) error {
	if err := CheckForm(env); err != nil {
		return err
	}
	return Created(time.Unix(env.Created, 0), now, tolerance)
}

// CheckForm checks an event's form: env is Stripe's event when it has
// object "event", an id, a type, a positive created and a data.object
// that is a JSON object (else ErrNotEvent, with what is missing), and an
// id and type of Stripe's forms (Form).
func CheckForm(env Envelope) error {
	var missing string
	switch {
	case env.Kind != "event":
		missing = `object "event"`
	case env.ID == "":
		missing = "id"
	case env.Type == "":
		missing = "type"
	case env.Created <= 0:
		missing = "created"
	case len(env.Object) == 0 || env.Object[0] != '{':
		missing = "data.object"
	}
	if missing != "" {
		return fmt.Errorf("%w: no %s", ErrNotEvent, missing)
	}
	return Form(env.ID, env.Type)
}

// Form checks an event's id and type.
func Form(id, eventType string) error {
	if !validID(id) {
		return ErrBadID
	}
	if !validType(eventType) {
		return ErrBadType
	}
	return nil
}

// Stripe's forms of an event id and type: evt_ then 1 to 251 ASCII
// letters, digits or _, and 1 to 255 lower-case ASCII letters, digits, _
// or dots. Both become AMQP short strings (message id, type, routing key)
// of at most 255 bytes. Checked byte by byte: the api checks every
// webhook, and the two regular expressions this replaces cost it more
// than the rest of reading the event's fields.
func validID(id string) bool {
	rest, ok := strings.CutPrefix(id, "evt_")
	if !ok || len(rest) == 0 || len(rest) > 251 {
		return false
	}
	for i := range len(rest) {
		if c := rest[i]; !isLower(c) && !isDigitOrUnderscore(c) && !('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func validType(t string) bool {
	if len(t) == 0 || len(t) > 255 {
		return false
	}
	for i := range len(t) {
		if c := t[i]; !isLower(c) && !isDigitOrUnderscore(c) && c != '.' {
			return false
		}
	}
	return true
}

// ValidAccount says whether account has the form of a Stripe account id:
// acct_ then ASCII letters or digits. Only such an account is ever sent
// to Stripe as the Stripe-Account header of a fetch.
func ValidAccount(account string) bool {
	rest, ok := strings.CutPrefix(account, "acct_")
	if !ok || len(rest) == 0 || len(rest) > 250 {
		return false
	}
	for i := range len(rest) {
		if c := rest[i]; !isLower(c) && !('0' <= c && c <= '9') && !('A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

func isLower(c byte) bool             { return 'a' <= c && c <= 'z' }
func isDigitOrUnderscore(c byte) bool { return '0' <= c && c <= '9' || c == '_' }

// Created checks that created lies at most tolerance after now.
func Created(created, now time.Time, tolerance time.Duration) error {
	if created.After(now.Add(tolerance)) {
		return ErrFutureCreated
	}
	return nil
}

// Signature checks that header signs body with any of secrets; stripe-go's
// webhook errors (ErrNotSigned, ErrInvalidHeader, ErrNoValidSignature,
// ErrTooOld) say why not. With a tolerance, as the api checks, a
// signature older than tolerance or more than tolerance after now is
// refused (ErrFutureSignature). A zero tolerance ignores the timestamp, as
// the worker does: an event replayed from the DLQ days later is still
// Stripe's, and the ledger stops it from applying twice.
func Signature(body []byte, header string, secrets []string, tolerance time.Duration, now time.Time) error {
	err := webhook.ErrNoValidSignature
	for _, secret := range secrets {
		if tolerance > 0 {
			err = webhook.ValidatePayloadWithTolerance(body, header, secret, tolerance)
		} else {
			err = webhook.ValidatePayloadIgnoringTolerance(body, header, secret)
		}
		if !errors.Is(err, webhook.ErrNoValidSignature) {
			break // accepted, or a header no secret can accept
		}
	}
	if err != nil || tolerance <= 0 {
		return err
	}
	if t, ok := Timestamp(header); ok && t.After(now.Add(tolerance)) {
		return ErrFutureSignature
	}
	return nil
}

// Timestamp reads the t= of a Stripe-Signature header; false when it has
// none that parses (stripe-go reads a missing one as 1970).
func Timestamp(header string) (time.Time, bool) {
	for part := range strings.SplitSeq(header, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "t="); ok {
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				return time.Unix(n, 0), true
			}
		}
	}
	return time.Time{}, false
}

// Reason says why the worker did not trust a message: the reason label of
// billing_events_unverified_total and the start of the DLQ's billing-error.
type Reason string

// Reasons of Error.
const (
	BadID         Reason = "bad_id"
	BadType       Reason = "bad_type"
	FutureCreated Reason = "future_created"
	// BadAccount: not signed by our secrets, and the account it claims is
	// not of Stripe's form: never sent to Stripe.
	BadAccount Reason = "bad_account"
	// NoAPIKey: not signed by our secrets, and no key to ask Stripe.
	NoAPIKey Reason = "no_api_key"
	// UnknownEvent: not signed by our secrets, and Stripe answered 400,
	// 403 or 404 for the id on the account claimed.
	UnknownEvent Reason = "unknown_event"
	// Malformed: the body is over the size cap, not JSON read one way
	// (ReadEnvelope), or no event (ErrNotEvent); or Stripe's copy is not
	// the event asked for.
	Malformed Reason = "malformed"
)

// Error is a message the worker does not trust. It is always marked
// failure.Unverified: parked at once and never re-driven by the sweep.
type Error struct {
	ID     string // as the message claims it, quoted and cut in Error
	Reason Reason
	Err    error
}

func (e *Error) Error() string {
	id := e.ID
	if len(id) > 64 {
		id = id[:64] + "..."
	}
	return fmt.Sprintf("verify: %s: event %q not trusted: %v", e.Reason, id, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func unverified(id string, reason Reason, err error) error {
	return failure.MarkUnverified(&Error{ID: id, Reason: reason, Err: err})
}

// ReasonOf returns the Reason of an error from Verify; "" for any other.
func ReasonOf(err error) Reason {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Reason
	}
	return ""
}

// Fetcher gets an event from Stripe's Events API: reconcile.Fetcher.
type Fetcher interface {
	// FetchEvent returns the event's JSON as Stripe serves it; account,
	// when set, is the Connect account to look in. An error marked
	// failure.Unverified means Stripe does not know the id on that
	// account; any other is worth trying again later (Stripe unreachable,
	// rate limited).
	FetchEvent(ctx context.Context, id, account string) ([]byte, error)
}

// Config configures a Verifier.
type Config struct {
	// Secrets are the webhook signing secrets, as the api's. At least one.
	Secrets []string
	// Tolerance is how far created may lie in the future; default
	// DefaultTolerance.
	Tolerance time.Duration
	// MaxBodyBytes: a larger body is Malformed before anything reads it,
	// as the api refuses it; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Fetcher gets the events that carry no valid signature; nil (no
	// Stripe API key) leaves them unverified.
	Fetcher Fetcher
	// Now is the clock created is checked against; default time.Now.
	Now func() time.Time
}

// Verifier tells the worker which event to apply for a message: its own
// body when Stripe signed it, else Stripe's copy fetched by id.
type Verifier struct {
	cfg Config
}

// New checks cfg and returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("verify: at least one webhook secret is required")
	}
	if cfg.Tolerance <= 0 {
		cfg.Tolerance = DefaultTolerance
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Verifier{cfg: cfg}, nil
}

// Readable reports whether body is within the size cap: a larger one is
// read by nothing, not even for the id it claims.
func (v *Verifier) Readable(body []byte) bool { return int64(len(body)) <= v.cfg.MaxBodyBytes }

// Message is a message as the worker received it.
type Message struct {
	// ID and Type are what the message claims (its properties, else its
	// body); ID is what a fetch asks Stripe for.
	ID, Type  string
	Body      []byte
	Signature string // the forwarded Stripe-Signature header; may be empty
}

// Event is what the worker may apply: a body Stripe signed or Stripe's
// copy, and its Envelope, read once here for everything after.
type Event struct {
	Envelope // of Body, of Stripe's form (CheckEvent)
	// Body is the message's own body when it is signed, else Stripe's copy.
	Body []byte
	// Signature is the Stripe-Signature that signs Body; "" when Fetched.
	Signature string
	// Fetched is true when Body is Stripe's copy.
	Fetched bool
}

// Verify returns the event to apply for m. Every body is first read as
// the api reads it (size cap, ReadEnvelope), signed or not: one that
// fails is Malformed before any decoder runs or Stripe is asked. A body
// signed with one of our secrets (any age) is applied as it is. Anything
// else (no signature, a secret rotated out, a body edited by hand) is
// applied only as Stripe's own copy, fetched by the id m claims; the rest
// of m's body is ignored. An error marked failure.Unverified (an *Error)
// when neither holds or the event's form is wrong; any other error
// (Stripe unreachable) is transient.
func (v *Verifier) Verify(ctx context.Context, m Message) (Event, error) {
	claimed, err := v.read(m.Body)
	if err != nil {
		return Event{}, unverified(m.ID, Malformed, err)
	}
	if m.Signature != "" && Signature(m.Body, m.Signature, v.cfg.Secrets, 0, time.Time{}) == nil {
		return v.event(m.Body, m.Signature, claimed)
	}
	if !validID(m.ID) {
		return Event{}, unverified(m.ID, BadID, ErrBadID) // never ask Stripe for garbage
	}
	if v.cfg.Fetcher == nil {
		return Event{}, unverified(m.ID, NoAPIKey, errNoAPIKey)
	}
	if claimed.Account != "" && !ValidAccount(claimed.Account) {
		return Event{}, unverified(m.ID, BadAccount, ErrBadAccount) // never a header of ours
	}
	body, err := v.cfg.Fetcher.FetchEvent(ctx, m.ID, claimed.Account) // the account only scopes the lookup
	switch {
	case failure.Of(err) == failure.Unverified:
		return Event{}, unverified(m.ID, UnknownEvent, fmt.Errorf("%w: %w", errUnknownEvent, err))
	case err != nil:
		return Event{}, fmt.Errorf("verify: fetch event %s from Stripe: %w", m.ID, err)
	}
	copied, err := v.read(body)
	switch {
	case err != nil:
		return Event{}, unverified(m.ID, Malformed, fmt.Errorf("Stripe's copy: %w", err))
	case copied.ID != m.ID:
		return Event{}, unverified(m.ID, Malformed, errCopyDisagrees)
	}
	return v.event(body, "", copied)
}

// read checks body's size and reads its envelope.
func (v *Verifier) read(body []byte) (Envelope, error) {
	if !v.Readable(body) {
		return Envelope{}, fmt.Errorf("%w: %d bytes, over the cap of %d", ErrMalformed, len(body), v.cfg.MaxBodyBytes)
	}
	return ReadEnvelope(body)
}

// event checks the form of a trusted body and its envelope env: a body
// that is no event is Malformed, whoever signed it. signature signs body;
// "" for Stripe's copy.
func (v *Verifier) event(body []byte, signature string, env Envelope) (Event, error) {
	switch err := CheckEvent(env, v.cfg.Now(), v.cfg.Tolerance); {
	case err == nil:
		return Event{Envelope: env, Body: body, Signature: signature, Fetched: signature == ""}, nil
	case errors.Is(err, ErrBadID):
		return Event{}, unverified(env.ID, BadID, err)
	case errors.Is(err, ErrBadType):
		return Event{}, unverified(env.ID, BadType, err)
	case errors.Is(err, ErrFutureCreated):
		return Event{}, unverified(env.ID, FutureCreated, err)
	default:
		return Event{}, unverified(env.ID, Malformed, err)
	}
}
