package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/billing"
)

// tieObjects are what Stripe answered for the ties of one unit of work,
// asked before its transaction.
type tieObjects map[billing.ObjectRef]tieObject

// tieObject is Stripe's object (nil: Stripe has none), or why it could
// not be fetched.
type tieObject struct {
	obj json.RawMessage
	err error
}

// withTieObjects runs run, a unit of work that opens its own transaction,
// and each time it ends on a tie whose object it lacks (*billing.Tie),
// fetches that object, with no transaction open, and runs it again with
// every answer so far. A failed fetch is kept as the answer: the event of
// the tie fails with it (alone, in a batch). It ends because each run
// either finishes or names an object not asked for yet, and a batch has
// finitely many. met is what an earlier attempt of the same work ended
// with (the batch's sets): when it is a tie, its object is fetched before
// the first run.
func (p *Processor) withTieObjects(ctx context.Context, met error, run func(objs tieObjects) error) error {
	objs := tieObjects{}
	err := met
	if _, tie := errors.AsType[*billing.Tie](met); !tie {
		err = run(objs)
	}
	for {
		tie, ok := errors.AsType[*billing.Tie](err)
		if !ok {
			return err
		}
		if _, done := objs[tie.Ref]; done || p.fetcher == nil {
			return fmt.Errorf("ledger: event %s: %s %s from Stripe did not settle the tie", tie.Event, tie.Ref.Type, tie.Ref.ID)
		}
		var got tieObject
		got.obj, got.err = p.fetcher.FetchObject(ctx, tie.Ref)
		switch {
		case got.err != nil:
			got.err = fmt.Errorf("fetch %s %s to settle a same-second tie: %w", tie.Ref.Type, tie.Ref.ID, got.err)
		case got.obj == nil:
			p.logger.WarnContext(ctx, "ledger: same-second tie settled by event id: Stripe has no such object",
				"event_id", tie.Event, "object_type", tie.Ref.Type, "object_id", tie.Ref.ID)
		}
		objs[tie.Ref] = got
		err = run(objs)
	}
}

// applyOne folds and writes ev, a batch of one, within tx and, when a tie
// needs Stripe's object, again with the object objs holds for it in
// place of ev's. When objs has no answer for it, the *billing.Tie ends
// the transaction: withTieObjects asks Stripe. applied says whether ev
// changed the row of its own object.
func (p *Processor) applyOne(ctx context.Context, tx *gorm.DB, ev billing.Event, objs tieObjects) (applied bool, err error) {
	planned, err := billing.PlanOf(ev)
	if err != nil {
		return false, err
	}
	done, err := p.writeSets(ctx, tx, []billing.Planned{planned}, billing.Ties{Fetch: p.fetcher != nil})
	tie, isTie := errors.AsType[*billing.Tie](err)
	if !isTie {
		return slices.Contains(done, ev.ID), err
	}
	got, asked := objs[tie.Ref]
	switch {
	case !asked:
		return false, tie
	case got.err != nil:
		return false, fmt.Errorf("ledger: event %s: %w", ev.ID, got.err)
	}
	// Stripe's object folds in (Planned.WithFetched); when Stripe has
	// none, the tie is settled by event id.
	ties := billing.Ties{}
	if got.obj != nil {
		if planned, ties, err = planned.WithFetched(tie, got.obj); err != nil {
			return false, err
		}
	}
	done, err = p.writeSets(ctx, tx, []billing.Planned{planned}, ties)
	if _, isTie := errors.AsType[*billing.Tie](err); isTie {
		return false, fmt.Errorf("ledger: event %s: %s %s from Stripe did not settle the tie", ev.ID, tie.Ref.Type, tie.Ref.ID)
	}
	return slices.Contains(done, ev.ID), err
}
