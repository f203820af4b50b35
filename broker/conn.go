package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrUnavailable means there is no open connection to the broker right now.
var ErrUnavailable = errors.New("broker: not connected")

// ConnConfig configures a supervised connection.
type ConnConfig struct {
	URL string
	// Name is shown in the management UI's connection list.
	Name     string
	Topology Topology
	// Backoff gives the wait before reconnect attempt n (0-based).
	Backoff func(attempt int) time.Duration
	// DialTimeout bounds one connection attempt.
	DialTimeout time.Duration
}

// Conn is one AMQP connection, supervised: Run dials, checks that the
// topology exists (Topology.Check: `billing topology` declares it), and
// redials with backoff whenever the connection is lost. All
// reconnection lives here; amqp091-go's own recovery is not used, because
// it can ack the wrong delivery after a reconnect.
type Conn struct {
	cfg    ConnConfig
	logger *slog.Logger

	mu    sync.Mutex
	conn  *amqp.Connection
	ready chan struct{} // closed while conn is usable

	blocked atomic.Bool
}

// NewConn returns a connection supervisor; nothing is dialled before Run.
// A nil logger discards.
func NewConn(cfg ConnConfig, logger *slog.Logger) *Conn {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Backoff == nil {
		cfg.Backoff = func(int) time.Duration { return time.Second }
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	return &Conn{cfg: cfg, logger: logger.With("amqp_connection", cfg.Name), ready: make(chan struct{})}
}

// Run keeps the connection up until ctx is done, then closes it. A missing
// topology ends it with ErrTopologyMissing: waiting would not create it.
func (c *Conn) Run(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		conn, err := c.dial()
		if errors.Is(err, ErrTopologyMissing) {
			return err
		}
		if err != nil {
			wait := c.cfg.Backoff(attempt)
			c.logger.Warn("broker connect failed", "error", err, "retry_in", wait.String())
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			continue
		}
		attempt = -1
		if !c.serve(ctx, conn) {
			return nil
		}
	}
}

// serve publishes conn until it closes (true: redial) or ctx ends (false).
func (c *Conn) serve(ctx context.Context, conn *amqp.Connection) bool {
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocking := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	c.mu.Lock()
	c.conn = conn
	close(c.ready)
	c.mu.Unlock()
	c.logger.Info("broker connected")
	defer func() {
		c.mu.Lock()
		c.conn = nil
		c.ready = make(chan struct{})
		c.mu.Unlock()
		c.blocked.Store(false)
	}()
	for {
		select {
		case <-ctx.Done():
			_ = conn.Close()
			return false
		case b := <-blocking:
			c.blocked.Store(b.Active)
			c.logger.Warn("broker flow control", "blocked", b.Active, "reason", b.Reason)
		case err := <-closed:
			c.logger.Warn("broker connection lost", "error", err)
			return true
		}
	}
}

// ParseURL reads an AMQP URL as the dialer does. Its error never holds the
// URL nor any part of it: net/url's errors quote the whole URL, password
// included, and one about a bad percent escape quotes the escape, which
// may be the password's.
func ParseURL(raw string) (amqp.URI, error) {
	uri, err := amqp.ParseURI(raw)
	var urlErr *url.Error
	switch {
	case errors.As(err, &urlErr):
		return uri, errors.New("broker: AMQP URL does not parse (percent-encode reserved characters of the user name and password, RFC 3986 §3.2.1)")
	case err != nil:
		return uri, fmt.Errorf("broker: AMQP URL: %w", err) // amqp091-go's own messages quote nothing
	}
	return uri, nil
}

// RedactURL returns raw with its password hidden, for messages and logs.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func (c *Conn) dial() (*amqp.Connection, error) {
	// Parsed here first, as amqp.DialConfig's error would quote the URL
	// on every reconnect.
	if _, err := ParseURL(c.cfg.URL); err != nil {
		return nil, err
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(c.cfg.Name)
	conn, err := amqp.DialConfig(c.cfg.URL, amqp.Config{
		Heartbeat:  10 * time.Second,
		Properties: props,
		Dial:       amqp.DefaultDial(c.cfg.DialTimeout),
	})
	if err != nil {
		return nil, fmt.Errorf("broker: dial: %w", err)
	}
	if err := c.cfg.Topology.Check(conn); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// Connection returns the open connection, or ErrUnavailable.
func (c *Conn) Connection() (*amqp.Connection, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil || c.conn.IsClosed() {
		return nil, ErrUnavailable
	}
	return c.conn, nil
}

// Await waits until a connection is open or ctx is done.
func (c *Conn) Await(ctx context.Context) (*amqp.Connection, error) {
	for {
		c.mu.Lock()
		conn, ready := c.conn, c.ready
		c.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-ready:
		}
	}
}

// Ready reports whether the connection is open.
func (c *Conn) Ready() bool {
	_, err := c.Connection()
	return err == nil
}

// Blocked reports whether the broker has blocked this connection because of
// a memory or disk alarm. Publishes would hang, so callers fail fast.
func (c *Conn) Blocked() bool { return c.blocked.Load() }
