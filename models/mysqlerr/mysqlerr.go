// Package mysqlerr classifies what the MySQL driver returns: a server
// that cannot be reached or a connection that broke (an outage: wait, spend
// no attempt), a deadlock or lock wait timeout (run the transaction
// again), a value a column cannot hold (a schema failure: the same event
// fails the same way every time). The store (models) acts on the classes.
package mysqlerr

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"syscall"

	"github.com/go-sql-driver/mysql"

	"github.com/stripe-billing/billing/failure"
)

// MySQL server error numbers this package acts on.
const (
	errLockWaitTimeout   = 1205
	errLockDeadlock      = 1213
	errTooManyConns      = 1040
	errServerShutdown    = 1053
	errConnectionKilled  = 1927 // MariaDB
	errServerGone        = 2006
	errServerLost        = 2013
	errCantConnect       = 2002
	errCantConnectTCP    = 2003
	errServerShutdownNow = 3169
)

// MySQL's data errors: a value the column cannot hold, in strict mode (the
// default of MySQL 8 and MariaDB 10.11). The same event fails the same way
// on every attempt, so they are schema failures, never transient.
const (
	errBadNull         = 1048 // Column 'x' cannot be null
	errOutOfRange      = 1264 // Out of range value for column 'x'
	errDataTruncated   = 1265 // Data truncated for column 'x'
	errTruncatedValue  = 1292 // Incorrect datetime value: ... for column 'x'
	errIncorrectString = 1366 // Incorrect string value: ... for column 'x'
	errDataTooLong     = 1406 // Data too long for column 'x'
)

// columnOf reads the column a data error names: 'email' (MySQL) or
// `db`.`table`.`email` (MariaDB).
var columnOf = regexp.MustCompile("(?i)column ['`\"]?(?:[^'`\"\\s]+['`\"]?\\.['`\"]?)*([^'`\"\\s]+)")

// MarkData marks a MySQL data error failure.Schema, naming its column;
// any other error comes back unchanged.
func MarkData(err error) error {
	var me *mysql.MySQLError
	if !errors.As(err, &me) {
		return err
	}
	switch me.Number {
	case errBadNull, errOutOfRange, errDataTruncated, errTruncatedValue, errIncorrectString, errDataTooLong:
	default:
		return err
	}
	column := "?"
	if m := columnOf.FindStringSubmatch(me.Message); m != nil {
		column = m[1]
	}
	return failure.MarkSchema(fmt.Errorf("models: a value column %s cannot hold: %w", column, err))
}

// Unreachable reports whether err says MySQL could not be reached or the
// connection broke, as opposed to MySQL refusing a statement.
func Unreachable(err error) bool {
	// The caller's own deadline or cancellation is not an outage.
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) {
		return true
	}
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case errTooManyConns, errServerShutdown, errConnectionKilled, errServerGone,
			errServerLost, errCantConnect, errCantConnectTCP, errServerShutdownNow:
			return true
		}
		return false
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "server has gone away") || strings.Contains(msg, "connection refused")
}

// Class is the failure class of a database error: failure.Outage,
// failure.Deadlock, failure.LockWaitTimeout, or "" for any other error.
func Class(err error) failure.Class {
	var me *mysql.MySQLError
	switch {
	case err == nil:
		return ""
	case Unreachable(err):
		return failure.Outage
	case errors.As(err, &me) && me.Number == errLockDeadlock:
		return failure.Deadlock
	case errors.As(err, &me) && me.Number == errLockWaitTimeout:
		return failure.LockWaitTimeout
	}
	return ""
}
