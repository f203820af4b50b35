package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// DepthFunc returns the number of messages in each queue, keyed by queue
// name. The worker's implementation declares each queue of the topology
// passively (amqp Channel.QueueDeclarePassive) and reads its message count.
type DepthFunc func(ctx context.Context) (map[string]int, error)

// QueueDepthPoller sets Metrics.QueueDepth from a DepthFunc on an interval.
type QueueDepthPoller struct {
	m        *Metrics
	logger   *slog.Logger
	depths   DepthFunc
	interval time.Duration
}

// NewQueueDepthPoller returns a poller that calls depths every interval
// (and once at the start of Run) and sets m's queue gauges.
func NewQueueDepthPoller(interval time.Duration, logger *slog.Logger, m *Metrics, depths DepthFunc) (*QueueDepthPoller, error) {
	switch {
	case interval <= 0:
		return nil, fmt.Errorf("metrics: queue depth poller: interval %s is not positive", interval)
	case m == nil:
		return nil, errors.New("metrics: queue depth poller: no metrics")
	case depths == nil:
		return nil, errors.New("metrics: queue depth poller: no depth function")
	case logger == nil:
		logger = slog.New(slog.DiscardHandler)
	}
	return &QueueDepthPoller{m: m, logger: logger, depths: depths, interval: interval}, nil
}

// Run polls until ctx is done and returns nil then. A failed poll is
// counted and logged, and leaves the gauges at their last values.
func (p *QueueDepthPoller) Run(ctx context.Context) error {
	seen := map[string]bool{}
	return every(ctx, p.interval, func(ctx context.Context) { seen = p.poll(ctx, seen) })
}

// every calls fn at once and then every interval until ctx is done.
func every(ctx context.Context, interval time.Duration, fn func(ctx context.Context)) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// poll sets the gauge of every queue depths reports and removes the gauge of
// a queue it no longer reports. It returns the queues now exported.
func (p *QueueDepthPoller) poll(ctx context.Context, seen map[string]bool) map[string]bool {
	ctx, cancel := context.WithTimeout(ctx, p.interval)
	defer cancel()
	depths, err := p.depths(ctx)
	if err != nil {
		if ctx.Err() == nil || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			p.m.QueueDepthErrors.Inc()
			p.logger.Warn("queue depth poll failed", "error", err)
		}
		return seen
	}
	now := make(map[string]bool, len(depths))
	for q, n := range depths {
		p.m.QueueDepth.WithLabelValues(q).Set(float64(n))
		now[q] = true
	}
	for q := range seen {
		if !now[q] {
			p.m.QueueDepth.DeleteLabelValues(q)
		}
	}
	return now
}

// OldestFunc returns when the oldest event still parked (dead in the
// ledger) was first received, the zero time when none is:
// models.Store.OldestDead, once the database is open.
type OldestFunc func(ctx context.Context) (time.Time, error)

// OldestParkedPoller sets Metrics.OldestParkedAge from an OldestFunc on an
// interval.
type OldestParkedPoller struct {
	m        *Metrics
	logger   *slog.Logger
	oldest   OldestFunc
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time
}

// NewOldestParkedPoller returns a poller that calls oldest every interval
// (and once at the start of Run), each call bounded by timeout, and sets
// m's oldest-parked gauge. A nil logger discards.
func NewOldestParkedPoller(interval, timeout time.Duration, logger *slog.Logger, m *Metrics, oldest OldestFunc) (*OldestParkedPoller, error) {
	switch {
	case interval <= 0 || timeout <= 0:
		return nil, fmt.Errorf("metrics: oldest parked poller: interval %s, timeout %s: want positive", interval, timeout)
	case m == nil || oldest == nil:
		return nil, errors.New("metrics: oldest parked poller: metrics and oldest function are required")
	case logger == nil:
		logger = slog.New(slog.DiscardHandler)
	}
	return &OldestParkedPoller{m: m, logger: logger, oldest: oldest, interval: interval, timeout: timeout, now: time.Now}, nil
}

// Run polls until ctx is done and returns nil then. A failed poll (the
// database not open yet, or not answering) leaves the gauge as it was.
func (p *OldestParkedPoller) Run(ctx context.Context) error {
	return every(ctx, p.interval, func(ctx context.Context) {
		qctx, cancel := context.WithTimeout(ctx, p.timeout)
		oldest, err := p.oldest(qctx)
		cancel()
		switch {
		case err != nil:
			p.logger.Debug("oldest parked event: query failed", "error", err)
		case oldest.IsZero():
			p.m.OldestParkedAge.Set(0)
		default:
			p.m.OldestParkedAge.Set(p.now().Sub(oldest).Seconds())
		}
	})
}
