-- Least privilege (docs/operations.md#least-privilege): a MySQL user per
-- role, with the grants models.Grants lists. The image runs this file once,
-- on an empty data volume: the users and their grants on the whole
-- database. The grants on single tables need the tables, so they are in
-- deploy/mysql/grants.sql, which compose's `grants` runs after `migrate`.
-- config/compose_test.go holds both files to models.Grants;
-- e2e.TestLeastPrivilege creates its users from them. Development
-- passwords only.

-- `billing migrate`: the schema.
CREATE USER 'billing_migrate'@'%' IDENTIFIED BY 'migrate_dev_pw';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES, CREATE VIEW, SHOW VIEW ON `billing`.* TO 'billing_migrate'@'%';

-- `billing worker` and `billing reprocess`: rows, but DELETE only on the
-- items a subscription no longer lists (grants.sql), never on the ledger.
CREATE USER 'billing_worker'@'%' IDENTIFIED BY 'worker_dev_pw';
GRANT SELECT, INSERT, UPDATE ON `billing`.* TO 'billing_worker'@'%';

-- `billing sweep` and `billing dlq`: three tables (grants.sql).
CREATE USER 'billing_sweep'@'%' IDENTIFIED BY 'sweep_dev_pw';

-- `billing relay`: the change outbox (grants.sql).
CREATE USER 'billing_relay'@'%' IDENTIFIED BY 'relay_dev_pw';

-- `billing notify`: reads what an email names, records notices (grants.sql).
CREATE USER 'billing_notify'@'%' IDENTIFIED BY 'notify_dev_pw';

-- Support: `billing history`, `billing status`, `billing dlq`; reads, and
-- records discards (grants.sql).
CREATE USER 'billing_support'@'%' IDENTIFIED BY 'support_dev_pw';
GRANT SELECT ON `billing`.* TO 'billing_support'@'%';
