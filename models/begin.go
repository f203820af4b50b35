package models

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
)

// lazyBegin is a connection of the pool whose transactions begin with
// their first statement: BeginTx sends nothing, and the first statement
// goes as "START TRANSACTION; <statement>", one round trip instead of
// two (the pool's connections take several statements at once, Open). A
// batch's transaction is some seven round trips, each of which wakes the
// worker from its wait on MySQL: its CPU is more that than the statements'
// work. A transaction that runs no statement sends nothing at all.
//
// A transaction with options (an isolation level, read only) begins at
// once, as the driver begins it. The conn is the driver's, which
// implements every interface forwarded here; the database/sql pool uses
// a conn from one goroutine at a time.
type lazyBegin struct {
	driver.Conn
	pending bool // BeginTx was called; its START TRANSACTION is not sent yet
}

// startTransaction is the prefix of a transaction's first statement.
const startTransaction = "START TRANSACTION; "

// BeginTx implements driver.ConnBeginTx.
func (c *lazyBegin) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly || sql.IsolationLevel(opts.Isolation) != sql.LevelDefault {
		return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c.pending = true
	return lazyTx{c}, nil
}

// first is the query to send: prefixed with the transaction's start when
// it is the first of a lazy transaction, which it then no longer is.
func (c *lazyBegin) first(query string) string {
	if !c.pending {
		return query
	}
	c.pending = false
	return startTransaction + query
}

// ExecContext implements driver.ExecerContext.
func (c *lazyBegin) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	pending := c.pending
	res, err := c.Conn.(driver.ExecerContext).ExecContext(ctx, c.first(query), args)
	if errors.Is(err, driver.ErrSkip) {
		c.pending = pending // nothing was sent: database/sql prepares the statement (PrepareContext)
	}
	return res, err
}

// QueryContext implements driver.QueryerContext.
func (c *lazyBegin) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	pending := c.pending
	rows, err := c.Conn.(driver.QueryerContext).QueryContext(ctx, c.first(query), args)
	if errors.Is(err, driver.ErrSkip) {
		c.pending = pending
	}
	return rows, err
}

// PrepareContext implements driver.ConnPrepareContext: a prepared
// statement goes alone, so a pending transaction starts first.
func (c *lazyBegin) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if c.pending {
		if _, err := c.ExecContext(ctx, "DO 0", nil); err != nil {
			return nil, err
		}
	}
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

// Ping implements driver.Pinger.
func (c *lazyBegin) Ping(ctx context.Context) error { return c.Conn.(driver.Pinger).Ping(ctx) }

// ResetSession implements driver.SessionResetter.
func (c *lazyBegin) ResetSession(ctx context.Context) error {
	c.pending = false
	return c.Conn.(driver.SessionResetter).ResetSession(ctx)
}

// IsValid implements driver.Validator.
func (c *lazyBegin) IsValid() bool { return c.Conn.(driver.Validator).IsValid() }

// CheckNamedValue implements driver.NamedValueChecker.
func (c *lazyBegin) CheckNamedValue(nv *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

// lazyTx is a transaction of a lazyBegin: one that never sent its start
// has nothing to commit or roll back.
type lazyTx struct{ c *lazyBegin }

func (tx lazyTx) Commit() error { return tx.end("COMMIT") }

func (tx lazyTx) Rollback() error { return tx.end("ROLLBACK") }

func (tx lazyTx) end(statement string) error {
	if tx.c.pending {
		tx.c.pending = false
		return nil
	}
	_, err := tx.c.Conn.(driver.ExecerContext).ExecContext(context.Background(), statement, nil)
	return err
}
