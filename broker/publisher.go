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

// inFlightPerChannel bounds the publishes awaiting their confirm on one
// channel. Waiting for confirms asynchronously, several at a time, is what
// lets a few channels carry many concurrent requests.
const inFlightPerChannel = 32

// Publisher publishes with publisher confirms over a small pool of
// confirm-mode channels on one connection that is used only for publishing.
//
// Several publishes are in flight on a channel at once: each channel has
// one sender goroutine that writes its publishes one after the other, the
// wait for the confirm is the caller's. A message the
// broker returns as unroutable is matched to its publish by exchange,
// routing key and message id, and a channel never has two publishes with
// the same three in flight (the second goes to another channel, or waits),
// so the match is exact without touching the message: the broker sends
// basic.return before the ack of the same message, and amqp091-go hands
// the return over (into the channel's returns buffer, which never fills:
// it holds at most the returns of the publishes in flight) before it
// resolves that confirm, so once a confirm is in, its return, if any, is
// in the buffer or already moved to the channel's returned set.
type Publisher struct {
	conn     *Conn
	timeout  time.Duration
	channels int
	slots    chan struct{} // one per publish in flight, channels × inFlightPerChannel

	mu      sync.Mutex
	open    []*confirmChannel
	opening int // channels being opened, counted against the pool size
}

// returnKey identifies a message in a basic.return.
type returnKey struct{ exchange, key, id string }

type confirmChannel struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	returns chan amqp.Return // capacity inFlightPerChannel: the reader never blocks on it

	// The sender goroutine takes sends until stopped or the channel
	// closes. It lives as long as the channel: a goroutine per publish
	// grew its stack anew for every publish, a quarter of the publish's
	// CPU, and did it while holding the connection's write lock.
	sends    chan send
	stop     chan struct{}
	stopOnce sync.Once

	// closeReason gets the broker's reason when it closes the channel (an
	// access refusal, a missing exchange), before the pending confirms
	// resolve as nacks; closedBy keeps it once read.
	closeReason chan *amqp.Error

	mu       sync.Mutex
	inFlight map[returnKey]bool        // the publishes awaiting their confirm
	returned map[returnKey]amqp.Return // drained from returns, until their publish looks
	closedBy *amqp.Error
}

// NewPublisher returns a pool of at most channels confirm channels on conn;
// each Publish waits at most timeout for its confirm.
func NewPublisher(conn *Conn, channels int, timeout time.Duration) *Publisher {
	channels = max(channels, 1)
	return &Publisher{
		conn: conn, timeout: timeout, channels: channels,
		slots: make(chan struct{}, channels*inFlightPerChannel),
	}
}

// Publish sends msg as mandatory and returns nil only when the broker
// confirmed it and did not return it as unroutable. It never waits longer
// than the publisher's timeout, even when the broker stops reading.
func (p *Publisher) Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error {
	if p.conn.Blocked() {
		return ErrBlocked
	}
	if deadline, ok := ctx.Deadline(); !ok || time.Until(deadline) > p.timeout {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for a channel", ErrConfirmTimeout)
	}
	defer func() { <-p.slots }()
	return p.publish(ctx, exchange, key, msg)
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
	rk := returnKey{exchange, key, msg.MessageId}
	cc, err := p.take(ctx, rk)
	if err != nil {
		return err
	}
	defer cc.done(rk)
	dc, err := cc.publish(ctx, exchange, key, msg)
	switch {
	case errors.Is(err, errStopped):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	case err != nil:
		// The write did not end before the deadline: it may still go out,
		// and its confirm would be attributed to nobody.
		p.discard(cc)
		return p.deadlineError(ctx)
	case dc.err != nil:
		p.discard(cc)
		return fmt.Errorf("%w: publish: %v", ErrUnavailable, dc.err)
	}
	acked, err := dc.confirm.WaitContext(ctx)
	if err != nil {
		// A late confirm would be attributed to nobody: drop the channel
		// (the other publishes waiting on it get a closed channel: 503).
		p.discard(cc)
		return p.deadlineError(ctx)
	}
	if r, ok := cc.takeReturn(rk); ok {
		return fmt.Errorf("%w: %d %s (exchange %q, key %q)", ErrUnroutable, r.ReplyCode, r.ReplyText, r.Exchange, r.RoutingKey)
	}
	if !acked && cc.ch.IsClosed() {
		// A dying channel resolves its pending confirms as nacks, for
		// example after a publish to an exchange that does not exist.
		p.discard(cc)
		return fmt.Errorf("%w: channel closed before the confirm%s", ErrUnavailable, cc.reason())
	}
	if !acked {
		// A fresh channel, not this one, for the next publish: on RabbitMQ
		// 3.10.8 a channel whose quorum queue leader died kept asking the
		// dead leader, and every publish on it was nacked until that node
		// came back (issue 14).
		p.discard(cc)
		return ErrNacked
	}
	return nil
}

