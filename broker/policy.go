package broker

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"
)

// PolicyPriority is the priority of the topology's policies: above a
// deployment's catch-all policies (usually 0). RabbitMQ applies one policy
// per queue, the matching one of highest priority; Declare fails naming a
// policy that wins over one of ours.
const PolicyPriority = 10

// Policy is one RabbitMQ policy of the topology, applied to Queues by
// name (its pattern matches them exactly).
type Policy struct {
	Name       string
	Queues     []string
	Definition map[string]any
}

// Pattern is the policy's regular expression over queue names.
func (p Policy) Pattern() string { return exactly(p.Queues...) }

// Unlimited is the delivery limit that disables it on RabbitMQ 4, whose
// quorum queues otherwise have a default of 20. RabbitMQ 3 has no default
// and refuses -1 in a policy (as an argument it would dead-letter a
// message at its first return).
const Unlimited = -1

// Policies returns the policies of the topology on a broker of major
// version major: the settings a deployment may change in place.
//   - the work queue's delivery limit (WORK_DELIVERY_LIMIT);
//   - the DLQ's: none, so that looking at parked events (every `billing
//     dlq list`, `billing status`, sweep pass and "Get messages" returns
//     them with requeue, which counts as a delivery) never moves one; on 4.x
//     that takes an explicit unlimited limit; and its length limit
//     (DLQ_MAX_LENGTH) when set;
//   - the delay tiers' (never consumed, so never returned): unlimited on 4.x
//     rather than the default;
//   - notify's: unlimited on 4.x, so that a change put back at a shutdown
//     or a lost connection is never dropped (it has no dead-letter queue).
func (t Topology) Policies(major int) []Policy {
	ps := []Policy{{Name: t.Work, Queues: []string{t.Work}, Definition: map[string]any{"delivery-limit": t.DeliveryLimit}}}
	dlq := map[string]any{}
	if major >= 4 {
		dlq["delivery-limit"] = Unlimited
	}
	if t.DLQMaxLength > 0 {
		dlq["max-length"] = t.DLQMaxLength
	}
	if len(dlq) > 0 {
		ps = append(ps, Policy{Name: t.DLQ, Queues: []string{t.DLQ}, Definition: dlq})
	}
	if major >= 4 && len(t.Delays) > 0 {
		tiers := make([]string, len(t.Delays))
		for i := range t.Delays {
			tiers[i] = t.TierQueue(i)
		}
		ps = append(ps, Policy{Name: t.Retry, Queues: tiers, Definition: map[string]any{"delivery-limit": Unlimited}})
	}
	if major >= 4 && t.Notify != "" {
		ps = append(ps, Policy{Name: t.Notify, Queues: []string{t.Notify}, Definition: map[string]any{"delivery-limit": Unlimited}})
	}
	return ps
}

// policyNames are the names Policies may use, so that one it no longer
// returns (DLQ_MAX_LENGTH unset again on 3.x) is deleted.
func (t Topology) policyNames() []string { return []string{t.Work, t.DLQ, t.Retry, t.Notify} }

func (t Topology) applyPolicies(ctx context.Context, api *Management, major int) error {
	want := map[string]bool{}
	for _, p := range t.Policies(major) {
		want[p.Name] = true
		body := map[string]any{"pattern": p.Pattern(), "apply-to": "queues", "priority": PolicyPriority, "definition": p.Definition}
		if err := api.Do(ctx, http.MethodPut, api.VhostPath("policies", p.Name), body, nil); err != nil {
			return fmt.Errorf("broker: set policy %s: %w", p.Name, err)
		}
	}
	for _, name := range t.policyNames() {
		if want[name] {
			continue
		}
		if err := api.Do(ctx, http.MethodDelete, api.VhostPath("policies", name), nil, nil); err != nil && !notFound(err) {
			return fmt.Errorf("broker: delete policy %s: %w", name, err)
		}
	}
	return nil
}

// checkPolicies names a policy of the vhost that would apply to one of
// the topology's queues instead of ours: RabbitMQ applies one policy per
// queue, the matching one of highest priority (a tie is decided by the
// broker). It reads the policies rather than each queue's applied one,
// which the management API reports only after its next statistics round.
// A pattern Go's regexp cannot read (PCRE's lookarounds) is passed over.
func (t Topology) checkPolicies(ctx context.Context, api *Management, major int) error {
	var all []struct {
		Name     string `json:"name"`
		Pattern  string `json:"pattern"`
		ApplyTo  string `json:"apply-to"`
		Priority int    `json:"priority"`
	}
	if err := api.Do(ctx, http.MethodGet, api.VhostPath("policies"), nil, &all); err != nil {
		return fmt.Errorf("broker: list policies: %w", err)
	}
	ours := map[string]bool{}
	for _, name := range t.policyNames() {
		ours[name] = true
	}
	for _, p := range t.Policies(major) {
		for _, q := range p.Queues {
			for _, other := range all {
				if ours[other.Name] || other.ApplyTo == "exchanges" || other.Priority < PolicyPriority {
					continue
				}
				re, err := regexp.Compile(other.Pattern)
				if err != nil || !re.MatchString(q) {
					continue
				}
				return fmt.Errorf("broker: policy %q (priority %d) applies to queue %s instead of %s: RabbitMQ applies one policy per queue, the one of highest priority; give %q a priority below %d or a pattern that leaves out %s.*",
					other.Name, other.Priority, q, p.Name, other.Name, PolicyPriority, t.Namespace)
			}
		}
	}
	return nil
}

