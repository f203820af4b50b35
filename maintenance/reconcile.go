package maintenance

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/stripe-billing/billing/reconcile"
)

// Reconcile enqueues the events Stripe sent that never reached us: it
// lists Stripe's events since its checkpoint (reconcile.Reconciler) and
// publishes each one the ledger has never seen, as the api would have.
type Reconcile struct {
	rec *reconcile.Reconciler
}

// NewReconcile returns the reconciliation with Stripe's Events API;
// cfg.APIKey is required. A nil logger discards.
func NewReconcile(cfg reconcile.Config, logger *slog.Logger, store reconcile.Store, pub reconcile.Publisher) (*Reconcile, error) {
	rec, err := reconcile.New(cfg, logger, store, pub)
	if err != nil {
		return nil, fmt.Errorf("maintenance: %w", err)
	}
	return &Reconcile{rec: rec}, nil
}

// Pass reconciles once. Its checkpoint advances only when every missing
// event was published, so a failed pass is repeated by the next.
func (r *Reconcile) Pass(ctx context.Context) (reconcile.Result, error) {
	return r.rec.Reconcile(ctx)
}
