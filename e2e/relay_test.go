package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/changes"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/relay/relaytest"
)

// feedQueue declares a queue bound to the change feed with "#" and
// returns it, with a channel to take its messages.
func (s *stack) feedQueue() (*amqp.Channel, string) {
	s.t.Helper()
	ch := testenv.Channel(s.t)
	queue := s.ns + ".changes.all"
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		s.t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "#", s.topo.Changes, false, nil); err != nil {
		s.t.Fatal(err)
	}
	return ch, queue
}

// TestRelayKilled kills `billing relay` with SIGKILL while changes stream
// into the outbox and it publishes them, then starts another: every
// change reaches a queue bound to the feed, each object's changes first
// delivered in order, a change delivered twice with the same id; SIGTERM
// then stops the second at once.
func TestRelayKilled(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ch, queue := s.feedQueue()
	store, err := models.Open(context.Background(), s.dsn, models.PoolConfig{MaxOpenConns: 2, MaxIdleConns: 2}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	published := func() (n int) {
		if err := s.db.QueryRow("SELECT COUNT(*) FROM change_outbox WHERE published_at IS NOT NULL").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// The stream: 20 changes of each of 10 objects a statement, until
	// stopped.
	var out relaytest.Outbox
	objects := make([]string, 10)
	for i := range objects {
		objects[i] = fmt.Sprintf("sub_kill_%d", i)
	}
	stop, wrote := make(chan struct{}), make(chan struct{})
	var once sync.Once
	stopWriting := func() { once.Do(func() { close(stop); <-wrote }) }
	defer stopWriting()
	go func() {
		defer close(wrote)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			out.Write(t, store.DB(), 20, objects...)
		}
	}()

	first := s.start("relay", nil)
	testenv.Eventually(t, 30*time.Second, func() bool { return published() >= 2000 }, "the first relay published 2000 changes")
	if err := first.cmd.Process.Kill(); err != nil { // SIGKILL: no drain, no lock release
		t.Fatal(err)
	}
	<-first.exited
	before := published()
	if before >= out.Written() {
		t.Fatalf("the relay was killed after publishing all %d changes: not in the middle of the stream", out.Written())
	}
	second := s.start("relay", nil)
	testenv.Eventually(t, 30*time.Second, func() bool { return published() >= before+2000 }, "the second relay publishes")
	stopWriting()
	testenv.Eventually(t, 60*time.Second, func() bool { return published() == out.Written() }, "the outbox drained")
	got := testenv.TakeAll(t, ch, queue)
	dups := out.Check(t, got)
	t.Logf("%d changes written, %d published before the kill, %d messages delivered (%d duplicates)", out.Written(), before, len(got), dups)
	if _, code := second.stop(t, 10*time.Second); code != 0 {
		t.Errorf("the second relay exited %d on SIGTERM, want 0", code)
	}
	if second.count("relay publishing") != 1 {
		t.Errorf("the second relay logged %d times that it publishes, want 1", second.count("relay publishing"))
	}
}

// TestChangeFeed runs the api, the worker and the relay as processes
// under billing simulate's load: every change the worker wrote reaches a
// queue bound to the feed, each object's changes first delivered in
// order without a gap (changes.Tracker), the last one delivered of each
// customer, subscription and invoice its row's change_seq.
func TestChangeFeed(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	ch, queue := s.feedQueue()
	api := s.startReady(nil)
	s.start("relay", nil)
	sum := startLoad(api, 300, 150, 25).wait(t, 30*time.Second)
	s.checkApplied(t, sum.Accepted, sum.AcceptedPoison, 30*time.Second)
	var written int
	testenv.Eventually(t, 30*time.Second, func() bool {
		var unpublished int
		err := s.db.QueryRow("SELECT COUNT(*), COALESCE(SUM(published_at IS NULL), 0) FROM change_outbox").Scan(&written, &unpublished)
		return err == nil && written > 0 && unpublished == 0
	}, "the worker's changes published")

	tracker := changes.NewTracker(0)
	last := map[string]uint64{} // type/id: the last sequence delivered
	delivered := 0
	for _, d := range testenv.TakeAll(t, ch, queue) {
		c, err := changes.Decode(d.Body)
		if err != nil {
			t.Fatalf("delivery %s: %v", d.MessageId, err)
		}
		v := tracker.Track(c)
		obj := c.ObjectType + "/" + c.ObjectID
		switch {
		case v.Duplicate:
			continue
		case v.Missing > 0 || v.Late || (last[obj] == 0 && c.Sequence != 1):
			t.Fatalf("%s: sequence %d after %d (%+v): not in order", obj, c.Sequence, last[obj], v)
		}
		last[obj] = c.Sequence
		delivered++
	}
	if delivered != written {
		t.Errorf("%d distinct changes delivered, %d written to the outbox", delivered, written)
	}
	for typ, table := range map[string]string{"customer": "customers", "subscription": "subscriptions", "invoice": "invoices"} {
		rows, err := s.db.Query("SELECT stripe_id, change_seq FROM " + table + " WHERE change_seq > 0")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var id string
			var seq uint64
			if err := rows.Scan(&id, &seq); err != nil {
				t.Fatal(err)
			}
			if last[typ+"/"+id] != seq {
				t.Errorf("%s %s: change_seq %d, last change delivered %d", typ, id, seq, last[typ+"/"+id])
			}
			n++
		}
		rows.Close()
		if n == 0 {
			t.Errorf("no %s has a change", typ)
		}
	}
	t.Logf("%d changes written and delivered, %d objects", written, len(last))
}
