package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os/user"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/config"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/internal/termtext"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/lookup"
)

const dlqUsage = `Inspect, replay or discard the events parked in <BILLING_NAMESPACE>.events.dlq.
Needs AMQP_URL and BILLING_NAMESPACE (discard and show's ledger row:
MYSQL_DSN too). No command reorders the DLQ: each takes every message
unacked, acks only those it moves or discards, and hands the others back
together, in order.

  billing dlq list [--json] [--limit N]
      One line per parked event, as the management UI's headers show it:
      event id, copies (Stripe may deliver an event twice: each failed
      copy is parked), type, class, attempts, replays, first failure,
      parked at, age, the error. --json prints one JSON object per line.

  billing dlq show <event id> [--json]
      Every copy of the event: properties, headers, the reason, the body
      pretty-printed, and its ledger row and discards when MySQL answers.

  billing dlq replay (--event ID | --type TYPE | --class CLASS | --since T | --all)
                     [--rate N] [--limit N] [--dry-run]
      Send matching parked events (all their copies) back to
      <BILLING_NAMESPACE>.events.work as fresh attempts, at most --rate per
      second. Selectors combine (all must match); --since takes a duration
      (1h: parked in the last hour) or an RFC 3339 time. A message leaves
      the DLQ only once its copy is confirmed in the work queue.

  billing dlq discard <event id> --reason "why" [--by NAME]
      Take every copy of the event off the DLQ for good, recording in
      MySQL who (--by, default the OS user), when and why; the ledger row
      stays, marked discarded ('billing history' shows it).`

func runDLQ(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		return &flagError{newFlagSet(e, "dlq", dlqUsage), fmt.Errorf("%w: dlq needs list, show, replay or discard", errUsage)}
	}
	switch args[0] {
	case "list":
		return runDLQList(ctx, e, args[1:])
	case "show":
		return runDLQShow(ctx, e, args[1:])
	case "replay":
		return runDLQReplay(ctx, e, args[1:])
	case "discard":
		return runDLQDiscard(ctx, e, args[1:])
	case "-h", "--help", "help":
		return &flagError{newFlagSet(e, "dlq", dlqUsage), flag.ErrHelp}
	default:
		return fmt.Errorf("%w: dlq: unknown action %q (list, show, replay or discard)", errUsage, args[0])
	}
}

func runDLQList(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "dlq list", dlqUsage)
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	limit := fs.Int("limit", 0, "show at most N events (0: all)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *limit < 0 {
		return fmt.Errorf("%w: --limit must not be negative", errUsage)
	}
	cfg, logger, err := loadConfig(e, logFormat(*asJSON))
	if err != nil {
		return err
	}
	s, err := openDLQ(ctx, cfg, logger, "billing-dlq", dlqTopology(cfg))
	if err != nil {
		return err
	}
	defer s.close()
	// The whole DLQ is read: copies of one event may lie far apart.
	all, err := s.dlq.List(ctx, 0)
	if err != nil {
		return err
	}
	parked := dlq.ByEvent(all)
	if *limit > 0 && len(parked) > *limit {
		parked = parked[:*limit]
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		for _, p := range parked {
			if err := enc.Encode(p); err != nil {
				return err
			}
		}
		return nil
	}
	dlq.WriteList(e.stdout, parked)
	fmt.Fprintf(e.stdout, "%d parked event(s) shown, %d message(s) in %s\n", len(parked), len(all), s.topo.DLQ)
	return nil
}

// eventArg parses a subcommand whose one positional argument, an event id,
// may come before or after the flags.
func eventArg(fs *flag.FlagSet, args []string) (string, error) {
	ids, err := parseFlagArgs(fs, args)
	if err != nil {
		return "", err
	}
	if len(ids) != 1 || ids[0] == "" {
		return "", fmt.Errorf("%w: %s takes one event id, got %d", errUsage, fs.Name(), len(ids))
	}
	return ids[0], nil
}

