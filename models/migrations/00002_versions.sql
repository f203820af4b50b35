-- Records that match Stripe on every API version (issue 11):
-- - a column a payload field fills is NULL until an event carries the field,
--   so that a field absent from a payload never writes a made-up 0 or false;
-- - account: the Connect account of the event that wrote the row (NULL for
--   the platform's own events);
-- - subscription_items: every item of a subscription (price, quantity, and
--   since 2025-03-31.basil its own current period), instead of the first
--   item's price_id and quantity on the subscription;
-- - invoices.billed_period_start/end: the period the invoice's lines bill;
-- - invoice_payments: Stripe's InvoicePayment objects, the invoice <->
--   payment link from 2025-03-31.basil on.

-- +goose Up
ALTER TABLE customers
  MODIFY balance BIGINT NULL,
  ADD COLUMN account VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER livemode;

ALTER TABLE subscriptions
  DROP COLUMN price_id,
  DROP COLUMN quantity,
  MODIFY cancel_at_period_end BOOLEAN NULL,
  ADD COLUMN account VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER livemode;

ALTER TABLE invoices
  MODIFY amount_due       BIGINT NULL,
  MODIFY amount_paid      BIGINT NULL,
  MODIFY amount_remaining BIGINT NULL,
  MODIFY subtotal         BIGINT NULL,
  MODIFY total            BIGINT NULL,
  MODIFY attempt_count    INT    NULL,
  ADD COLUMN billed_period_start DATETIME(6) NULL AFTER period_end,
  ADD COLUMN billed_period_end   DATETIME(6) NULL AFTER billed_period_start,
  ADD COLUMN account VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER livemode;

ALTER TABLE payments
  MODIFY amount          BIGINT  NULL,
  MODIFY amount_captured BIGINT  NULL,
  MODIFY amount_received BIGINT  NULL,
  MODIFY amount_refunded BIGINT  NULL,
  MODIFY captured        BOOLEAN NULL,
  MODIFY refunded        BOOLEAN NULL,
  MODIFY paid            BOOLEAN NULL,
  ADD COLUMN account VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER livemode;

ALTER TABLE refunds
  MODIFY amount BIGINT NULL,
  ADD COLUMN account VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER livemode;

ALTER TABLE disputes
  MODIFY amount               BIGINT  NULL,
  MODIFY is_charge_refundable BOOLEAN NULL,
  ADD COLUMN account VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER livemode;

-- Written with their subscription's newest applied event: the rows of a
-- subscription are the items that event lists.
CREATE TABLE subscription_items (
  id                   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id            VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  subscription_id      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  price_id             VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  quantity             BIGINT       NULL,
  current_period_start DATETIME(6)  NULL,
  current_period_end   DATETIME(6)  NULL,
  livemode             BOOLEAN      NOT NULL DEFAULT FALSE,
  account              VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  created_at           DATETIME(6)  NOT NULL,
  updated_at           DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_subscription_items_stripe_id (stripe_id),
  KEY idx_subscription_items_subscription (subscription_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE invoice_payments (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  invoice_id         VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  payment_intent_id  VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  charge_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  status             VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  currency           CHAR(3)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  amount_paid        BIGINT       NULL,
  amount_requested   BIGINT       NULL,
  paid_at            DATETIME(6)  NULL,
  livemode           BOOLEAN      NOT NULL DEFAULT FALSE,
  account            VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  stripe_created     DATETIME(6)  NULL,
  last_event_id      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created DATETIME(6)  NULL,
  created_at         DATETIME(6)  NOT NULL,
  updated_at         DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_invoice_payments_stripe_id (stripe_id),
  KEY idx_invoice_payments_invoice (invoice_id),
  KEY idx_invoice_payments_payment_intent (payment_intent_id),
  KEY idx_invoice_payments_charge (charge_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE invoice_payments;
DROP TABLE subscription_items;

UPDATE disputes SET amount = IFNULL(amount, 0), is_charge_refundable = IFNULL(is_charge_refundable, FALSE);
ALTER TABLE disputes
  DROP COLUMN account,
  MODIFY amount               BIGINT  NOT NULL DEFAULT 0,
  MODIFY is_charge_refundable BOOLEAN NOT NULL DEFAULT FALSE;

UPDATE refunds SET amount = IFNULL(amount, 0);
ALTER TABLE refunds
  DROP COLUMN account,
  MODIFY amount BIGINT NOT NULL DEFAULT 0;

UPDATE payments SET amount = IFNULL(amount, 0), amount_captured = IFNULL(amount_captured, 0),
  amount_received = IFNULL(amount_received, 0), amount_refunded = IFNULL(amount_refunded, 0),
  captured = IFNULL(captured, FALSE), refunded = IFNULL(refunded, FALSE), paid = IFNULL(paid, FALSE);
ALTER TABLE payments
  DROP COLUMN account,
  MODIFY amount          BIGINT  NOT NULL DEFAULT 0,
  MODIFY amount_captured BIGINT  NOT NULL DEFAULT 0,
  MODIFY amount_received BIGINT  NOT NULL DEFAULT 0,
  MODIFY amount_refunded BIGINT  NOT NULL DEFAULT 0,
  MODIFY captured        BOOLEAN NOT NULL DEFAULT FALSE,
  MODIFY refunded        BOOLEAN NOT NULL DEFAULT FALSE,
  MODIFY paid            BOOLEAN NOT NULL DEFAULT FALSE;

UPDATE invoices SET amount_due = IFNULL(amount_due, 0), amount_paid = IFNULL(amount_paid, 0),
  amount_remaining = IFNULL(amount_remaining, 0), subtotal = IFNULL(subtotal, 0), total = IFNULL(total, 0),
  attempt_count = IFNULL(attempt_count, 0);
ALTER TABLE invoices
  DROP COLUMN account,
  DROP COLUMN billed_period_end,
  DROP COLUMN billed_period_start,
  MODIFY amount_due       BIGINT NOT NULL DEFAULT 0,
  MODIFY amount_paid      BIGINT NOT NULL DEFAULT 0,
  MODIFY amount_remaining BIGINT NOT NULL DEFAULT 0,
  MODIFY subtotal         BIGINT NOT NULL DEFAULT 0,
  MODIFY total            BIGINT NOT NULL DEFAULT 0,
  MODIFY attempt_count    INT    NOT NULL DEFAULT 0;

UPDATE subscriptions SET cancel_at_period_end = IFNULL(cancel_at_period_end, FALSE);
ALTER TABLE subscriptions
  DROP COLUMN account,
  MODIFY cancel_at_period_end BOOLEAN NOT NULL DEFAULT FALSE,
  ADD COLUMN price_id VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER currency,
  ADD COLUMN quantity BIGINT NULL AFTER price_id;

UPDATE customers SET balance = IFNULL(balance, 0);
ALTER TABLE customers
  DROP COLUMN account,
  MODIFY balance BIGINT NOT NULL DEFAULT 0;
