package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/api"
	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/simulate/stripeevent"
)

// confirmedPublisher confirms every publish at once: BenchmarkWebhook
// measures the handler's own work, not the broker's.
type confirmedPublisher struct{}

func (confirmedPublisher) Publish(context.Context, string, string, amqp.Publishing) error { return nil }
func (confirmedPublisher) Ready() bool                                                    { return true }

// BenchmarkWebhook answers a signed invoice.paid event (stripe-mock's
// invoice) through the api's handler, the publish confirmed at once. It
// reports the process's CPU per request (cpu-ns/op, from /proc, GC
// included), which holds still on a shared machine where ns/op does not.
func BenchmarkWebhook(b *testing.B) {
	srv, err := api.New(api.Config{Exchange: "events", Secrets: []string{secret}}, nil, confirmedPublisher{})
	if err != nil {
		b.Fatal(err)
	}
	h := srv.Handler()
	body, err := json.Marshal(map[string]any{
		"id": stripeevent.NewEventID(), "object": "event", "api_version": "2023-10-16", "created": time.Now().Unix(),
		"data":     map[string]any{"object": stripefixture.Object("2023-10-16", "invoice")},
		"livemode": false, "pending_webhooks": 1, "request": map[string]any{"id": nil, "idempotency_key": nil},
		"type": "invoice.paid",
	})
	if err != nil {
		b.Fatal(err)
	}
	header := sign(body, secret, time.Now())
	req := httptest.NewRequest(http.MethodPost, "/webhooks/stripe", nil)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Stripe-Signature", header)
	req.ContentLength = int64(len(body))
	b.ReportAllocs()
	start := cpuTime(b)
	for b.Loop() {
		r := *req
		r.Body = io.NopCloser(bytes.NewReader(body))
		w := httptest.NewRecorder()
		h.ServeHTTP(w, &r)
		if w.Code != http.StatusOK {
			b.Fatalf("answer = %d %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// cpuTime is the CPU this process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	d, err := bench.CPUTime(os.Getpid())
	if err != nil {
		b.Fatal(err)
	}
	return d
}
