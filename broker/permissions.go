package broker

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
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
	// RoleSweep is `billing sweep`: reads the DLQ, re-drives events
	// through the replay exchange, publishes reconciled events to
	// <ns>.events.
	RoleSweep Role = "sweep"
	// RoleSupport is staff running docs/runbook.md: look at parked events
	// and replay them in the management UI ("Get messages", "Reject
	// requeue false") and with `billing dlq`, publish a hand-made copy to
	// <ns>.events. It cannot create or delete a queue, set a policy or
	// publish into the DLQ; read on the DLQ still lets it purge it
	// (docs/security.md#support-and-the-dlq).
	RoleSupport Role = "support"
	// RoleRelay is `billing relay`: publishes the change feed to
	// <ns>.changes, nothing else.
	RoleRelay Role = "relay"
	// RoleNotify is `billing notify`: consumes <ns>.notify, nothing else.
	RoleNotify Role = "notify"
)

// Roles lists every role, in the order the docs show them.
var Roles = []Role{RoleTopology, RoleAPI, RoleWorker, RoleSweep, RoleSupport, RoleRelay, RoleNotify}

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
		// Replays go through <ns>.replay, which routes to the work queue
		// only, not amq.default: RabbitMQ checks write on the exchange, not
		// the queue behind it, so amq.default would reach every queue.
		RoleSweep: {Configure: nothing, Write: exactly(t.Events, t.Replay), Read: exactly(t.DLQ)},
		RoleSupport: {
			Configure: nothing, Write: exactly(t.Events, t.Replay), Read: exactly(t.DLQ),
			Tags: "management",
		},
		RoleRelay:  {Configure: nothing, Write: exactly(t.Changes), Read: nothing},
		RoleNotify: {Configure: nothing, Write: nothing, Read: exactly(t.Notify)},
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

// RefusalError is the broker's ACCESS_REFUSED with the permission it
// checked: RabbitMQ 3.x's text ("access to queue 'x' in vhost '/' refused
// for user 'u'") does not say which one.
type RefusalError struct {
	Permission string // configure, write or read
	Resource   string // exchange or queue
	Err        *amqp.Error
}

func (e *RefusalError) Error() string {
	return fmt.Sprintf("the broker refused access, the user lacks %s permission on the %s: %s", e.Permission, e.Resource, e.Err.Reason)
}

func (e *RefusalError) Unwrap() error { return e.Err }

// Refusal returns err as a *RefusalError naming permission on resource
// when it is an access refusal, else err unchanged.
func Refusal(err error, permission, resource string) error {
	var aerr *amqp.Error
	if !errors.As(err, &aerr) || aerr.Code != amqp.AccessRefused {
		return err
	}
	return &RefusalError{Permission: permission, Resource: resource, Err: aerr}
}
