package bench_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/stripe/stripe-go/v76/webhook"

	"github.com/stripe-billing/billing/api"
	"github.com/stripe-billing/billing/bench"
	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/config"
	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/retry"
	"github.com/stripe-billing/billing/verify"
)

const secret = "whsec_bench_only"

// settings are the configured defaults (or the environment's values):
// the benchmarks measure what a deployment would run.
func settings(tb testing.TB) config.Config {
	tb.Helper()
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		tb.Fatal(err)
	}
	return cfg
}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// invoiceEvent is a realistic invoice.paid event of about 3 KiB: the
// billingtest invoice with the line items, discounts and totals a real
// invoice carries.
func invoiceEvent(id string) []byte {
	inv := billingtest.Invoice("in_bench_"+id, "cus_bench", "sub_bench", "paid", 4200, 4200)
	var lines []any
	for i := range 5 {
		lines = append(lines, map[string]any{
			"id": fmt.Sprintf("il_%s_%d", id, i), "object": "line_item", "amount": 840, "currency": "usd",
			"description": fmt.Sprintf("1 × Pro plan seat %d (at $8.40 / month)", i), "discountable": true,
			"livemode": false, "period": map[string]any{"start": 1700000000, "end": 1702592000},
			"plan":      map[string]any{"id": "price_monthly", "object": "plan", "amount": 840, "interval": "month", "product": "prod_pro"},
			"price":     map[string]any{"id": "price_monthly", "object": "price", "unit_amount": 840, "currency": "usd", "type": "recurring"},
			"proration": false, "quantity": 1, "subscription": "sub_bench", "subscription_item": "si_bench", "type": "subscription",
		})
	}
	inv["lines"] = map[string]any{"object": "list", "data": lines, "has_more": false, "total_count": len(lines), "url": "/v1/invoices/in_bench/lines"}
	return billingtest.Event("evt_bench_"+id, "invoice.paid", time.Now(), inv)
}

// run performs n operations with conc goroutines and records each one's
// latency. op gets the goroutine's index and the operation's number.
func run(conc, n int, setup func(worker int) (op func(i int) error, done func(), err error)) (bench.Stats, error) {
	ops := make([]func(int) error, conc)
	for w := range conc {
		op, done, err := setup(w)
		if err != nil {
			return bench.Stats{}, err
		}
		if done != nil {
			defer done()
		}
		ops[w] = op
	}
	var next atomic.Int64
	lat := make([][]time.Duration, conc)
	errs := make([]error, conc)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range conc {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				if err := ops[w](i); err != nil {
					errs[w] = err
					return
				}
				lat[w] = append(lat[w], time.Since(t))
			}
		})
	}
	wg.Wait()
	s := bench.Stats{N: n, Elapsed: time.Since(start)}
	for w := range conc {
		if errs[w] != nil {
			return s, errs[w]
		}
		s.Latencies = append(s.Latencies, lat[w]...)
	}
	return s, nil
}

// rabbit is a namespace's topology on the local broker and a raw
// connection for the limits.
type rabbit struct {
	topo broker.Topology
	conn *amqp.Connection
	ch   *amqp.Channel
}

func newRabbit(tb testing.TB) *rabbit {
	tb.Helper()
	cfg := settings(tb)
	r := &rabbit{topo: broker.NewTopology(testenv.Namespace(tb), cfg.RetryDelays, cfg.WorkDeliveryLimit)}
	var err error
	if r.conn, err = amqp.Dial(testenv.AMQPURL()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.conn.Close() })
	if r.ch, err = r.conn.Channel(); err != nil {
		tb.Fatal(err)
	}
	if err := r.topo.Declare(context.Background(), r.ch, testenv.ManagementClient(tb)); err != nil {
		tb.Fatal(err)
	}
	return r
}

func (r *rabbit) purge(tb testing.TB) {
	tb.Helper()
	if _, err := r.ch.QueuePurge(r.topo.Work, false); err != nil {
		tb.Fatal(err)
	}
}

func publishing(body []byte) amqp.Publishing {
	return amqp.Publishing{ContentType: "application/json", DeliveryMode: amqp.Persistent, Body: body, MessageId: "evt_bench", Type: "invoice.paid"}
}

