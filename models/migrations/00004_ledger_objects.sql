-- The ledger names its object (issue 12):
-- - object_type, object_id: the event's data.object.object and
--   data.object.id; object_id is NULL for a preview without an id
--   (invoice.upcoming), both are NULL for a payload that never parsed;
-- - applied: TRUE when the event changed its object's row, FALSE when it
--   was stale (the row already reflected a newer event: only the status it
--   reported went to the history); NULL for an event not applied (ignored,
--   dead) and for events recorded before this migration.
-- Rows recorded before take their object from their payload, so that they
-- show in `billing history`.

-- +goose Up
ALTER TABLE stripe_events
  ADD COLUMN object_type VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NULL AFTER created,
  ADD COLUMN object_id   VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER object_type,
  ADD COLUMN applied     BOOLEAN NULL AFTER status,
  -- "What happened to this object, in Stripe's order?" (billing history)
  ADD KEY idx_stripe_events_object (object_type, object_id, created),
  -- "Which events of this type came in, and when?" (the ledger by type and time)
  ADD KEY idx_stripe_events_type_received (type, received_at);

-- MySQL 8 reads no JSON from a binary string (payload is a BLOB): convert
-- it first. A payload that is not JSON keeps NULLs.
UPDATE stripe_events
  SET object_type = JSON_VALUE(CONVERT(payload USING utf8mb4), '$.data.object.object'),
      object_id   = JSON_VALUE(CONVERT(payload USING utf8mb4), '$.data.object.id')
  WHERE payload IS NOT NULL AND JSON_VALID(CONVERT(payload USING utf8mb4));

-- +goose Down
ALTER TABLE stripe_events
  DROP KEY idx_stripe_events_type_received,
  DROP KEY idx_stripe_events_object,
  DROP COLUMN applied,
  DROP COLUMN object_id,
  DROP COLUMN object_type;
