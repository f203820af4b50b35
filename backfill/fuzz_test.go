package backfill_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stripe-billing/billing/backfill"
	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/reconcile"
)

// onePage is a Stripe whose invoices' list is one page holding obj, and
// whose other lists are empty.
type onePage struct{ obj json.RawMessage }

func (l onePage) ListPage(_ context.Context, req reconcile.ListRequest) (reconcile.Page, error) {
	if req.Path != "/v1/invoices" {
		return reconcile.Page{}, nil
	}
	return reconcile.Page{Objects: []json.RawMessage{l.obj}}, nil
}

// kept keeps what a page writes, in memory: the roles the fuzz target
// does not exercise.
type kept struct{ snaps int }

func (k *kept) ApplySnapshots(_ context.Context, snaps []billing.Event, _ ledger.Cursor) (ledger.SnapshotResult, error) {
	k.snaps += len(snaps)
	return ledger.SnapshotResult{Written: len(snaps)}, nil
}

func (k *kept) Checkpoint(context.Context, string) (string, error) { return "", nil }

// FuzzPage hands a page of one object of any bytes (an invoice, with
// its payments from basil on) to the backfill: it never panics, and
// either imports the page or names the kind.
func FuzzPage(f *testing.F) {
	for _, v := range stripefixture.Versions() {
		if stripefixture.Has(v, "invoice") {
			f.Add(stripefixture.Raw(v, "invoice"))
		}
	}
	f.Add([]byte(`{"id":"in_1","object":"invoice","created":1,"payments":{"data":[{"id":"inpay_1"}],"has_more":true}}`))
	f.Add([]byte(`{"id":"in_1","payments":{"data":[],"has_more":true}}`))
	f.Add([]byte(`{"object":"invoice"}`))
	f.Fuzz(func(t *testing.T, obj []byte) {
		store := &kept{}
		b, err := backfill.New(backfill.Config{Kinds: []string{"invoices"}, APIVersion: "2025-05-28.basil", Attempts: 1}, nil, onePage{obj}, store, store)
		if err != nil {
			t.Fatal(err)
		}
		reports, err := b.Run(context.Background(), nil)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "backfill: invoices: ") {
				t.Fatalf("Run = %v; want an error naming the kind", err)
			}
			return
		}
		if r := reports[0]; !r.Finished || r.Fetched != 1 || r.Failed+store.snaps < 1 {
			t.Fatalf("%+v, %d written; want the one object imported or counted failed", r, store.snaps)
		}
	})
}