func runDLQShow(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "dlq show", dlqUsage)
	asJSON := fs.Bool("json", false, "print the copies and the ledger row as one JSON object")
	id, err := eventArg(fs, args)
	if err != nil {
		return err
	}
	cfg, logger, err := loadConfig(e, logFormat(*asJSON))
	if err != nil {
		return err
	}
	s, err := openDLQ(ctx, cfg, logger, "billing-dlq-show", dlqTopology(cfg))
	if err != nil {
		return err
	}
	defer s.close()
	copies, err := s.dlq.Show(ctx, id)
	if err != nil {
		return err
	}
	var ledger *models.StripeEvent
	var discards []models.EventDiscard
	ledgerNote := ""
	if store, err := openStore(ctx, cfg, logger, "dlq show", 1); err != nil {
		ledgerNote = "not read: " + err.Error()
	} else {
		defer store.Close()
		ledger, discards, ledgerNote = dlq.ReadLedger(ctx, lookup.New(store), id)
	}
	shown := dlq.NewShown(id, copies, ledger, ledgerNote, discards)
	if *asJSON {
		if err := json.NewEncoder(e.stdout).Encode(shown); err != nil {
			return err
		}
	} else {
		shown.WriteText(e.stdout)
	}
	if len(copies) == 0 {
		return fmt.Errorf("dlq show: event %s: %w", id, dlq.ErrNotParked)
	}
	return nil
}

// sinceFlag reads --since: a duration back from now, or an RFC 3339 time.
func sinceFlag(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: --since %q is neither a positive duration (1h) nor an RFC 3339 time (2026-01-02T15:04:05Z)", errUsage, v)
}

func runDLQReplay(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "dlq replay", dlqUsage)
	event := fs.String("event", "", "replay the parked event with this id (every copy)")
	typ := fs.String("type", "", "replay parked events of this type")
	class := fs.String("class", "", "replay parked events of this failure class (transient, permanent, schema, delivery_limit, ...)")
	since := fs.String("since", "", "replay events parked since `T`: a duration back from now (1h) or an RFC 3339 time")
	all := fs.Bool("all", false, "replay every parked event")
	rate := fs.Float64("rate", 0, "publish at most `N` messages a second (0: no limit)")
	limit := fs.Int("limit", 0, "move at most N messages (0: no limit)")
	dryRun := fs.Bool("dry-run", false, "print what would move, move nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	selected := *event != "" || *typ != "" || *class != "" || *since != ""
	if selected == *all {
		return fmt.Errorf("%w: dlq replay needs --all or any of --event, --type, --class, --since (not both)", errUsage)
	}
	if *limit < 0 || *rate < 0 {
		return fmt.Errorf("%w: --limit and --rate must not be negative", errUsage)
	}
	var after time.Time
	if *since != "" {
		var err error
		if after, err = sinceFlag(*since, time.Now()); err != nil {
			return err
		}
	}
	cfg, logger, err := loadConfig(e, textLogs)
	if err != nil {
		return err
	}
	s, err := openDLQ(ctx, cfg, logger, "billing-dlq-replay", dlqTopology(cfg))
	if err != nil {
		return err
	}
	defer s.close()
	opts := dlq.MoveOptions{Limit: *limit, DryRun: *dryRun}
	if *rate > 0 {
		opts.Pace = time.Duration(float64(time.Second) / *rate)
	}
	if selected {
		opts.Match = dlq.Selector{EventID: *event, Type: *typ, Class: *class, Since: after}.Match
	}
	res, err := s.dlq.Move(ctx, opts)
	res.WriteText(e.stdout, *dryRun, s.topo.Work, s.topo.DLQ)
	if err != nil {
		return err
	}
	if len(res.Moved) == 0 && *event != "" {
		return fmt.Errorf("dlq replay: event %s: %w", *event, dlq.ErrNotParked)
	}
	return nil
}

