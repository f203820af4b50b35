package models

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Claim says what ClaimEvent found.
type Claim int

const (
	// ClaimNew: the event was never seen; its ledger row is now inserted.
	ClaimNew Claim = iota + 1
	// ClaimTakeover: the event was parked dead; this run applies it.
	ClaimTakeover
	// ClaimDuplicate: the event is already done; do nothing.
	ClaimDuplicate
)

// ClaimEvent inserts ev's ledger row in tx with its final status and
// processed_at, when the caller knows them up front (ev.Status, default
// processed; ev.ProcessedAt), so that applying an event costs one ledger
// statement: a failure rolls the row back with the rest of the event's
// work. An existing row that is done makes a duplicate; a dead row is
// taken over (ReplaceEvent: ev's fields replace whatever the parking
// recorded; its attempts counted, its last_error cleared), locked until
// tx ends, so a replayed parked event applies exactly once.
func ClaimEvent(tx *gorm.DB, ev *StripeEvent) (Claim, error) {
	evs := []StripeEvent{*ev}
	n, err := InsertEvents(tx, evs)
	*ev = evs[0]
	if err != nil {
		return 0, err
	}
	if n == 1 {
		return ClaimNew, nil
	}
	var cur StripeEvent
	err = tx.Clauses(clause.Locking{Strength: "UPDATE"}).Select("status", "attempts").
		Where("id = ?", ev.ID).Take(&cur).Error
	if err != nil {
		return 0, fmt.Errorf("models: claim event %s: %w", ev.ID, err)
	}
	if cur.Status != EventDead {
		return ClaimDuplicate, nil
	}
	if err := replaceEvent(tx, ev, map[string]any{"attempts": cur.Attempts + 1}); err != nil {
		return 0, fmt.Errorf("models: take over event %s: %w", ev.ID, err)
	}
	return ClaimTakeover, nil
}

// ReplaceEvent writes ev, a verified event, over the ledger row of its
// id in tx: its type, created, API version, livemode, account, object,
// payload and signature replace those of the row (a parked row's came
// from a message nothing proved, or from an older copy), with ev's
// status, applied and processed_at, and last_error cleared (it applied:
// the parking's reason is history).
func ReplaceEvent(tx *gorm.DB, ev *StripeEvent) error {
	if err := replaceEvent(tx, ev, nil); err != nil {
		return fmt.Errorf("models: replace event %s: %w", ev.ID, err)
	}
	return nil
}

func replaceEvent(tx *gorm.DB, ev *StripeEvent, extra map[string]any) error {
	set := map[string]any{
		"type":         ev.Type,
		"api_version":  ev.APIVersion,
		"livemode":     ev.Livemode,
		"account":      ev.Account,
		"created":      ev.Created,
		"object_type":  ev.ObjectType,
		"object_id":    ev.ObjectID,
		"payload":      ev.Payload,
		"signature":    ev.Signature,
		"status":       ev.Status,
		"applied":      ev.Applied,
		"processed_at": ev.ProcessedAt,
		"last_error":   nil,
	}
	maps.Copy(set, extra)
	return tx.Model(&StripeEvent{}).Where("id = ?", ev.ID).Updates(set).Error
}

// MaxSignature is the longest Stripe-Signature the ledger keeps (the
// api's limit): a row whose signature is longer keeps none, and
// `billing reprocess` fetches the event from Stripe instead.
const MaxSignature = 2048

// StoredSignature is signature as the ledger keeps it: nil when empty or
// longer than MaxSignature.
func StoredSignature(signature string) []byte {
	if signature == "" || len(signature) > MaxSignature {
		return nil
	}
	return []byte(signature)
}

// InsertEvents inserts the ledger rows evs in one statement, each with its
// final status (default processed) and one attempt, skips those whose id
// has a row, and returns how many it inserted. A caller that inserted as
// many rows as it gave knows every one is its own: a row another
// transaction holds makes the insert wait for it, then skip it.
func InsertEvents(tx *gorm.DB, evs []StripeEvent) (int64, error) {
	if len(evs) == 0 {
		return 0, nil
	}
	for i := range evs {
		if evs[i].Status == "" {
			evs[i].Status = EventProcessed
		}
		evs[i].Attempts = 1
	}
	// ON DUPLICATE KEY UPDATE seq = seq (a duplicate meets the unique id;
	// seq, left out, auto-increments): a redelivery is an expected no-op,
	// not a failed statement (which GORM would log as an error), and unlike
	// INSERT IGNORE it does not turn other errors into warnings. An
	// unchanged row counts 0 affected rows.
	args := make([]any, 0, len(evs)*eventColumnCount)
	for _, e := range evs {
		args = append(args, e.ID, e.Type, e.APIVersion, e.Livemode, e.Account, e.Created, e.ObjectType, e.ObjectID,
			e.Status, e.Applied, e.Attempts, e.Redrives, e.LastError, e.Payload, e.Signature, e.ReceivedAt, e.ProcessedAt)
	}
	n, err := ExecRows(tx, "INSERT INTO stripe_events ("+eventColumns+") VALUES ", eventColumnCount, len(evs),
		" ON DUPLICATE KEY UPDATE seq = seq", args)
	if err != nil {
		return 0, fmt.Errorf("models: insert %d events: %w", len(evs), err)
	}
	return n, nil
}

