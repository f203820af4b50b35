-- The ledger keeps, beside a payload, the Stripe-Signature that signs it
-- (issue 21): `billing reprocess` checks every payload again before it
-- applies it, with the webhook secrets, or fetches Stripe's copy when
-- there is no signature (an event the worker fetched from Stripe, a row
-- recorded before this migration). Bytes, as the broker delivered the
-- header; at most the 2048 bytes the api accepts (a longer one is not
-- kept). Added last: an instant change on MySQL 8 and MariaDB.

-- +goose Up
ALTER TABLE stripe_events ADD COLUMN signature VARBINARY(2048) NULL;

-- +goose Down
ALTER TABLE stripe_events DROP COLUMN signature;
