package consumer_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stripe-billing/billing/consumer"
	"github.com/stripe-billing/billing/internal/testenv"
)

// logRecords keeps every log record's message and attributes.
type logRecords struct {
	mu   sync.Mutex
	recs []map[string]string
}

func (l *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecords) WithAttrs(as []slog.Attr) slog.Handler    { return &withAttrs{l, as} }
func (l *logRecords) WithGroup(string) slog.Handler            { return l }
func (l *logRecords) Handle(_ context.Context, r slog.Record) error {
	return l.add(r, nil)
}

func (l *logRecords) add(r slog.Record, base []slog.Attr) error {
	m := map[string]string{"msg": r.Message}
	for _, a := range base {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, m)
	return nil
}

// find returns the records with message msg.
func (l *logRecords) find(msg string) []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]string
	for _, r := range l.recs {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

type withAttrs struct {
	l  *logRecords
	as []slog.Attr
}

func (w *withAttrs) Enabled(context.Context, slog.Level) bool { return true }
func (w *withAttrs) WithAttrs(as []slog.Attr) slog.Handler {
	return &withAttrs{w.l, append(append([]slog.Attr(nil), w.as...), as...)}
}
func (w *withAttrs) WithGroup(string) slog.Handler { return w }
func (w *withAttrs) Handle(_ context.Context, r slog.Record) error {
	return w.l.add(r, w.as)
}

// TestPipeline shows that a batch goes through the same middleware as a
// single event: a panic in the batch handler is recovered and logged by
// Recover, an overrun is cut by Timeout and logged by Log, and in both
// cases the events are then handled one at a time, through the pipeline
// too, and acked.
func TestPipeline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		batch   consumer.BatchHandlerFunc
		wantLog string
		check   func(t *testing.T, r map[string]string)
	}{
		{
			name:    "PanicInBatchIsRecovered",
			batch:   func(context.Context, []consumer.Delivery) ([]error, error) { panic("boom") },
			wantLog: "event handler panicked",
			check: func(t *testing.T, r map[string]string) {
				if r["panic"] != "boom" || r["events"] != "3" {
					t.Errorf("panic record %v, want panic boom and events 3", r)
				}
			},
		},
		{
			name: "OverrunBatchTimesOut",
			batch: func(ctx context.Context, ds []consumer.Delivery) ([]error, error) {
				<-ctx.Done() // only Timeout ends this
				return nil, ctx.Err()
			},
			wantLog: "batch failed",
			check: func(t *testing.T, r map[string]string) {
				if r["class"] != "transient" || r["events"] != "3" || r["error"] != context.DeadlineExceeded.Error() {
					t.Errorf("batch failure record %v, want class transient, events 3, the deadline", r)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := setup(t, []time.Duration{time.Minute}, 3)
			logs := &logRecords{}
			h.logger = slog.New(logs)
			for i := range 3 {
				id := fmt.Sprintf("evt_mw%d", i)
				h.publish(id, "invoice.paid", eventJSON(id, "invoice.paid"))
			}
			var singles atomic.Int32
			single := consumer.HandlerFunc(func(context.Context, consumer.Delivery) error { singles.Add(1); return nil })
			outcomes := &counter{}
			h.start(single, h.router(nil), func(c *consumer.Config) {
				batched(8, 2*time.Second, tt.batch, outcomes)(c) // the 3 events, published first, make one batch
				c.HandlerTimeout = 300 * time.Millisecond
			})
			testenv.Eventually(t, 10*time.Second, func() bool { return outcomes.get("acked") == 3 }, "3 events acked (now %d)", outcomes.get("acked"))
			recs := logs.find(tt.wantLog)
			if len(recs) != 1 {
				t.Fatalf("%d %q records, want 1 from the batch path", len(recs), tt.wantLog)
			}
			tt.check(t, recs[0])
			if n := singles.Load(); n != 3 {
				t.Errorf("single path handled %d events, want 3", n)
			}
			// The single path logs through the same Log middleware.
			if n := len(logs.find("event handled")); n != 3 {
				t.Errorf("%d \"event handled\" records, want 3", n)
			}
			if n := outcomes.get("parked") + outcomes.get("retried"); n != 0 {
				t.Errorf("%d events parked or retried, want none", n)
			}
		})
	}
}

// TestLogNamesReplays shows that Log tells a replayed event from a first
// delivery, one by one and in a failed batch.
func TestLogNamesReplays(t *testing.T) {
	t.Parallel()
	ds := []consumer.Delivery{{ID: "evt_replayed", Type: "invoice.paid", Attempt: 1, Replays: 2}, {ID: "evt_first", Type: "invoice.paid", Attempt: 1}}
	logs := &logRecords{}
	ok := consumer.BatchHandlerFunc(func(_ context.Context, ds []consumer.Delivery) ([]error, error) { return make([]error, len(ds)), nil })
	if _, err := consumer.Log(slog.New(logs))(ok).HandleBatch(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	byID := map[string]map[string]string{}
	for _, r := range logs.find("event handled") {
		byID[r["event_id"]] = r
	}
	if r := byID["evt_replayed"]; r["replays"] != "2" || r["batch"] != "2" {
		t.Errorf("replayed event's record %v, want replays 2 in a batch of 2", r)
	}
	if r, ok := byID["evt_first"]; !ok || r["replays"] != "" {
		t.Errorf("first delivery's record %v, want one without replays", r)
	}

	failed := consumer.BatchHandlerFunc(func(context.Context, []consumer.Delivery) ([]error, error) { return nil, fmt.Errorf("boom") })
	_, _ = consumer.Log(slog.New(logs))(failed).HandleBatch(context.Background(), ds)
	if recs := logs.find("batch failed"); len(recs) != 1 || recs[0]["replayed"] != "1" {
		t.Errorf("batch failure records %v, want one naming 1 replayed event", recs)
	}
}
