// Package status owns `billing status`: where things stand, for support
// staff who have the database and broker credentials but no Grafana. It
// reads the queues with passive declares (depth and consumers: no
// management plugin, URL or permission needed), the DLQ's messages as
// `billing dlq list` does, and the ledger by time.
package status

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/maintenance"
	"github.com/stripe-billing/billing/models"
)

// Ledger is what a report reads from the database (*models.Store).
type Ledger interface {
	Activity(ctx context.Context, since time.Time) (models.Activity, error)
	Dead(ctx context.Context) (models.DeadSummary, error)
	DeadIDs(ctx context.Context, limit int) ([]string, error)
	Checkpoint(ctx context.Context, name string) (string, error)
}

// DLQ lists the parked messages, leaving them parked (*dlq.Queue).
type DLQ interface {
	List(ctx context.Context, limit int) ([]dlq.Parked, error)
}

// QueueLister lists the queues of the namespace, for stray ones
// (*broker.Management: AMQP cannot list queues).
type QueueLister interface {
	Queues(ctx context.Context, prefix string) ([]broker.QueueStat, error)
}

// Connector hands out an open AMQP connection (broker.Conn).
type Connector interface {
	Await(ctx context.Context) (*amqp.Connection, error)
}

// Config configures a Reporter.
type Config struct {
	Topology broker.Topology
	// Window is the span the per-minute rates average over; default 5m.
	Window time.Duration
	// MaxLost bounds how many dead ledger events are checked against the
	// DLQ; default 1000.
	MaxLost int
	// SweepPeriod is how often the sweep should run (cron's period); 0
	// takes the period the last pass saved (`sweep --every`), and with
	// neither the sweep's age is not judged.
	SweepPeriod time.Duration
	// Queues lists the namespace's queues for stray ones; nil: not checked.
	Queues QueueLister
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Reporter builds Reports.
type Reporter struct {
	cfg    Config
	conn   Connector
	dlq    DLQ
	ledger Ledger
}

// Severities of a Finding and of a Report, in rising order; the exit codes
// of `billing status` are their indexes.
const (
	OK       = "ok"
	Warning  = "warning"
	Critical = "critical"
)

// Severities lists the severities in rising order.
var Severities = []string{OK, Warning, Critical}

// Finding is one thing wrong, in one line.
type Finding struct {
	Severity string `json:"severity"`
	// Check names what was checked: no_consumer, dlq_growing, lost,
	// sweep_late, stray_queue, stray_queues_unchecked.
	Check   string `json:"check"`
	Message string `json:"message"`
}

// New returns a Reporter reading the queues through conn, the DLQ's
// messages through parked and the database through ledger.
func New(cfg Config, conn Connector, parked DLQ, ledger Ledger) (*Reporter, error) {
	if cfg.Topology.Work == "" || conn == nil || parked == nil || ledger == nil {
		return nil, errors.New("status: new: topology, connection, DLQ and ledger are required")
	}
	if cfg.Window <= 0 {
		cfg.Window = 5 * time.Minute
	}
	if cfg.MaxLost <= 0 {
		cfg.MaxLost = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Reporter{cfg: cfg, conn: conn, dlq: parked, ledger: ledger}, nil
}

// Queue is one queue of the topology.
type Queue struct {
	Name string `json:"name"`
	// Role is work, retry (a delay tier) or dlq.
	Role string `json:"role"`
	// Messages counts the ready messages (not those a consumer holds).
	Messages  int `json:"messages"`
	Consumers int `json:"consumers"`
}

// Rates are events per minute over the report's window.
type Rates struct {
	// Received: events first written to the ledger (processed, ignored or
	// parked).
	Received float64 `json:"received"`
	// Processed: events processed or ignored.
	Processed float64 `json:"processed"`
	// Parked: messages now in the DLQ parked within the window.
	Parked float64 `json:"parked"`
}

// Oldest is the event dead in the ledger the longest.
type Oldest struct {
	EventID    string    `json:"event_id"`
	ReceivedAt time.Time `json:"received_at"`
	AgeSeconds float64   `json:"age_seconds"`
}

// Report is where things stand.
type Report struct {
	At            time.Time `json:"at"`
	WindowSeconds float64   `json:"window_seconds"`
	Queues        []Queue   `json:"queues"`
	PerMinute     Rates     `json:"per_minute"`
	// Retrying counts the events waiting in the delay tiers now. The
	// ledger does not record retries; their rate is the worker's
	// billing_retries_total.
	Retrying      int            `json:"retrying"`
	ParkedByClass map[string]int `json:"parked_by_class"`
	// DeadInLedger counts the events dead in the ledger.
	DeadInLedger int     `json:"dead_in_ledger"`
	OldestParked *Oldest `json:"oldest_parked,omitempty"`
	// Lost lists events dead in the ledger whose message is not in the DLQ:
	// moved elsewhere (a mistyped "Move messages" destination) or, when
	// LostCertain is false, perhaps on their way back through the work
	// queue or a tier, or held by a concurrent DLQ reader.
	Lost        []string `json:"lost"`
	LostCertain bool     `json:"lost_certain"`
	// LastSweep is the last sweep pass that ran; nil when none has.
	LastSweep *maintenance.Summary `json:"last_sweep,omitempty"`
	// StrayQueues are queues of the namespace that are not the
	// topology's (a mistyped "Move messages" destination creates one).
	StrayQueues []broker.QueueStat `json:"stray_queues"`
	// Findings are what is wrong, worst first; Severity is the worst.
	Findings []Finding `json:"findings"`
	Severity string    `json:"severity"`
}

// Report reads the queues, the DLQ and the ledger.
func (r *Reporter) Report(ctx context.Context) (Report, error) {
	now := r.cfg.Now()
	rep := Report{At: now.UTC(), WindowSeconds: r.cfg.Window.Seconds(), ParkedByClass: map[string]int{}, Lost: []string{},
		StrayQueues: []broker.QueueStat{}, Findings: []Finding{}, Severity: OK}
	var err error
	if rep.Queues, err = r.queues(ctx); err != nil {
		return rep, err
	}
	// Dead ids before the DLQ: an event parked in between is then found
	// in the DLQ, not reported lost.
	dead, err := r.ledger.DeadIDs(ctx, r.cfg.MaxLost)
	if err != nil {
		return rep, fmt.Errorf("status: %w", err)
	}
	parked, err := r.dlq.List(ctx, 0)
	if err != nil {
		return rep, fmt.Errorf("status: %w", err)
	}
	inDLQ := map[string]bool{}
	var parkedRecently int
	for _, p := range parked {
		inDLQ[p.EventID] = true
		rep.ParkedByClass[string(p.Class)]++
		if !p.ParkedAt.IsZero() && now.Sub(p.ParkedAt) <= r.cfg.Window {
			parkedRecently++
		}
	}
	for _, id := range dead {
		if !inDLQ[id] {
			rep.Lost = append(rep.Lost, id)
		}
	}
	// Certain only when nothing else could hold them: the DLQ was read
	// whole and no work or tier queue holds a message.
	rep.LostCertain = true
	for _, q := range rep.Queues {
		switch q.Role {
		case roleRetry:
			rep.Retrying += q.Messages
			rep.LostCertain = rep.LostCertain && q.Messages == 0
		case roleWork:
			rep.LostCertain = rep.LostCertain && q.Messages == 0
		case roleDLQ:
			rep.LostCertain = rep.LostCertain && len(parked) >= q.Messages
		}
	}

	act, err := r.ledger.Activity(ctx, now.Add(-r.cfg.Window))
	if err != nil {
		return rep, fmt.Errorf("status: %w", err)
	}
	minutes := r.cfg.Window.Minutes()
	rep.PerMinute = Rates{Received: float64(act.Received) / minutes, Processed: float64(act.Processed) / minutes, Parked: float64(parkedRecently) / minutes}

	sum, err := r.ledger.Dead(ctx)
	if err != nil {
		return rep, fmt.Errorf("status: %w", err)
	}
	rep.DeadInLedger = sum.Count
	if sum.OldestID != "" {
		rep.OldestParked = &Oldest{EventID: sum.OldestID, ReceivedAt: sum.OldestReceivedAt.UTC(), AgeSeconds: now.Sub(sum.OldestReceivedAt).Seconds()}
	}

	saved, err := r.ledger.Checkpoint(ctx, maintenance.LastPassCheckpoint)
	if err != nil {
		return rep, fmt.Errorf("status: %w", err)
	}
	if saved != "" {
		last, err := maintenance.ParseSummary(saved)
		if err != nil {
			return rep, fmt.Errorf("status: %w", err)
		}
		rep.LastSweep = &last
	}
	if r.cfg.Queues != nil {
		rep.StrayQueues, err = r.strays(ctx)
		if err != nil {
			rep.add(Warning, "stray_queues_unchecked", fmt.Sprintf("stray queues not checked: %v", err))
		}
	}
	r.judge(&rep, parkedRecently)
	return rep, nil
}

// strays lists the queues of the namespace that the topology does not have.
func (r *Reporter) strays(ctx context.Context) ([]broker.QueueStat, error) {
	all, err := r.cfg.Queues.Queues(ctx, r.cfg.Topology.Namespace+".")
	if err != nil {
		return nil, err
	}
	known := r.cfg.Topology.Queues()
	out := []broker.QueueStat{}
	for _, q := range all {
		if !slices.Contains(known, q.Name) {
			out = append(out, q)
		}
	}
	return out, nil
}

func (rep *Report) add(severity, check, message string) {
	rep.Findings = append(rep.Findings, Finding{Severity: severity, Check: check, Message: message})
}

// judge turns what rep says into findings and rep's severity.
func (r *Reporter) judge(rep *Report, parkedRecently int) {
	for _, q := range rep.Queues {
		if q.Role == roleWork && q.Consumers == 0 {
			rep.add(Critical, "no_consumer", fmt.Sprintf("no consumer on %s: no worker is running", q.Name))
		}
	}
	if parkedRecently > 0 {
		rep.add(Warning, "dlq_growing", fmt.Sprintf("DLQ growing: %d event(s) parked in the last %s", parkedRecently, r.cfg.Window))
	}
	if len(rep.Lost) > 0 {
		where := "deleted from the DLQ or moved out of the namespace"
		var holding []string
		for _, q := range rep.StrayQueues {
			if q.Messages > 0 {
				holding = append(holding, fmt.Sprintf("%s (%d)", q.Name, q.Messages))
			}
		}
		if len(holding) > 0 {
			where = "perhaps in the stray queue(s) " + strings.Join(holding, ", ")
		}
		ids := strings.Join(rep.Lost[:min(len(rep.Lost), 10)], " ")
		if len(rep.Lost) > 10 {
			ids += " ..."
		}
		if rep.LostCertain {
			rep.add(Critical, "lost", fmt.Sprintf("%d event(s) dead in the ledger are in no queue of the topology, %s: %s", len(rep.Lost), where, ids))
		} else {
			rep.add(Warning, "lost", fmt.Sprintf("%d event(s) dead in the ledger are not in the DLQ; the work queue or a tier holds messages, so they may be on their way back (run again): %s", len(rep.Lost), ids))
		}
	}
	period := r.cfg.SweepPeriod
	if period == 0 && rep.LastSweep != nil {
		period = time.Duration(rep.LastSweep.EverySeconds * float64(time.Second))
	}
	if period > 0 {
		switch {
		case rep.LastSweep == nil || rep.LastSweep.LastSuccess.IsZero():
			rep.add(Warning, "sweep_late", fmt.Sprintf("no sweep pass has succeeded (it should run every %s)", period))
		case rep.At.Sub(rep.LastSweep.LastSuccess) > 2*period:
			rep.add(Warning, "sweep_late", fmt.Sprintf("the last successful sweep ended %s ago, more than twice its period of %s",
				rep.At.Sub(rep.LastSweep.LastSuccess).Truncate(time.Second), period))
		}
	}
	for _, q := range rep.StrayQueues {
		rep.add(Warning, "stray_queue", fmt.Sprintf("stray queue %s holds %d message(s): not part of the topology (a mistyped \"Move messages\" destination?)", q.Name, q.Messages))
	}
	slices.SortStableFunc(rep.Findings, func(a, b Finding) int {
		return slices.Index(Severities, b.Severity) - slices.Index(Severities, a.Severity)
	})
	if len(rep.Findings) > 0 {
		rep.Severity = rep.Findings[0].Severity
	}
}

// Queue roles.
const (
	roleWork  = "work"
	roleRetry = "retry"
	roleDLQ   = "dlq"
)

// queues reads each queue's ready messages and consumers with a passive
// declare, which needs no permission and no management plugin.
func (r *Reporter) queues(ctx context.Context) ([]Queue, error) {
	conn, err := r.conn.Await(ctx)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("status: open channel: %w", err)
	}
	defer ch.Close()
	topo := r.cfg.Topology
	names := []string{topo.Work}
	for i := range topo.Delays {
		names = append(names, topo.TierQueue(i))
	}
	names = append(names, topo.DLQ)
	out := make([]Queue, 0, len(names))
	for _, name := range names {
		st, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
		if err != nil {
			return nil, fmt.Errorf("status: inspect queue %s: %w", name, err)
		}
		role := roleRetry
		switch name {
		case topo.Work:
			role = roleWork
		case topo.DLQ:
			role = roleDLQ
		}
		out = append(out, Queue{Name: name, Role: role, Messages: st.Messages, Consumers: st.Consumers})
	}
	return out, nil
}

// Classes returns the classes of ParkedByClass, sorted.
func (rep Report) Classes() []string {
	out := make([]string, 0, len(rep.ParkedByClass))
	for c := range rep.ParkedByClass {
		out = append(out, c)
	}
	slices.Sort(out)
	return out
}
