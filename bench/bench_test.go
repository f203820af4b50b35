package bench_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/internal/testenv"
)

var concurrencies = []int{16, 64}

func report(b *testing.B, s bench.Stats, unit string) {
	b.ReportMetric(s.Rate(), unit+"/s")
	if len(s.Latencies) > 0 {
		b.ReportMetric(float64(s.Percentile(0.50))/float64(time.Millisecond), "p50-ms")
		b.ReportMetric(float64(s.Percentile(0.99))/float64(time.Millisecond), "p99-ms")
	}
}

// BenchmarkLimitPublish is raw amqp091-go: a 3 KiB persistent message to
// the quorum work queue through the events exchange, one confirm channel
// per goroutine, waiting for each confirm (window 1) or with up to 256
// unconfirmed messages per channel.
func BenchmarkLimitPublish(b *testing.B) {
	body := invoiceEvent("limit")
	for _, window := range []int{1, 256} {
		for _, c := range concurrencies {
			b.Run(fmt.Sprintf("window=%d/c=%d", window, c), func(b *testing.B) {
				r := newRabbit(b)
				b.ResetTimer()
				s, err := rawPublish(r, body, c, b.N, window)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				report(b, s, "msg")
				r.purge(b)
			})
		}
	}
}

// BenchmarkLimitHTTP is a bare net/http handler that reads the body and
// answers 200, on loopback, with the client the ingest benchmark uses.
func BenchmarkLimitHTTP(b *testing.B) {
	reqs := sign(invoiceEvent("http"), 64)
	for _, c := range concurrencies {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			url := serve(b, bareHandler())
			client := httpClient(c)
			b.ResetTimer()
			s, err := post(client, url, reqs, c, b.N)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			report(b, s, "req")
		})
	}
}

// BenchmarkLimitTx is raw database/sql: one transaction shaped like one
// processed event at the worker's concurrency.
func BenchmarkLimitTx(b *testing.B) {
	cfg := settings(b)
	db := openDB(b, testenv.Database(b))
	db.SetMaxOpenConns(cfg.WorkerConcurrency)
	bodies := lifecycleBodies(19*20, time.Now())
	b.ResetTimer()
	s, err := rawTx(db, bodies, fmt.Sprint(time.Now().UnixNano()), cfg.WorkerConcurrency, b.N)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	report(b, s, "tx")
}

// BenchmarkIngest posts signed webhooks to the api's handler (real
// broker.Publisher, real HTTP on loopback), each answered 200 after a
// confirmed enqueue; the raw one-confirm-per-message publish and the
// least honest endpoint run beside it with as many operations, for the
// ratios.
func BenchmarkIngest(b *testing.B) {
	body := invoiceEvent("ingest")
	for _, c := range concurrencies {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			r := newRabbit(b)
			url := ingestServer(b, r)
			client := httpClient(c)
			reqs := signEvents("ingest", 64)
			b.ResetTimer()
			s, err := post(client, url, reqs, c, b.N)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			r.purge(b)
			raw, err := rawPublish(r, body, c, b.N, 1)
			if err != nil {
				b.Fatal(err)
			}
			r.purge(b)
			honest, err := post(client, honestServer(b, r), reqs, c, b.N)
			if err != nil {
				b.Fatal(err)
			}
			r.purge(b)
			report(b, s, "req")
			b.ReportMetric(raw.Rate(), "raw-msg/s")
			b.ReportMetric(s.Rate()/raw.Rate(), "ratio")
			b.ReportMetric(honest.Rate(), "honest-req/s")
			b.ReportMetric(s.Rate()/honest.Rate(), "honest-ratio")
		})
	}
}

// BenchmarkProcessing drains a work queue pre-filled with b.N lifecycle
// events through the worker into a fresh database, one event per
// transaction and in the configured batches; the raw per-event
// transaction runs beside it, for the ratio.
func BenchmarkProcessing(b *testing.B) {
	cfg := settings(b)
	for _, size := range []int{1, cfg.WorkerBatchSize} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			bodies := lifecycleBodies(b.N, time.Now())
			b.ResetTimer()
			s, err := processing(b, bodies, size)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			db := openDB(b, testenv.Database(b))
			db.SetMaxOpenConns(cfg.WorkerConcurrency)
			settle(b)
			raw, err := rawTx(db, bodies, "beside", cfg.WorkerConcurrency, b.N)
			if err != nil {
				b.Fatal(err)
			}
			report(b, s, "event")
			b.ReportMetric(raw.Rate(), "raw-tx/s")
			b.ReportMetric(s.Rate()/raw.Rate(), "ratio")
		})
	}
}
