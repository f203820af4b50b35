package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Errors of Publish. Every one of them means the message may not be in a
// queue: the caller must not report success.
var (
	ErrBlocked        = errors.New("broker: connection blocked by a resource alarm")
	ErrNacked         = errors.New("broker: publish nacked")
	ErrUnroutable     = errors.New("broker: message returned as unroutable")
	ErrConfirmTimeout = errors.New("broker: no confirm before the deadline")
)

// Publisher publishes with publisher confirms over a small pool of
// confirm-mode channels on one connection that is used only for publishing.
// A channel serves one publish at a time, so a return seen before the
// confirm belongs to that publish.
type Publisher struct {
	conn    *Conn
	timeout time.Duration
	slots   chan struct{} // one per channel the pool may hold

	mu   sync.Mutex
	idle []*confirmChannel
}

type confirmChannel struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return
}

// NewPublisher returns a pool of at most channels confirm channels on conn;
// each Publish waits at most timeout for its confirm.
func NewPublisher(conn *Conn, channels int, timeout time.Duration) *Publisher {
	return &Publisher{conn: conn, timeout: timeout, slots: make(chan struct{}, channels)}
}

// Publish sends msg as mandatory and returns nil only when the broker
// confirmed it and did not return it as unroutable. It never waits longer
// than the publisher's timeout, even when the broker stops reading.
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	if p.conn.Blocked() {
		return ErrBlocked
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for a channel", ErrConfirmTimeout)
	}
	// The publish runs in its own goroutine that keeps the slot until the
	// broker answers: a write can block on a blocked connection and
	// ignores ctx, but the caller must still get its answer on time.
	done := make(chan error, 1)
	go func() {
		defer func() { <-p.slots }()
		done <- p.publish(ctx, exchange, key, msg)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return p.deadlineError(ctx)
	}
}

func (p *Publisher) deadlineError(ctx context.Context) error {
	if p.conn.Blocked() {
		return ErrBlocked
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ErrConfirmTimeout
	}
	return ctx.Err()
}

func (p *Publisher) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	cc, err := p.take()
	if err != nil {
		return err
	}
	dc, err := cc.ch.PublishWithDeferredConfirm(exchange, key, true, false, msg)
	if err != nil {
		cc.discard()
		return fmt.Errorf("%w: publish: %v", ErrUnavailable, err)
	}
	acked, err := dc.WaitContext(ctx)
	if err != nil {
		// A late confirm would be attributed to nobody: drop the channel.
		cc.discard()
		return p.deadlineError(ctx)
	}
	// The broker sends basic.return before the ack of the same message, and
	// the library hands it over before it resolves the confirm.
	select {
	case r := <-cc.returns:
		p.put(cc)
		return fmt.Errorf("%w: %d %s (exchange %q, key %q)", ErrUnroutable, r.ReplyCode, r.ReplyText, r.Exchange, r.RoutingKey)
	default:
	}
	if !acked && cc.ch.IsClosed() {
		// A dying channel resolves its pending confirms as nacks, for
		// example after a publish to an exchange that does not exist.
		return fmt.Errorf("%w: channel closed before the confirm", ErrUnavailable)
	}
	p.put(cc)
	if !acked {
		return ErrNacked
	}
	return nil
}

// take returns an idle channel of the current connection or opens one.
func (p *Publisher) take() (*confirmChannel, error) {
	conn, err := p.conn.Connection()
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	for len(p.idle) > 0 {
		cc := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if cc.conn == conn && !cc.ch.IsClosed() {
			p.mu.Unlock()
			return cc, nil
		}
		cc.discard()
	}
	p.mu.Unlock()
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("%w: open channel: %v", ErrUnavailable, err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("%w: confirm mode: %v", ErrUnavailable, err)
	}
	return &confirmChannel{conn: conn, ch: ch, returns: ch.NotifyReturn(make(chan amqp.Return, 1))}, nil
}

func (p *Publisher) put(cc *confirmChannel) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle = append(p.idle, cc)
}

func (cc *confirmChannel) discard() { _ = cc.ch.Close() }

// Ready reports whether the publishing connection is open and not blocked.
func (p *Publisher) Ready() bool { return p.conn.Ready() && !p.conn.Blocked() }