// rawPublish publishes n copies of body to the events exchange (routed to
// the quorum work queue), persistent and mandatory, on one confirm
// channel per goroutine. window is the most unconfirmed messages per
// channel: 1 waits for each confirm before the next publish.
func rawPublish(r *rabbit, body []byte, conc, n, window int) (bench.Stats, error) {
	type channel struct {
		ch      *amqp.Channel
		pending []*amqp.DeferredConfirmation
	}
	var chans []*channel
	defer func() {
		for _, c := range chans {
			c.ch.Close()
		}
	}()
	wait := func(dc *amqp.DeferredConfirmation) error {
		if !dc.Wait() {
			return fmt.Errorf("bench: publish %d nacked", dc.DeliveryTag)
		}
		return nil
	}
	s, err := run(conc, n, func(int) (func(int) error, func(), error) {
		ch, err := r.conn.Channel()
		if err != nil {
			return nil, nil, err
		}
		if err := ch.Confirm(false); err != nil {
			return nil, nil, err
		}
		c := &channel{ch: ch}
		chans = append(chans, c)
		op := func(int) error {
			dc, err := ch.PublishWithDeferredConfirm(r.topo.Events, "invoice.paid", true, false, publishing(body))
			if err != nil {
				return err
			}
			c.pending = append(c.pending, dc)
			for len(c.pending) >= window {
				if err := wait(c.pending[0]); err != nil {
					return err
				}
				c.pending = c.pending[1:]
			}
			return nil
		}
		return op, nil, nil
	})
	if err != nil {
		return s, err
	}
	// Asynchronous runs: wait for the confirms still outstanding and count
	// the time.
	start := time.Now()
	for _, c := range chans {
		for _, dc := range c.pending {
			if err := wait(dc); err != nil {
				return s, err
			}
		}
	}
	s.Elapsed += time.Since(start)
	if window > 1 {
		s.Latencies = nil // the time between a publish and its confirm is not measured
	}
	return s, nil
}

// httpClient keeps conc connections to each server alive, as Stripe's
// senders would. The idle pool has no limit across servers (MaxIdleConns
// 0): with a limit of conc, the servers measured in turn evicted each
// other's connections, and every round began by opening conc new ones.
func httpClient(conc int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConnsPerHost: conc, MaxConnsPerHost: conc,
			IdleConnTimeout: time.Minute, DisableCompression: true,
		},
	}
}

// serve runs h on a loopback port until the test ends and returns its URL.
func serve(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// bareHandler reads the body and answers 200: the floor of any handler.
func bareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})
}

// signedRequests is a pool of bodies, each with a fresh signature.
type signedRequests struct {
	bodies  [][]byte
	headers []string
}

// signEvents signs n distinct realistic invoice events (ids prefix_0 ...):
// Stripe sends different events at once, not one event many times.
func signEvents(prefix string, n int) signedRequests {
	var s signedRequests
	for k := range n {
		body := invoiceEvent(fmt.Sprintf("%s_%d", prefix, k))
		p := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
		s.bodies = append(s.bodies, body)
		s.headers = append(s.headers, p.Header)
	}
	return s
}

func sign(body []byte, n int) signedRequests {
	var s signedRequests
	for range n {
		p := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: body, Secret: secret, Timestamp: time.Now()})
		s.bodies = append(s.bodies, body)
		s.headers = append(s.headers, p.Header)
	}
	return s
}

// post sends n signed webhooks to url from conc goroutines; any answer
// but 200 is an error.
func post(client *http.Client, url string, reqs signedRequests, conc, n int) (bench.Stats, error) {
	return postSplit(client, []string{url}, reqs, conc, n)
}

// postSplit is post with the requests spread over urls in turn, as a
// balancer in front of several api processes would.
func postSplit(client *http.Client, urls []string, reqs signedRequests, conc, n int) (bench.Stats, error) {
	return run(conc, n, func(int) (func(int) error, func(), error) {
		return func(i int) error {
			k := i % len(reqs.bodies)
			req, err := http.NewRequest(http.MethodPost, urls[i%len(urls)], bytes.NewReader(reqs.bodies[k]))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Stripe-Signature", reqs.headers[k])
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("bench: POST answered %d", resp.StatusCode)
			}
			return nil
		}, nil, nil
	})
}

