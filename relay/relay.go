// Package relay is `billing relay`: it publishes the change outbox
// (models/feed) to the <namespace>.changes topic exchange, in seq order,
// with publisher confirms on one channel, and stamps a row published only
// once the broker confirmed it. One relay publishes at a time (a MySQL
// named lock); another waits for the lock. Delivery is at least once: a
// row whose confirm never came is published again with the same message
// id (docs/design.md#the-change-feeds-relay).
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"gorm.io/gorm"

	"github.com/stripe-billing/billing/changes"
	"github.com/stripe-billing/billing/internal/pause"
	"github.com/stripe-billing/billing/models/feed"
)

// LockName is the database lock that lets one relay publish at a time.
const LockName = "billing-relay"

// Defaults of a Relay.
const (
	// DefaultBatch is the most rows read, published and stamped at once.
	DefaultBatch = 500
	// DefaultInterval is the wait before reading the outbox again once it
	// was found drained; while full batches come, the next is read at once.
	DefaultInterval = 200 * time.Millisecond
	// DefaultBacklogInterval is how often the backlog (depth, lag) is
	// measured for the metrics.
	DefaultBacklogInterval = 5 * time.Second
	// DefaultLockWait is how long one attempt to take the lock waits; a
	// relay that did not get it tries again.
	DefaultLockWait = 5 * time.Second
	// DefaultConfirmTimeout bounds the wait for one confirm; past it the
	// channel is reopened and the rows not confirmed are published again.
	DefaultConfirmTimeout = 30 * time.Second
)

// Config configures a Relay; zero fields take the defaults.
type Config struct {
	// Exchange is the feed's exchange (changes.Exchange of the namespace).
	Exchange        string
	Batch           int
	Interval        time.Duration
	BacklogInterval time.Duration
	LockWait        time.Duration
	ConfirmTimeout  time.Duration
	Now             func() time.Time
}

// Store is what the relay needs of the database (*models.Store).
type Store interface {
	DB() *gorm.DB
	WithLock(ctx context.Context, name string, timeout time.Duration, fn func(ctx context.Context) error) (bool, error)
}

// Broker is the relay's connection (*broker.Conn): Run keeps it up.
type Broker interface {
	Run(ctx context.Context) error
	Await(ctx context.Context) (*amqp.Connection, error)
	Blocked() bool
}

// Observer is told what the relay does (*metrics.Metrics).
type Observer interface {
	ChangesPublished(n int)
	ChangeBacklog(depth int64, lag time.Duration)
}

// Relay publishes the outbox.
type Relay struct {
	cfg    Config
	logger *slog.Logger
	store  Store
	conn   Broker
	obs    Observer
}

// New returns a relay of store's outbox to conn. A nil logger discards; a
// nil observer is told nothing.
func New(cfg Config, logger *slog.Logger, store Store, conn Broker, obs Observer) (*Relay, error) {
	switch {
	case cfg.Exchange == "":
		return nil, errors.New("relay: an exchange is required")
	case store == nil || conn == nil:
		return nil, errors.New("relay: a store and a broker connection are required")
	case cfg.Batch < 0 || cfg.Interval < 0 || cfg.BacklogInterval < 0 || cfg.LockWait < 0 || cfg.ConfirmTimeout < 0:
		return nil, fmt.Errorf("relay: batch %d, intervals %s and %s, lock wait %s, confirm timeout %s: want >= 0",
			cfg.Batch, cfg.Interval, cfg.BacklogInterval, cfg.LockWait, cfg.ConfirmTimeout)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if obs == nil {
		obs = nopObserver{}
	}
	def := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&cfg.Interval, DefaultInterval)
	def(&cfg.BacklogInterval, DefaultBacklogInterval)
	def(&cfg.LockWait, DefaultLockWait)
	def(&cfg.ConfirmTimeout, DefaultConfirmTimeout)
	if cfg.Batch == 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Relay{cfg: cfg, logger: logger.With("exchange", cfg.Exchange), store: store, conn: conn, obs: obs}, nil
}

type nopObserver struct{}

func (nopObserver) ChangesPublished(int)               {}
func (nopObserver) ChangeBacklog(int64, time.Duration) {}

// Run keeps the broker connection up, measures the backlog, and publishes
// whenever it holds the lock, until ctx is done; it returns nil then, or
// the connection's error (a missing topology).
func (r *Relay) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- r.conn.Run(ctx); cancel() }()
	done := make(chan struct{})
	go func() { defer close(done); r.measure(ctx) }()
	waiting := false
	for ctx.Err() == nil {
		acquired, err := r.store.WithLock(ctx, LockName, r.cfg.LockWait, r.publish)
		switch {
		case ctx.Err() != nil:
		case err != nil:
			r.logger.Warn("relay: lock", "error", err)
			_ = pause.For(ctx, r.cfg.LockWait) // the loop ends with ctx
		case !acquired && !waiting:
			r.logger.Info("another relay publishes; waiting for its lock")
		}
		waiting = !acquired && err == nil
	}
	<-done
	return <-errc
}

// publish is the lock holder's loop: it opens a confirm channel and drains
// the outbox on it, again after every loss of the channel.
func (r *Relay) publish(ctx context.Context) error {
	r.logger.Info("relay publishing")
	for ctx.Err() == nil {
		conn, err := r.conn.Await(ctx)
		if err != nil {
			return nil // ctx done
		}
		ch, err := conn.Channel()
		if err == nil {
			if err = ch.Confirm(false); err != nil {
				_ = ch.Close()
			}
		}
		if err == nil {
			err = r.drain(ctx, ch)
			_ = ch.Close()
		}
		if ctx.Err() == nil {
			r.logger.Warn("relay: channel lost; publishing again once the broker is back", "error", err)
			_ = pause.For(ctx, r.cfg.Interval) // the loop ends with ctx
		}
	}
	return nil
}

