// Package models owns the MySQL schema (versioned migrations and GORM
// models) and the Store: transactions retried on deadlocks, the event
// ledger, named locks and checkpoints, every write, and the translation
// of database errors into this package's sentinels. The reads staff
// make (`billing history`, `dlq show`, `audit`) are models/lookup's, the
// change feed's store is models/feed.
package models

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/go-sql-driver/mysql"
	gormmysql "gorm.io/driver/mysql"
	"gorm.io/gorm"
	gormlogger "gorm.io/gorm/logger"

	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/pause"
	"github.com/stripe-billing/billing/models/mysqlerr"
)

// maxTxAttempts bounds InTx's retries of deadlocks and lock wait timeouts.
const maxTxAttempts = 5

// The worker's default pool (config.Vars refers to it).
const (
	DefaultMaxOpenConns    = 16
	DefaultMaxIdleConns    = 8
	DefaultConnMaxLifetime = 5 * time.Minute
)

// PoolConfig sizes the connection pool.
type PoolConfig struct {
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
}

// Store is the database: one pool shared by every goroutine.
type Store struct {
	db     *gorm.DB
	sqlDB  *sql.DB
	logger *slog.Logger
	now    func() time.Time
	// onError is told the class of every failed transaction attempt.
	onError func(class string)
}

// Open connects to MySQL and checks the connection. An unreachable server
// gives an error wrapping ErrUnavailable. Migrations are never run here:
// that is `billing migrate`'s job.
func Open(ctx context.Context, dsn string, pool PoolConfig, logger *slog.Logger) (*Store, error) {
	s, err := open(dsn, pool, logger)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// open builds the Store without touching the network.
func open(dsn string, pool PoolConfig, logger *slog.Logger) (*Store, error) {
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("models: parse dsn: %w", err)
	}
	if !cfg.ParseTime {
		return nil, errors.New("models: dsn must set parseTime=true")
	}
	// Statements are sent with their arguments interpolated by the driver:
	// one round trip per statement instead of prepare, execute and close
	// (three), which is what bounds the worker's throughput on a database
	// next door. It is safe with the connection's character sets (the
	// driver's default utf8mb4, or any ASCII-compatible one; it refuses to
	// interpolate, and falls back to prepared statements, under a
	// multibyte set whose bytes could hide a quote), and it escapes by the
	// session's NO_BACKSLASH_ESCAPES mode.
	cfg.InterpolateParams = true
	// Several statements at once: a transaction's first statement carries
	// its START TRANSACTION (lazyBegin).
	cfg.MultiStatements = true
	// Times go out in the schema's precision, DATETIME(6): a literal with
	// nanoseconds does not convert to the column without loss, and then
	// MariaDB uses no range on it, so a `received_at >= ?` after an equal
	// status read every event of that status (a million for the status
	// report's counts on a million-event ledger) instead of the recent
	// ones, and the retention's last batch of a pass every event newer
	// than its cutoff. MariaDB truncated such a value when it stored it
	// anyway.
	if err := cfg.Apply(mysql.TimeTruncate(time.Microsecond)); err != nil {
		return nil, fmt.Errorf("models: dsn: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("models: dsn: %w", err)
	}
	sqlDB := sql.OpenDB(readCommitted{connector})
	gdb, err := gorm.Open(gormmysql.New(gormmysql.Config{
		Conn:                      sqlDB,
		DSNConfig:                 cfg,
		SkipInitializeWithVersion: true, // no query at open: the pool connects lazily
	}), &gorm.Config{
		// ParameterizedQueries: a logged statement shows its placeholders,
		// never the values (customer emails, hosted invoice URLs).
		Logger: quietTrace{gormlogger.NewSlogLogger(logger, gormlogger.Config{
			LogLevel: gormlogger.Warn, IgnoreRecordNotFoundError: true, SlowThreshold: slowStatement, ParameterizedQueries: true,
		}), gormlogger.Warn},
		NamingStrategy:         namingStrategy,
		SkipDefaultTransaction: true,
		DisableAutomaticPing:   true, // Open pings itself
		NowFunc:                func() time.Time { return time.Now().UTC() },
	})
	if err != nil {
		_ = sqlDB.Close()
		return nil, translate("open", err)
	}
	if pool.MaxOpenConns > 0 {
		sqlDB.SetMaxOpenConns(pool.MaxOpenConns)
	}
	if pool.MaxIdleConns > 0 {
		sqlDB.SetMaxIdleConns(pool.MaxIdleConns)
	}
	if pool.ConnMaxLifetime > 0 {
		sqlDB.SetConnMaxLifetime(pool.ConnMaxLifetime)
	}
	return &Store{db: gdb, sqlDB: sqlDB, logger: logger, now: func() time.Time { return time.Now().UTC() }}, nil
}

// readCommitted makes every connection of the pool READ COMMITTED once,
// when it connects, so that a transaction needs no SET TRANSACTION
// ISOLATION LEVEL of its own: the driver sends that as a statement of its
// own, a round trip more per transaction. The SESSION statement is the
// same on MariaDB and MySQL, whose variables differ in name (tx_isolation,
// transaction_isolation), so it is not a DSN parameter.
type readCommitted struct{ driver.Connector }

// Connect opens a connection and sets its isolation level; its
// transactions begin with their first statement (lazyBegin).
func (c readCommitted) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.(driver.ExecerContext).ExecContext(ctx, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", nil); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return &lazyBegin{Conn: conn}, nil
}

// slowStatement is the duration from which a statement is logged.
const slowStatement = time.Second

// quietTrace skips GORM's trace of a statement that neither failed nor
// was slow before calling the wrapped logger: GORM's slog logger renders
// every statement's SQL with its arguments before it decides not to log
// it, a few percent of the worker's CPU. At level Info (every statement)
// it passes everything on.
type quietTrace struct {
	gormlogger.Interface
	level gormlogger.LogLevel
}

// LogMode keeps the wrapper.
func (q quietTrace) LogMode(level gormlogger.LogLevel) gormlogger.Interface {
	return quietTrace{q.Interface.LogMode(level), level}
}

// ParamsFilter passes GORM's question on to the wrapped logger: without
// it the wrapper would hide the logger's ParameterizedQueries and GORM
// would log every value.
func (q quietTrace) ParamsFilter(ctx context.Context, sql string, params ...any) (string, []any) {
	if f, ok := q.Interface.(gorm.ParamsFilter); ok {
		return f.ParamsFilter(ctx, sql, params...)
	}
	return sql, params
}

// Trace passes on failed (but for record not found) and slow statements.
func (q quietTrace) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if q.level < gormlogger.Info && (err == nil || errors.Is(err, gorm.ErrRecordNotFound)) && time.Since(begin) <= slowStatement {
		return
	}
	q.Interface.Trace(ctx, begin, fc, err)
}

