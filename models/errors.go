package models

import "errors"

// ErrUnavailable marks a failure to reach MySQL at all (connection refused,
// broken connection, server gone). Callers treat it as an outage: wait and
// retry without spending an attempt.
var ErrUnavailable = errors.New("models: database unavailable")