// drain publishes batch after batch on ch until ctx is done or ch fails.
func (r *Relay) drain(ctx context.Context, ch *amqp.Channel) error {
	for ctx.Err() == nil {
		if r.conn.Blocked() { // a resource alarm: a publish would hang
			_ = pause.For(ctx, r.cfg.Interval) // the loop ends with ctx
			continue
		}
		rows, err := feed.Unpublished(ctx, r.store.DB(), r.cfg.Batch)
		if err != nil {
			if ctx.Err() == nil {
				r.logger.Warn("relay: read the outbox", "error", err)
				_ = pause.For(ctx, max(r.cfg.Interval, time.Second)) // MySQL away: no log flood; the loop ends with ctx
			}
			continue
		}
		confirmed, err := r.batch(ctx, ch, rows)
		if err != nil {
			return err
		}
		if len(rows) < r.cfg.Batch || confirmed < len(rows) {
			_ = pause.For(ctx, r.cfg.Interval) // drained, or the broker refused some: not at once
		}
	}
	return nil
}

// object names one object's changes, which must reach the broker in order.
type object struct{ typ, id string }

// batch publishes rows on ch, pipelined, and stamps those the broker
// confirmed. It publishes in waves: the first row of each object in seq
// order, then, once every confirm of the wave is in, each object's second
// row, and so on; an object with a refused (nacked) row publishes nothing
// more in the batch. So an object's changes reach the exchange in order,
// a refused one is published again with those after it by a later batch,
// and a batch waits for the broker as often as one object has rows in
// it, not once per row. It returns how many rows it confirmed, and an
// error when ch failed.
func (r *Relay) batch(ctx context.Context, ch *amqp.Channel, rows []feed.Outbox) (int, error) {
	var waves [][]*feed.Outbox
	nth := map[object]int{}
	for i := range rows {
		o := object{rows[i].ObjectType, rows[i].ObjectID}
		k := nth[o]
		nth[o]++
		if k == len(waves) {
			waves = append(waves, nil)
		}
		waves[k] = append(waves[k], &rows[i])
	}
	refused := map[object]bool{}
	var done []uint64
	var err error
	for _, wave := range waves {
		if err = r.wave(ctx, ch, wave, refused, &done); err != nil {
			break
		}
	}
	if n := len(rows) - len(done); n > 0 {
		r.logger.Warn("relay: changes not confirmed; publishing them again", "count", n, "error", err)
	}
	if len(done) > 0 {
		// Stamped even when ch failed: these were confirmed. Should the
		// stamp fail, they are published again (the same ids).
		if _, serr := feed.MarkPublished(context.WithoutCancel(ctx), r.store.DB(), done, r.cfg.Now()); serr != nil {
			r.logger.Warn("relay: stamp published changes", "error", serr)
			return 0, errors.Join(err, serr)
		}
		r.obs.ChangesPublished(len(done))
	}
	return len(done), err
}

// wave publishes rows (one per object) but those of refused objects, then
// waits for every confirm, in publish order: an ack adds the row to done,
// a nack marks its object refused.
func (r *Relay) wave(ctx context.Context, ch *amqp.Channel, rows []*feed.Outbox, refused map[object]bool, done *[]uint64) error {
	type sent struct {
		row *feed.Outbox
		dc  *amqp.DeferredConfirmation
	}
	var inflight []sent
	var err error
	for _, row := range rows {
		if refused[object{row.ObjectType, row.ObjectID}] {
			continue
		}
		var dc *amqp.DeferredConfirmation
		if dc, err = ch.PublishWithDeferredConfirmWithContext(ctx, r.cfg.Exchange, row.RoutingKey, false, false, message(row)); err != nil {
			err = fmt.Errorf("relay: publish %s: %w", row.ID, err)
			break
		}
		inflight = append(inflight, sent{row, dc})
	}
	// Even after a failed publish (some may be confirmed), and after ctx
	// is done: a stopping relay stamps what the broker confirmed.
	for _, s := range inflight {
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.ConfirmTimeout)
		ack, werr := s.dc.WaitContext(wctx)
		cancel()
		switch {
		case werr != nil:
			return errors.Join(err, fmt.Errorf("relay: confirm of %s: %w", s.row.ID, werr))
		case ack:
			*done = append(*done, s.row.Seq)
		default:
			refused[object{s.row.ObjectType, s.row.ObjectID}] = true
		}
	}
	if err == nil && ch.IsClosed() { // its confirms were resolved as refusals
		err = errors.New("relay: channel closed")
	}
	return err
}

// message is row as published: persistent, its id the change's id, its
// object sequence in a header.
func message(row *feed.Outbox) amqp.Publishing {
	return amqp.Publishing{
		ContentType:  changes.ContentType,
		DeliveryMode: amqp.Persistent,
		MessageId:    row.ID,
		Timestamp:    row.CreatedAt,
		Headers:      amqp.Table{changes.HeaderSequence: int64(row.ObjectSeq)},
		Body:         []byte(row.Body),
	}
}

// measure tells the observer the backlog every BacklogInterval.
func (r *Relay) measure(ctx context.Context) {
	for ctx.Err() == nil {
		b, err := feed.Pending(ctx, r.store.DB())
		switch {
		case err != nil && ctx.Err() == nil:
			r.logger.Warn("relay: measure the backlog", "error", err)
		case err == nil:
			var lag time.Duration
			if b.Depth > 0 {
				lag = max(r.cfg.Now().Sub(b.Oldest), 0)
			}
			r.obs.ChangeBacklog(b.Depth, lag)
		}
		_ = pause.For(ctx, r.cfg.BacklogInterval) // the loop ends with ctx
	}
}