// The columns InsertEvents writes, in the order of its arguments: all
// but seq.
const (
	eventColumns = "id, type, api_version, livemode, account, created, object_type, object_id, " +
		"status, applied, attempts, redrives, last_error, payload, signature, received_at, processed_at"
	eventColumnCount = 17
)

// ExecRows runs the multi-row statement head, rows tuples of cols
// placeholders, then tail, with args, in tx, and returns the rows it
// affected. The hot inserts of a batch are built as strings and sent
// straight to tx's *sql.Tx: GORM's Create reflects over every field and
// its Exec rebuilds the statement placeholder by placeholder, most of
// what a batch costs the worker beside the network. The driver
// interpolates the arguments (Open).
func ExecRows(tx *gorm.DB, head string, cols, rows int, tail string, args []any) (int64, error) {
	tuple := "(?" + strings.Repeat(", ?", cols-1) + ")"
	var q strings.Builder
	q.Grow(len(head) + rows*(len(tuple)+2) + len(tail))
	q.WriteString(head)
	for i := range rows {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString(tuple)
	}
	q.WriteString(tail)
	res, err := tx.Statement.ConnPool.ExecContext(tx.Statement.Context, q.String(), args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// EventStatuses returns the ledger status of those of ids that have a row.
func EventStatuses(tx *gorm.DB, ids []string) (map[string]string, error) {
	var rows []StripeEvent
	if err := tx.Select("id", "status").Where("id IN ?", ids).Find(&rows).Error; err != nil {
		return nil, fmt.Errorf("models: status of %d events: %w", len(ids), err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows {
		out[r.ID] = r.Status
	}
	return out, nil
}

// StampProcessed sets processed_at of the claimed events ids to at and
// says which of them changed their object's row: those in applied; the
// others were stale. An event not applied at all (ignored: applied NULL)
// stays NULL. One statement: a batch stamps its events just before its
// commit.
func StampProcessed(tx *gorm.DB, ids, applied []string, at time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	set, args := "IF(applied IS NULL, NULL, FALSE)", []any{at}
	if len(applied) > 0 {
		set, args = "IF(applied IS NULL, NULL, id IN ?)", append(args, applied)
	}
	err := tx.Exec("UPDATE stripe_events SET processed_at = ?, applied = "+set+" WHERE id IN ?", append(args, ids)...).Error
	if err != nil {
		return fmt.Errorf("models: stamp %d events processed: %w", len(ids), err)
	}
	return nil
}

// RecordStatuses appends several history rows in one statement; rows a
// redelivered event already added are skipped.
func RecordStatuses(tx *gorm.DB, cs []StatusChange) error {
	if len(cs) == 0 {
		return nil
	}
	args := make([]any, 0, len(cs)*7)
	for _, c := range cs {
		source := c.Source
		if source == "" {
			source = SourceEvent
		}
		args = append(args, c.ObjectType, c.ObjectID, c.Status, c.EventID, c.OccurredAt, c.RecordedAt, source)
	}
	_, err := ExecRows(tx, "INSERT IGNORE INTO payment_status_history (object_type, object_id, status, event_id, occurred_at, recorded_at, source) VALUES ",
		7, len(cs), "", args)
	if err != nil {
		return fmt.Errorf("models: record %d status changes: %w", len(cs), err)
	}
	return nil
}

// DeadEvent is an event parked in the DLQ, as the retry package knows it.
type DeadEvent struct {
	ID, Type string
	// Payload is kept only with the Signature that signs it, which the
	// caller checked (dlq.Router): a parked message nothing proved leaves
	// a row without a payload, which nothing applies.
	Payload   []byte
	Signature string
	Attempts  int
	LastError string
}

// MarkDead records that an event was parked: it inserts a dead row, or
// turns an existing dead row's details to the latest. A processed or
// ignored row stays as it is: the event is done. With a signed payload
// the row's type, created and object are the payload's, over whatever an
// unsigned parking of the same id recorded; without one the row names the
// event (id, type as claimed) and holds nothing else: it is unverified,
// and `billing reprocess`, reconciliation (KnownEventIDs) and a takeover
// (ReplaceEvent) ignore what it says.
func (s *Store) MarkDead(ctx context.Context, ev DeadEvent) error {
	if ev.ID == "" {
		return errors.New("models: mark dead: event id is empty")
	}
	now := s.now()
	sig := StoredSignature(ev.Signature)
	var f payloadEnvelope
	payload := ev.Payload
	if sig != nil {
		f = payloadFields(payload)
	}
	if f.ID != ev.ID { // unsigned, or signed for another event: nothing proves it is this one
		f, payload, sig = payloadEnvelope{}, nil, nil
	} else if f.Type != "" {
		ev.Type = f.Type
	}
	// ON DUPLICATE KEY assignments run left to right and see earlier ones,
	// so status, which the others test, is assigned last, and payload,
	// which decides whether the signed parking's fields replace the row's,
	// just before it.
	const signed = "status = 'dead' AND VALUES(payload) IS NOT NULL"
	err := s.db.WithContext(ctx).Exec(`INSERT INTO stripe_events
		(id, type, created, object_type, object_id, status, attempts, last_error, payload, signature, received_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON DUPLICATE KEY UPDATE
		  type = IF(`+signed+`, VALUES(type), type),
		  created = IF(`+signed+`, VALUES(created), created),
		  object_type = IF(`+signed+`, VALUES(object_type), object_type),
		  object_id = IF(`+signed+`, VALUES(object_id), object_id),
		  attempts = IF(status IN ('processed', 'ignored'), attempts, GREATEST(attempts, VALUES(attempts))),
		  last_error = IF(status IN ('processed', 'ignored'), last_error, VALUES(last_error)),
		  signature = IF(`+signed+`, VALUES(signature), signature),
		  payload = IF(`+signed+`, VALUES(payload), payload),
		  status = IF(status IN ('processed', 'ignored'), status, 'dead')`,
		ev.ID, ev.Type, f.created(), nonEmpty(f.Data.Object.Object), nonEmpty(f.Data.Object.ID),
		EventDead, ev.Attempts, ev.LastError, payload, sig, now).Error
	return translate("mark dead "+ev.ID, err)
}

// payloadEnvelope is what MarkDead reads of a parked event's payload,
// so that the event shows in its object's history in Stripe's order.
type payloadEnvelope struct {
	ID, Type string
	Created  int64
	Data     struct{ Object struct{ Object, ID string } }
}

// payloadFields reads payload's envelope; zero for what it does not say
// (it may not even be JSON: it failed).
func payloadFields(payload []byte) payloadEnvelope {
	var f payloadEnvelope
	if json.Unmarshal(payload, &f) != nil {
		return payloadEnvelope{}
	}
	return f
}

// created is the event's created time; nil when unknown.
func (f payloadEnvelope) created() *time.Time {
	if f.Created <= 0 {
		return nil
	}
	t := time.Unix(f.Created, 0).UTC()
	return &t
}

// nonEmpty is s, nil when empty.
func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// DeadSummary is what the ledger says about the events still parked.
type DeadSummary struct {
	// Count is the number of events dead in the ledger.
	Count int
	// OldestID and OldestReceivedAt name the one first received; empty and
	// zero when none is dead.
	OldestID         string
	OldestReceivedAt time.Time
}

// Dead summarizes the events still dead in the ledger (parked, or moved out
// of the DLQ and not yet processed).
func (s *Store) Dead(ctx context.Context) (DeadSummary, error) {
	var sum DeadSummary
	db := s.db.WithContext(ctx)
	var n int64
	if err := db.Model(&StripeEvent{}).Where("status = ?", EventDead).Count(&n).Error; err != nil {
		return sum, translate("count dead events", err)
	}
	sum.Count = int(n)
	if n == 0 {
		return sum, nil
	}
	var oldest StripeEvent
	err := db.Select("id", "received_at").Where("status = ?", EventDead).Order("received_at, id").Take(&oldest).Error
	if errors.Is(err, gorm.ErrRecordNotFound) { // processed since the count
		return DeadSummary{}, nil
	}
	if err != nil {
		return sum, translate("oldest dead event", err)
	}
	sum.OldestID, sum.OldestReceivedAt = oldest.ID, oldest.ReceivedAt
	return sum, nil
}

// Activity counts the ledger's events of a recent window.
type Activity struct {
	// Received counts events first seen (a ledger row written) since then,
	// whatever became of them.
	Received int
	// Processed counts events processed or ignored since then (including
	// parked events replayed since, received up to a day earlier).
	Processed int
	// Parked counts events received since then that are dead now.
	Parked int
}

// Activity counts the events received and processed since since. Every
// count is a range of the (status, received_at) index, so a busy ledger
// answers quickly.
func (s *Store) Activity(ctx context.Context, since time.Time) (Activity, error) {
	var a Activity
	done := []string{EventProcessed, EventIgnored}
	db := s.db.WithContext(ctx)
	var byStatus []struct {
		Status string
		N      int
	}
	err := db.Model(&StripeEvent{}).Select("status, COUNT(*) AS n").
		Where("status IN ? AND received_at >= ?", append(done, EventDead), since).Group("status").Scan(&byStatus).Error
	if err != nil {
		return a, translate("count received events", err)
	}
	for _, r := range byStatus {
		a.Received += r.N
		if r.Status == EventDead {
			a.Parked = r.N
		}
	}
	var n int64
	err = db.Model(&StripeEvent{}).
		Where("status IN ? AND received_at >= ? AND processed_at >= ?", done, since.Add(-24*time.Hour), since).Count(&n).Error
	if err != nil {
		return a, translate("count processed events", err)
	}
	a.Processed = int(n)
	return a, nil
}

// DeadIDs returns the ids of up to limit events dead in the ledger, oldest
// first.
func (s *Store) DeadIDs(ctx context.Context, limit int) ([]string, error) {
	var ids []string
	err := s.db.WithContext(ctx).Model(&StripeEvent{}).Where("status = ?", EventDead).
		Order("received_at, id").Limit(limit).Pluck("id", &ids).Error
	if err != nil {
		return nil, translate("dead event ids", err)
	}
	return ids, nil
}

// KnownEventIDs returns which of ids have a ledger row, whatever its
// status, but for an unverified dead row (no signature: a parked message
// nothing proved, or a row recorded before signatures were kept), which
// proves nothing about the event: reconciliation enqueues Stripe's copy of
// such an event, and it takes the row over.
func (s *Store) KnownEventIDs(ctx context.Context, ids []string) (map[string]bool, error) {
	known := make(map[string]bool, len(ids))
	const batch = 500
	for start := 0; start < len(ids); start += batch {
		end := min(start+batch, len(ids))
		var found []string
		err := s.db.WithContext(ctx).Model(&StripeEvent{}).Where("id IN ?", ids[start:end]).
			Where("NOT (status = ? AND signature IS NULL)", EventDead).Pluck("id", &found).Error
		if err != nil {
			return nil, translate("known event ids", err)
		}
		for _, id := range found {
			known[id] = true
		}
	}
	return known, nil
}

// IncrementRedrives counts one more automatic re-drive of a ledger row and
// returns the new count; ErrNotFound when the event has no row.
func (s *Store) IncrementRedrives(ctx context.Context, id string) (int, error) {
	var n int
	err := s.InTx(ctx, func(tx *gorm.DB) error {
		res := tx.Model(&StripeEvent{}).Where("id = ?", id).Update("redrives", gorm.Expr("redrives + 1"))
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		return tx.Model(&StripeEvent{}).Where("id = ?", id).Pluck("redrives", &n).Error
	})
	if errors.Is(err, ErrNotFound) {
		return 0, fmt.Errorf("models: increment redrives %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return 0, translate("increment redrives "+id, err)
	}
	return n, nil
}

// Checkpoint returns the value saved under name, "" when none was.
func (s *Store) Checkpoint(ctx context.Context, name string) (string, error) {
	var values []string
	err := s.db.WithContext(ctx).Model(&SweepCheckpoint{}).Where("name = ?", name).Pluck("value", &values).Error
	if err != nil {
		return "", translate("checkpoint "+name, err)
	}
	if len(values) == 0 {
		return "", nil
	}
	return values[0], nil
}

// SetCheckpoint saves value under name.
func (s *Store) SetCheckpoint(ctx context.Context, name, value string) error {
	return SaveCheckpoint(s.db.WithContext(ctx), name, value, s.now())
}

// SaveCheckpoint saves value under name within tx, at at: a position
// that commits with what it counts (a backfill's page).
func SaveCheckpoint(tx *gorm.DB, name, value string, at time.Time) error {
	err := tx.Exec(`INSERT INTO sweep_checkpoints (name, value, updated_at) VALUES (?, ?, ?)
		ON DUPLICATE KEY UPDATE value = VALUES(value), updated_at = VALUES(updated_at)`,
		name, value, at).Error
	return translate("set checkpoint "+name, err)
}

// lockNameSQL scopes a named lock to the current database (GET_LOCK names
// are server-wide) and keeps it under MySQL's 64-character limit.
const lockNameSQL = "CONCAT('billing.', LEFT(SHA1(CONCAT(IFNULL(DATABASE(), ''), '/', ?)), 40))"

// WithLock runs fn while holding the MySQL named lock name, waiting at most
// timeout (whole seconds; 0 means do not wait) for it. acquired is false,
// and fn not run, when another session holds it. The lock lives on one
// dedicated connection; if that connection dies the server releases it.
func (s *Store) WithLock(ctx context.Context, name string, timeout time.Duration, fn func(ctx context.Context) error) (acquired bool, err error) {
	conn, err := s.sqlDB.Conn(ctx)
	if err != nil {
		return false, translate("lock "+name, err)
	}
	defer conn.Close()
	var got sql.NullInt64
	err = conn.QueryRowContext(ctx, "SELECT GET_LOCK("+lockNameSQL+", ?)", name, int64(timeout/time.Second)).Scan(&got)
	if err != nil {
		return false, translate("lock "+name, err)
	}
	if !got.Valid {
		return false, fmt.Errorf("models: lock %s: GET_LOCK returned NULL", name)
	}
	if got.Int64 != 1 {
		return false, nil
	}
	defer func() {
		_, uerr := conn.ExecContext(context.WithoutCancel(ctx), "DO RELEASE_LOCK("+lockNameSQL+")", name)
		if uerr != nil && err == nil {
			err = translate("unlock "+name, uerr)
		}
	}()
	return true, fn(ctx)
}

// EventFilter selects ledger events: by type and status (any of each;
// empty: all) and by Stripe's created time in [Since, Until) (zero: no
// bound). An event whose created is unknown (a dead row whose payload
// never parsed) matches only when no time bound is set.
type EventFilter struct {
	Types, Statuses []string
	Since, Until    time.Time
}

// EventsInStripeOrder returns up to limit ledger events matching f, in
// Stripe's order (created, then id; unknown created first), after the
// event after (nil: from the start), without their payloads: a caller
// pages through a ledger of any size and loads each payload when it
// applies the event (LockEvent).
func (s *Store) EventsInStripeOrder(ctx context.Context, f EventFilter, after *StripeEvent, limit int) ([]StripeEvent, error) {
	q := s.db.WithContext(ctx).Model(&StripeEvent{}).Select("id", "type", "status", "created", "object_id")
	if len(f.Types) > 0 {
		q = q.Where("type IN ?", f.Types)
	}
	if len(f.Statuses) > 0 {
		q = q.Where("status IN ?", f.Statuses)
	}
	if !f.Since.IsZero() {
		q = q.Where("created >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		q = q.Where("created < ?", f.Until)
	}
	if after != nil {
		if after.Created == nil {
			q = q.Where("((created IS NULL AND id > ?) OR created IS NOT NULL)", after.ID)
		} else {
			q = q.Where("(created > ? OR (created = ? AND id > ?))", *after.Created, *after.Created, after.ID)
		}
	}
	var out []StripeEvent
	err := q.Order("created IS NOT NULL, created, id").Limit(limit).Find(&out).Error
	if err != nil {
		return nil, translate("list events", err)
	}
	return out, nil
}

// StoredEvent reads the ledger row id with its payload and signature,
// without a lock; ErrNotFound when there is none.
func (s *Store) StoredEvent(ctx context.Context, id string) (StripeEvent, error) {
	var ev StripeEvent
	err := s.db.WithContext(ctx).Select("id", "type", "status", "payload", "signature").Where("id = ?", id).Take(&ev).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ev, fmt.Errorf("models: read event %s: %w", id, ErrNotFound)
	}
	return ev, translate("read event "+id, err)
}

// LockEvent reads the ledger row id, payload included, locked until tx
// ends; ErrNotFound when there is none.
func LockEvent(tx *gorm.DB, id string) (StripeEvent, error) {
	var ev StripeEvent
	err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("id = ?", id).Take(&ev).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return ev, fmt.Errorf("models: lock event %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return ev, fmt.Errorf("models: lock event %s: %w", id, err)
	}
	return ev, nil
}

// SetEventStatus sets the ledger status of event id, whether it was
// applied (nil: not applied at all), and its processed_at to at, in tx.
func SetEventStatus(tx *gorm.DB, id, status string, applied *bool, at time.Time) error {
	err := tx.Model(&StripeEvent{}).Where("id = ?", id).Updates(map[string]any{"status": status, "applied": applied, "processed_at": at}).Error
	if err != nil {
		return fmt.Errorf("models: set event %s %s: %w", id, status, err)
	}
	return nil
}