// send is one publish handed to a channel's sender goroutine; sent gets
// its deferred confirm or the error of the write.
type send struct {
	exchange, key string
	msg           amqp.Publishing
	sent          chan sent // capacity 1: the sender never waits for the caller
}

type sent struct {
	confirm *amqp.DeferredConfirmation
	err     error
}

// errStopped: the channel was discarded or closed before it took the send.
var errStopped = errors.New("broker: channel closed before the publish")

// publish hands msg to cc's sender goroutine and returns what the write
// gave, or ctx's error: a write can block on a connection the broker no
// longer reads and it ignores ctx, but the caller must still get its
// answer on time.
func (cc *confirmChannel) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (sent, error) {
	s := send{exchange: exchange, key: key, msg: msg, sent: make(chan sent, 1)}
	select {
	case cc.sends <- s:
	case <-cc.stop:
		return sent{}, errStopped
	case <-ctx.Done():
		return sent{}, ctx.Err()
	}
	select {
	case r := <-s.sent:
		return r, nil
	case <-ctx.Done():
		return sent{}, ctx.Err()
	}
}

// sender writes cc's publishes until cc is stopped or its channel closes.
func (cc *confirmChannel) sender(closed <-chan *amqp.Error) {
	for {
		select {
		case s := <-cc.sends:
			dc, err := cc.ch.PublishWithDeferredConfirm(s.exchange, s.key, true, false, s.msg)
			s.sent <- sent{dc, err}
		case <-cc.stop:
			return
		case <-closed:
			cc.close()
			return
		}
	}
}

// close stops cc's sender and closes its channel; pick drops it from the
// pool. The close waits for the broker's close-ok, so it runs on its own:
// the caller must not wait for a broker that stopped answering (it ends
// when the connection does).
func (cc *confirmChannel) close() {
	cc.stopOnce.Do(func() {
		close(cc.stop)
		go func() { _ = cc.ch.Close() }()
	})
}

// stopped reports whether cc was closed.
func (cc *confirmChannel) stopped() bool {
	select {
	case <-cc.stop:
		return true
	default:
		return cc.ch.IsClosed()
	}
}

// takeReturn moves the returns received so far into the returned set and
// takes rk's, if the broker returned it.
func (cc *confirmChannel) takeReturn(rk returnKey) (amqp.Return, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	for drained := false; !drained; {
		select {
		case r, ok := <-cc.returns:
			if !ok { // closed with the channel: nothing more will come
				drained = true
				break
			}
			cc.returned[returnKey{r.Exchange, r.RoutingKey, r.MessageId}] = r
		default:
			drained = true
		}
	}
	r, ok := cc.returned[rk]
	delete(cc.returned, rk)
	return r, ok
}

// take returns the least busy channel of the current connection that has
// room for one more publish and no publish of rk in flight, opening one
// while the pool is below its size and every open channel is busy. When
// every channel already carries rk (the same event published again while
// its first publish awaits its confirm: rare), it waits for one to finish.
func (p *Publisher) take(ctx context.Context, rk returnKey) (*confirmChannel, error) {
	for {
		cc, wait, err := p.pick(rk)
		if err != nil || cc != nil {
			return cc, err
		}
		if wait {
			select {
			case <-time.After(time.Millisecond):
				continue
			case <-ctx.Done():
				return nil, p.deadlineError(ctx)
			}
		}
		return p.openChannel(ctx, rk)
	}
}

