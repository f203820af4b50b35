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

// ParkedFunc returns how many events are dead in the ledger and when the
// oldest of them was first received (the zero time when none is):
// models.Store.Dead, once the database is open.
type ParkedFunc func(ctx context.Context) (count int, oldest time.Time, err error)

// ParkedPoller sets Metrics.OldestParkedAge and Metrics.DeadEvents from a
// ParkedFunc on an interval.
type ParkedPoller struct {
	m        *Metrics
	logger   *slog.Logger
	parked   ParkedFunc
	interval time.Duration
	timeout  time.Duration
	now      func() time.Time
}

// NewParkedPoller returns a poller that calls parked every interval (and
// once at the start of Run), each call bounded by timeout, and sets m's
// parked gauges. A nil logger discards.
func NewParkedPoller(interval, timeout time.Duration, logger *slog.Logger, m *Metrics, parked ParkedFunc) (*ParkedPoller, error) {
	switch {
	case interval <= 0 || timeout <= 0:
		return nil, fmt.Errorf("metrics: parked poller: interval %s, timeout %s: want positive", interval, timeout)
	case m == nil || parked == nil:
		return nil, errors.New("metrics: parked poller: metrics and parked function are required")
	case logger == nil:
		logger = slog.New(slog.DiscardHandler)
	}
	return &ParkedPoller{m: m, logger: logger, parked: parked, interval: interval, timeout: timeout, now: time.Now}, nil
}

// Run polls until ctx is done and returns nil then. A failed poll (the
// database not open yet, or not answering) leaves the gauges as they were.
func (p *ParkedPoller) Run(ctx context.Context) error {
	return every(ctx, p.interval, func(ctx context.Context) {
		qctx, cancel := context.WithTimeout(ctx, p.timeout)
		count, oldest, err := p.parked(qctx)
		cancel()
		if err != nil {
			p.logger.Debug("parked events: query failed", "error", err)
			return
		}
		p.m.DeadEvents.Set(float64(count))
		if oldest.IsZero() {
			p.m.OldestParkedAge.Set(0)
			return
		}
		p.m.OldestParkedAge.Set(p.now().Sub(oldest).Seconds())
	})
}
