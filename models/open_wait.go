package models

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/stripe-billing/billing/internal/pause"
)

// OpenWhenUp is Open, waiting backoff(n) after the nth failure while
// MySQL is unreachable (ErrUnavailable): a service starts whatever
// MySQL's state and takes work once it answers. Any other error (a bad
// DSN) is returned at once. A nil Store and nil error mean ctx ended the
// wait.
func OpenWhenUp(ctx context.Context, dsn string, pool PoolConfig, logger *slog.Logger, backoff func(n int) time.Duration) (*Store, error) {
	for n := 0; ; n++ {
		store, err := Open(ctx, dsn, pool, logger)
		if err == nil {
			return store, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		if !errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		wait := backoff(n)
		if logger != nil {
			logger.Warn("database unavailable: waiting before taking work", "error", err, "retry_in", wait.String())
		}
		if pause.For(ctx, wait) != nil {
			return nil, nil
		}
	}
}
