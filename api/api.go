// Package api owns the HTTP side of ingest: POST /webhooks/stripe verifies
// the Stripe-Signature of the raw body and publishes those exact bytes to
// the events exchange, answering 2xx only once the broker has confirmed
// and routed the message; plus /healthz and a /readyz that says ready or
// not ready and nothing more (this port faces Stripe: metrics and the
// reasons of readiness are served elsewhere, on METRICS_ADDR). It never
// touches MySQL, so ingest stays up while the database is down.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/semaphore"

	"github.com/stripe-billing/billing/internal/httpserve"
	"github.com/stripe-billing/billing/verify"
)

// Publisher is the broker as the api uses it; *broker.Publisher satisfies
// it. Publish must return nil only when the message is confirmed and
// routed, and must honour ctx.
type Publisher interface {
	Publish(ctx context.Context, exchange, key string, msg amqp.Publishing) error
	Ready() bool
}

// Observer is told about every answered webhook: its outcome (the "outcome"
// of the request's log line) and status, and how long the publish took.
// It is the seam for Prometheus metrics; *metrics.Metrics satisfies it.
type Observer interface {
	Webhook(outcome string, code int)
	ObservePublish(d time.Duration)
}

// Defaults of a Server's settings (config.Vars refers to them).
const (
	DefaultAddr            = ":8080"
	DefaultMaxBodyBytes    = verify.DefaultMaxBodyBytes
	DefaultTolerance       = verify.DefaultTolerance
	DefaultPublishTimeout  = 5 * time.Second
	DefaultShutdownTimeout = 20 * time.Second
	// DefaultShutdownReadyDelay is no wait: without a load balancer
	// nobody polls /readyz, and SIGTERM drains at once.
	DefaultShutdownReadyDelay = time.Duration(0)
	// DefaultMaxInFlight bounds the bodies held at once: with the default
	// body cap, at most 128 MiB of bodies.
	DefaultMaxInFlight = 128
	// DefaultBodyTimeout is how long a webhook holding an in-flight slot
	// has to send its body: Stripe sends it at once.
	DefaultBodyTimeout = 5 * time.Second
	// DefaultMaxConns caps the api's open connections, idle keep-alives
	// included: a goroutine and buffers each.
	DefaultMaxConns = 1024
)

// DevWebhookSecret is the webhook secret of the development stack
// (docker-compose.yml's default); every billing process warns when it is
// configured (cmd/billing's warnDevSecret).
const DevWebhookSecret = "whsec_dev_only_change_me"

// Config configures a Server. Zero durations take the documented defaults.
type Config struct {
	// Exchange is the events exchange (broker.Topology.Events). Required.
	Exchange string
	// Secrets are the webhook signing secrets; an event signed with any of
	// them is accepted (rotation). At least one is required.
	Secrets []string
	// Tolerance is the oldest signature timestamp accepted. Default 5m.
	Tolerance time.Duration
	// MaxBodyBytes caps the body; larger ones get 413. Default 1 MiB.
	MaxBodyBytes int64
	// MaxInFlight caps the webhooks being read, verified or published at
	// once; over it a webhook gets 503 with Retry-After before its body is
	// read, so slow uploads cannot hold more than MaxInFlight×MaxBodyBytes
	// of memory. Default DefaultMaxInFlight.
	MaxInFlight int
	// BodyTimeout is how long a webhook has to send its whole body once it
	// holds an in-flight slot; past it the answer is 408 and the slot
	// comes back. Default DefaultBodyTimeout.
	BodyTimeout time.Duration
	// MaxConns caps the connections Run keeps open at once; the next wait,
	// unaccepted. Default DefaultMaxConns.
	MaxConns int
	// Addr is the listen address of Run. Default ":8080".
	Addr string
	// PublishTimeout bounds one publish, confirm included; past it the
	// answer is 503. Default 5s.
	PublishTimeout time.Duration
	// RetryAfter is the Retry-After of a 503, rounded up to seconds. Default 5s.
	RetryAfter time.Duration
	// ShutdownTimeout is how long Run lets in-flight requests finish once
	// ctx is done. Default 20s.
	ShutdownTimeout time.Duration
	// ShutdownReadyDelay is how long Run keeps serving once ctx is done,
	// with /readyz answering 503, before it stops accepting: the time a
	// load balancer that polls /readyz needs to send new requests
	// elsewhere. Default 0.
	ShutdownReadyDelay time.Duration
	// Server timeouts. Defaults: read header 5s, read 15s, idle 60s, write
	// ReadTimeout+PublishTimeout+5s (it must exceed PublishTimeout, or a
	// slow confirm would cut the answer off).
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	// Now is the clock of message timestamps. Default time.Now.
	Now func() time.Time
	// Observer, when set, is told about every webhook.
	Observer Observer
}

