-- Stripe ids are ASCII and case-sensitive: ascii_bin keeps cus_A and cus_a apart.
-- Money is BIGINT minor units beside a CHAR(3) currency. Times are DATETIME(6) in UTC.

-- +goose Up
CREATE TABLE stripe_events (
  id           VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  type         VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  api_version  VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  livemode     BOOLEAN      NOT NULL DEFAULT FALSE,
  account      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL DEFAULT '',
  created      DATETIME(6)  NULL,
  status       VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  attempts     INT          NOT NULL DEFAULT 0,
  redrives     INT          NOT NULL DEFAULT 0,
  last_error   TEXT         NULL,
  payload      LONGBLOB     NULL,
  received_at  DATETIME(6)  NOT NULL,
  processed_at DATETIME(6)  NULL,
  PRIMARY KEY (id),
  KEY idx_stripe_events_status_received (status, received_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE customers (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  email              VARCHAR(512) NULL,
  name               VARCHAR(512) NULL,
  currency           CHAR(3)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  balance            BIGINT       NOT NULL DEFAULT 0,
  deleted            BOOLEAN      NOT NULL DEFAULT FALSE,
  livemode           BOOLEAN      NOT NULL DEFAULT FALSE,
  stripe_created     DATETIME(6)  NULL,
  last_event_id      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created DATETIME(6)  NULL,
  created_at         DATETIME(6)  NOT NULL,
  updated_at         DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_customers_stripe_id (stripe_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE subscriptions (
  id                   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id            VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  customer_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  status               VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  currency             CHAR(3)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  price_id             VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  quantity             BIGINT       NULL,
  current_period_start DATETIME(6)  NULL,
  current_period_end   DATETIME(6)  NULL,
  cancel_at_period_end BOOLEAN      NOT NULL DEFAULT FALSE,
  cancel_at            DATETIME(6)  NULL,
  canceled_at          DATETIME(6)  NULL,
  ended_at             DATETIME(6)  NULL,
  trial_start          DATETIME(6)  NULL,
  trial_end            DATETIME(6)  NULL,
  livemode             BOOLEAN      NOT NULL DEFAULT FALSE,
  stripe_created       DATETIME(6)  NULL,
  last_event_id        VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created   DATETIME(6)  NULL,
  created_at           DATETIME(6)  NOT NULL,
  updated_at           DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_subscriptions_stripe_id (stripe_id),
  KEY idx_subscriptions_customer (customer_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE invoices (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  customer_id        VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  subscription_id    VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  payment_intent_id  VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  charge_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  status             VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  number             VARCHAR(255) NULL,
  currency           CHAR(3)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  amount_due         BIGINT       NOT NULL DEFAULT 0,
  amount_paid        BIGINT       NOT NULL DEFAULT 0,
  amount_remaining   BIGINT       NOT NULL DEFAULT 0,
  subtotal           BIGINT       NOT NULL DEFAULT 0,
  total              BIGINT       NOT NULL DEFAULT 0,
  attempt_count      INT          NOT NULL DEFAULT 0,
  hosted_invoice_url TEXT         NULL,
  due_date           DATETIME(6)  NULL,
  period_start       DATETIME(6)  NULL,
  period_end         DATETIME(6)  NULL,
  deleted            BOOLEAN      NOT NULL DEFAULT FALSE,
  livemode           BOOLEAN      NOT NULL DEFAULT FALSE,
  stripe_created     DATETIME(6)  NULL,
  last_event_id      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created DATETIME(6)  NULL,
  created_at         DATETIME(6)  NOT NULL,
  updated_at         DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_invoices_stripe_id (stripe_id),
  KEY idx_invoices_customer (customer_id),
  KEY idx_invoices_subscription (subscription_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Charges and payment intents share one table; object says which.
CREATE TABLE payments (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  object             VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  customer_id        VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  invoice_id         VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  payment_intent_id  VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  charge_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  status             VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  currency           CHAR(3)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  amount             BIGINT       NOT NULL DEFAULT 0,
  amount_captured    BIGINT       NOT NULL DEFAULT 0,
  amount_received    BIGINT       NOT NULL DEFAULT 0,
  amount_refunded    BIGINT       NOT NULL DEFAULT 0,
  captured           BOOLEAN      NOT NULL DEFAULT FALSE,
  refunded           BOOLEAN      NOT NULL DEFAULT FALSE,
  paid               BOOLEAN      NOT NULL DEFAULT FALSE,
  failure_code       VARCHAR(255) NULL,
  failure_message    TEXT         NULL,
  livemode           BOOLEAN      NOT NULL DEFAULT FALSE,
  stripe_created     DATETIME(6)  NULL,
  last_event_id      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created DATETIME(6)  NULL,
  created_at         DATETIME(6)  NOT NULL,
  updated_at         DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_payments_stripe_id (stripe_id),
  KEY idx_payments_customer (customer_id),
  KEY idx_payments_invoice (invoice_id),
  KEY idx_payments_payment_intent (payment_intent_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE refunds (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  charge_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  payment_intent_id  VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  status             VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  currency           CHAR(3)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  amount             BIGINT       NOT NULL DEFAULT 0,
  reason             VARCHAR(255) NULL,
  failure_reason     VARCHAR(255) NULL,
  livemode           BOOLEAN      NOT NULL DEFAULT FALSE,
  stripe_created     DATETIME(6)  NULL,
  last_event_id      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created DATETIME(6)  NULL,
  created_at         DATETIME(6)  NOT NULL,
  updated_at         DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_refunds_stripe_id (stripe_id),
  KEY idx_refunds_charge (charge_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE disputes (
  id                   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id            VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  charge_id            VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  payment_intent_id    VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  status               VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  currency             CHAR(3)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  amount               BIGINT       NOT NULL DEFAULT 0,
  reason               VARCHAR(255) NULL,
  is_charge_refundable BOOLEAN      NOT NULL DEFAULT FALSE,
  evidence_due_by      DATETIME(6)  NULL,
  livemode             BOOLEAN      NOT NULL DEFAULT FALSE,
  stripe_created       DATETIME(6)  NULL,
  last_event_id        VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created   DATETIME(6)  NULL,
  created_at           DATETIME(6)  NOT NULL,
  updated_at           DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_disputes_stripe_id (stripe_id),
  KEY idx_disputes_charge (charge_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- Append-only; the unique key makes a redelivered event add nothing.
CREATE TABLE payment_status_history (
  id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  object_type VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  object_id   VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  status      VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  event_id    VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  occurred_at DATETIME(6)  NOT NULL,
  recorded_at DATETIME(6)  NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uq_history_event_object (event_id, object_type, object_id),
  KEY idx_history_object (object_type, object_id, occurred_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE sweep_checkpoints (
  name       VARCHAR(191) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  value      VARCHAR(1024) NOT NULL,
  updated_at DATETIME(6)  NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE sweep_checkpoints;
DROP TABLE payment_status_history;
DROP TABLE disputes;
DROP TABLE refunds;
DROP TABLE payments;
DROP TABLE invoices;
DROP TABLE subscriptions;
DROP TABLE customers;
DROP TABLE stripe_events;
