package models

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrPayloadPruned is returned for a ledger event whose payload the
// retention emptied: its row (id, type, created, status) stays and still
// stops duplicates, but it cannot be applied again from the ledger.
var ErrPayloadPruned = errors.New("models: payload pruned by the payload retention")

// PruneCursor is a position in one status's ledger rows in order of
// receipt (received_at, then seq: the order of the (status, received_at)
// index, which holds seq as the primary key): the last row a prune looked
// at. The zero cursor is the start.
type PruneCursor struct {
	ReceivedAt time.Time `json:"received_at"`
	Seq        uint64    `json:"seq"`
}

// PruneBatch is what one PrunePayloads call did.
type PruneBatch struct {
	// Looked counts the rows taken after the cursor; fewer than the limit
	// means none is left before the cutoff.
	Looked int
	// Pruned counts the payloads emptied: rows looked at that still had
	// one and were done before the cutoff.
	Pruned int
	// Next is the cursor to start the next batch from.
	Next PruneCursor
}

// PrunePayloads empties the payloads of up to limit ledger rows of status
// (processed or ignored: a dead row may be replayed and needs its payload)
// received after cursor and, like their processing, before cutoff. The
// rows are found in order of receipt on the (status, received_at) index,
// so a batch costs the same however long the ledger has grown, and
// emptied by primary key in a second statement; each row keeps its id, so
// the event is still a duplicate when Stripe sends it again.
func (s *Store) PrunePayloads(ctx context.Context, status string, after PruneCursor, cutoff time.Time, limit int) (PruneBatch, error) {
	var b PruneBatch
	if status != EventProcessed && status != EventIgnored {
		return b, fmt.Errorf("models: prune payloads: status %q: only processed or ignored events are pruned", status)
	}
	if limit <= 0 {
		return b, fmt.Errorf("models: prune payloads: limit %d, want positive", limit)
	}
	db := s.db.WithContext(ctx)
	// Only index columns are read: the walk never touches the table.
	q := db.Model(&StripeEvent{}).Select("seq", "received_at").Where("status = ? AND received_at < ?", status, cutoff)
	if after.Seq != 0 {
		q = q.Where("(received_at > ? OR (received_at = ? AND seq > ?))", after.ReceivedAt, after.ReceivedAt, after.Seq)
	}
	var rows []StripeEvent
	if err := q.Order("received_at, seq").Limit(limit).Find(&rows).Error; err != nil {
		return b, translate("find payloads to prune", err)
	}
	b.Looked, b.Next = len(rows), after
	if len(rows) == 0 {
		return b, nil
	}
	last := rows[len(rows)-1]
	b.Next = PruneCursor{ReceivedAt: last.ReceivedAt, Seq: last.Seq}
	seqs := make([]uint64, len(rows))
	for i, r := range rows {
		seqs[i] = r.Seq
	}
	res := db.Model(&StripeEvent{}).
		Where("seq IN ? AND status = ? AND processed_at < ? AND payload IS NOT NULL", seqs, status, cutoff).
		Update("payload", nil)
	if res.Error != nil {
		return b, translate("prune payloads", res.Error)
	}
	b.Pruned = int(res.RowsAffected)
	return b, nil
}