// Server is the api's HTTP server.
type Server struct {
	cfg     Config
	logger  *slog.Logger
	pub     Publisher
	handler http.Handler
	// inFlight holds one unit per webhook past its header checks.
	inFlight *semaphore.Weighted
	// draining is set once Run's ctx is done: /readyz says not ready.
	draining atomic.Bool
}

// New validates cfg, applies defaults and builds the routes. A nil logger
// discards.
func New(cfg Config, logger *slog.Logger, pub Publisher) (*Server, error) {
	if cfg.Exchange == "" {
		return nil, errors.New("api: config: Exchange is required")
	}
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("api: config: at least one webhook secret is required")
	}
	if pub == nil {
		return nil, errors.New("api: a publisher is required")
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Tolerance, DefaultTolerance)
	def(&cfg.PublishTimeout, DefaultPublishTimeout)
	def(&cfg.BodyTimeout, DefaultBodyTimeout)
	def(&cfg.RetryAfter, 5*time.Second)
	def(&cfg.ShutdownTimeout, DefaultShutdownTimeout)
	def(&cfg.ReadHeaderTimeout, 5*time.Second)
	def(&cfg.ReadTimeout, 15*time.Second)
	def(&cfg.IdleTimeout, 60*time.Second)
	def(&cfg.WriteTimeout, cfg.ReadTimeout+cfg.PublishTimeout+5*time.Second)
	if cfg.WriteTimeout <= cfg.PublishTimeout {
		return nil, fmt.Errorf("api: config: WriteTimeout %s must exceed PublishTimeout %s", cfg.WriteTimeout, cfg.PublishTimeout)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	s := &Server{cfg: cfg, logger: logger, pub: pub, inFlight: semaphore.NewWeighted(int64(cfg.MaxInFlight))}
	s.handler = s.routes()
	return s, nil
}

// Handler returns the api's routes, for Run and for tests with httptest.
func (s *Server) Handler() http.Handler { return s.handler }

// Draining reports whether Run's ctx is done: the server is on its way
// out and /readyz says not ready.
func (s *Server) Draining() bool { return s.draining.Load() }

// Run serves on cfg.Addr until ctx is done, then shuts down gracefully:
// /readyz answers 503 at once while everything else is still served for
// ShutdownReadyDelay (a load balancer takes the server out of its pool
// meanwhile); then it stops accepting and lets in-flight requests finish
// for at most ShutdownTimeout.
func (s *Server) Run(ctx context.Context) error {
	serveCtx, stopServing := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServing()
	served := make(chan error, 1)
	go func() { served <- s.serve(serveCtx) }()
	select {
	case err := <-served: // it could not listen
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.logger.Info("api not ready: shutting down", "ready_delay", s.cfg.ShutdownReadyDelay.String())
	if s.cfg.ShutdownReadyDelay > 0 {
		delay := time.NewTimer(s.cfg.ShutdownReadyDelay)
		defer delay.Stop()
		select {
		case <-delay.C:
		case err := <-served:
			return err
		}
	}
	stopServing()
	return <-served
}

// serve runs the HTTP server until ctx is done, then drains it.
func (s *Server) serve(ctx context.Context) error {
	return httpserve.Run(ctx, "api", &http.Server{
		Addr:              s.cfg.Addr,
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}, s.cfg.MaxConns, s.cfg.ShutdownTimeout, s.logger)
}

type nopObserver struct{}

func (nopObserver) Webhook(string, int)          {}
func (nopObserver) ObservePublish(time.Duration) {}
