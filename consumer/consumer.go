// Package consumer owns the worker's delivery loop: it consumes the work
// queue with manual acks on its own connection, one channel per worker
// (each with its own prefetch and consumer tag, so that a worker settles
// its channel's deliveries in tag order), hands each event or batch to
// its handler through one middleware Pipeline (recover, log, timeout,
// verify: only events Stripe signed or Stripe's own copies reach it),
// acks what succeeded (a batch's applied events with one multiple ack),
// gives what failed to its Failures (dlq.Router: a delay tier or the DLQ,
// confirmed before the failed event's own ack) and pauses all work while
// a dependency is down (failure.Outage).
package consumer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/pause"
	"github.com/stripe-billing/billing/retry"
	"github.com/stripe-billing/billing/verify"
)

// Connector hands out the open AMQP connection deliveries are consumed on
// (broker.Conn). It must not be the connection retries are published on.
type Connector interface {
	Await(ctx context.Context) (*amqp.Connection, error)
}

// Result is what became of one delivery.
type Result string

// Results of a delivery, the "outcome" label of the event metrics besides
// the Handled an acked event's handler reported.
const (
	// Acked: handled and acked.
	Acked Result = "acked"
	// Retried: sent to a delay tier, then acked.
	Retried Result = "retried"
	// Parked: sent to the DLQ, then acked.
	Parked Result = "parked"
	// Dropped: left unacked for the broker to redeliver (channel lost or
	// shutting down).
	Dropped Result = "dropped"
)

// Failures takes a failed delivery: dlq.Router.
type Failures interface {
	// Attempt says where d stands in its retry schedule.
	Attempt(d amqp.Delivery) broker.Attempt
	// Fail schedules d in a delay tier or parks it; nil means the copy is
	// confirmed and d may be acked.
	Fail(ctx context.Context, d amqp.Delivery, cause error) (failure.Decision, error)
}

// Outcome is what became of one delivery; see Observer.
type Outcome struct {
	EventType string
	Result    Result
	// Handled is what the handler reported of an acked event with
	// Delivery.Report; empty when it reported nothing.
	Handled Handled
	// Decision is failure.Decide's for a Retried or Parked delivery, and
	// Cause the failure it was made on.
	Decision failure.Decision
	Cause    error
	Attempt  int
	// Origin says how the delivery reached the work queue: fresh, back
	// from a delay tier, or replayed from the DLQ (and how).
	Origin   broker.Origin
	Duration time.Duration
}

// Observer is told every delivery's outcome: the seam for metrics.
type Observer interface {
	Observe(o Outcome)
}

// Config configures a Consumer.
type Config struct {
	// Queue is the work queue.
	Queue string
	// Concurrency is the number of events (or batches) handled at once,
	// one worker per channel, each channel's prefetch ChannelPrefetch
	// (twice BatchSize).
	Concurrency int
	// BatchSize is the most deliveries one worker hands to Batch at once.
	// 0 or 1: each delivery goes alone to the Handler.
	BatchSize int
	// BatchWait is how long a worker waits for more deliveries to fill a
	// batch; 0 takes only those already delivered.
	BatchWait time.Duration
	// Batch applies a batch when BatchSize > 1: the applied deliveries are
	// acked after its commit, each failed one takes the Handler's way of
	// failures alone (a tier or the DLQ), an outage pauses the worker and
	// retries the whole batch, and a batch that failed as a whole (a
	// panic, a persistent deadlock) is handled again one delivery at a
	// time through the Handler.
	Batch BatchHandler
	// HandlerTimeout bounds one handling, of one event or a batch; an
	// overrun is a transient failure. Default DefaultHandlerTimeout.
	HandlerTimeout time.Duration
	// ShutdownTimeout bounds how long Run lets in-flight events finish
	// after its context is canceled.
	ShutdownTimeout time.Duration
	// Name prefixes the consumer tag shown in the management UI; default
	// DefaultName.
	Name string
	// Ping probes the database during an outage; the paused delivery is
	// retried once it answers. Nil: retry the delivery after each wait.
	Ping func(ctx context.Context) error
	// OutageMin and OutageMax bound the backoff between outage probes;
	// defaults 250ms and 30s.
	OutageMin, OutageMax time.Duration
	// RepublishMin and RepublishMax bound the backoff between attempts to
	// publish a failed event to its tier or the DLQ, and between attempts
	// to open a consuming channel; defaults 100ms and 10s.
	RepublishMin, RepublishMax time.Duration
	// Jitter (0..1) shortens each of those waits at random; default 0.2.
	Jitter float64
	// Rand returns numbers in [0, 1) for the jitter; default math/rand/v2.
	Rand func() float64
	// Observer, when set, is told each outcome.
	Observer Observer
	// Verifier decides which event each delivery stands for: the one
	// Stripe signed, or Stripe's copy (Verify). Required: the worker
	// applies nothing it has not verified.
	Verifier *verify.Verifier
}