// Observed returns a Store on the same pool that tells onError the class
// (ErrorClass) of every failed transaction attempt, deadlocks that the
// in-place retry then overcomes included: the source of the database error
// metrics.
func (s *Store) Observed(onError func(class string)) *Store {
	c := *s
	c.onError = onError
	return &c
}

// DB is the GORM handle, for reads outside a transaction.
func (s *Store) DB() *gorm.DB { return s.db }

// Close closes the pool.
func (s *Store) Close() error { return s.sqlDB.Close() }

// Ping checks that MySQL answers.
func (s *Store) Ping(ctx context.Context) error {
	return translate("ping", s.sqlDB.PingContext(ctx))
}

// InTx runs fn in one READ COMMITTED transaction (every connection is,
// see readCommitted), committed when fn returns nil. The whole
// transaction is retried on deadlock (1213) and lock wait timeout (1205),
// so fn must have no effects outside tx. Connection
// failures come back wrapping ErrUnavailable; fn's own errors come back
// unchanged otherwise.
func (s *Store) InTx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	var err error
	for attempt := 1; ; attempt++ {
		err = s.db.WithContext(ctx).Transaction(fn)
		if err == nil {
			return nil
		}
		if class := ErrorClass(err); class != "" && s.onError != nil {
			s.onError(class)
		}
		if !failure.RerunsTransaction(dbClass(err)) || attempt == maxTxAttempts {
			break
		}
		s.logger.DebugContext(ctx, "models: retrying transaction", "attempt", attempt, "error", err)
		if pause.For(ctx, txBackoff(attempt)) != nil {
			return fmt.Errorf("models: transaction: %w", errors.Join(ctx.Err(), err))
		}
	}
	if isUnavailable(err) {
		return translate("transaction", err)
	}
	return mysqlerr.MarkData(err)
}

// Savepoint runs fn under SAVEPOINT name inside tx, a transaction of
// InTx, so that several units of work can share one commit. When fn
// fails, its statements are rolled back to the savepoint and its error is
// returned while the rest of tx stands. abort is true for an error the
// transaction cannot survive (a deadlock, which rolled all of it back, a
// lock wait timeout, a lost connection, ctx done): the caller must return
// it from InTx's fn, which then redoes the whole transaction or reports
// the outage.
func Savepoint(tx *gorm.DB, name string, fn func(tx *gorm.DB) error) (abort bool, err error) {
	if err := tx.SavePoint(name).Error; err != nil {
		return true, fmt.Errorf("models: savepoint %s: %w", name, err)
	}
	err = fn(tx)
	if err == nil {
		return false, nil
	}
	if failure.EndsTransaction(dbClass(err)) || tx.Statement.Context.Err() != nil {
		return true, err
	}
	if rerr := tx.RollbackTo(name).Error; rerr != nil {
		return true, fmt.Errorf("models: rollback to savepoint %s: %w", name, errors.Join(rerr, err))
	}
	return false, mysqlerr.MarkData(err)
}

// txBackoff is a small full-jitter delay: deadlocks clear in milliseconds.
func txBackoff(attempt int) time.Duration {
	ceiling := 5 * time.Millisecond << attempt
	return time.Duration(rand.Int64N(int64(ceiling))) + time.Millisecond
}
