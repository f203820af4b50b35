-- The status history says what reported each status (issue 24): a Stripe
-- event, or `billing backfill`'s snapshot of the object (its event_id
-- then names the snapshot, not an event). Existing rows came from
-- events. Added last: an instant change on MySQL 8 and MariaDB.

-- +goose Up
ALTER TABLE payment_status_history
  ADD COLUMN source VARCHAR(16) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT 'event';

-- +goose Down
ALTER TABLE payment_status_history DROP COLUMN source;