// Consumer consumes one queue. Create it with New and start it with Run.
type Consumer struct {
	cfg    Config
	logger *slog.Logger
	conn   Connector
	// single and batch are the handler and the batch handler inside the
	// one Pipeline of middleware.
	single   BatchHandler
	batch    BatchHandler
	failures Failures
	gate     gate
	tag      string
	seq      atomic.Int64
}

// Defaults of a Consumer's settings. Concurrency, BatchSize and BatchWait
// have no default in New; these are the worker's (config.Vars).
const (
	DefaultConcurrency = 8
	DefaultBatchSize   = 16
	DefaultBatchWait   = time.Duration(0)

	DefaultName           = "billing-worker"
	DefaultHandlerTimeout = 30 * time.Second
	DefaultOutageMin      = 250 * time.Millisecond
	DefaultOutageMax      = 30 * time.Second
	DefaultRepublishMin   = 100 * time.Millisecond
	DefaultRepublishMax   = 10 * time.Second
	// DefaultJitter spreads the in-process waits (reconnects, outage
	// probes) of many workers; the delay tiers themselves are fixed
	// queue TTLs.
	DefaultJitter = 0.2
)

// New checks cfg and returns a Consumer of cfg.Queue on conn that hands
// each delivery to h (a batch to cfg.Batch), both through the one
// Pipeline of middleware, and each failure to f. A nil logger discards.
func New(cfg Config, logger *slog.Logger, conn Connector, h Handler, f Failures) (*Consumer, error) {
	var errs []error
	if cfg.Queue == "" {
		errs = append(errs, errors.New("consumer: no queue"))
	}
	if cfg.Concurrency < 1 || cfg.Concurrency > MaxConcurrency {
		errs = append(errs, fmt.Errorf("consumer: concurrency %d, want 1 to %d (a channel each)", cfg.Concurrency, MaxConcurrency))
	}
	if cfg.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("consumer: shutdown timeout %s, want positive", cfg.ShutdownTimeout))
	}
	if cfg.BatchSize > 1 && cfg.Batch == nil {
		errs = append(errs, fmt.Errorf("consumer: batch size %d without a batch handler", cfg.BatchSize))
	}
	if cfg.BatchWait < 0 {
		errs = append(errs, fmt.Errorf("consumer: batch wait %s, want zero or more", cfg.BatchWait))
	}
	if conn == nil || h == nil || f == nil {
		errs = append(errs, errors.New("consumer: connection, handler and failures are required"))
	}
	if cfg.Verifier == nil {
		errs = append(errs, errors.New("consumer: a verifier is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.BatchSize = max(cfg.BatchSize, 1)
	if cfg.Name == "" {
		cfg.Name = "billing-worker"
	}
	if cfg.OutageMin <= 0 {
		cfg.OutageMin = 250 * time.Millisecond
	}
	if cfg.OutageMax < cfg.OutageMin {
		cfg.OutageMax = max(DefaultOutageMax, cfg.OutageMin)
	}
	if cfg.RepublishMin <= 0 {
		cfg.RepublishMin = DefaultRepublishMin
	}
	if cfg.RepublishMax < cfg.RepublishMin {
		cfg.RepublishMax = max(DefaultRepublishMax, cfg.RepublishMin)
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = DefaultJitter
	}
	if cfg.Rand == nil {
		cfg.Rand = mrand.Float64
	}
	if cfg.HandlerTimeout <= 0 {
		cfg.HandlerTimeout = DefaultHandlerTimeout
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("queue", cfg.Queue)
	pipeline := Pipeline(logger, cfg.HandlerTimeout, cfg.Verifier)
	c := &Consumer{
		cfg: cfg, logger: logger, conn: conn, failures: f,
		single: Chain(one(h), pipeline...),
	}
	if cfg.Batch != nil {
		c.batch = Chain(cfg.Batch, pipeline...)
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	c.tag = cfg.Name + "-" + hex.EncodeToString(b)
	return c, nil
}

// Paused reports whether the consumer is waiting out a dependency outage.
func (c *Consumer) Paused() bool { return c.gate.paused() }

// Run consumes until ctx is canceled: then it cancels every consumer,
// lets the in-flight deliveries finish and ack within ShutdownTimeout, and
// returns nil. A lost channel (any of the workers') or connection ends
// the session and is re-established with backoff; deliveries in flight
// are dropped (never acked on a dead channel) and the broker redelivers
// them.
func (c *Consumer) Run(ctx context.Context) error {
	for n := 0; ; {
		conn, err := c.conn.Await(ctx)
		if err != nil {
			return nil // ctx done
		}
		consumed, err := c.session(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
		if consumed {
			n = 0
		}
		wait := retry.Backoff(n, c.cfg.RepublishMin, c.cfg.RepublishMax, c.cfg.Jitter, c.cfg.Rand)
		n++
		c.logger.Warn("consuming stopped; starting again", "error", err, "retry_in", wait.String())
		if pause.For(ctx, wait) != nil {
			return nil
		}
	}
}

// lane is one worker's channel: its own prefetch and consumer tag, so
// that its deliveries reach that worker alone, in delivery-tag order,
// and the worker settles them in that order (Consumer.ackApplied).
type lane struct {
	ch  *amqp.Channel
	tag string
	// deliveries is all the worker's loop takes of the lane: each
	// delivery is settled through its own Acknowledger, the channel that
	// delivered it (ch; in the loop's in-process tests a fake).
	deliveries <-chan amqp.Delivery
	// clean is true while every delivery the lane took before the batch
	// in hand is settled (acked); a delivery left for redelivery makes it
	// false, and every later ack of the lane single.
	clean bool
}

// session consumes on one channel per worker until ctx is done or a
// channel dies: the loss of one ends the session, and Run starts another.
// consumed reports whether every consume was set up.
func (c *Consumer) session(ctx context.Context, conn *amqp.Connection) (consumed bool, err error) {
	lanes := make([]*lane, 0, c.cfg.Concurrency)
	defer func() {
		for _, l := range lanes {
			_ = l.ch.Close()
		}
	}()
	lost := make(chan *amqp.Error, 1) // the first channel loss
	for range c.cfg.Concurrency {
		l, err := c.open(conn, lost)
		if err != nil {
			return false, err
		}
		lanes = append(lanes, l)
	}
	c.logger.Info("consuming", "consumer_tag", lanes[0].tag, "channels", len(lanes), "concurrency", c.cfg.Concurrency, "batch_size", c.cfg.BatchSize)

	// stop ends waits (outage pause, republish backoff) and the taking of
	// deliveries: canceled on shutdown or channel loss. work is the
	// handlers' context: canceled on channel loss (their results could not
	// be acked) or when the shutdown bound passes, but not by the shutdown
	// itself, so that in-flight events finish and ack.
	stopCtx, stop := context.WithCancel(ctx)
	defer stop()
	work, cancelWork := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelWork()
	var wg sync.WaitGroup
	ended := make(chan struct{}) // closed when the first worker returns
	var endOnce sync.Once
	for _, l := range lanes {
		wg.Go(func() {
			defer endOnce.Do(func() { close(ended) })
			c.worker(stopCtx, work, l)
		})
	}
	workersDone := make(chan struct{})
	go func() { wg.Wait(); close(workersDone) }()

	select {
	case <-ended:
		// A worker returns before stop only when its stream ended: the
		// broker canceled its consumer, or its channel closed.
		select {
		case e := <-lost:
			err = fmt.Errorf("consumer: channel lost: %v", e)
		default:
			err = errors.New("consumer: the broker ended a delivery stream")
		}
	case e := <-lost:
		err = fmt.Errorf("consumer: channel lost: %v", e)
	case <-ctx.Done():
		for _, l := range lanes {
			if cerr := l.ch.Cancel(l.tag, false); cerr != nil {
				c.logger.Warn("cancel consumer", "consumer_tag", l.tag, "error", cerr)
			}
		}
		timer := time.NewTimer(c.cfg.ShutdownTimeout)
		defer timer.Stop()
		select {
		case <-workersDone:
		case e := <-lost:
			err = fmt.Errorf("consumer: channel lost while draining: %v", e)
		case <-timer.C:
			c.logger.Warn("shutdown timeout: events still in flight are left for redelivery", "timeout", c.cfg.ShutdownTimeout.String())
		}
	}
	stop()
	cancelWork()
	<-workersDone
	return true, err
}

// open opens one worker's channel and consumes the queue on it. A loss of
// the channel is sent to lost unless lost already holds one.
func (c *Consumer) open(conn *amqp.Connection, lost chan<- *amqp.Error) (*lane, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("consumer: open channel: %w", err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	go func() {
		// Closed without a value when the session closes the channel.
		if e, ok := <-closed; ok {
			select {
			case lost <- e:
			default:
			}
		}
	}()
	if err := ch.Qos(ChannelPrefetch(c.cfg.BatchSize), 0, false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("consumer: set prefetch: %w", err)
	}
	tag := fmt.Sprintf("%s-%d", c.tag, c.seq.Add(1))
	deliveries, err := ch.Consume(c.cfg.Queue, tag, false, false, false, false, nil)
	if err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("consumer: consume %s: %w", c.cfg.Queue, err)
	}
	l := &lane{ch: ch, tag: tag, deliveries: deliveries, clean: true}
	if c.cfg.BatchSize > 1 {
		l.deliveries = relay(deliveries, ChannelPrefetch(c.cfg.BatchSize))
	}
	return l, nil
}

// outage pauses every worker of this consumer until the database answers
// again. One worker probes; the others wait at the gate. It returns false
// when stop ends the wait (the delivery is then left unacked).
func (c *Consumer) outage(stop context.Context, logger *slog.Logger, cause error) bool {
	done, probe := c.gate.pause()
	if !probe {
		select {
		case <-done:
			return true
		case <-stop.Done():
			return false
		}
	}
	defer c.gate.resume()
	logger.Warn("database unavailable: pausing the worker", "error", cause)
	started := time.Now()
	for n := 0; ; n++ {
		if pause.For(stop, retry.Backoff(n, c.cfg.OutageMin, c.cfg.OutageMax, c.cfg.Jitter, c.cfg.Rand)) != nil {
			return false
		}
		if c.cfg.Ping == nil {
			return true
		}
		pctx, cancel := context.WithTimeout(stop, 5*time.Second)
		err := c.cfg.Ping(pctx)
		cancel()
		if err == nil {
			logger.Info("database answers again: resuming", "paused_for", time.Since(started).String())
			return true
		}
		logger.Debug("database still unavailable", "error", err)
	}
}

// gate holds every worker of a consumer while one of them waits out an
// outage.
type gate struct {
	mu     sync.Mutex
	closed chan struct{} // non-nil while paused; closed on resume
}

func (g *gate) wait(ctx context.Context) error {
	g.mu.Lock()
	ch := g.closed
	g.mu.Unlock()
	if ch == nil {
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pause closes the gate; probe is true for the caller that closed it.
func (g *gate) pause() (done <-chan struct{}, probe bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed != nil {
		return g.closed, false
	}
	g.closed = make(chan struct{})
	return g.closed, true
}

func (g *gate) resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.closed)
	g.closed = nil
}

func (g *gate) paused() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closed != nil
}
