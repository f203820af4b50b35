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
		"amqp://billing:hunter%252@rabbitmq:5672/":     "amqp://billing:xxxxx@rabbitmq:5672/",
		"amqp://billing:hunter%zz@rabbitmq:5672/":      "(unparsable URL)",
		"amqp://rabbitmq:5672/":                        "amqp://rabbitmq:5672/",
		"amqp://a:pw1@r1:5672/, amqp://b:pw2@r2:5672/": "amqp://a:xxxxx@r1:5672/,amqp://b:xxxxx@r2:5672/",
	} {
		if got := broker.RedactURL(raw); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// TestConnTriesEachNodeInTurn gives Conn a cluster's list whose first node
// refuses connections: it connects through the second, and after losing
// that connection it waits ReconnectDelay, then tries the list again (the
// refused node first, as the node lost is tried last) and reconnects.
func TestConnTriesEachNodeInTurn(t *testing.T) {
	t.Parallel()
	topo := testenv.Declare(t, broker.NewTopology(testenv.Namespace(t), []time.Duration{time.Second}, 5))
	refused := "amqp://guest:guest@" + testenv.FreeAddr(t) + "/"
	const delay = 300 * time.Millisecond
	conn := broker.NewConn(broker.ConnConfig{
		URL: refused + " , " + testenv.AMQPURL(), Name: t.Name(), Topology: topo, ReconnectDelay: delay,
		Backoff: func(int) time.Duration { return 20 * time.Millisecond },
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = conn.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	first, err := conn.Await(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatalf("no connection through the second URL: %v", err)
	}
	lost := time.Now()
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second, err := conn.Await(ctxTimeout(t, 10*time.Second))
	if err != nil {
		t.Fatalf("no reconnection after the loss: %v", err)
	}
	if second == first {
		t.Fatal("Await returned the closed connection")
	}
	if waited := time.Since(lost); waited < delay {
		t.Errorf("reconnected %v after the loss, before ReconnectDelay %v", waited, delay)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestDialTriesEachNode: `billing topology` dials through the same list;
// every node refused gives an error per node, without the password.
func TestDialTriesEachNode(t *testing.T) {
	t.Parallel()
	refused := "amqp://guest:hunter%252@" + testenv.FreeAddr(t) + "/"
	conn, err := broker.Dial(refused+","+testenv.AMQPURL(), t.Name(), 5*time.Second)
	if err != nil {
		t.Fatalf("Dial with the second node up: %v", err)
	}
	conn.Close()
	_, err = broker.Dial(refused+","+refused, t.Name(), 5*time.Second)
	if err == nil || strings.Count(err.Error(), "connection refused") != 2 || strings.Contains(err.Error(), "hunter") {
		t.Errorf("Dial with every node down = %v, want two refusals and no password", err)
	}
}
