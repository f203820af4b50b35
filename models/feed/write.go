package feed

import (
	"fmt"

	"gorm.io/gorm"

	"github.com/stripe-billing/billing/models"
)

// writeChunk bounds the rows of one INSERT: 7 placeholders a row, far
// below MySQL's 65,535 even for a backfill's page.
const writeChunk = 1000

// Write inserts rows, the changes of a transaction's records, within tx:
// one multi-row INSERT (per writeChunk rows). A row whose id is already
// in the outbox is the same change, made again by a rebuild (`billing
// reprocess`): it is left as it is, published or not. Only the unique id
// may meet a duplicate (seq is the table's auto-increment), and ON
// DUPLICATE KEY UPDATE id = id skips it without INSERT IGNORE's other
// silences (a truncated value, a NULL in a NOT NULL column).
func Write(tx *gorm.DB, rows []Outbox) error {
	for len(rows) > 0 {
		n := min(len(rows), writeChunk)
		args := make([]any, 0, n*7)
		for _, r := range rows[:n] {
			args = append(args, r.ID, r.ObjectType, r.ObjectID, r.ObjectSeq, r.RoutingKey, r.Body, r.CreatedAt)
		}
		if _, err := models.ExecRows(tx, "INSERT INTO change_outbox (id, object_type, object_id, object_seq, routing_key, body, created_at) VALUES ",
			7, n, " ON DUPLICATE KEY UPDATE id = id", args); err != nil {
			return fmt.Errorf("models: write %d changes to the outbox: %w", n, err)
		}
		rows = rows[n:]
	}
	return nil
}
