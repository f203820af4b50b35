package metrics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stripe-billing/billing/internal/httpserve"
)

// ServerConfig configures a Server.
type ServerConfig struct {
	// Addr is the listen address, such as ":9090"; port 0 picks a free one
	// (logged as "metrics listening" with the address).
	Addr string
	// Registry is served at GET /metrics.
	Registry *prometheus.Registry
	// Checks answer /readyz, in order; at least one is required.
	Checks []Check
	// ReadyTimeout bounds one /readyz, all its checks; default 1s.
	ReadyTimeout time.Duration
	// ShutdownTimeout bounds the graceful shutdown; default 5s.
	ShutdownTimeout time.Duration
}

// Check is one part of a process's readiness. /readyz shows each check's
// Name with a fixed word, "ok" or its Down word, never the probe's error:
// that can hold a host, a user or a driver's text, and goes to the log.
type Check struct {
	// Name is the part checked: "broker", "database"...
	Name string
	// Down is the word shown when Probe fails; default "down".
	Down string
	// Probe returns nil when the part is ready.
	Probe func(ctx context.Context) error
}

// Server is the small HTTP server of a process that has no other one (the
// worker): GET /metrics, /healthz (alive) and /readyz.
type Server struct {
	cfg    ServerConfig
	logger *slog.Logger
	mux    *http.ServeMux
}

// DefaultAddr is the worker's default metrics address (config.Vars).
const DefaultAddr = ":9090"

// NewServer checks cfg and builds the routes.
// A nil logger discards.
func NewServer(cfg ServerConfig, logger *slog.Logger) (*Server, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Addr == "" || cfg.Registry == nil || len(cfg.Checks) == 0 {
		return nil, errors.New("metrics: server: Addr, Registry and Checks are required")
	}
	for i, c := range cfg.Checks {
		if c.Name == "" || c.Name == "status" || c.Probe == nil {
			return nil, fmt.Errorf("metrics: server: check %d needs a Name (not status) and a Probe", i)
		}
		if c.Down == "" {
			cfg.Checks[i].Down = "down"
		}
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

// readyz answers {"status": "ready" or "not ready", <check>: "ok" or its
// Down word...}; a failed probe's error is logged.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	answer, code := map[string]string{"status": "ready"}, http.StatusOK
	for _, c := range s.cfg.Checks {
		answer[c.Name] = "ok"
		if err := c.Probe(ctx); err != nil {
			answer[c.Name], answer["status"], code = c.Down, "not ready", http.StatusServiceUnavailable
			s.logger.WarnContext(ctx, "not ready", "check", c.Name, "error", err)
		}
	}
	writeStatus(w, code, answer)
}

// Run serves until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context) error {
	return httpserve.Run(ctx, "metrics", &http.Server{
		Addr:              s.cfg.Addr,
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}, 0, s.cfg.ShutdownTimeout, s.logger)
}

func writeStatus(w http.ResponseWriter, code int, v map[string]string) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
