-- A person's decision to drop a parked event (`billing dlq discard`): who,
-- when, why and how many DLQ copies went. The ledger row stays, with
-- status 'discarded'; an event without a ledger row (unverified) has its
-- discard here alone. Append-only: an event Stripe sends again may be
-- parked and discarded again.

-- +goose Up
CREATE TABLE event_discards (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  event_id     VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  event_type   VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  copies       INT          NOT NULL,
  discarded_by VARCHAR(255) NOT NULL,
  reason       VARCHAR(1024) NOT NULL,
  discarded_at DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  KEY idx_event_discards_event (event_id, discarded_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE event_discards;
