// Package httpserve runs an http.Server for a component's lifetime: listen,
// serve until the context ends, then shut down gracefully within a bound,
// so in-flight requests finish. The api and the worker's metrics server
// both run through it.
package httpserve

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"golang.org/x/net/netutil"
)

// Run listens on srv.Addr (port 0 picks a free port), logs "<name>
// listening" with the address, and serves until ctx is done; then it stops
// accepting and lets in-flight requests finish for at most shutdownTimeout.
// maxConns > 0 caps the connections open at once: the next ones wait,
// unaccepted, until one closes.
func Run(ctx context.Context, name string, srv *http.Server, maxConns int, shutdownTimeout time.Duration, logger *slog.Logger) error {
	ln, err := net.Listen("tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", name, srv.Addr, err)
	}
	if maxConns > 0 {
		ln = netutil.LimitListener(ln, maxConns)
	}
	if srv.ErrorLog == nil {
		srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	}
	logger.Info(name+" listening", "addr", ln.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("%s: serve: %w", name, err)
	case <-ctx.Done():
	}
	// ctx is done: shutting down needs a context of its own.
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	<-served // http.ErrServerClosed once Shutdown has begun
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("%s: shutdown: %w", name, err)
	}
	logger.Info(name + " stopped")
	return nil
}
