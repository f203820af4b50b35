package broker_test

import (
	"context"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/testenv"
)

// TestConnLogHidesThePassword runs the reconnect loop on URLs whose
// password the broker refuses, or that do not parse (amqp091-go's own
// error would quote the URL on every attempt): the warnings name the
// failure, never the password.
func TestConnLogHidesThePassword(t *testing.T) {
	t.Parallel()
	real, err := url.Parse(testenv.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, url, want string
	}{
		{"bad percent escape", "amqp://guest:hunter%zz2@127.0.0.1:1/", "does not parse"},
		{"refused port", "amqp://guest:hunter%252@127.0.0.1:1/", "connection refused"},
		{"wrong password on the real broker", "amqp://" + real.User.Username() + ":hunter%252@" + real.Host + "/", "username or password not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := &testenv.SyncBuffer{}
			conn := broker.NewConn(broker.ConnConfig{
				URL: tt.url, Name: "redact-test", Backoff: func(int) time.Duration { return 20 * time.Millisecond },
			}, slog.New(slog.NewJSONHandler(logs, nil)))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); _ = conn.Run(ctx) }()
			testenv.Eventually(t, 10*time.Second, func() bool {
				return strings.Count(logs.String(), `"msg":"broker connect failed"`) >= 2
			}, "fewer than two connect attempts logged")
			cancel()
			<-done
			out := logs.String()
			if !strings.Contains(out, tt.want) {
				t.Errorf("log does not say %q:\n%s", tt.want, out)
			}
			if strings.Contains(out, "hunter") {
				t.Errorf("log shows the password:\n%s", out)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]string{
		"amqp://billing:hunter%252@rabbitmq:5672/": "amqp://billing:xxxxx@rabbitmq:5672/",
		"amqp://billing:hunter%zz@rabbitmq:5672/":  "(unparsable URL)",
		"amqp://rabbitmq:5672/":                    "amqp://rabbitmq:5672/",
	} {
		if got := broker.RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}
