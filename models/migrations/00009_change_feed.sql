-- The change feed (issue 25): every change that matters to another
-- service is written to change_outbox in the transaction that makes it,
-- and `billing relay` publishes the rows to RabbitMQ in seq order.
--
-- seq orders the rows by insertion. Two changes of one object are made
-- under that object's row lock, one transaction after the other, so they
-- get increasing seqs and the later is never visible before the earlier;
-- changes of different objects may commit out of seq order, which is why
-- the relay reads rows not yet published, never "seq after a cursor".
--
-- object_seq numbers one object's changes from 1, with no gap: the
-- object's change_seq column (on every table of Stripe objects) holds the
-- last one given, and is written with the row.
--
-- body is the message as published (changes.Change as JSON); id is its
-- message id, stable across retries (the consumers' dedupe key).

-- +goose Up
CREATE TABLE change_outbox (
  seq          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  id           VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  object_type  VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  object_id    VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  object_seq   BIGINT UNSIGNED NOT NULL,
  routing_key  VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  body         MEDIUMTEXT   CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  created_at   DATETIME(6)  NOT NULL,
  published_at DATETIME(6)  NULL,
  PRIMARY KEY (seq),
  UNIQUE KEY uq_change_outbox_id (id),
  KEY idx_change_outbox_published (published_at, seq)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

ALTER TABLE customers         ADD COLUMN change_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE subscriptions     ADD COLUMN change_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE invoices          ADD COLUMN change_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE payments          ADD COLUMN change_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE refunds           ADD COLUMN change_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE disputes          ADD COLUMN change_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE invoice_payments  ADD COLUMN change_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE checkout_sessions ADD COLUMN change_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;
ALTER TABLE credit_notes      ADD COLUMN change_seq BIGINT UNSIGNED NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE customers         DROP COLUMN change_seq;
ALTER TABLE subscriptions     DROP COLUMN change_seq;
ALTER TABLE invoices          DROP COLUMN change_seq;
ALTER TABLE payments          DROP COLUMN change_seq;
ALTER TABLE refunds           DROP COLUMN change_seq;
ALTER TABLE disputes          DROP COLUMN change_seq;
ALTER TABLE invoice_payments  DROP COLUMN change_seq;
ALTER TABLE checkout_sessions DROP COLUMN change_seq;
ALTER TABLE credit_notes      DROP COLUMN change_seq;
DROP TABLE change_outbox;
