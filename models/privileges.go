package models

// The MySQL users of each role, on the billing database only
// (docs/operations.md#least-privilege). deploy/mysql/init/01-users.sql
// creates them for docker-compose; config's compose test holds that file to
// Grants, and e2e.TestLeastPrivilege runs each command as its user, created
// from that same file.

// MigratePrivileges are `billing migrate`'s: the schema too, and CREATE on
// the database lets it run CREATE DATABASE IF NOT EXISTS; CREATE VIEW and
// SHOW VIEW: the views charges and payment_intents.
const MigratePrivileges = "SELECT, INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, INDEX, REFERENCES, CREATE VIEW, SHOW VIEW"

// Grant is privileges on one table of the billing database, or on every
// table when Table is "*".
type Grant struct {
	Privileges string
	Table      string
}

// Grants are each role's grants, by role (the user is billing_<role> in
// docker-compose). GET_LOCK (the migration and sweep locks) needs no
// privilege.
//   - worker (`billing worker`, `billing reprocess`): reads and writes rows,
//     deletes only a subscription's items that Stripe no longer lists;
//     never a ledger row.
//   - sweep (`billing sweep`, `billing dlq`): the ledger's re-drive count and
//     payload pruning, its bookmarks, and support's record of discards.
//   - relay (`billing relay`): reads the change outbox and stamps what
//     the broker confirmed; the sweep deletes what the retention expired.
//   - notify (`billing notify`): reads what an email names, records each
//     notice.
//   - support (docs/runbook.md: `billing history`, `billing status`,
//     `billing dlq`): reads, and for `billing dlq discard` records a
//     discard and sets the ledger row's status, no other column.
func Grants() map[string][]Grant {
	return map[string][]Grant{
		"migrate": {{MigratePrivileges, "*"}},
		"worker":  {{"SELECT, INSERT, UPDATE", "*"}, {"DELETE", "subscription_items"}},
		"sweep": {{"SELECT, UPDATE", "stripe_events"}, {"SELECT, INSERT, UPDATE", "sweep_checkpoints"}, {"SELECT, INSERT", "event_discards"},
			{"SELECT, DELETE", "change_outbox"}},
		"relay": {{"SELECT, UPDATE (published_at)", "change_outbox"}},
		"notify": {{"SELECT", "customers"}, {"SELECT", "invoices"}, {"SELECT", "payments"}, {"SELECT", "invoice_payments"},
			{"SELECT", "disputes"}, {"SELECT, INSERT, UPDATE", "change_notices"}},
		"support": {{"SELECT", "*"}, {"INSERT", "event_discards"}, {"UPDATE (status)", "stripe_events"}},
	}
}