// Rebuild is one queue that must be rebuilt (deleted and declared again),
// and why: RabbitMQ changes no argument of an existing queue.
type Rebuild struct {
	Queue, Setting, Reason string
}

// RebuildError lists the queues Declare found that must be rebuilt; it
// changed nothing.
type RebuildError struct{ Needed []Rebuild }

// RebuildSteps is the remedy, in short; docs/operations.md has it in full.
const RebuildSteps = "RabbitMQ cannot change a queue's arguments in place: stop the processes that consume it, " +
	"move its messages to a temporary queue (\"Move messages\" in the management UI), delete it, " +
	"run `billing topology`, move the messages back (docs/operations.md#changing-a-queue-setting)"

func (e *RebuildError) Error() string {
	var b strings.Builder
	b.WriteString("broker: ")
	for i, r := range e.Needed {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "queue %s must be rebuilt to change %s: %s", r.Queue, r.Setting, r.Reason)
	}
	b.WriteString(". " + RebuildSteps)
	return b.String()
}

// rebuildNeeded compares an existing queue with q as Declare would create
// it. The arguments of q must be there with the same values, except those
// an older version did not declare and the queue can do without; an
// argument of the queue that overrides a policy's setting is one to
// rebuild only when it keeps the configured value from taking effect
// (RabbitMQ applies the lower of argument and policy).
func (t Topology) rebuildNeeded(q queueSpec, info QueueInfo, major int) []Rebuild {
	var out []Rebuild
	if info.Type != amqp.QueueTypeQuorum {
		return []Rebuild{{q.name, amqp.QueueTypeArg, fmt.Sprintf("it is a %s queue, the topology needs a quorum queue", info.Type)}}
	}
	for key, want := range q.args {
		if key == amqp.QueueTypeArg || key == "x-quorum-initial-group-size" {
			continue // the type is checked above; the group size counts only at creation
		}
		got, ok := info.Arguments[key]
		if !ok && q.name == t.DLQ && key == amqp.QueueOverflowArg {
			// A DLQ declared before DLQ_MAX_LENGTH existed: without a
			// length limit it never overflows.
			if t.DLQMaxLength > 0 {
				out = append(out, Rebuild{q.name, "DLQ_MAX_LENGTH", "it was declared without x-overflow reject-publish, and at a length limit it would drop its oldest parked events"})
			}
			continue
		}
		if !ok || !sameArg(got, want) {
			out = append(out, Rebuild{q.name, key, fmt.Sprintf("it has %v, the topology needs %v", argText(got, ok), want)})
		}
	}
	if limit, ok := number(info.Arguments["x-delivery-limit"]); ok {
		switch {
		case q.name == t.Work && limit < float64(t.DeliveryLimit):
			out = append(out, Rebuild{q.name, "WORK_DELIVERY_LIMIT", fmt.Sprintf("its argument x-delivery-limit %v (from an older `billing topology`) wins over the policy's %d: RabbitMQ applies the lower", limit, t.DeliveryLimit)})
		case q.name != t.Work && (major < 4 || limit >= 0):
			// 3.x: any value limits (-1 dead-letters at the first return).
			out = append(out, Rebuild{q.name, "x-delivery-limit", fmt.Sprintf("its argument x-delivery-limit %v would move messages that were only looked at", limit)})
		}
	}
	if max, ok := number(info.Arguments["x-max-length"]); ok && q.name == t.DLQ && (t.DLQMaxLength == 0 || max < float64(t.DLQMaxLength)) {
		out = append(out, Rebuild{q.name, "DLQ_MAX_LENGTH", fmt.Sprintf("its argument x-max-length %v wins over the policy's (RabbitMQ applies the lower)", max)})
	}
	return out
}

// number reads a numeric argument as the API returns it (JSON: float64).
func number(v any) (float64, bool) {
	f, ok := v.(float64)
	return f, ok
}

// sameArg compares an argument read back as JSON (numbers are float64)
// with one Declare sends.
func sameArg(got, want any) bool {
	if g, ok := number(got); ok {
		switch w := want.(type) {
		case int:
			return g == float64(w)
		case int64:
			return g == float64(w)
		}
		return false
	}
	return fmt.Sprint(got) == fmt.Sprint(want)
}

func argText(v any, ok bool) string {
	if !ok {
		return "none"
	}
	if f, isNumber := number(v); isNumber && f == math.Trunc(f) {
		return fmt.Sprintf("%d", int64(f))
	}
	return fmt.Sprint(v)
}

var inequivalentArg = regexp.MustCompile(`inequivalent arg '([^']+)'`)

// explainDeclare turns PRECONDITION_FAILED (an exchange or queue that
// exists with other arguments, declared meanwhile) into an error naming
// the setting and the remedy.
func explainDeclare(kind, name string, err error) error {
	var aerr *amqp.Error
	if errors.As(err, &aerr) && aerr.Code == amqp.PreconditionFailed {
		setting := "its arguments"
		if m := inequivalentArg.FindStringSubmatch(aerr.Reason); m != nil {
			setting = m[1]
		}
		if kind == "exchange" {
			return fmt.Errorf("broker: exchange %s exists with another %s (%s): delete it and run `billing topology` again", name, setting, aerr.Reason)
		}
		return &RebuildError{Needed: []Rebuild{{name, setting, aerr.Reason}}}
	}
	return fmt.Errorf("broker: declare %s %s: %w", kind, name, err)
}
