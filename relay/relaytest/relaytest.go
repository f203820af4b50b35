// Package relaytest helps the tests of the change feed's relay: it writes
// outbox rows as the ledger would, and checks what reached a queue bound
// to the feed.
package relaytest

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"gorm.io/gorm"

	"github.com/stripe-billing/billing/changes"
	"github.com/stripe-billing/billing/models/feed"
)

// Outbox writes changes into change_outbox and remembers each object's
// last sequence; safe for concurrent use.
type Outbox struct {
	mu   sync.Mutex
	seqs map[string]uint64 // the last object_seq written, by object id
}

// Write inserts n status changes of each subscription of objects,
// interleaved, in one statement: each with its object's next sequence and
// a changes.Change body. It fails t with Error, so that a goroutine may
// call it.
func (o *Outbox) Write(t testing.TB, db *gorm.DB, n int, objects ...string) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seqs == nil {
		o.seqs = map[string]uint64{}
	}
	var rows []feed.Outbox
	for range n {
		for _, id := range objects {
			o.seqs[id]++
			c := changes.Change{
				Version: changes.Version, Kind: changes.Status, ObjectType: "subscription", ObjectID: id,
				Sequence: o.seqs[id], Source: changes.SourceEvent, EventID: fmt.Sprintf("evt_%s_%d", id, o.seqs[id]),
				EventCreated: time.Now().UTC().Truncate(time.Second), After: map[string]any{"status": "active"},
			}
			c.Key = changes.RoutingKey(c.ObjectType, c.Kind, "active")
			c.ID = changes.MessageID(c.EventID, c.ObjectType, c.ObjectID, c.Kind)
			body, _ := json.Marshal(c) // a map of strings: cannot fail
			rows = append(rows, feed.Outbox{ID: c.ID, ObjectType: c.ObjectType, ObjectID: id, ObjectSeq: c.Sequence,
				RoutingKey: c.Key, Body: string(body), CreatedAt: time.Now().UTC()})
		}
	}
	if err := db.Create(&rows).Error; err != nil {
		t.Errorf("relaytest: write the outbox: %v", err)
	}
}

// Written is the number of changes written.
func (o *Outbox) Written() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, s := range o.seqs {
		n += int(s)
	}
	return n
}

// Check checks got, every message taken from a queue bound to the feed
// with "#": every change written was delivered, at least once; each
// object's changes were first delivered in order; a duplicate has the same
// id and body; the message id, routing key, persistence and sequence
// header agree with the body. It returns the number of duplicates.
func (o *Outbox) Check(t testing.TB, got []amqp.Delivery) (duplicates int) {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	seen := map[string]string{} // id: body
	next := map[string]uint64{} // object: the last sequence delivered
	for _, d := range got {
		var c changes.Change
		if err := json.Unmarshal(d.Body, &c); err != nil {
			t.Fatalf("body %q: %v", d.Body, err)
		}
		if d.MessageId != c.ID || d.RoutingKey != c.Key || d.DeliveryMode != amqp.Persistent || d.ContentType != changes.ContentType {
			t.Fatalf("message id %q key %q mode %d type %q, the body's id %q key %q", d.MessageId, d.RoutingKey, d.DeliveryMode, d.ContentType, c.ID, c.Key)
		}
		if h, _ := d.Headers[changes.HeaderSequence].(int64); uint64(h) != c.Sequence {
			t.Fatalf("%s: header %s = %v, the body's sequence %d", c.ID, changes.HeaderSequence, d.Headers[changes.HeaderSequence], c.Sequence)
		}
		if body, dup := seen[c.ID]; dup {
			if body != string(d.Body) {
				t.Fatalf("%s delivered twice with different bodies", c.ID)
			}
			duplicates++
			continue
		}
		seen[c.ID] = string(d.Body)
		if want := next[c.ObjectID] + 1; c.Sequence != want {
			t.Fatalf("%s: first delivery of sequence %d, want %d (in order per object)", c.ObjectID, c.Sequence, want)
		}
		next[c.ObjectID] = c.Sequence
	}
	for id, n := range o.seqs {
		if next[id] != n {
			t.Errorf("%s: delivered up to sequence %d of %d", id, next[id], n)
		}
	}
	return duplicates
}
