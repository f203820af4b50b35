package feed

import (
	"errors"
	"fmt"

	"github.com/go-sql-driver/mysql"
	"gorm.io/gorm"

	"github.com/stripe-billing/billing/models"
)

// writeChunk bounds the rows of one INSERT: 7 placeholders a row, far
// below MySQL's 65,535 even for a backfill's page.
const writeChunk = 1000

// errDuplicate is MySQL's ER_DUP_ENTRY.
const errDuplicate = 1062

// Write inserts rows, the changes of a transaction's records, within tx:
// one multi-row INSERT (per writeChunk rows). A row whose id is already
// in the outbox is the same change, made again by a rebuild (`billing
// reprocess`): it is left as it is, published or not, and the others are
// inserted.
//
// The insert is a plain one, which locks only its new rows (insert
// intention on the gaps): with ON DUPLICATE KEY UPDATE InnoDB takes
// next-key locks on the unique id index, where concurrent batches' random
// ids meet, and the batches wait for one another (the change feed cost
// half the processing rate and 3-4× MariaDB's CPU in TestBenchProcessing;
// plain, none of it). A duplicate fails the statement alone; the ids
// found are left out and the rest inserted again. INSERT IGNORE would
// also skip a truncated value or a NULL in a NOT NULL column.
func Write(tx *gorm.DB, rows []Outbox) error {
	for len(rows) > 0 {
		n := min(len(rows), writeChunk)
		err := insert(tx, rows[:n])
		if me, ok := errors.AsType[*mysql.MySQLError](err); ok && me.Number == errDuplicate {
			err = insertMissing(tx, rows[:n])
		}
		if err != nil {
			return fmt.Errorf("models: write %d changes to the outbox: %w", n, err)
		}
		rows = rows[n:]
	}
	return nil
}

func insert(tx *gorm.DB, rows []Outbox) error {
	if len(rows) == 0 {
		return nil
	}
	args := make([]any, 0, len(rows)*7)
	for _, r := range rows {
		args = append(args, r.ID, r.ObjectType, r.ObjectID, r.ObjectSeq, r.RoutingKey, r.Body, r.CreatedAt)
	}
	_, err := models.ExecRows(tx, "INSERT INTO change_outbox (id, object_type, object_id, object_seq, routing_key, body, created_at) VALUES ",
		7, len(rows), "", args)
	return err
}

// insertMissing inserts those of rows whose id the outbox lacks.
func insertMissing(tx *gorm.DB, rows []Outbox) error {
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	var found []string
	if err := tx.Model(&Outbox{}).Where("id IN ?", ids).Pluck("id", &found).Error; err != nil {
		return err
	}
	have := make(map[string]bool, len(found))
	for _, id := range found {
		have[id] = true
	}
	var missing []Outbox
	for _, r := range rows {
		if !have[r.ID] {
			missing = append(missing, r)
		}
	}
	return insert(tx, missing)
}
