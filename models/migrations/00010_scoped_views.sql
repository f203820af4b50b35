-- Money a finance team can sign (issue 23): the views charges and
-- payment_intents hold live mode and the platform only (livemode = 1,
-- account NULL: not test mode, not a connected account's objects that a
-- Connect endpoint sends the platform), so that a SUM over one of them is
-- the platform's live money. Another scope reads payments with object
-- and its own condition (docs/finance.md). A view's column list is fixed
-- when it is created: a migration that adds a column to payments
-- recreates both.

-- +goose Up
CREATE OR REPLACE SQL SECURITY INVOKER VIEW charges AS
  SELECT * FROM payments WHERE object = 'charge' AND livemode = 1 AND account IS NULL;
CREATE OR REPLACE SQL SECURITY INVOKER VIEW payment_intents AS
  SELECT * FROM payments WHERE object = 'payment_intent' AND livemode = 1 AND account IS NULL;

-- +goose Down
CREATE OR REPLACE SQL SECURITY INVOKER VIEW charges AS
  SELECT * FROM payments WHERE object = 'charge';
CREATE OR REPLACE SQL SECURITY INVOKER VIEW payment_intents AS
  SELECT * FROM payments WHERE object = 'payment_intent';
