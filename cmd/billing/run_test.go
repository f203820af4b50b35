package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/internal/testenv"
)

// running is a subcommand run in a goroutine, as its process would run.
type running struct {
	args           []string
	stdout, stderr testenv.SyncBuffer
	cancel         context.CancelFunc
	done           chan error // run's result; put back once read, for the cleanup
}

// start runs `billing args...` with getenv as its whole environment until
// stop is called or the test ends.
func start(t *testing.T, getenv func(string) string, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{args: args, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx, args, getenv, &r.stdout, &r.stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
		}
	})
	return r
}

// alive fails the test when run has already returned.
func (r *running) alive(t *testing.T) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		t.Fatalf("billing %s returned early: %v\n%s", strings.Join(r.args, " "), err, r.stderr.String())
	default:
	}
}

// stop cancels run's context and expects it to return nil within bound.
func (r *running) stop(t *testing.T, bound time.Duration) {
	t.Helper()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			t.Errorf("billing %s after cancel = %v, want nil", strings.Join(r.args, " "), err)
		}
	case <-time.After(bound):
		t.Fatalf("billing %s did not stop within %s of the cancel", strings.Join(r.args, " "), bound)
	}
}
