package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Addr is the listen address, such as ":9090"; port 0 picks a free one
	// (logged as "metrics listening" with the address).
	Addr string
	// Registry is served at GET /metrics.
	Registry *prometheus.Registry
	// Ready answers /readyz: nil means ready, an error says why not.
	Ready func(ctx context.Context) error
	// ReadyTimeout bounds one Ready call; default 1s.
	ReadyTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown; default 5s.
	ShutdownTimeout time.Duration
}

// Server is the small HTTP server of a process that has no other one (the
// worker): GET /metrics, /healthz (alive) and /readyz.
type Server struct {
	cfg    ServerConfig
	logger *slog.Logger
	mux    *http.ServeMux
}

// NewServer checks cfg and builds the routes.
func NewServer(cfg ServerConfig, logger *slog.Logger) (*Server, error) {
	if cfg.Addr == "" || cfg.Registry == nil || cfg.Ready == nil {
		return nil, errors.New("metrics: server: Addr, Registry and Ready are required")
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = time.Second
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 5 * time.Second
	}
	s := &Server{cfg: cfg, logger: logger, mux: http.NewServeMux()}
	s.mux.Handle("GET /metrics", Handler(cfg.Registry))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeStatus(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	return s, nil
}

// Handler returns the routes, for tests with httptest.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	if err := s.cfg.Ready(ctx); err != nil {
		writeStatus(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
		return
	}
	writeStatus(w, http.StatusOK, map[string]string{"status": "ready"})
}

// Run serves until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", s.cfg.Addr, err)
	}
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	s.logger.Info("metrics listening", "addr", ln.Addr().String())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("metrics: serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	<-served
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("metrics: shutdown: %w", err)
	}
	return nil
}

func writeStatus(w http.ResponseWriter, code int, v map[string]string) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
