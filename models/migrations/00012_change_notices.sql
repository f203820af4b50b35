-- The notifications of the change feed (issue 25, `billing notify`): one
-- row per change that was to be notified, keyed by the change's message
-- id, so that a change delivered twice is notified once. notify inserts
-- the row and sends in one transaction: a second consumer of the same
-- change waits on the row and then finds it done.
--
-- outcome: sent; refused (the recipient's SMTP server refused it with a
-- 5xx reply, kept in detail: not retried); no_recipient (no email address
-- known, or no support address set).

-- +goose Up
CREATE TABLE change_notices (
  id         VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  notice     VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  object_id  VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  recipient  VARCHAR(320) NULL,
  outcome    VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  detail     VARCHAR(1024) NULL,
  created_at DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  KEY idx_change_notices_outcome (outcome, created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE change_notices;
