package models_test

import (
	"context"
	"testing"
	"time"

	"github.com/stripe-billing/billing/models"
)

func TestOpenWhenUp(t *testing.T) {
	t.Parallel()
	t.Run("WaitsWhileUnreachableUntilCanceled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		var waits []int
		s, err := models.OpenWhenUp(ctx, "root@tcp(127.0.0.1:1)/billing?parseTime=true&timeout=2s", models.PoolConfig{}, nil, func(n int) time.Duration {
			if waits = append(waits, n); n == 2 {
				cancel()
			}
			return 0
		})
		if s != nil || err != nil || len(waits) != 3 || waits[2] != 2 {
			t.Fatalf("OpenWhenUp = %v, %v after waits %v; want nil, nil after 0, 1, 2", s, err, waits)
		}
	})
	t.Run("BadDSNEndsAtOnce", func(t *testing.T) {
		t.Parallel()
		waited := false
		_, err := models.OpenWhenUp(t.Context(), "root@tcp(127.0.0.1:1)/billing", models.PoolConfig{}, nil, func(int) time.Duration { waited = true; return 0 })
		if err == nil || waited {
			t.Fatalf("OpenWhenUp(no parseTime) = %v, waited %v; want an error at once", err, waited)
		}
	})
}
