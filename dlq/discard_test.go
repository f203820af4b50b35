package dlq_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/dlq/dlqtest"
	"github.com/stripe-billing/billing/failure"
)

func TestByEvent(t *testing.T) {
	t.Parallel()
	p := func(id string) dlq.Parked { return dlq.Parked{EventID: id} }
	tests := []struct {
		name string
		in   []dlq.Parked
		want string // id:copies in order
	}{
		{"none", nil, ""},
		{"one copy each", []dlq.Parked{p("a"), p("b")}, "a:1 b:1"},
		{"copies apart stand where the first is", []dlq.Parked{p("a"), p("b"), p("a"), p("c"), p("a")}, "a:3 b:1 c:1"},
		{"no id stands alone", []dlq.Parked{p(""), p("a"), p("")}, ":1 a:1 :1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, e := range dlq.ByEvent(tt.in) {
				got = append(got, fmt.Sprintf("%s:%d", e.EventID, e.Copies))
			}
			if g := strings.Join(got, " "); g != tt.want {
				t.Errorf("ByEvent = %q, want %q", g, tt.want)
			}
		})
	}
}

// TestDLQDiscard parks five messages, two of them copies of one event, and
// discards that event: both copies go, after the record, and the others
// stay in their order. A failed record or an event not parked removes
// nothing.
func TestDLQDiscard(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	setup := func(t *testing.T) (*dlqtest.Env, []string, string) {
		e := dlqtest.NewEnv(t, 20)
		a, b, c, d := billingtest.NewEventID(), billingtest.NewEventID(), billingtest.NewEventID(), billingtest.NewEventID()
		order := []string{a, b, c, b, d}
		for i, id := range order {
			e.Park(t, id, "invoice.paid", failure.Permanent, now.Add(time.Duration(i-10)*time.Minute), nil)
		}
		e.WaitReady(t, e.Topo.DLQ, len(order))
		return e, order, b
	}
	left := func(t *testing.T, e *dlqtest.Env, n int) string {
		e.WaitReady(t, e.Topo.DLQ, n)
		var ids []string
		for _, d := range e.TakeAll(t, e.Topo.DLQ) {
			ids = append(ids, d.MessageId)
		}
		return strings.Join(ids, ",")
	}

	t.Run("AllCopiesGoOthersKeepTheirOrder", func(t *testing.T) {
		t.Parallel()
		e, order, b := setup(t)
		var recorded []dlq.Parked
		copies, err := e.Queue(t, now).Discard(context.Background(), b, func(_ context.Context, ps []dlq.Parked) error {
			recorded = ps
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(copies) != 2 || len(recorded) != 2 || recorded[0].EventID != b || recorded[1].EventID != b {
			t.Errorf("copies %d, recorded %+v, want two copies of %s", len(copies), recorded, b)
		}
		if g, w := left(t, e, 3), strings.Join([]string{order[0], order[2], order[4]}, ","); g != w {
			t.Errorf("DLQ holds %s, want %s", g, w)
		}
		if n := e.Ready(t, e.Topo.Work); n != 0 {
			t.Errorf("the work queue holds %d messages, want none", n)
		}
	})
	t.Run("FailedRecordRemovesNothing", func(t *testing.T) {
		t.Parallel()
		e, order, b := setup(t)
		boom := errors.New("mysql down")
		_, err := e.Queue(t, now).Discard(context.Background(), b, func(context.Context, []dlq.Parked) error { return boom })
		if !errors.Is(err, boom) {
			t.Fatalf("err = %v, want the record's error", err)
		}
		if g, w := left(t, e, len(order)), strings.Join(order, ","); g != w {
			t.Errorf("DLQ holds %s, want %s", g, w)
		}
	})
	t.Run("NotParked", func(t *testing.T) {
		t.Parallel()
		e, order, _ := setup(t)
		called := false
		_, err := e.Queue(t, now).Discard(context.Background(), billingtest.NewEventID(), func(context.Context, []dlq.Parked) error {
			called = true
			return nil
		})
		if !errors.Is(err, dlq.ErrNotParked) || called {
			t.Fatalf("err = %v, record called %v; want ErrNotParked and no record", err, called)
		}
		if g, w := left(t, e, len(order)), strings.Join(order, ","); g != w {
			t.Errorf("DLQ holds %s, want %s", g, w)
		}
	})
}

// TestDLQShow returns every copy of one event with its headers and body,
// and leaves the DLQ as it was.
func TestDLQShow(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	e := dlqtest.NewEnv(t, 20)
	a, b := billingtest.NewEventID(), billingtest.NewEventID()
	order := []string{b, a, b}
	for _, id := range order {
		e.Park(t, id, "customer.updated", failure.Schema, now.Add(-time.Hour), nil)
	}
	e.WaitReady(t, e.Topo.DLQ, 3)
	got, err := e.Queue(t, now).Show(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("%d copies, want 2", len(got))
	}
	for _, m := range got {
		if m.EventID != b || m.Class != failure.Schema || string(m.Delivery.Body) != string(dlqtest.ParkedBody(b, "customer.updated")) || m.Delivery.Headers["billing-error-class"] != "schema" {
			t.Errorf("copy %+v", m)
		}
	}
	e.WaitReady(t, e.Topo.DLQ, 3)
	var ids []string
	for _, d := range e.TakeAll(t, e.Topo.DLQ) {
		ids = append(ids, d.MessageId)
	}
	if g, w := strings.Join(ids, ","), strings.Join(order, ","); g != w {
		t.Errorf("DLQ holds %s, want %s", g, w)
	}
}

// TestDLQMovePace: a paced replay waits between publishes: three messages
// at one per 150ms take at least two waits.
func TestDLQMovePace(t *testing.T) {
	t.Parallel()
	now := time.Now().UTC()
	e := dlqtest.NewEnv(t, 20)
	for range 3 {
		e.Park(t, billingtest.NewEventID(), "invoice.paid", failure.Transient, now, nil)
	}
	e.WaitReady(t, e.Topo.DLQ, 3)
	const pace = 150 * time.Millisecond
	start := time.Now()
	res, err := e.Queue(t, now).Move(context.Background(), dlq.MoveOptions{Pace: pace})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); len(res.Moved) != 3 || took < 2*pace {
		t.Errorf("moved %d in %s, want 3 in at least %s", len(res.Moved), took, 2*pace)
	}
	e.WaitReady(t, e.Topo.Work, 3)
}
