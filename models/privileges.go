package models

// The MySQL privileges of the two database users, granted ON <database>.*
// (docs/operations.md#least-privilege). deploy/mysql/init creates the
// users for docker-compose; the tests grant the same lists.
const (
	// AppPrivileges are the worker's and the sweep's: rows only, no schema
	// change. GET_LOCK (the migration lock) needs no privilege.
	AppPrivileges = "SELECT, INSERT, UPDATE, DELETE"
	// MigratePrivileges are `billing migrate`'s: the schema too, and
	// CREATE on the database lets it run CREATE DATABASE IF NOT EXISTS;
	// CREATE VIEW and SHOW VIEW: the views charges and payment_intents.
	MigratePrivileges = AppPrivileges + ", CREATE, ALTER, DROP, INDEX, REFERENCES, CREATE VIEW, SHOW VIEW"
)
