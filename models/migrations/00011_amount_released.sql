-- Refunded means captured money returned (issue 23): payments.amount_released
-- is the part of a charge's amount_refunded that gave back a hold never
-- captured (before 2025-03-31.basil Stripe refunds the part a partial
-- capture, a cancellation or an expired authorisation did not take;
-- billing's released says how it is read), for docs/finance.md's
-- refunded to leave out. NULL until the charge's next event. The views
-- are recreated for the new column (their column list is fixed when
-- they are created).

-- +goose Up
ALTER TABLE payments ADD COLUMN amount_released BIGINT NULL AFTER amount_refunded;
CREATE OR REPLACE SQL SECURITY INVOKER VIEW charges AS
  SELECT * FROM payments WHERE object = 'charge' AND livemode = 1 AND account IS NULL;
CREATE OR REPLACE SQL SECURITY INVOKER VIEW payment_intents AS
  SELECT * FROM payments WHERE object = 'payment_intent' AND livemode = 1 AND account IS NULL;

-- +goose Down
ALTER TABLE payments DROP COLUMN amount_released;
CREATE OR REPLACE SQL SECURITY INVOKER VIEW charges AS
  SELECT * FROM payments WHERE object = 'charge' AND livemode = 1 AND account IS NULL;
CREATE OR REPLACE SQL SECURITY INVOKER VIEW payment_intents AS
  SELECT * FROM payments WHERE object = 'payment_intent' AND livemode = 1 AND account IS NULL;
