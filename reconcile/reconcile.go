// Package reconcile owns the client side of Stripe's API: it lists the
// events Stripe sent in the last 30 days and enqueues, in the shape the
// api publishes, every one the ledger has never seen (a webhook lost before
// the api could answer it); and the Fetcher gets one event or object by
// id as Stripe serves it: an event for the worker to apply in place of a
// message it cannot verify, an object to settle a same-second tie.
//
// Reconciliation enqueues its events without a signature (it has none to
// forward): the worker fetches each again by id. A mark of our own ("came
// from the sweep") would be a header anyone with access to the broker
// could set; asking Stripe cannot be forged.
package reconcile

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/netaddr"
)

// CheckpointStripeEvents names the reconciliation's saved position.
const CheckpointStripeEvents = "stripe_events"

// AppID is the AMQP app-id of the events reconciliation enqueues;
// everything else about the message is what the api publishes.
const AppID = "billing-sweep"

// DefaultAPIBase is Stripe's API (config.Vars refers to it).
const DefaultAPIBase = stripe.APIURL

// Publisher publishes one message with a confirm and reports success only
// when the broker holds it in a queue: broker.Publisher.
type Publisher interface {
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error
}

// Store is what reconciliation needs of the database
// (*models.Store).
type Store interface {
	KnownEventIDs(ctx context.Context, ids []string) (map[string]bool, error)
	Checkpoint(ctx context.Context, name string) (string, error)
	SetCheckpoint(ctx context.Context, name, value string) error
}

// Config configures a Reconciler.
type Config struct {
	// APIKey is the Stripe secret key (required).
	APIKey string
	// APIBase is the Stripe API base URL; default https://api.stripe.com.
	APIBase  string
	Topology broker.Topology
	// Retention is how far back Stripe's Events API reaches; default 30
	// days.
	Retention time.Duration
	// Margin overlaps consecutive runs, for events that show up in the
	// list a little after their created time, and keeps the first run
	// inside the retention; default 10m.
	Margin time.Duration
	// PageSize is the Events API page size; default 100 (Stripe's most).
	PageSize int64
	// Types are the event types enqueued when missing: those the worker
	// applies; default billing.HandledTypes. Any other would only be
	// recorded as ignored, at the cost of a fetch from Stripe each (an
	// enqueued event has no signature): it is counted instead.
	Types []string
	// HTTPClient calls Stripe; default a client with a 30s timeout.
	HTTPClient *http.Client
	// Observe, when set, is told the outcome of every call to Stripe
	// under PurposeReconcile (metrics.Metrics.StripeCall).
	Observe func(purpose, outcome string)
	Now     func() time.Time
}

// Reconciler lists Stripe's events since its checkpoint and enqueues every
// one the ledger has never seen, in the shape the api publishes: what a
// lost webhook would have delivered.
type Reconciler struct {
	cfg    Config
	types  map[string]bool
	logger *slog.Logger
	store  Store
	pub    Publisher
	api    *client.API
}

// Result is what one reconciliation did.
type Result struct {
	// Since is the lower bound of created times asked for.
	Since time.Time
	// Listed counts the events Stripe returned, Enqueued those missing
	// from the ledger and published, Unhandled those of types the worker
	// does not apply (Config.Types), never enqueued.
	Listed, Enqueued, Unhandled int
	// Checkpoint is the position saved for the next run.
	Checkpoint time.Time
}

