package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/stripe-billing/billing/api"
	"github.com/stripe-billing/billing/config"
	"github.com/stripe-billing/billing/models"
)

// env is what every subcommand receives: the process environment and streams.
type env struct {
	getenv func(string) string
	stdout io.Writer
	stderr io.Writer
}

// command is one subcommand. run gets the arguments after its name.
type command struct {
	summary string
	run     func(ctx context.Context, e env, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"api":       {"serve POST /webhooks/stripe and publish verified events to RabbitMQ", runAPI},
		"worker":    {"consume the work queue and apply events to MySQL", runWorker},
		"migrate":   {"apply the database migrations (idempotent)", runMigrate},
		"topology":  {"declare the RabbitMQ exchanges and queues (idempotent)", runTopology},
		"relay":     {"publish the change outbox to <namespace>.changes, in order, with confirms", runRelay},
		"sweep":     {"one pass for cron: re-drive parked events, reconcile with Stripe", runSweep},
		"dlq":       {"list, show, replay or discard parked events", runDLQ},
		"simulate":  {"post realistic signed Stripe events to the api", runSimulate},
		"status":    {"where things stand: queues, rates, parked and lost events, the last sweep", runStatus},
		"reprocess": {"apply ledger events again through today's handlers (by type, status, time)", runReprocess},
		"history":   {"one object's row and its events in Stripe's order, applied or stale", runHistory},
		"endpoint":  {"check the account's webhook endpoints send the event types the worker needs", runEndpoint},
		"backfill":  {"import the account's objects from Stripe's lists, resumable (--account, --dry-run)", runBackfill},
		"audit":     {"compare our rows with Stripe's objects, by kind and field (--sample N, --fix)", runAudit},
		"notify":    {"email failed payments and opened disputes from the change feed", runNotify},
		"changes":   {"tail [--key K]: print the change feed as it comes", runChanges},
		"version":   {"the module version, VCS revision and time, and Go version of this binary", runVersion},
	}
}

// errUsage marks a command-line mistake: exit code 2.
var errUsage = errors.New("usage")

func exitCode(err error) int {
	var s exitStatus
	switch {
	case errors.As(err, &s):
		return int(s)
	case errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp):
		return 2
	}
	return 1
}

// exitStatus is an exit code whose command has printed why: main prints
// nothing more (`billing status` exits 1 on a warning, 2 on a critical
// finding).
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// silent reports whether err was said already (an exitStatus).
func silent(err error) bool {
	var s exitStatus
	return errors.As(err, &s)
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	e := env{getenv: getenv, stdout: stdout, stderr: stderr}
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stdout, cmds)
		if len(args) == 0 {
			return fmt.Errorf("%w: a subcommand is required", errUsage)
		}
		return nil
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		printUsage(stderr, cmds)
		return fmt.Errorf("%w: unknown subcommand %q", errUsage, args[0])
	}
	err := cmd.run(ctx, e, args[1:])
	if printFlagUsage(err, stdout, stderr) {
		return nil
	}
	return err
}

func printUsage(w io.Writer, cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(w, "usage: billing <subcommand> [flags]   (billing <subcommand> --help for its flags)")
	fmt.Fprintln(w, "\nsubcommands:")
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nSettings come from the environment; see the README's configuration table.")
}

// newFlagSet builds a subcommand's flag set that prints nothing while it
// parses: parseFlags returns its errors, and run prints the usage once
// (to stdout on --help, to stderr on a mistake) and main the error once.
func newFlagSet(e env, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: billing %s\n\n%s\n", name, usage)
		fs.PrintDefaults()
	}
	return fs
}

// flagError is a parse error of fs (or --help): run prints fs's usage.
type flagError struct {
	fs  *flag.FlagSet
	err error
}

func (f *flagError) Error() string { return f.err.Error() }
func (f *flagError) Unwrap() error { return f.err }

// printFlagUsage prints the usage of the flag set whose parse failed with
// err, if any: to stdout for --help, to stderr for a mistake. It reports
// whether err was --help.
func printFlagUsage(err error, stdout, stderr io.Writer) (help bool) {
	var fe *flagError
	if !errors.As(err, &fe) {
		return false
	}
	help = errors.Is(err, flag.ErrHelp)
	w := stderr
	if help {
		w = stdout
	}
	fe.fs.SetOutput(w)
	fe.fs.Usage()
	fe.fs.SetOutput(io.Discard)
	return help
}

// parseFlagArgs parses args, which may hold fs's flags and positional
// arguments in any order, and returns the positional ones.
func parseFlagArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &flagError{fs, err}
			}
			return nil, &flagError{fs, fmt.Errorf("%w: %v", errUsage, err)}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// parseFlags parses args and rejects stray positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &flagError{fs, err}
		}
		return &flagError{fs, fmt.Errorf("%w: %v", errUsage, err)}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, strings.Join(fs.Args(), " "))
	}
	return nil
}

// logFormat is how a command logs: services as JSON lines for a log
// pipeline, commands a person runs as plain text (JSON with their --json).
type logFormat bool

const (
	textLogs logFormat = false
	jsonLogs logFormat = true
)

// loadConfig reads the settings and builds the logger, writing to stderr
// in format. Every subcommand starts here, so every process that holds the
// webhook secret (api, worker, sweep, reprocess, simulate...) warns of the
// development one.
func loadConfig(e env, format logFormat) (config.Config, *slog.Logger, error) {
	cfg, err := config.Load(e.getenv)
	if err != nil {
		return cfg, nil, err
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel)) // validated by config.Load
	var logger *slog.Logger
	if format == jsonLogs {
		logger = slog.New(slog.NewJSONHandler(e.stderr, &slog.HandlerOptions{Level: level}))
	} else {
		// A person reads it as it happens: no timestamp.
		noTime := func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
		logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level, ReplaceAttr: noTime}))
	}
	warnDevSecret(cfg, logger)
	return cfg, logger, nil
}

// warnDevSecret warns when STRIPE_WEBHOOK_SECRET holds the development
// stack's secret, which docker-compose.yml publishes.
func warnDevSecret(cfg config.Config, logger *slog.Logger) {
	if slices.Contains(cfg.WebhookSecrets, api.DevWebhookSecret) {
		logger.Warn("STRIPE_WEBHOOK_SECRET is the development secret: anyone who read docker-compose.yml can sign events; set your endpoint's own secret")
	}
}

// openStore opens MySQL for the one-shot command name with a pool of conns
// connections, waiting at most 10s: a command fails rather than hang.
func openStore(ctx context.Context, cfg config.Config, logger *slog.Logger, name string, conns int) (*models.Store, error) {
	if err := cfg.RequireMySQLDSN(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	store, err := models.Open(ctx, cfg.MySQLDSN, models.PoolConfig{MaxOpenConns: conns, MaxIdleConns: 2, ConnMaxLifetime: cfg.DBConnMaxLifetime}, logger)
	if err != nil {
		return nil, fmt.Errorf("%s: open MySQL (MYSQL_DSN): %w", name, err)
	}
	return store, nil
}
