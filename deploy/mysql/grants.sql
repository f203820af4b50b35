-- The grants on single tables (models.Grants), run as root once `billing
-- migrate` has created the tables: MySQL refuses a table grant on a table
-- that does not exist yet. GRANT is idempotent: run it again after a
-- migration that adds a table here. The users are deploy/mysql/init's.

-- The worker deletes a subscription's items that Stripe no longer lists.
GRANT DELETE ON `billing`.`subscription_items` TO 'billing_worker'@'%';

-- The sweep: the ledger's re-drive count and payload pruning, its bookmarks,
-- and the record of DLQ messages `billing dlq discard` removed.
GRANT SELECT, UPDATE ON `billing`.`stripe_events` TO 'billing_sweep'@'%';
GRANT SELECT, INSERT, UPDATE ON `billing`.`sweep_checkpoints` TO 'billing_sweep'@'%';
GRANT SELECT, INSERT ON `billing`.`event_discards` TO 'billing_sweep'@'%';
-- ...and the change outbox's retention (CHANGE_FEED_RETENTION).
GRANT SELECT, DELETE ON `billing`.`change_outbox` TO 'billing_sweep'@'%';

-- The relay reads the change outbox and stamps what the broker confirmed.
GRANT SELECT, UPDATE (published_at) ON `billing`.`change_outbox` TO 'billing_relay'@'%';

-- Notify reads what an email names and records each notice (dedupe).
GRANT SELECT ON `billing`.`customers` TO 'billing_notify'@'%';
GRANT SELECT ON `billing`.`invoices` TO 'billing_notify'@'%';
GRANT SELECT ON `billing`.`payments` TO 'billing_notify'@'%';
GRANT SELECT ON `billing`.`invoice_payments` TO 'billing_notify'@'%';
GRANT SELECT ON `billing`.`disputes` TO 'billing_notify'@'%';
GRANT SELECT, INSERT, UPDATE ON `billing`.`change_notices` TO 'billing_notify'@'%';

-- Support: `billing dlq discard` records who, when and why, and marks the
-- ledger row discarded: its status column only.
GRANT INSERT ON `billing`.`event_discards` TO 'billing_support'@'%';
GRANT UPDATE (status) ON `billing`.`stripe_events` TO 'billing_support'@'%';
