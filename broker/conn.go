package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// ErrUnavailable means there is no open connection to the broker right now.
var ErrUnavailable = errors.New("broker: not connected")

// ConnConfig configures a supervised connection.
type ConnConfig struct {
	// URL is one node's AMQP URL, or a comma-separated list of the
	// cluster's nodes: each connection attempt tries them in turn, starting
	// after the node last connected to.
	URL string
	// Name is shown in the management UI's connection list.
	Name     string
	Topology Topology
	// Backoff gives the wait before reconnect attempt n (0-based).
	Backoff func(attempt int) time.Duration
	// DialTimeout bounds one connection attempt.
	DialTimeout time.Duration
	// ReconnectDelay is the wait after a connection loss before the first
	// redial (default DefaultReconnectDelay).
	ReconnectDelay time.Duration
	// CoalesceWrites queues the connection's writes for one writer
	// goroutine, so that the publishes of concurrent requests go out in
	// one system call (see coalescedConn): the api's publishing
	// connection sets it.
	CoalesceWrites bool
}

// DefaultReconnectDelay is the wait before redialling after a connection
// loss. On RabbitMQ 3.10.8, a client that reconnected within milliseconds
// of losing the node that led a quorum queue had every publish nacked until
// that node came back (issue 14); after about a second it was not.
const DefaultReconnectDelay = time.Second

// Conn is one AMQP connection, supervised: Run dials, checks that the
// topology exists (Topology.Check: `billing topology` declares it), and
// redials with backoff whenever the connection is lost. All
// reconnection lives here; amqp091-go's own recovery is not used, because
// it can ack the wrong delivery after a reconnect.
type Conn struct {
	cfg    ConnConfig
	logger *slog.Logger

	urls []string
	next int // the index in urls the next dial tries first; Run's goroutine only

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
	if cfg.ReconnectDelay <= 0 {
		cfg.ReconnectDelay = DefaultReconnectDelay
	}
	return &Conn{cfg: cfg, urls: SplitURLs(cfg.URL), logger: logger.With("amqp_connection", cfg.Name), ready: make(chan struct{})}
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
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(c.cfg.ReconnectDelay):
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

// SplitURLs reads AMQP_URL: one URL or a comma-separated list of a
// cluster's nodes (no URL holds a comma once its user name and password
// are percent-encoded).
func SplitURLs(raw string) []string {
	var urls []string
	for _, u := range strings.Split(raw, ",") {
		if u = strings.TrimSpace(u); u != "" {
			urls = append(urls, u)
		}
	}
	return urls
}

// RedactURL returns raw, one URL or a list, with every password hidden,
// for messages and logs.
func RedactURL(raw string) string {
	urls := SplitURLs(raw)
	for i, one := range urls {
		u, err := url.Parse(one)
		if err != nil {
			urls[i] = "(unparsable URL)"
			continue
		}
		urls[i] = u.Redacted()
	}
	return strings.Join(urls, ",")
}

// Dial connects to the first node of raw (one URL or a list) that
// answers, trying each in turn.
func Dial(raw, name string, timeout time.Duration) (*amqp.Connection, error) {
	conn, _, err := dialFirst(SplitURLs(raw), 0, name, amqp.DefaultDial(timeout))
	return conn, err
}

// dialFirst tries urls in turn from urls[start], each with dial, and
// returns the first connection and its index, or every node's error.
func dialFirst(urls []string, start int, name string, dial func(network, addr string) (net.Conn, error)) (*amqp.Connection, int, error) {
	if len(urls) == 0 {
		return nil, 0, errors.New("broker: no AMQP URL")
	}
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(name)
	var errs []error
	for k := range urls {
		i := (start + k) % len(urls)
		// Parsed here first, as amqp.DialConfig's error would quote the
		// URL on every reconnect.
		uri, err := ParseURL(urls[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		conn, err := amqp.DialConfig(urls[i], amqp.Config{
			Heartbeat:  10 * time.Second,
			Properties: props,
			Dial:       dial,
		})
		if err == nil {
			return conn, i, nil
		}
		errs = append(errs, fmt.Errorf("broker: dial %s:%d: %w", uri.Host, uri.Port, err))
	}
	return nil, 0, errors.Join(errs...)
}

// dial connects to the first node that answers, from the one after the
// node last connected to: a lost node is tried last.
func (c *Conn) dial() (*amqp.Connection, error) {
	dial := amqp.DefaultDial(c.cfg.DialTimeout)
	if c.cfg.CoalesceWrites {
		plain := dial
		dial = func(network, addr string) (net.Conn, error) {
			conn, err := plain(network, addr)
			if err != nil {
				return nil, err
			}
			return coalesce(conn), nil
		}
	}
	conn, i, err := dialFirst(c.urls, c.next, c.cfg.Name, dial)
	if err != nil {
		return nil, err
	}
	c.next = (i + 1) % len(c.urls)
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
