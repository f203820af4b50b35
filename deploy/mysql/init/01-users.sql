-- Least privilege (docs/operations.md#least-privilege): `billing migrate`
-- changes the schema as billing_migrate (models.MigratePrivileges); the
-- worker and the sweep only read and write rows as billing_app
-- (models.AppPrivileges). The image runs this once, on an empty data volume.
-- Development passwords only.
CREATE USER 'billing_migrate'@'%' IDENTIFIED BY 'migrate_dev_pw';
GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES, CREATE VIEW, SHOW VIEW ON `billing`.* TO 'billing_migrate'@'%';
CREATE USER 'billing_app'@'%' IDENTIFIED BY 'app_dev_pw';
GRANT SELECT, INSERT, UPDATE, DELETE ON `billing`.* TO 'billing_app'@'%';