// New returns a Reconciler calling the Events API at cfg.APIBase.
// A nil logger discards.
func New(cfg Config, logger *slog.Logger, store Store, pub Publisher) (*Reconciler, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case cfg.APIKey == "":
		return nil, errors.New("reconcile: reconciler: no Stripe API key")
	case cfg.Topology.Events == "":
		return nil, errors.New("reconcile: reconciler: topology has no events exchange")
	case store == nil || pub == nil:
		return nil, errors.New("reconcile: reconciler: store and publisher are required")
	}
	if err := checkBase(cfg.APIBase); err != nil {
		return nil, fmt.Errorf("reconcile: reconciler: %w", err)
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.Margin <= 0 {
		cfg.Margin = 10 * time.Minute
	}
	if cfg.PageSize <= 0 || cfg.PageSize > 100 {
		cfg.PageSize = 100
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Observe != nil {
		c := http.Client{Timeout: 30 * time.Second}
		if cfg.HTTPClient != nil {
			c = *cfg.HTTPClient
		}
		if c.Transport == nil {
			c.Transport = http.DefaultTransport
		}
		c.Transport = observedTransport{base: c.Transport, purpose: PurposeReconcile, observe: cfg.Observe}
		cfg.HTTPClient = &c
	}
	if cfg.Types == nil {
		cfg.Types = billing.HandledTypes()
	}
	types := map[string]bool{}
	for _, t := range cfg.Types {
		types[t] = true
	}
	backend := newBackend(cfg.APIBase, cfg.HTTPClient)
	api := client.New(cfg.APIKey, &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
	return &Reconciler{cfg: cfg, types: types, logger: logger, store: store, pub: pub, api: api}, nil
}

// checkBase refuses an API base that would carry the API key, sent with
// every request, in the clear off this machine: https, or plain http to a
// loopback host only (stripe-mock in tests). Empty is the default base.
func checkBase(base string) error {
	if base == "" {
		return nil
	}
	u, err := url.Parse(base)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return errors.New("API base must be an https URL such as https://api.stripe.com")
	case u.Scheme == "http" && !netaddr.IsLoopback(u.Hostname()):
		return errors.New("API base must be https unless the host is loopback (127.0.0.0/8, ::1, localhost): the API key travels in every request")
	}
	return nil
}

// newBackend is the stripe-go backend for Stripe's API at base; stripe-go
// retries network errors and 5xx answers twice itself.
func newBackend(base string, httpClient *http.Client) stripe.Backend {
	if base == "" {
		base = DefaultAPIBase
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	return stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL:               stripe.String(base),
		HTTPClient:        httpClient,
		MaxNetworkRetries: stripe.Int64(2),
		LeveledLogger:     &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
}

// Reconcile runs one pass. The checkpoint advances only when every missing
// event has been confirmed by the broker, so a failed pass is repeated in
// full by the next; the ledger check makes that safe.
func (r *Reconciler) Reconcile(ctx context.Context) (Result, error) {
	now := r.cfg.Now()
	since := now.Add(-r.cfg.Retention + r.cfg.Margin)
	cp, err := r.store.Checkpoint(ctx, CheckpointStripeEvents)
	if err != nil {
		return Result{}, fmt.Errorf("reconcile: reconcile: read checkpoint: %w", err)
	}
	if cp != "" {
		at, err := time.Parse(time.RFC3339, cp)
		if err != nil {
			return Result{}, fmt.Errorf("reconcile: reconcile: checkpoint %q: %w", cp, err)
		}
		if at = at.Add(-r.cfg.Margin); at.After(since) {
			since = at
		}
	}
	res := Result{Since: since.Truncate(time.Second)}

	params := &stripe.EventListParams{CreatedRange: &stripe.RangeQueryParams{GreaterThanOrEqual: res.Since.Unix()}}
	params.Limit = stripe.Int64(r.cfg.PageSize)
	params.Context = ctx
	it := r.api.Events.List(params)
	var (
		page     *stripe.EventList
		raw      map[string]json.RawMessage
		batch    []*stripe.Event
		flushErr error
	)
	flush := func() {
		if flushErr == nil && len(batch) > 0 {
			n, err := r.enqueueMissing(ctx, batch, raw)
			res.Enqueued += n
			flushErr = err
		}
		batch = batch[:0]
	}
	for it.Next() {
		if l := it.EventList(); l != page {
			flush() // the previous page, with its raw JSON
			page = l
			if raw, err = rawEvents(l); err != nil {
				return res, fmt.Errorf("reconcile: reconcile: %w", err)
			}
		}
		ev := it.Event()
		res.Listed++
		if ev.Created < res.Since.Unix() {
			continue // the API filters by created; do not rely on it alone
		}
		if !r.types[string(ev.Type)] {
			res.Unhandled++
			continue
		}
		batch = append(batch, ev)
	}
	flush()
	if err := it.Err(); err != nil {
		return res, fmt.Errorf("reconcile: reconcile: list events since %s: %w", res.Since.Format(time.RFC3339), err)
	}
	if flushErr != nil {
		return res, fmt.Errorf("reconcile: reconcile: %w", flushErr)
	}
	res.Checkpoint = now.UTC().Truncate(time.Second)
	if err := r.store.SetCheckpoint(ctx, CheckpointStripeEvents, res.Checkpoint.Format(time.RFC3339)); err != nil {
		return res, fmt.Errorf("reconcile: reconcile: save checkpoint: %w", err)
	}
	return res, nil
}

// enqueueMissing publishes the events of one page that have no ledger row.
func (r *Reconciler) enqueueMissing(ctx context.Context, events []*stripe.Event, raw map[string]json.RawMessage) (int, error) {
	ids := make([]string, len(events))
	for i, ev := range events {
		ids[i] = ev.ID
	}
	known, err := r.store.KnownEventIDs(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("look up the ledger: %w", err)
	}
	n := 0
	for _, ev := range events {
		if known[ev.ID] {
			continue
		}
		body, ok := raw[ev.ID]
		if !ok {
			return n, fmt.Errorf("event %s: no raw JSON in its page", ev.ID)
		}
		typ := string(ev.Type)
		err := r.pub.Publish(ctx, r.cfg.Topology.Events, typ, broker.NewEvent(ev.ID, typ, body, "", AppID, r.cfg.Now()))
		if err != nil {
			return n, fmt.Errorf("enqueue %s: %w", ev.ID, err)
		}
		n++
		r.logger.Info("missing event enqueued", "event_id", ev.ID, "event_type", typ, "created", strconv.FormatInt(ev.Created, 10))
	}
	return n, nil
}

// rawEvents returns each event of a list page as Stripe sent it, keyed by
// id: the message body must be the event's own JSON, not a re-encoding of
// stripe-go's struct, which drops fields it does not know.
func rawEvents(l *stripe.EventList) (map[string]json.RawMessage, error) {
	if l == nil || l.LastResponse == nil {
		return nil, errors.New("event list page without its response")
	}
	var page struct {
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(l.LastResponse.RawJSON, &page); err != nil {
		return nil, fmt.Errorf("decode event list page: %w", err)
	}
	out := make(map[string]json.RawMessage, len(page.Data))
	for _, ev := range page.Data {
		var id struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(ev, &id); err != nil {
			return nil, fmt.Errorf("decode listed event: %w", err)
		}
		out[id.ID] = ev
	}
	return out, nil
}