// ingestServer is the api's handler with a real confirm Publisher, on a
// loopback port; it returns the webhook URL.
func ingestServer(tb testing.TB, r *rabbit) string {
	tb.Helper()
	cfg := settings(tb)
	conn := broker.NewConn(broker.ConnConfig{URL: testenv.AMQPURL(), Name: "bench api", Topology: r.topo, CoalesceWrites: true}, quietLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = conn.Run(ctx) }()
	tb.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if _, err := conn.Await(wctx); err != nil {
		tb.Fatal(err)
	}
	pub := broker.NewPublisher(conn, cfg.PublisherChannels, cfg.PublishTimeout)
	srv, err := api.New(api.Config{Exchange: r.topo.Events, Secrets: []string{secret}, PublishTimeout: cfg.PublishTimeout}, quietLogger(), pub)
	if err != nil {
		tb.Fatal(err)
	}
	return serve(tb, srv.Handler()) + "/webhooks/stripe"
}

// rawTx runs n transactions shaped like one processed event (ledger
// insert with the payload, object upsert, history insert) on conc
// connections, with bodies from the lifecycle stream.
func rawTx(db *sql.DB, bodies [][]byte, run0 string, conc, n int) (bench.Stats, error) {
	now := time.Now().UTC()
	return run(conc, n, func(int) (func(int) error, func(), error) {
		return func(i int) error {
			ctx := context.Background()
			tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
			if err != nil {
				return err
			}
			defer tx.Rollback()
			id := fmt.Sprintf("evt_raw_%s_%d", run0, i)
			obj := fmt.Sprintf("cus_raw_%s_%d", run0, i%200)
			if _, err := tx.ExecContext(ctx, `INSERT INTO stripe_events (id, type, api_version, created, status, attempts, payload, received_at, processed_at)
				VALUES (?, 'customer.updated', '2023-10-16', ?, 'processed', 1, ?, ?, ?)`, id, now, bodies[i%len(bodies)], now, now); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO customers (stripe_id, email, livemode, last_event_id, last_event_created, created_at, updated_at)
				VALUES (?, ?, FALSE, ?, ?, ?, ?)
				ON DUPLICATE KEY UPDATE email = VALUES(email), last_event_id = VALUES(last_event_id),
				  last_event_created = VALUES(last_event_created), updated_at = VALUES(updated_at)`,
				obj, obj+"@example.com", id, now, now, now); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO payment_status_history (object_type, object_id, status, event_id, occurred_at, recorded_at)
				VALUES ('customer', ?, 'active', ?, ?, ?)`, obj, id, now, now); err != nil {
				return err
			}
			return tx.Commit()
		}, nil, nil
	})
}

// lifecycleBodies returns n events of interleaved customer lifecycles in
// Stripe's order, the last created by end (ids derive from it): customer
// i starts i seconds after the first and its lifecycle spans 51 seconds,
// and an event created further in the future than the verifier's
// tolerance would not be applied (12,000 events from now reached 11
// minutes ahead).
func lifecycleBodies(n int, end time.Time) [][]byte {
	customers := (n + 18) / 19
	return billingtest.Lifecycle(customers, end.Add(-time.Duration(customers+51)*time.Second))[:n]
}

// prefill publishes bodies to the events exchange as the api does
// (routing key and type = the event type, message id = the event id),
// with asynchronous confirms.
func prefill(r *rabbit, bodies [][]byte) error {
	ch, err := r.conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return err
	}
	var pending []*amqp.DeferredConfirmation
	for _, b := range bodies {
		ev, err := billing.Parse(b)
		if err != nil {
			return err
		}
		dc, err := ch.PublishWithDeferredConfirm(r.topo.Events, ev.Type, true, false, testenv.Signed(amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: ev.ID, Type: ev.Type,
			Timestamp: time.Now().UTC(), AppId: "billing-api", Body: b,
		}))
		if err != nil {
			return err
		}
		pending = append(pending, dc)
	}
	for _, dc := range pending {
		if !dc.Wait() {
			return fmt.Errorf("bench: prefill publish %d nacked", dc.DeliveryTag)
		}
	}
	return nil
}

// counter counts the consumer's outcomes.
type counter struct {
	acked, other atomic.Int64
	target       int64
	done         chan struct{}
	once         sync.Once
}

func (c *counter) Observe(o consumer.Outcome) {
	if o.Result != "acked" {
		c.other.Add(1)
		return
	}
	if c.acked.Add(1) == c.target {
		c.once.Do(func() { close(c.done) })
	}
}

