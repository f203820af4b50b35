package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

// TestLeastPrivilege runs the stack as docker-compose does, each process as
// its role's user with Permissions' regexes and the worker and sweep on a
// MySQL user with DML grants only: `billing topology` declares, the api and
// the worker take a load through to MySQL (retries and parking included),
// the sweep and `billing dlq list` read the DLQ, and no process is refused.
func TestLeastPrivilege(t *testing.T) {
	t.Parallel()
	s := undeclaredStack(t)
	perms := s.topo.Permissions()
	amqpAs := func(role broker.Role) map[string]string {
		return map[string]string{"AMQP_URL": testenv.RabbitUser(t, perms[role])}
	}
	app := testenv.MySQLUser(t, s.dsn, models.AppPrivileges)
	// The api has no database user at all.
	api := amqpAs(broker.RoleAPI)
	api["MYSQL_DSN"] = "nobody@tcp(127.0.0.1:1)/none?parseTime=true"
	worker := amqpAs(broker.RoleWorker)
	worker["MYSQL_DSN"] = app
	sweep := amqpAs(broker.RoleSweep)
	sweep["MYSQL_DSN"] = app

	topology := amqpAs(broker.RoleTopology)
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

	out, err := s.run(sweep, "dlq", "list")
	if err != nil || !strings.Contains(out, sum.AcceptedPoison[0]) {
		t.Errorf("billing dlq list as the sweep user = %v, want the parked poison listed:\n%s", err, out)
	}
	if out, err := s.run(sweep, "sweep"); err != nil {
		t.Errorf("billing sweep as the sweep user: %v\n%s", err, out)
	}
	for _, p := range []*proc{apiProc, workerProc} {
		if log := p.log.String(); strings.Contains(log, "ACCESS_REFUSED") || strings.Contains(log, "command denied") {
			t.Errorf("%s was refused something:\n%s", p.name, tail(log, 3000))
		}
	}
}

// run runs a one-shot `billing args...` with this stack's environment plus
// extra and returns its output.
func (s *stack) run(extra map[string]string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = s.env(extra)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
