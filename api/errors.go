package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/stripe-billing/billing/verify"
)

// The api's own errors. Each maps to one status, message and outcome in
// answer; nothing else reaches a client.
var (
	errNotFound           = errors.New("not found")
	errMethod             = errors.New("method not allowed")
	errContentType        = errors.New("content type must be application/json")
	errTooLarge           = errors.New("body too large")
	errEmptyBody          = errors.New("empty body")
	errReadBody           = errors.New("could not read body")
	errSlowBody           = errors.New("body not received in time")
	errNoSignature        = errors.New("missing Stripe-Signature header")
	errMalformedSignature = errors.New("malformed Stripe-Signature header")
	errBadSignature       = errors.New("no valid signature")
	errExpiredSignature   = errors.New("signature timestamp outside tolerance")
	errFutureSignature    = verify.ErrFutureSignature
	// errUnavailable wraps every publish failure: the event may not be in
	// a queue, so Stripe must retry.
	errUnavailable = errors.New("event not stored, retry later")
	// errBusy answers a webhook over MaxInFlight, before its body is read.
	errBusy = errors.New("too many webhooks in flight, retry later")
	// errNotReady answers /readyz while the publisher cannot publish or
	// the server is shutting down.
	errNotReady = errors.New("not ready")
)

// status maps an error to the HTTP status, the message a client sees and
// the outcome logged. It is the one place errors become statuses; an
// unknown error is a 500 that leaks nothing.
func status(err error) (code int, message, outcome string) {
	switch {
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, errNotFound.Error(), "not_found"
	case errors.Is(err, errMethod):
		return http.StatusMethodNotAllowed, errMethod.Error(), "method_not_allowed"
	case errors.Is(err, errContentType):
		return http.StatusUnsupportedMediaType, errContentType.Error(), "bad_content_type"
	case errors.Is(err, errTooLarge):
		return http.StatusRequestEntityTooLarge, errTooLarge.Error(), "too_large"
	case errors.Is(err, errEmptyBody):
		return http.StatusBadRequest, errEmptyBody.Error(), "empty_body"
	case errors.Is(err, errSlowBody):
		return http.StatusRequestTimeout, errSlowBody.Error(), "slow_body"
	case errors.Is(err, errReadBody):
		return http.StatusBadRequest, errReadBody.Error(), "read_error"
	case errors.Is(err, errNoSignature):
		return http.StatusBadRequest, errNoSignature.Error(), "missing_signature"
	case errors.Is(err, errMalformedSignature):
		return http.StatusBadRequest, errMalformedSignature.Error(), "malformed_signature"
	case errors.Is(err, errBadSignature):
		return http.StatusBadRequest, errBadSignature.Error(), "bad_signature"
	case errors.Is(err, errExpiredSignature):
		return http.StatusBadRequest, errExpiredSignature.Error(), "expired_signature"
	case errors.Is(err, errFutureSignature):
		return http.StatusBadRequest, errFutureSignature.Error(), "future_signature"
	case errors.Is(err, verify.ErrMalformed):
		// The reader's words: what is wrong with the body and where, no
		// internals (verify.ReadEnvelope).
		return http.StatusBadRequest, err.Error(), "malformed_body"
	case errors.Is(err, verify.ErrNotEvent):
		return http.StatusBadRequest, verify.ErrNotEvent.Error(), "not_an_event"
	case errors.Is(err, verify.ErrBadID):
		return http.StatusBadRequest, verify.ErrBadID.Error(), "bad_event_id"
	case errors.Is(err, verify.ErrBadType):
		return http.StatusBadRequest, verify.ErrBadType.Error(), "bad_event_type"
	case errors.Is(err, verify.ErrFutureCreated):
		return http.StatusBadRequest, verify.ErrFutureCreated.Error(), "future_created"
	case errors.Is(err, errUnavailable):
		return http.StatusServiceUnavailable, errUnavailable.Error(), "unavailable"
	case errors.Is(err, errBusy):
		return http.StatusServiceUnavailable, errBusy.Error(), "busy"
	case errors.Is(err, errNotReady):
		return http.StatusServiceUnavailable, errNotReady.Error(), "not_ready"
	default:
		return http.StatusInternalServerError, "internal error", "internal_error"
	}
}

// writeError answers err as a short JSON body and returns the outcome.
func (s *Server) writeError(w http.ResponseWriter, err error) (code int, outcome string) {
	code, message, outcome := status(err)
	switch code {
	case http.StatusMethodNotAllowed:
		// Allow is set by the route, which knows its methods.
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", strconv.Itoa(retryAfterSeconds(s.cfg.RetryAfter)))
	}
	writeJSON(w, code, map[string]string{"error": message})
	return code, outcome
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, _ := json.Marshal(v) // maps of strings and bools always marshal
	writeBody(w, code, append(b, '\n'))
}

// receivedBody is the answer to an accepted webhook, encoded once.
var receivedBody = []byte(`{"received":true}` + "\n")

// Header values of every answer, allocated once: the keys are canonical
// already, and net/http copies the values when it sends them.
var (
	jsonContentType = []string{"application/json"}
	noSniff         = []string{"nosniff"}
	connectionClose = []string{"close"}
)

// writeBody answers code with the JSON body b.
func writeBody(w http.ResponseWriter, code int, b []byte) {
	h := w.Header()
	h["Content-Type"] = jsonContentType
	h["X-Content-Type-Options"] = noSniff
	w.WriteHeader(code)
	_, _ = w.Write(b)
}