// processing drains a work queue pre-filled with bodies by a worker wired
// as `billing worker` wires it (consumer, ledger.Processor, retry
// router), with batchSize events per transaction, into a fresh database.
// The time runs from the consumer's start to the last ack.
func processing(tb testing.TB, bodies [][]byte, batchSize int) (bench.Stats, error) {
	tb.Helper()
	return processingInto(tb, testenv.Database(tb), bodies, batchSize)
}

// processingEnvelopeAgain is processing by the worker as it was before
// the envelope was read once (issue 26): the ledger reads each body's
// envelope again after the Verifier read it. The baseline of the worker's
// CPU row.
func processingEnvelopeAgain(tb testing.TB, bodies [][]byte, batchSize int) (bench.Stats, error) {
	tb.Helper()
	return processingWith(tb, testenv.Database(tb), bodies, batchSize, true)
}

// doneEvents counts the ledger's processed and ignored events received
// since since: a range of the (status, received_at) index, small however
// large the ledger.
func doneEvents(store *models.Store, since time.Time) (int64, error) {
	var n int64
	err := store.DB().Model(&models.StripeEvent{}).
		Where("status IN ? AND received_at >= ?", []string{models.EventProcessed, models.EventIgnored}, since).Count(&n).Error
	return n, err
}

// processingInto is processing into the database dsn, which may hold a
// ledger already.
func processingInto(tb testing.TB, dsn string, bodies [][]byte, batchSize int) (bench.Stats, error) {
	tb.Helper()
	return processingWith(tb, dsn, bodies, batchSize, false)
}

// processingWith is processingInto; envelopeAgain drops the envelope the
// Verifier read from each delivery, so that the ledger reads it again;
// opts configure the worker's ledger.Processor (a Stripe fetcher).
func processingWith(tb testing.TB, dsn string, bodies [][]byte, batchSize int, envelopeAgain bool, opts ...ledger.Option) (bench.Stats, error) {
	tb.Helper()
	cfg := settings(tb)
	r := newRabbit(tb)
	store := openStore(tb, dsn, cfg)
	// Closed when the run ends, not with the test: the table's runs would
	// otherwise hold their idle connections to the end, and the worker
	// processes measured last meet MySQL's max_connections (1040).
	defer store.Close()
	since := time.Now().UTC()
	if err := prefill(r, bodies); err != nil {
		return bench.Stats{}, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	count := &counter{target: int64(len(bodies)), done: make(chan struct{})}
	c, err := newWorker(tb, ctx, &wg, r, store, batchSize, count, envelopeAgain, opts...)
	if err != nil {
		return bench.Stats{}, err
	}
	settle(tb)
	var s bench.Stats
	restore := workerRuntime()
	defer restore()
	use, err := processingProcs().Measure(func() error {
		start := time.Now()
		wg.Go(func() { _ = c.Run(ctx) })
		select {
		case <-count.done:
		case <-time.After(5 * time.Minute):
			return fmt.Errorf("bench: %d of %d events acked after 5 minutes", count.acked.Load(), len(bodies))
		}
		s = bench.Stats{N: len(bodies), Elapsed: time.Since(start)}
		return nil
	})
	if err != nil {
		return s, err
	}
	s.CPU = use
	if n := count.other.Load(); n > 0 {
		return s, fmt.Errorf("bench: %d deliveries were not acked at once", n)
	}
	done, err := doneEvents(store, since)
	if err != nil {
		return s, err
	}
	if done != int64(len(bodies)) {
		return s, fmt.Errorf("bench: %d ledger rows done, want %d", done, len(bodies))
	}
	return s, nil
}

// newWorker wires a worker as `billing worker` wires it (consumer,
// ledger.Processor, retry router) on r's work queue into store, with
// batchSize events per transaction and obs told of each outcome; its
// connections run under ctx in wg, the consumer once the caller runs it.
func newWorker(tb testing.TB, ctx context.Context, wg *sync.WaitGroup, r *rabbit, store *models.Store, batchSize int, obs consumer.Observer, envelopeAgain bool, opts ...ledger.Option) (*consumer.Consumer, error) {
	tb.Helper()
	cfg := settings(tb)
	conn := func(name string) *broker.Conn {
		c := broker.NewConn(broker.ConnConfig{URL: testenv.AMQPURL(), Name: name, Topology: r.topo}, quietLogger())
		wg.Go(func() { _ = c.Run(ctx) })
		return c
	}
	consume, publish := conn("bench worker consumer"), conn("bench worker publisher")
	policy := retry.Policy{Delays: cfg.RetryDelays, MaxAttempts: cfg.MaxAttempts, Jitter: 0.2}
	router, err := dlq.NewRouter(dlq.RouterConfig{Topology: r.topo, Policy: policy}, quietLogger(),
		broker.NewPublisher(publish, cfg.WorkerConcurrency, cfg.PublishTimeout), store)
	if err != nil {
		return nil, err
	}
	proc := ledger.NewProcessor(store, quietLogger(), opts...)
	handler, _ := ledger.Handlers(proc)
	ccfg := consumer.Config{
		Queue: r.topo.Work, Concurrency: cfg.WorkerConcurrency, ShutdownTimeout: cfg.ShutdownTimeout,
		Name: "bench-worker", Ping: store.Ping, Observer: obs,
		// As the worker: each signature checked again before applying.
		Verifier: testenv.Verifier(tb, nil),
	}
	withBatches(&ccfg, proc, batchSize, cfg)
	if envelopeAgain {
		handler, ccfg.Batch = consumer.HandlerFunc(func(ctx context.Context, d consumer.Delivery) error {
			d.Envelope = verify.Envelope{}
			return handler.HandleEvent(ctx, d)
		}), dropEnvelopes(ccfg.Batch)
	}
	return consumer.New(ccfg, quietLogger(), consume, handler, router)
}

// workerRuntime gives this process the garbage collector and scheduler
// `billing worker` gives itself (cmd/billing/gc.go: GOGC 400, a 96 MiB
// soft memory limit and GOMAXPROCS 1 unless the environment sets them; a
// command cannot be imported, so its values are repeated here), so that
// the worker run in process measures as the binary does, until restore;
// the raw transaction's client keeps Go's defaults.
func workerRuntime() (restore func()) {
	percent := debug.SetGCPercent(100)
	debug.SetGCPercent(percent)
	limit, procs := debug.SetMemoryLimit(-1), runtime.GOMAXPROCS(0)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(96 << 20)
	}
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
	return func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
		runtime.GOMAXPROCS(procs)
	}
}

