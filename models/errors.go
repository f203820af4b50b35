package models

import (
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"

	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/models/mysqlerr"
)

// ErrUnavailable marks a failure to reach MySQL at all (connection refused,
// broken connection, server gone). It is marked failure.Outage: callers
// wait and retry without spending an attempt.
var ErrUnavailable = failure.MarkOutage(errors.New("models: database unavailable"))

// ErrNotFound means the row asked for does not exist.
var ErrNotFound = errors.New("models: not found")

// isUnavailable reports whether err wraps ErrUnavailable or says MySQL
// could not be reached (mysqlerr.Unreachable).
func isUnavailable(err error) bool {
	return errors.Is(err, ErrUnavailable) || mysqlerr.Unreachable(err)
}

// dbClass is mysqlerr.Class, ErrUnavailable counted as an outage.
func dbClass(err error) failure.Class {
	if err != nil && errors.Is(err, ErrUnavailable) {
		return failure.Outage
	}
	return mysqlerr.Class(err)
}

// translate wraps err for the caller: connection-level failures wrap
// ErrUnavailable as well as the cause, so both errors.Is checks hold.
func translate(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case isUnavailable(err):
		return fmt.Errorf("models: %s: %w: %w", op, ErrUnavailable, err)
	default:
		return fmt.Errorf("models: %s: %w", op, err)
	}
}

// Labels of database errors, as ErrorClass names them for the metrics.
const (
	ErrorUnavailable     = "unavailable"                   // failure.Outage: MySQL unreachable or the connection broke
	ErrorDeadlock        = string(failure.Deadlock)        // 1213
	ErrorLockWaitTimeout = string(failure.LockWaitTimeout) // 1205
	ErrorOther           = "other"                         // any other error MySQL returned
)

// ErrorClass names the class of a database error for the metrics, or ""
// when err is not one (nil, a malformed event, a handler's own error, a
// canceled context).
func ErrorClass(err error) string {
	var me *mysql.MySQLError
	switch c := dbClass(err); {
	case c == failure.Outage:
		return ErrorUnavailable
	case c != "":
		return string(c)
	case errors.As(err, &me):
		return ErrorOther
	}
	return ""
}

// Translate is translate for the store's sub-packages (models/lookup).
func Translate(op string, err error) error { return translate(op, err) }
