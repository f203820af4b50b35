-- What support and finance ask of the records (issue 12):
-- - metadata: each stored object's Stripe metadata as JSON, queryable with
--   JSON_EXTRACT / JSON_VALUE (on MariaDB JSON is LONGTEXT with a
--   JSON_VALID check); NULL until an event carries it;
-- - checkout_sessions and credit_notes: objects of their own, with a status
--   history like the others;
-- - invoices: paid_at, tax, total discounts, next_payment_attempt;
-- - charges: the payment method summary (type, brand, last4, expiry,
--   wallet), never the card's number or fingerprint;
-- - views charges and payment_intents: one object each, so that a SUM over
--   payments cannot count a payment twice (docs/finance.md);
-- - an index for each common look-up, named with the question it serves.
-- Every new column is NULL on the rows the old schema wrote: nothing is
-- made up; the object's next event fills them. Credit notes and checkout
-- sessions come back from the ledger with `billing reprocess`
-- (docs/finance.md).

-- +goose Up
ALTER TABLE customers
  ADD COLUMN metadata JSON NULL AFTER balance,
  -- Support: which customer is this email address?
  ADD KEY idx_customers_email (email);

ALTER TABLE subscriptions
  ADD COLUMN metadata JSON NULL AFTER trial_end,
  -- Support and finance: which subscriptions in a status end their period
  -- (renew, lapse) before a date?
  ADD KEY idx_subscriptions_status_period_end (status, current_period_end);

ALTER TABLE invoices
  ADD COLUMN paid_at               DATETIME(6) NULL AFTER due_date,
  ADD COLUMN next_payment_attempt  DATETIME(6) NULL AFTER paid_at,
  ADD COLUMN tax                   BIGINT      NULL AFTER total,
  ADD COLUMN total_discount_amount BIGINT      NULL AFTER tax,
  ADD COLUMN metadata              JSON        NULL AFTER billed_period_end,
  -- Support: which invoice has this number (as printed on the PDF)?
  ADD KEY idx_invoices_number (number),
  -- Support and finance: which invoices are open (or uncollectible), by
  -- due date?
  ADD KEY idx_invoices_status_due (status, due_date),
  -- Finance: which invoices were paid on a day?
  ADD KEY idx_invoices_paid_at (paid_at);

ALTER TABLE payments
  ADD COLUMN payment_method_type      VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER failure_message,
  ADD COLUMN payment_method_brand     VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER payment_method_type,
  ADD COLUMN payment_method_last4     VARCHAR(4)  CHARACTER SET ascii COLLATE ascii_bin NULL AFTER payment_method_brand,
  ADD COLUMN payment_method_exp_month INT         NULL AFTER payment_method_last4,
  ADD COLUMN payment_method_exp_year  INT         NULL AFTER payment_method_exp_month,
  ADD COLUMN payment_method_wallet    VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER payment_method_exp_year,
  ADD COLUMN metadata                 JSON        NULL AFTER payment_method_wallet,
  -- Finance: what did charges (or payment intents) in a status amount to
  -- per day?
  ADD KEY idx_payments_object_status_created (object, status, stripe_created);

ALTER TABLE refunds
  ADD COLUMN metadata JSON NULL AFTER failure_reason,
  -- Finance: what was refunded per day?
  ADD KEY idx_refunds_status_created (status, stripe_created);

ALTER TABLE disputes
  ADD COLUMN metadata JSON NULL AFTER evidence_due_by,
  -- Support: which disputes need evidence before a date?
  ADD KEY idx_disputes_evidence_due_by (evidence_due_by);

ALTER TABLE invoice_payments
  -- Stripe's InvoicePayment has no metadata of its own.
  ADD KEY idx_invoice_payments_paid_at (paid_at);

CREATE TABLE checkout_sessions (
  id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id           VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  mode                VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  status              VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  payment_status      VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  client_reference_id VARCHAR(255) NULL,
  customer_id         VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  subscription_id     VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  payment_intent_id   VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  invoice_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  currency            CHAR(3)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  amount_total        BIGINT       NULL,
  expires_at          DATETIME(6)  NULL,
  metadata            JSON         NULL,
  livemode            BOOLEAN      NOT NULL DEFAULT FALSE,
  account             VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  stripe_created      DATETIME(6)  NULL,
  last_event_id       VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created  DATETIME(6)  NULL,
  created_at          DATETIME(6)  NOT NULL,
  updated_at          DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_checkout_sessions_stripe_id (stripe_id),
  -- Support: which checkout (and so which customer) is our user's?
  KEY idx_checkout_sessions_client_reference_id (client_reference_id),
  -- Support: which checkouts did this customer go through?
  KEY idx_checkout_sessions_customer (customer_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE credit_notes (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  invoice_id         VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  customer_id        VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  number             VARCHAR(255) NULL,
  status             VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  type               VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  reason             VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  currency           CHAR(3)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  amount             BIGINT       NULL,
  total              BIGINT       NULL,
  memo               TEXT         NULL,
  voided_at          DATETIME(6)  NULL,
  metadata           JSON         NULL,
  livemode           BOOLEAN      NOT NULL DEFAULT FALSE,
  account            VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  stripe_created     DATETIME(6)  NULL,
  last_event_id      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created DATETIME(6)  NULL,
  created_at         DATETIME(6)  NOT NULL,
  updated_at         DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_credit_notes_stripe_id (stripe_id),
  -- Support: what was credited on this invoice?
  KEY idx_credit_notes_invoice (invoice_id),
  -- Finance: what was credited per day?
  KEY idx_credit_notes_status_created (status, stripe_created)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- One object each: sum money over these, never over payments. A view's
-- column list is fixed when it is created: a migration that adds a column
-- to payments recreates both.
CREATE SQL SECURITY INVOKER VIEW charges AS
  SELECT * FROM payments WHERE object = 'charge';
CREATE SQL SECURITY INVOKER VIEW payment_intents AS
  SELECT * FROM payments WHERE object = 'payment_intent';

-- +goose Down
DROP VIEW payment_intents;
DROP VIEW charges;
DROP TABLE credit_notes;
DROP TABLE checkout_sessions;

ALTER TABLE invoice_payments
  DROP KEY idx_invoice_payments_paid_at;

ALTER TABLE disputes
  DROP KEY idx_disputes_evidence_due_by,
  DROP COLUMN metadata;

ALTER TABLE refunds
  DROP KEY idx_refunds_status_created,
  DROP COLUMN metadata;

ALTER TABLE payments
  DROP KEY idx_payments_object_status_created,
  DROP COLUMN metadata,
  DROP COLUMN payment_method_wallet,
  DROP COLUMN payment_method_exp_year,
  DROP COLUMN payment_method_exp_month,
  DROP COLUMN payment_method_last4,
  DROP COLUMN payment_method_brand,
  DROP COLUMN payment_method_type;

ALTER TABLE invoices
  DROP KEY idx_invoices_paid_at,
  DROP KEY idx_invoices_status_due,
  DROP KEY idx_invoices_number,
  DROP COLUMN metadata,
  DROP COLUMN total_discount_amount,
  DROP COLUMN tax,
  DROP COLUMN next_payment_attempt,
  DROP COLUMN paid_at;

ALTER TABLE subscriptions
  DROP KEY idx_subscriptions_status_period_end,
  DROP COLUMN metadata;

ALTER TABLE customers
  DROP KEY idx_customers_email,
  DROP COLUMN metadata;
