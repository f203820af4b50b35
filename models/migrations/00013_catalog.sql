-- More of Stripe's traffic that support and finance ask about (issue 23
-- item 9): a customer's payment methods and default method, the
-- products and prices a report names ("Pro monthly" rather than a price
-- id), a subscription's paused collection, and subscription schedules.
-- payment_methods keeps a method's summary (type and, where it has them,
-- brand, last four digits, expiry, wallet), never a number or a
-- fingerprint; customer_id is NULL once the method is detached. Every new
-- column is NULL on the rows the old schema wrote until the object's next
-- event; `billing reprocess` rebuilds them from the ledger.

-- +goose Up
ALTER TABLE customers
  ADD COLUMN default_payment_method_id VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER balance;

ALTER TABLE subscriptions
  ADD COLUMN pause_collection_behavior  VARCHAR(32) CHARACTER SET ascii COLLATE ascii_bin NULL AFTER trial_end,
  ADD COLUMN pause_collection_resumes_at DATETIME(6) NULL AFTER pause_collection_behavior;

CREATE TABLE payment_methods (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  customer_id        VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  type               VARCHAR(64)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  brand              VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  last4              VARCHAR(4)   CHARACTER SET ascii COLLATE ascii_bin NULL,
  exp_month          INT          NULL,
  exp_year           INT          NULL,
  wallet             VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  metadata           JSON         NULL,
  livemode           BOOLEAN      NOT NULL DEFAULT FALSE,
  account            VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  stripe_created     DATETIME(6)  NULL,
  last_event_id      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created DATETIME(6)  NULL,
  created_at         DATETIME(6)  NOT NULL,
  updated_at         DATETIME(6)  NOT NULL,
  change_seq         BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY uq_payment_methods_stripe_id (stripe_id),
  -- Support: which cards does this customer have?
  KEY idx_payment_methods_customer (customer_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE products (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id          VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  name               VARCHAR(255) NULL,
  active             BOOLEAN      NULL,
  metadata           JSON         NULL,
  deleted            BOOLEAN      NOT NULL DEFAULT FALSE,
  livemode           BOOLEAN      NOT NULL DEFAULT FALSE,
  account            VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  stripe_created     DATETIME(6)  NULL,
  last_event_id      VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created DATETIME(6)  NULL,
  created_at         DATETIME(6)  NOT NULL,
  updated_at         DATETIME(6)  NOT NULL,
  change_seq         BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY uq_products_stripe_id (stripe_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE prices (
  id                       BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id                VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  product_id               VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  type                     VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  currency                 CHAR(3)      CHARACTER SET ascii COLLATE ascii_bin NULL,
  unit_amount              BIGINT       NULL,
  recurring_interval       VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  recurring_interval_count INT          NULL,
  nickname                 VARCHAR(255) NULL,
  lookup_key               VARCHAR(255) NULL,
  active                   BOOLEAN      NULL,
  metadata                 JSON         NULL,
  deleted                  BOOLEAN      NOT NULL DEFAULT FALSE,
  livemode                 BOOLEAN      NOT NULL DEFAULT FALSE,
  account                  VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  stripe_created           DATETIME(6)  NULL,
  last_event_id            VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created       DATETIME(6)  NULL,
  created_at               DATETIME(6)  NOT NULL,
  updated_at               DATETIME(6)  NOT NULL,
  change_seq               BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY uq_prices_stripe_id (stripe_id),
  -- Finance: what are this product's prices?
  KEY idx_prices_product (product_id),
  -- Support: which price has this lookup key?
  KEY idx_prices_lookup_key (lookup_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE subscription_schedules (
  id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  stripe_id           VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
  customer_id         VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  subscription_id     VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  status              VARCHAR(32)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  end_behavior        VARCHAR(16)  CHARACTER SET ascii COLLATE ascii_bin NULL,
  current_phase_start DATETIME(6)  NULL,
  current_phase_end   DATETIME(6)  NULL,
  canceled_at         DATETIME(6)  NULL,
  completed_at        DATETIME(6)  NULL,
  released_at         DATETIME(6)  NULL,
  metadata            JSON         NULL,
  livemode            BOOLEAN      NOT NULL DEFAULT FALSE,
  account             VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  stripe_created      DATETIME(6)  NULL,
  last_event_id       VARCHAR(255) CHARACTER SET ascii COLLATE ascii_bin NULL,
  last_event_created  DATETIME(6)  NULL,
  created_at          DATETIME(6)  NOT NULL,
  updated_at          DATETIME(6)  NOT NULL,
  change_seq          BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY uq_subscription_schedules_stripe_id (stripe_id),
  -- Support: which schedules does this customer have?
  KEY idx_subscription_schedules_customer (customer_id),
  -- Support: which schedule manages (or managed) this subscription?
  KEY idx_subscription_schedules_subscription (subscription_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

-- +goose Down
DROP TABLE subscription_schedules;
DROP TABLE prices;
DROP TABLE products;
DROP TABLE payment_methods;

ALTER TABLE subscriptions
  DROP COLUMN pause_collection_resumes_at,
  DROP COLUMN pause_collection_behavior;

ALTER TABLE customers
  DROP COLUMN default_payment_method_id;
