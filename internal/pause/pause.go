// Package pause waits for a while unless the context ends first: the one
// wait between retries, polls and paced batches.
package pause

import (
	"context"
	"time"
)

// For waits d, or until ctx is done: then it returns ctx's error.
func For(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
