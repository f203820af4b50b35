package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/verify"
)

// AppID is the AppId of every message the api publishes.
const AppID = "billing-api"

// result is what a route did, for the request's log line and the observer.
type result struct {
	code      int
	outcome   string
	eventID   string
	eventType string
	cause     error // internal detail: logged, never sent
	// bodyUnread is true until the route has read the whole body: an
	// answer then closes the connection (see fail).
	bodyUnread bool
}

// routeFunc answers a request and records what it did in res, as it
// goes: a panic keeps what was recorded before it.
type routeFunc func(w http.ResponseWriter, r *http.Request, res *result)

// routes is the one table of endpoints.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/webhooks/stripe", s.route("webhook", slog.LevelInfo, []string{http.MethodPost}, s.webhook))
	mux.Handle("/healthz", s.route("healthz", slog.LevelDebug, []string{http.MethodGet, http.MethodHead}, s.healthz))
	mux.Handle("/readyz", s.route("readyz", slog.LevelDebug, []string{http.MethodGet, http.MethodHead}, s.readyz))
	mux.Handle("/", s.route("unknown", slog.LevelInfo, nil, func(w http.ResponseWriter, _ *http.Request, res *result) {
		s.fail(w, res, errNotFound, nil)
	}))
	return mux
}

// route wraps fn with the method check, panic recovery and the request's
// one log line (event_id and event_type are empty until a signature was
// verified). Probes log at level debug so they do not drown the webhook
// lines; a 500 is an error, a webhook's 503 a warning. methods nil means
// any method.
func (s *Server) route(name string, level slog.Level, methods []string, fn routeFunc) http.Handler {
	allow := strings.Join(methods, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		var res result
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.fail(w, &res, fmt.Errorf("api: panic: %v", p), fmt.Errorf("panic: %v", p))
			}
			latency := time.Since(start)
			if name == "webhook" {
				s.cfg.Observer.Webhook(res.outcome, res.code)
			}
			lvl := level
			switch {
			case res.code == http.StatusInternalServerError:
				lvl = slog.LevelError
			case res.code == http.StatusServiceUnavailable && name == "webhook":
				lvl = slog.LevelWarn
			}
			if !s.logger.Enabled(r.Context(), lvl) {
				return
			}
			attrs := []slog.Attr{
				slog.String("method", r.Method),
				slog.String("path", r.URL.Path),
				slog.Int("status", res.code),
				slog.String("outcome", res.outcome),
				slog.String("event_id", res.eventID),
				slog.String("event_type", res.eventType),
				slog.Float64("latency_ms", float64(latency.Microseconds())/1000),
			}
			if res.cause != nil {
				attrs = append(attrs, slog.String("error", res.cause.Error()))
			}
			s.logger.LogAttrs(r.Context(), lvl, "http request", attrs...)
		}()
		res.bodyUnread = r.ContentLength != 0
		if methods != nil && !slices.Contains(methods, r.Method) {
			w.Header().Set("Allow", allow)
			s.fail(w, &res, errMethod, nil)
			return
		}
		fn(w, r, &res)
	})
}

// fail answers err and records it in res; cause is an internal detail for
// the log only. An answer before the whole body was read closes the
// connection: otherwise net/http reads the rest of a body under 256 KiB
// before it sends the answer, and a client that declared a body and never
// sends it would hold the answer, and the connection, for ReadTimeout.
func (s *Server) fail(w http.ResponseWriter, res *result, err, cause error) {
	if res.bodyUnread {
		w.Header()["Connection"] = connectionClose
	}
	res.code, res.outcome = s.writeError(w, err)
	res.cause = cause
}

// webhook is POST /webhooks/stripe: check the headers, take an in-flight
// slot, read, verify, publish the raw bytes, and answer 200 only when the
// broker holds the event. Everything before the read costs no more than
// the headers did, so a caller that is not Stripe, or too many at once,
// is answered before a byte of its body is read.
func (s *Server) webhook(w http.ResponseWriter, r *http.Request, res *result) {
	if err := checkContentType(r.Header.Get("Content-Type")); err != nil {
		s.fail(w, res, err, nil)
		return
	}
	signature := r.Header.Get("Stripe-Signature")
	if err := checkSignatureHeader(signature, time.Now(), s.cfg.Tolerance); err != nil {
		s.fail(w, res, err, nil)
		return
	}
	if !s.inFlight.TryAcquire(1) {
		s.fail(w, res, errBusy, nil)
		return
	}
	defer s.inFlight.Release(1)
	// The slot is held while the body arrives: it must come within
	// BodyTimeout, not the whole ReadTimeout, or a few hundred clients that
	// send a well-formed header and no body would hold every slot.
	// (ErrNotSupported only outside a real server: ReadTimeout still holds.)
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(s.cfg.BodyTimeout))
	body, err := s.readBody(w, r)
	if err != nil {
		s.fail(w, res, err, nil)
		return
	}
	res.bodyUnread = false
	ev, err := s.verify(body, signature)
	if err != nil {
		s.fail(w, res, err, nil)
		return
	}
	eventType := ev.Type
	res.eventID, res.eventType = ev.ID, eventType
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.PublishTimeout)
	defer cancel()
	start := time.Now()
	// body and signature unchanged: the worker verifies them again.
	msg := broker.NewEvent(ev.ID, eventType, body, signature, AppID, s.cfg.Now())
	err = s.pub.Publish(ctx, s.cfg.Exchange, eventType, msg)
	s.cfg.Observer.ObservePublish(time.Since(start))
	if err != nil {
		s.fail(w, res, fmt.Errorf("%w: %w", errUnavailable, err), err)
		return
	}
	writeBody(w, http.StatusOK, receivedBody)
	res.code, res.outcome = http.StatusOK, "accepted"
}

