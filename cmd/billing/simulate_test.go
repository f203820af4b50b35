package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/config"
)

// webhookCounter stands in for the api: it verifies each signature with the
// first secret and answers status(n) to the n-th request.
type webhookCounter struct {
	secret string
	status func(n int) int

	mu       sync.Mutex
	requests int
	badSig   int
	ids      map[string]bool
}

func (c *webhookCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.requests
	c.requests++
	ev, err := webhook.ConstructEventWithOptions(body, r.Header.Get("Stripe-Signature"), c.secret, webhook.ConstructEventOptions{})
	if err != nil {
		c.badSig++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	c.ids[ev.ID] = true
	w.WriteHeader(c.status(n))
}

func TestSimulateCommand(t *testing.T) {
	t.Parallel()
	allOK := func(int) int { return http.StatusOK }
	tests := []struct {
		name     string
		secrets  string
		status   func(n int) int
		args     []string
		wantErr  bool
		wantCode int // exit code when wantErr
		wantReqs int
		check    func(t *testing.T, stdout string, c *webhookCounter)
	}{
		{
			name:     "all accepted prints a table",
			secrets:  "whsec_current,whsec_previous",
			status:   allOK,
			args:     []string{"--count", "60", "--rate", "0", "--concurrency", "4", "--duplicates", "0.1", "--poison", "0.1", "--seed", "3"},
			wantReqs: 60,
			check: func(t *testing.T, stdout string, c *webhookCounter) {
				for _, want := range []string{"sent", "60", "6 duplicates", "2xx", "p99"} {
					if !strings.Contains(stdout, want) {
						t.Errorf("stdout lacks %q:\n%s", want, stdout)
					}
				}
				if len(c.ids) != 54 {
					t.Errorf("server saw %d distinct events, want 54", len(c.ids))
				}
			},
		},
		{
			name:     "json summary lists the accepted ids",
			secrets:  "whsec_current",
			status:   allOK,
			args:     []string{"--count", "25", "--rate", "0", "--duplicates", "0.2", "--json"},
			wantReqs: 25,
			check: func(t *testing.T, stdout string, c *webhookCounter) {
				var s struct {
					Sent     int      `json:"sent"`
					OK       int      `json:"ok"`
					Accepted []string `json:"accepted"`
				}
				if err := json.Unmarshal([]byte(stdout), &s); err != nil {
					t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
				}
				if s.Sent != 25 || s.OK != 25 || len(s.Accepted) != len(c.ids) {
					t.Errorf("summary sent %d ok %d accepted %d; server saw %d distinct", s.Sent, s.OK, len(s.Accepted), len(c.ids))
				}
				for _, id := range s.Accepted {
					if !c.ids[id] {
						t.Errorf("accepted %s never reached the server", id)
					}
				}
			},
		},
		{
			name:     "503s make the command fail",
			secrets:  "whsec_current",
			status:   func(n int) int { return []int{http.StatusOK, http.StatusServiceUnavailable}[n%2] },
			args:     []string{"--count", "20", "--rate", "0"},
			wantErr:  true,
			wantCode: 1,
			wantReqs: 20,
			check: func(t *testing.T, stdout string, c *webhookCounter) {
				if !strings.Contains(stdout, "503") {
					t.Errorf("stdout lacks the 503 row:\n%s", stdout)
				}
			},
		},
		{
			name:     "no secret",
			status:   allOK,
			args:     []string{"--count", "5"},
			wantErr:  true,
			wantCode: 1,
		},
		{
			name:     "ratio out of range is a usage error",
			secrets:  "whsec_current",
			status:   allOK,
			args:     []string{"--count", "5", "--duplicates", "1.5"},
			wantErr:  true,
			wantCode: 2,
		},
		{
			name:     "stray argument is a usage error",
			secrets:  "whsec_current",
			status:   allOK,
			args:     []string{"now"},
			wantErr:  true,
			wantCode: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			counter := &webhookCounter{secret: "whsec_current", status: tt.status, ids: map[string]bool{}}
			srv := httptest.NewServer(counter)
			t.Cleanup(srv.Close)
			getenv := func(name string) string {
				if name == "STRIPE_WEBHOOK_SECRET" {
					return tt.secrets
				}
				return ""
			}
			var stdout, stderr bytes.Buffer
			args := append([]string{"simulate", "--url", srv.URL + "/webhooks/stripe"}, tt.args...)
			err := run(context.Background(), args, getenv, &stdout, &stderr)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("run succeeded; stdout:\n%s", stdout.String())
				}
				if got := exitCode(err); got != tt.wantCode {
					t.Errorf("exit code = %d (%v), want %d", got, err, tt.wantCode)
				}
			} else if err != nil {
				t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
			}
			counter.mu.Lock()
			defer counter.mu.Unlock()
			if counter.requests != tt.wantReqs || counter.badSig != 0 {
				t.Errorf("server saw %d requests (%d badly signed), want %d, all signed with the first secret",
					counter.requests, counter.badSig, tt.wantReqs)
			}
			if tt.check != nil {
				tt.check(t, stdout.String(), counter)
			}
		})
	}
}

func TestSimulateCommandNeedsASecret(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"simulate", "--count", "1"}, func(string) string { return "" }, &stdout, &stderr)
	if !errors.Is(err, config.ErrMissingWebhookSecret) {
		t.Errorf("err = %v, want %v", err, config.ErrMissingWebhookSecret)
	}
}

func TestSimulateHelp(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"simulate", "--help"}, func(string) string { return "" }, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"-url", "-count", "-rate", "-concurrency", "-duplicates", "-out-of-order", "-poison", "-seed", "-json"} {
		if !strings.Contains(stdout.String(), flag) {
			t.Errorf("help lacks %s", flag)
		}
	}
}

// TestSimulateRefusesARemoteTarget: a URL off this machine is a usage
// error, and nothing is sent, unless --allow-remote.
func TestSimulateRefusesARemoteTarget(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	getenv := func(k string) string { return map[string]string{"STRIPE_WEBHOOK_SECRET": "whsec_sim"}[k] }
	err := run(context.Background(), []string{"simulate", "--count", "1", "--url", "https://billing.example.com/webhooks/stripe"}, getenv, &stdout, &stderr)
	if err == nil || exitCode(err) != 2 || !strings.Contains(err.Error(), "--allow-remote") {
		t.Fatalf("simulate to another host = %v (exit %d), want a usage error naming --allow-remote", err, exitCode(err))
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing sent", stdout.String())
	}
	stdout.Reset()
	err = run(context.Background(), []string{"simulate", "--count", "1", "--timeout", "50ms", "--allow-remote", "--url", "http://192.0.2.7:1/webhooks/stripe"}, getenv, &stdout, &stderr)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), "1 transport errors") {
		t.Errorf("simulate --allow-remote = %v (exit %d), want the request tried and its transport error reported", err, exitCode(err))
	}
}