func runDLQDiscard(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "dlq discard", dlqUsage)
	reason := fs.String("reason", "", "why the event is dropped (required; kept in MySQL)")
	by := fs.String("by", "", "who drops it (default: the OS user)")
	id, err := eventArg(fs, args)
	if err != nil {
		return err
	}
	why := strings.TrimSpace(*reason)
	switch {
	case why == "":
		return fmt.Errorf("%w: dlq discard needs --reason: say why the event may be dropped", errUsage)
	case utf8.RuneCountInString(why) > models.MaxDiscardReason:
		return fmt.Errorf("%w: --reason is longer than %d characters", errUsage, models.MaxDiscardReason)
	}
	who := strings.TrimSpace(*by)
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
	}
	if who == "" {
		return fmt.Errorf("%w: dlq discard: no OS user found: say who with --by", errUsage)
	}
	cfg, logger, err := loadConfig(e, textLogs)
	if err != nil {
		return err
	}
	// MySQL first: nothing leaves the DLQ unless the decision can be kept.
	store, err := openStore(ctx, cfg, logger, "dlq discard", 1)
	if err != nil {
		return err
	}
	defer store.Close()
	s, err := openDLQ(ctx, cfg, logger, "billing-dlq-discard", dlqTopology(cfg))
	if err != nil {
		return err
	}
	defer s.close()
	copies, err := s.dlq.Discard(ctx, id, func(ctx context.Context, copies []dlq.Parked) error {
		return store.RecordDiscard(ctx, models.EventDiscard{EventID: id, EventType: copies[0].Type, Copies: len(copies), DiscardedBy: who, Reason: why})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "discarded %s %s: %d cop(ies) taken off %s, recorded as discarded by %s\n", termtext.Cell(id), termtext.Cell(copies[0].Type), len(copies), s.topo.DLQ, termtext.Cell(who))
	return nil
}

// dlqSession is a command's view of the broker: a reading connection, a
// publishing connection with its confirm publisher, and the DLQ on them.
type dlqSession struct {
	topo   broker.Topology
	reader *broker.Conn
	dlq    *dlq.Queue
	pub    *broker.Publisher
	close  func()
}

// dlqTopology is the part of the topology a DLQ command needs: the
// exchanges, the work queue and the DLQ, not the delay tiers, so that it
// runs whatever RETRY_DELAYS says.
func dlqTopology(cfg config.Config) broker.Topology {
	return broker.NewTopology(cfg.Namespace, nil, cfg.WorkDeliveryLimit)
}

// fullTopology is the deployment's topology, delay tiers included.
func fullTopology(cfg config.Config) broker.Topology {
	return broker.NewTopology(cfg.Namespace, cfg.RetryDelays, cfg.WorkDeliveryLimit)
}

// openDLQ connects to RabbitMQ (checking topo) and waits at most a few
// seconds for it: a one-shot command fails instead of waiting forever.
func openDLQ(ctx context.Context, cfg config.Config, logger *slog.Logger, name string, topo broker.Topology) (*dlqSession, error) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	s := &dlqSession{topo: topo, close: func() { cancel(); wg.Wait() }}
	connect := func(role string) (*broker.Conn, error) {
		c := broker.NewConn(broker.ConnConfig{URL: cfg.AMQPURL, Name: name + " " + role, Topology: topo, Backoff: reconnectBackoff, DialTimeout: 5 * time.Second}, logger)
		// Run ends early on a missing topology: say so rather than time out.
		failed, fail := context.WithCancelCause(ctx)
		defer fail(nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(ctx); err != nil {
				fail(err)
			}
		}()
		actx, acancel := context.WithTimeout(failed, 10*time.Second)
		defer acancel()
		if _, err := c.Await(actx); err != nil {
			if cause := context.Cause(failed); errors.Is(cause, broker.ErrTopologyMissing) {
				return nil, cause
			}
			return nil, fmt.Errorf("connect to RabbitMQ at %s (AMQP_URL): %w", broker.RedactURL(cfg.AMQPURL), err)
		}
		return c, nil
	}
	reader, err := connect("reader")
	s.reader = reader
	if err == nil {
		var pubConn *broker.Conn
		if pubConn, err = connect("publisher"); err == nil {
			s.pub = broker.NewPublisher(pubConn, 1, cfg.PublishTimeout)
			s.dlq, err = dlq.New(dlq.Config{Topology: topo}, logger, reader, s.pub)
		}
	}
	if err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}
