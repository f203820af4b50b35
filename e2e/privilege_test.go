package e2e

import (
	"database/sql"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/changes"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/notify"
	"github.com/stripe-billing/billing/notify/notifytest"
	"github.com/stripe-billing/billing/relay/relaytest"
)

// TestLeastPrivilege runs the stack as docker-compose does, each process as
// its role's user: RabbitMQ users with Permissions' regexes, MySQL users
// created from deploy/mysql's own SQL files. `billing topology` declares,
// the api and the worker (no DELETE on the ledger) take a load through to
// MySQL (retries and parking included), the relay publishes the change
// outbox and notify emails the failed charges, the sweep re-drives, prunes payloads and changes and lists the DLQ, and the support user runs `billing
// history`, `billing status` and `billing dlq list`; no process
// is refused. A write a user may not make fails, naming the command
// denied: the worker's user deleting a ledger row, `billing sweep` run as
// support.
func TestLeastPrivilege(t *testing.T) {
	t.Parallel()
	s := undeclaredStack(t)
	perms := s.topo.Permissions()
	users := testenv.MySQLUsersFromScripts(t, s.dsn, "../deploy/mysql/init/01-users.sql", "../deploy/mysql/grants.sql")
	as := func(role broker.Role, mysqlRole string) map[string]string {
		env := map[string]string{"AMQP_URL": testenv.RabbitUser(t, perms[role])}
		if mysqlRole == "" {
			env["MYSQL_DSN"] = "nobody@tcp(127.0.0.1:1)/none?parseTime=true" // the api has no database user at all
		} else {
			env["MYSQL_DSN"] = users[mysqlRole]
		}
		return env
	}
	api, worker, sweep, support := as(broker.RoleAPI, ""), as(broker.RoleWorker, "worker"), as(broker.RoleSweep, "sweep"), as(broker.RoleSupport, "support")
	// Every processed payload is old enough to prune.
	sweep["LEDGER_PAYLOAD_RETENTION"] = "1ns"
	sweep["CHANGE_FEED_RETENTION"] = "1ns"

	topology := as(broker.RoleTopology, "")
	if out, err := s.run(topology, "topology", "--management-url", testenv.ManagementURLAs(t, topology["AMQP_URL"])); err != nil {
		t.Fatalf("billing topology as the topology user: %v\n%s", err, out)
	}
	apiProc := s.start("api", api)
	workerProc := s.start("worker", worker)
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(apiProc.url("/readyz")); return c == 200 }, "api ready")
	testenv.Eventually(t, 10*time.Second, func() bool { c, _ := get(workerProc.url("/readyz")); return c == 200 }, "worker ready")

	sum := startLoad(apiProc, 150, 150, 31).wait(t, 20*time.Second)
	if sum.OK == 0 || len(sum.AcceptedPoison) == 0 {
		t.Fatalf("simulate: %d accepted, %d poison accepted: want both", sum.OK, len(sum.AcceptedPoison))
	}
	s.checkApplied(t, sum.Accepted, sum.AcceptedPoison, 30*time.Second)

	// The relay publishes the outbox as its users.
	store := testenv.StoreAt(t, s.dsn)
	var outbox relaytest.Outbox
	outbox.Write(t, store.DB(), 3, "sub_privilege")
	relayProc := s.start("relay", as(broker.RoleRelay, "relay"))
	testenv.Eventually(t, 10*time.Second, func() bool {
		var n int
		return s.db.QueryRow("SELECT COUNT(*) FROM change_outbox WHERE published_at IS NULL").Scan(&n) == nil && n == 0
	}, "the relay published the outbox")

	// notify emails what the feed says as its users: each failed charge
	// and opened dispute of the load, once.
	mail := notifytest.Start(t)
	notifyEnv := as(broker.RoleNotify, "notify")
	notifyEnv["SMTP_ADDR"], notifyEnv["NOTIFY_SUPPORT_EMAIL"] = mail.Addr(), "support@example.com"
	notifyProc := s.start("notify", notifyEnv)
	want := notices(t, s.db)
	if want == 0 {
		t.Fatal("the load's outbox holds no failed charge or opened dispute")
	}
	t.Logf("%d notices in the outbox", want)
	testenv.Eventually(t, time.Minute, func() bool {
		var n int
		return s.db.QueryRow("SELECT COUNT(*) FROM change_notices WHERE outcome = 'sent'").Scan(&n) == nil && n == want
	}, "notify sent %d notices", want)
	if got := len(mail.Got); got != want {
		t.Errorf("%d mails for %d notices", got, want)
	}
	if m := mail.Next(t); !strings.Contains(m.Data, "Subject: ") || !strings.HasSuffix(m.To, "@example.com") {
		t.Errorf("a mail from %s to %s:\n%s", m.From, m.To, m.Data)
	}

	// The sweep prunes as the sweep user.
	out, err := s.run(sweep, "sweep")
	if err != nil || strings.Contains(out, "payloads pruned 0,") || strings.Contains(out, "changes pruned 0,") || !strings.Contains(out, "errors 0") {
		t.Errorf("billing sweep as the sweep user = %v, want payloads and changes pruned and no error:\n%s", err, out)
	}
	var kept int
	if err := s.db.QueryRow("SELECT COUNT(*) FROM stripe_events WHERE status = 'processed' AND payload IS NOT NULL").Scan(&kept); err != nil || kept != 0 {
		t.Errorf("processed events still holding a payload after the sweep: %d (%v), want 0", kept, err)
	}

	// Support reads.
	if out, err := s.run(support, "dlq", "list"); err != nil || !strings.Contains(out, sum.AcceptedPoison[0]) {
		t.Errorf("billing dlq list as the support user = %v, want the parked poison listed:\n%s", err, out)
	}
	var customer string
	if err := s.db.QueryRow("SELECT stripe_id FROM customers LIMIT 1").Scan(&customer); err != nil {
		t.Fatal(err)
	}
	if out, err := s.run(support, "history", customer); err != nil || !strings.Contains(out, customer) {
		t.Errorf("billing history %s as the support user = %v:\n%s", customer, err, out)
	}
	// status exits 1 on its warnings (the parked poison): its report and
	// no refusal are what count here.
	if out, _ := s.run(support, "status"); !strings.Contains(out, "dead in the ledger: ") || strings.Contains(out, "denied") {
		t.Errorf("billing status as the support user: want its report, no refusal:\n%s", out)
	}

	// Writes a user may not make are refused, by name.
	workerDB, err := sql.Open("mysql", users["worker"])
	if err != nil {
		t.Fatal(err)
	}
	defer workerDB.Close()
	_, err = workerDB.Exec("DELETE FROM stripe_events WHERE id = ?", sum.Accepted[0])
	var me *mysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1142 || !strings.Contains(me.Message, "DELETE command denied") || !strings.Contains(me.Message, "stripe_events") {
		t.Errorf("the worker's user deleting a ledger row: %v, want DELETE command denied on stripe_events", err)
	}
	out, err = s.run(support, "sweep")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(out, "command denied to user") {
		t.Errorf("billing sweep as the support user = %v, want it to fail with MySQL's command denied:\n%s", err, out)
	}

	for _, p := range []*proc{apiProc, workerProc, relayProc, notifyProc} {
		if log := p.log.String(); strings.Contains(log, "ACCESS_REFUSED") || strings.Contains(log, "command denied") {
			t.Errorf("%s was refused something:\n%s", p.name, tail(log, 3000))
		}
	}
}

// notices counts the changes of the outbox billing notify emails.
func notices(t *testing.T, db *sql.DB) int {
	t.Helper()
	rows, err := db.Query("SELECT body FROM change_outbox")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var body []byte
		if err := rows.Scan(&body); err != nil {
			t.Fatal(err)
		}
		if c, err := changes.Decode(body); err == nil && notify.NoticeOf(c) != "" {
			n++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// run runs a one-shot `billing args...` with this stack's environment plus
// extra and returns its output.
func (s *stack) run(extra map[string]string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = s.env(extra)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