// checkContentType accepts application/json with any parameters. A missing
// Content-Type is refused too: Stripe always sends one, so its absence
// means the caller is not Stripe.
func checkContentType(v string) error {
	if v == "application/json" { // what Stripe sends: no need to parse
		return nil
	}
	mt, _, err := mime.ParseMediaType(v)
	if err != nil || mt != "application/json" {
		return errContentType
	}
	return nil
}

// readBody reads the whole raw body under the cap. A declared length
// sizes the buffer once, so a body costs its own size, not the doublings
// of a growing one.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return nil, errTooLarge
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength) + bytes.MinRead) // ReadFrom wants MinRead spare
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, errTooLarge
	case errors.Is(err, os.ErrDeadlineExceeded):
		return nil, errSlowBody
	case err != nil:
		return nil, errReadBody
	case buf.Len() == 0:
		return nil, errEmptyBody
	}
	return buf.Bytes(), nil
}

// Form of a Stripe-Signature header: "t=<unix seconds>,v1=<hex HMAC-SHA256>",
// more v1 during a secret roll, perhaps a v0 and parts we do not know.
const (
	maxSignatureHeader = 2048
	signatureHexLen    = 2 * sha256.Size
)

// checkSignatureHeader is the check before the body is read: the header
// has stripe-go's form (pairs k=v, one decimal t, at least one v1 of a
// hex SHA-256 length, parts it does not know ignored) and its timestamp
// is within tolerance of now on either side. now is the same clock as
// stripe-go's own tolerance check in verify, which cannot be injected.
func checkSignatureHeader(header string, now time.Time, tolerance time.Duration) error {
	if header == "" {
		return errNoSignature
	}
	if len(header) > maxSignatureHeader {
		return errMalformedSignature
	}
	var t int64
	signatures := 0
	for pair := range strings.SplitSeq(header, ",") {
		k, v, ok := strings.Cut(pair, "=")
		if !ok || strings.Contains(v, "=") {
			return errMalformedSignature
		}
		switch k {
		case "t":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || t != 0 {
				return errMalformedSignature
			}
			t = n
		case "v1":
			if len(v) == signatureHexLen && isHex(v) {
				signatures++
			}
		}
	}
	if t == 0 || signatures == 0 {
		return errMalformedSignature
	}
	at := time.Unix(t, 0)
	switch {
	case now.Sub(at) > tolerance:
		return errExpiredSignature
	case at.Sub(now) > tolerance:
		return errFutureSignature
	}
	return nil
}

// isHex reports whether s is hex digits only, as hex.DecodeString
// accepts them, without decoding.
func isHex(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// verify checks the signature against every configured secret (any one
// accepts; verify.Signature, stripe-go's check) and that the signed body
// is a Stripe event of Stripe's form, read as the worker reads it
// (verify.ReadEnvelope, verify.CheckEvent). The header has passed
// checkSignatureHeader. Events of any API version are accepted: the
// endpoint's pinned version may differ from stripe-go's, and refusing them
// would make Stripe retry for days. Of the body only its envelope is
// read, not a stripe.Event with data.object as maps, which cost the api
// more than the rest of the request (a third of its CPU under load).
func (s *Server) verify(body []byte, header string) (verify.Envelope, error) {
	if header == "" {
		return verify.Envelope{}, errNoSignature
	}
	// The wall clock, not cfg.Now: stripe-go checks a signature's age
	// against it, and both bounds must read the same clock.
	now := time.Now()
	switch err := verify.Signature(body, header, s.cfg.Secrets, s.cfg.Tolerance, now); {
	case err == nil:
	case errors.Is(err, webhook.ErrNotSigned):
		return verify.Envelope{}, errNoSignature
	case errors.Is(err, webhook.ErrInvalidHeader):
		return verify.Envelope{}, errMalformedSignature
	case errors.Is(err, webhook.ErrTooOld): // the body took its time
		return verify.Envelope{}, errExpiredSignature
	case errors.Is(err, verify.ErrFutureSignature):
		return verify.Envelope{}, errFutureSignature
	default:
		return verify.Envelope{}, errBadSignature
	}
	ev, err := verify.ReadEnvelope(body)
	if err != nil {
		return verify.Envelope{}, err
	}
	return ev, verify.CheckEvent(ev, now, s.cfg.Tolerance)
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request, res *result) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	res.code, res.outcome = http.StatusOK, "alive"
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request, res *result) {
	if s.Draining() || !s.pub.Ready() {
		s.fail(w, res, errNotReady, nil)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	res.code, res.outcome = http.StatusOK, "ready"
}

func retryAfterSeconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}