// settle waits, at most 10 s, until RabbitMQ and MariaDB are at rest
// (under 5% of a core over 200 ms), so that a measurement counts only its
// own work: not the segments RabbitMQ still writes or deletes for a
// prefill just confirmed or a queue just purged, nor the pages InnoDB
// still flushes and purges after the run before. Unsettled, it measures
// anyway and says so.
func settle(tb testing.TB) {
	tb.Helper()
	var p bench.Procs
	servers(&p)
	waited, ok, err := p.Settle(0.05, 200*time.Millisecond, 10*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	if !ok {
		tb.Logf("bench: RabbitMQ and MariaDB still busy after %s; measuring anyway", waited.Round(time.Millisecond))
	}
}

// processingProcs are the processes that share the work of processing:
// this one (the worker, or the raw transaction's client), RabbitMQ and
// MariaDB.
func processingProcs() *bench.Procs {
	p := &bench.Procs{}
	p.Add(thisProcess, os.Getpid())
	servers(p)
	return p
}

func openStore(tb testing.TB, dsn string, cfg config.Config) *models.Store {
	tb.Helper()
	store, err := models.Open(context.Background(), dsn, models.PoolConfig{
		MaxOpenConns: cfg.DBMaxOpenConns, MaxIdleConns: cfg.DBMaxIdleConns, ConnMaxLifetime: cfg.DBConnMaxLifetime,
	}, quietLogger())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = store.Close() })
	return store
}

// openDB opens the raw pool of the transaction limit with the driver
// settings models.Open uses (interpolated arguments, one round trip per
// statement), so the limit is the best this database does.
func openDB(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	cfg.InterpolateParams = true
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// thisProcess names the test process, the in-process worker's, among
// the processes whose CPU a measurement reads.
const thisProcess = "this process"

// dropEnvelopes passes deliveries on to h without the envelope the
// Verifier read (nil h: none).
func dropEnvelopes(h consumer.BatchHandler) consumer.BatchHandler {
	if h == nil {
		return nil
	}
	return consumer.BatchHandlerFunc(func(ctx context.Context, ds []consumer.Delivery) ([]error, error) {
		for i := range ds {
			ds[i].Envelope = verify.Envelope{}
		}
		return h.HandleBatch(ctx, ds)
	})
}
