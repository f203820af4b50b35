package broker

import (
	"regexp"
	"strings"
)

// Role is a RabbitMQ user's job: each process runs as the user of its role
// and may touch only what that job needs (docs/operations.md#least-privilege).
type Role string

// The roles, one RabbitMQ user each.
const (
	// RoleTopology declares the exchanges, queues and bindings and sets
	// the queues' policies: `billing topology`, run once per deployment.
	RoleTopology Role = "topology"
	// RoleAPI publishes webhooks to <ns>.events, nothing else.
	RoleAPI Role = "api"
	// RoleWorker consumes the work queue and publishes retries and parked
	// events.
	RoleWorker Role = "worker"
	// RoleSweep is `billing sweep` and `billing dlq`: reads the DLQ, moves
	// events back through the default exchange, publishes reconciled
	// events to <ns>.events.
	RoleSweep Role = "sweep"
	// RoleSupport is staff in the management UI: look at parked events and
	// replay them ("Get messages", "Reject requeue false"), publish a
	// hand-made copy to <ns>.events. It cannot create queues or policies.
	RoleSupport Role = "support"
)

// Roles lists every role, in the order the docs show them.
var Roles = []Role{RoleTopology, RoleAPI, RoleWorker, RoleSweep, RoleSupport}

// Permission is what a role may do on the vhost: three regular expressions
// over exchange and queue names, as RabbitMQ's set_permissions takes them,
// and the user tags (management UI access).
type Permission struct {
	Configure, Write, Read string
	Tags                   string
}

// DefaultExchange is the resource name RabbitMQ checks write permission on
// for a publish to the default exchange (routing key = queue name).
const DefaultExchange = "amq.default"

// nothing matches no resource name (RabbitMQ's own idiom for "no access").
const nothing = "^$"

// Permissions returns each role's permission on this topology's names.
// Passive declares (Check, the queue-depth poller) need no permission; the
// broker's own dead-lettering and TTL expiry need none of the user either.
func (t Topology) Permissions() map[Role]Permission {
	return map[Role]Permission{
		// Declaring a queue with a dead-letter exchange also needs write on
		// the exchange and read on the queue; binding needs write on the
		// queue and read on the exchange: all of the namespace.
		// policymaker: the policies through the management API.
		RoleTopology: {Configure: prefix(t.Namespace), Write: prefix(t.Namespace), Read: prefix(t.Namespace), Tags: "policymaker"},
		RoleAPI:      {Configure: nothing, Write: exactly(t.Events), Read: nothing},
		RoleWorker:   {Configure: nothing, Write: exactly(t.Retry, t.Dead), Read: exactly(t.Work)},
		// Write on amq.default allows a publish to any queue of the vhost:
		// RabbitMQ checks the exchange, not the queue behind it. The move
		// goes that way because the worker counts it as a replay by it.
		RoleSweep: {Configure: nothing, Write: exactly(DefaultExchange, t.Events), Read: exactly(t.DLQ)},
		RoleSupport: {
			Configure: nothing, Write: exactly(t.Events), Read: exactly(t.DLQ),
			Tags: "management",
		},
	}
}

func prefix(namespace string) string { return "^" + regexp.QuoteMeta(namespace+".") }

func exactly(names ...string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = regexp.QuoteMeta(n)
	}
	return "^(" + strings.Join(quoted, "|") + ")$"
}
