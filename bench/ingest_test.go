package bench_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
	gormmysql "gorm.io/driver/mysql"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	gormlogger "gorm.io/gorm/logger"

	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
)

// honestChannels is the honest endpoint's pool of confirm channels.
const honestChannels = 8

// honestServer is the least an honest endpoint does, the limit ingest is
// held to: net/http, stripe-go's signature check, one persistent
// mandatory publish to the quorum work queue awaited for its confirm
// before the 200, through a pool of 8 confirm channels (a channel goes
// back to the pool as soon as the publish is written, so that 8 carry
// every request in flight), no logging, no metrics, no body parsing (the
// routing key is fixed). It returns the URL.
func honestServer(tb testing.TB, r *rabbit) string {
	tb.Helper()
	pool := make(chan *amqp.Channel, honestChannels)
	for range honestChannels {
		ch, err := r.conn.Channel()
		if err != nil {
			tb.Fatal(err)
		}
		if err := ch.Confirm(false); err != nil {
			tb.Fatal(err)
		}
		pool <- ch
	}
	return serve(tb, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if err := webhook.ValidatePayload(body, req.Header.Get("Stripe-Signature"), secret); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ch := <-pool
		dc, err := ch.PublishWithDeferredConfirm(r.topo.Events, "invoice.paid", true, false,
			amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body})
		pool <- ch
		if err != nil || !dc.Wait() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
}

// peerServer is the handler a user would write instead of the api and
// the worker: stripe-go's ConstructEventWithOptions (API version
// mismatches ignored), then one GORM transaction inside the request that
// writes the ledger row and upserts the invoice, answering 200 after the
// commit. GORM as a user opens it: database/sql's default pool, no
// logging. It returns the URL.
func peerServer(tb testing.TB) string {
	tb.Helper()
	db, err := gorm.Open(gormmysql.Open(testenv.Database(tb)), &gorm.Config{Logger: gormlogger.Discard})
	if err != nil {
		tb.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sqlDB.Close() })
	return serve(tb, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		ev, err := webhook.ConstructEventWithOptions(body, req.Header.Get("Stripe-Signature"), secret,
			webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		var inv stripe.Invoice
		if err := json.Unmarshal(ev.Data.Raw, &inv); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		now := time.Now().UTC()
		created := time.Unix(ev.Created, 0).UTC()
		err = db.WithContext(req.Context()).Transaction(func(tx *gorm.DB) error {
			if err := tx.Create(&models.StripeEvent{
				ID: ev.ID, Type: string(ev.Type), APIVersion: ev.APIVersion, Livemode: ev.Livemode, Created: &created,
				Status: models.EventProcessed, Attempts: 1, Payload: body, ReceivedAt: now, ProcessedAt: &now,
			}).Error; err != nil {
				return err
			}
			status := string(inv.Status)
			row := models.Invoice{
				StripeID: inv.ID, Status: &status, Currency: (*string)(&inv.Currency),
				AmountDue: &inv.AmountDue, AmountPaid: &inv.AmountPaid, Total: &inv.Total, Livemode: inv.Livemode,
				Ordering: models.Ordering{LastEventID: &ev.ID, LastEventCreated: &created, CreatedAt: now, UpdatedAt: now},
			}
			if inv.Customer != nil {
				row.CustomerID = &inv.Customer.ID
			}
			return tx.Clauses(clause.OnConflict{
				Columns:   []clause.Column{{Name: "stripe_id"}},
				DoUpdates: clause.AssignmentColumns([]string{"status", "amount_due", "amount_paid", "total", "last_event_id", "last_event_created", "updated_at"}),
			}).Create(&row).Error
		})
		if err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
}

// signDistinct signs n distinct invoice events of run: writers to the
// database must not meet the same event twice.
func signDistinct(run string, n int) signedRequests {
	return signEvents(fmt.Sprintf("%s_%d", run, time.Now().UnixNano()), n)
}

// TestBenchIngest measures only ingest beside the least honest endpoint
// and the broker's own floor (the raw one-confirm publish), alternating
// round after round at each concurrency, and prints each (rate, p50,
// p99), the ratio to the honest endpoint, and the CPU spent per 1,000
// requests by this process (the HTTP client, the same for each, and the
// server) and by RabbitMQ, which move less than the rates do: the
// figures of issue 13's ingest rows in a minute instead of the table's
// minutes. It runs when BILLING_BENCH=1; BENCH_ROUNDS and BENCH_OPS as
// for TestBenchTable.
func TestBenchIngest(t *testing.T) {
	if os.Getenv("BILLING_BENCH") != "1" {
		t.Skip("BILLING_BENCH=1 runs the ingest benchmark")
	}
	rounds := testenv.EnvInt(t, "BENCH_ROUNDS", 3)
	ops := testenv.EnvInt(t, "BENCH_OPS", 4000)
	r := newRabbit(t)
	apiURL, honestURL := ingestServer(t, r), honestServer(t, r)
	reqs := signEvents("ingest", 64)
	var procs bench.Procs
	procs.Add("bench", os.Getpid())
	servers(&procs)
	type measured struct {
		stats bench.Stats
		cpu   bench.CPUUse
	}
	measure := func(load func() (bench.Stats, error)) measured {
		t.Helper()
		var m measured
		var err error
		settle(t)
		m.cpu, err = procs.Measure(func() (err error) {
			m.stats, err = load()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		r.purge(t)
		return m
	}
	// The broker's own floor is measured beside them: one confirm channel
	// per goroutine, each waiting for its confirm, no HTTP. Its p99 is the
	// least an endpoint that waits for the confirm can answer in.
	body := invoiceEvent("ingest_raw")
	figure := func(m measured, unit string) string {
		s := m.stats
		return fmt.Sprintf("%s, p50 %s, p99 %s, %s", bench.PerSecond(s.Rate(), unit), bench.Millis(s.Percentile(.5)), bench.Millis(s.Percentile(.99)), m.cpu.PerThousand(ops))
	}
	for _, c := range concurrencies {
		client := httpClient(c)
		for round := range rounds {
			ingest := measure(func() (bench.Stats, error) { return post(client, apiURL, reqs, c, ops) })
			honest := measure(func() (bench.Stats, error) { return post(client, honestURL, reqs, c, ops) })
			raw := measure(func() (bench.Stats, error) { return rawPublish(r, body, c, ops, 1) })
			t.Logf("c=%d round %d: ratio %.2f×\n\tingest %s\n\thonest %s\n\traw    %s", c, round, ingest.stats.Rate()/honest.stats.Rate(), figure(ingest, "req"), figure(honest, "req"), figure(raw, "msg"))
		}
	}
}