// pick returns a channel for rk, reserved; or wait when every channel
// carries rk; or neither, when a channel is to be opened.
func (p *Publisher) pick(rk returnKey) (cc *confirmChannel, wait bool, err error) {
	conn, err := p.conn.Connection()
	if err != nil {
		return nil, false, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := p.open[:0]
	var best *confirmChannel
	bestLoad, carried := 0, false
	for _, c := range p.open {
		if c.conn != conn || c.stopped() {
			c.close()
			continue
		}
		kept = append(kept, c)
		load, has := c.load(rk)
		carried = carried || has
		if !has && load < inFlightPerChannel && (best == nil || load < bestLoad) {
			best, bestLoad = c, load
		}
	}
	clear(p.open[len(kept):])
	p.open = kept
	full := len(p.open)+p.opening >= p.channels
	switch {
	case best != nil && (bestLoad == 0 || full):
		best.reserve(rk)
		return best, false, nil
	case best == nil && carried && full:
		return nil, true, nil
	}
	// Below the pool size, or (briefly, while channels being opened or
	// just discarded still hold publishes) every channel is full.
	p.opening++
	return nil, false, nil
}

// openChannel opens a confirm channel reserved for rk and adds it to the
// pool, or returns ctx's error first: opening waits for the broker's
// answers, the caller must not wait past its deadline for a broker that
// stopped answering. A channel opened after that joins the pool.
func (p *Publisher) openChannel(ctx context.Context, rk returnKey) (*confirmChannel, error) {
	type opened struct {
		cc  *confirmChannel
		err error
	}
	done := make(chan opened, 1)
	go func() {
		cc, err := p.addChannel(rk)
		done <- opened{cc, err}
	}()
	select {
	case o := <-done:
		return o.cc, o.err
	case <-ctx.Done():
		go func() {
			if o := <-done; o.cc != nil {
				o.cc.done(rk)
			}
		}()
		return nil, p.deadlineError(ctx)
	}
}

// addChannel opens one confirm channel reserved for rk and adds it to the pool.
func (p *Publisher) addChannel(rk returnKey) (*confirmChannel, error) {
	defer func() {
		p.mu.Lock()
		p.opening--
		p.mu.Unlock()
	}()
	conn, err := p.conn.Connection()
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("%w: open channel: %v", ErrUnavailable, err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("%w: confirm mode: %v", ErrUnavailable, err)
	}
	cc := &confirmChannel{
		conn: conn, ch: ch,
		returns:  ch.NotifyReturn(make(chan amqp.Return, inFlightPerChannel)),
		sends:    make(chan send),
		stop:     make(chan struct{}),
		inFlight: map[returnKey]bool{rk: true},
		returned: make(map[returnKey]amqp.Return),
	}
	cc.closeReason = ch.NotifyClose(make(chan *amqp.Error, 1))
	go cc.sender(ch.NotifyClose(make(chan *amqp.Error, 1)))
	p.mu.Lock()
	p.open = append(p.open, cc)
	p.mu.Unlock()
	return cc, nil
}

// reason says why the broker closed cc, as ": <the broker's text>" ("" when
// it did not say). An access refusal names the permission the user lacks:
// a publish needs write on the exchange (RabbitMQ 3.x's text says only
// "access to exchange ... refused").
func (cc *confirmChannel) reason() string {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closedBy == nil {
		select {
		case e, ok := <-cc.closeReason:
			if ok {
				cc.closedBy = e
			}
		default:
		}
	}
	switch e := cc.closedBy; {
	case e == nil:
		return ""
	case e.Code == amqp.AccessRefused:
		return ": " + Refusal(e, "write", "exchange").Error()
	default:
		return fmt.Sprintf(": the broker closed it: %d %s", e.Code, e.Reason)
	}
}

// discard closes cc; pick drops it from the pool.
func (p *Publisher) discard(cc *confirmChannel) { cc.close() }

// load is how many publishes cc carries and whether rk is one of them.
func (cc *confirmChannel) load(rk returnKey) (int, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.inFlight), cc.inFlight[rk]
}

func (cc *confirmChannel) reserve(rk returnKey) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	cc.inFlight[rk] = true
}

// done ends rk's publish on cc.
func (cc *confirmChannel) done(rk returnKey) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	delete(cc.inFlight, rk)
}

// Ready reports whether the publishing connection is open and not blocked.
func (p *Publisher) Ready() bool { return p.conn.Ready() && !p.conn.Blocked() }
