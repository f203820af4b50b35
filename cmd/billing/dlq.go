package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/config"
	"github.com/stripe-billing/billing/dlq"
)

const dlqUsage = `Inspect or replay the events parked in <BILLING_NAMESPACE>.events.dlq.

  billing dlq list [--json] [--limit N]
      Show parked events as the management UI's headers do: event id, type,
      class, attempts, replays, first failure, parked at, age, the error.
      Nothing leaves the DLQ. --json prints one JSON object per line.

  billing dlq replay (--event ID | --type TYPE | --all) [--limit N] [--dry-run]
      Send matching parked events back to <BILLING_NAMESPACE>.events.work
      as fresh attempts. A message leaves the DLQ only once its copy is
      confirmed in the work queue; the others stay, in order.
      --dry-run prints what would move and moves nothing.`

func runDLQ(ctx context.Context, e env, args []string) error {
	if len(args) == 0 {
		newFlagSet(e, "dlq", dlqUsage).Usage()
		return fmt.Errorf("%w: dlq needs list or replay", errUsage)
	}
	switch args[0] {
	case "list":
		return runDLQList(ctx, e, args[1:])
	case "replay":
		return runDLQReplay(ctx, e, args[1:])
	case "-h", "--help", "help":
		newFlagSet(e, "dlq", dlqUsage).Usage()
		return nil
	default:
		return fmt.Errorf("%w: dlq: unknown action %q (list or replay)", errUsage, args[0])
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
	cfg, logger, err := loadConfig(e)
	if err != nil {
		return err
	}
	s, err := openDLQ(ctx, cfg, logger, "billing-dlq")
	if err != nil {
		return err
	}
	defer s.close()
	parked, err := s.dlq.List(ctx, *limit)
	if err != nil {
		return err
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
	printParked(e, parked)
	fmt.Fprintf(e.stdout, "%d parked event(s) shown\n", len(parked))
	return nil
}

// printParked shows what the management UI shows of each parked message:
// the class, the times (UTC) and the whole reason (billing-error, at most
// dlq.MaxErrorHeader bytes), last so that a long one does not push the
// other columns.
func printParked(e env, parked []dlq.Parked) {
	w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "EVENT ID\tTYPE\tCLASS\tATTEMPTS\tREPLAYS\tFIRST FAILED\tPARKED AT\tAGE\tERROR")
	for _, p := range parked {
		age := "-"
		if !p.ParkedAt.IsZero() {
			age = (time.Duration(p.AgeSeconds) * time.Second).String()
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", cell(p.EventID), cell(p.Type), cell(string(p.Class)), p.Attempts, p.Replays,
			timeCell(p.FirstFailedAt), timeCell(p.ParkedAt), age, cell(oneLine(p.Error, dlq.MaxErrorHeader)))
	}
	_ = w.Flush()
}

// timeCell is t as the UI's headers show it (RFC 3339, UTC), "-" when unset.
func timeCell(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func runDLQReplay(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "dlq replay", dlqUsage)
	event := fs.String("event", "", "replay the parked event with this id")
	typ := fs.String("type", "", "replay parked events of this type")
	all := fs.Bool("all", false, "replay every parked event")
	limit := fs.Int("limit", 0, "move at most N events (0: no limit)")
	dryRun := fs.Bool("dry-run", false, "print what would move, move nothing")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	selectors := 0
	for _, set := range []bool{*event != "", *typ != "", *all} {
		if set {
			selectors++
		}
	}
	if selectors != 1 {
		return fmt.Errorf("%w: dlq replay needs exactly one of --event, --type or --all", errUsage)
	}
	if *limit < 0 {
		return fmt.Errorf("%w: --limit must not be negative", errUsage)
	}
	cfg, logger, err := loadConfig(e)
	if err != nil {
		return err
	}
	s, err := openDLQ(ctx, cfg, logger, "billing-dlq-replay")
	if err != nil {
		return err
	}
	defer s.close()
	opts := dlq.MoveOptions{Limit: *limit, DryRun: *dryRun}
	switch {
	case *event != "":
		opts.Match = func(_ context.Context, p dlq.Parked) (bool, error) { return p.EventID == *event, nil }
	case *typ != "":
		opts.Match = func(_ context.Context, p dlq.Parked) (bool, error) { return p.Type == *typ, nil }
	}
	res, err := s.dlq.Move(ctx, opts)
	verb := "moved"
	if *dryRun {
		verb = "would move"
	}
	for _, p := range res.Moved {
		fmt.Fprintf(e.stdout, "%s %s %s (class %s, attempts %d)\n", verb, cell(p.EventID), cell(p.Type), cell(string(p.Class)), p.Attempts)
	}
	if *dryRun {
		fmt.Fprintf(e.stdout, "dry run: would move %d event(s) to %s; nothing was moved\n", len(res.Moved), s.topo.Work)
	} else {
		fmt.Fprintf(e.stdout, "moved %d event(s) to %s; %d looked at and left in %s\n", len(res.Moved), s.topo.Work, res.Left, s.topo.DLQ)
	}
	if err != nil {
		return err
	}
	if len(res.Moved) == 0 && *event != "" {
		return fmt.Errorf("dlq replay: event %s is not in %s", *event, s.topo.DLQ)
	}
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

// openDLQ connects to RabbitMQ (checking the topology) and waits at most
// a few seconds for it: a one-shot command fails instead of waiting forever.
func openDLQ(ctx context.Context, cfg config.Config, logger *slog.Logger, name string) (*dlqSession, error) {
	topo := broker.NewTopology(cfg.Namespace, cfg.RetryDelays, cfg.WorkDeliveryLimit)
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

// cell is a value read from a message as a terminal may show it: "-" when
// empty, quoted Go-style (strconv.Quote) when it holds a rune that is not
// printable, so that a hand-published message cannot put escape sequences
// or line breaks on an operator's terminal, nor fake a row of the table.
func cell(s string) string {
	switch {
	case s == "":
		return "-"
	case strings.IndexFunc(s, func(r rune) bool { return !strconv.IsPrint(r) }) >= 0:
		return strconv.Quote(s)
	}
	return s
}

// oneLine flattens s and cuts it to at most n runes for a table cell.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
