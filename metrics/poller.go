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
	ticker := time.NewTicker(p.interval)
	defer ticker.Stop()
	seen := map[string]bool{}
	for {
		seen = p.poll(ctx, seen)
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
