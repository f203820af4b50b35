// Package feedtail is `billing changes tail`: the change feed for a
// person, one line per change, on a queue of its own (exclusive,
// deleted when it ends) bound to <ns>.changes with a key. What it prints
// is untrusted (anyone who may publish to the exchange wrote it) and
// goes through internal/termtext.
package feedtail

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/changes"
	"github.com/stripe-billing/billing/internal/termtext"
)

// Tail is one terminal's subscription to the feed.
type Tail struct {
	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
	tracker    *changes.Tracker
}

// Open declares a server-named exclusive, auto-delete queue on conn,
// binds it to namespace's change exchange with key (a topic pattern such
// as "subscription.#" or "*.status.#") and starts consuming it: changes
// published from now on reach Run.
func Open(conn *amqp.Connection, namespace, key string) (*Tail, error) {
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("feedtail: open channel: %w", err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err == nil {
		err = ch.QueueBind(q.Name, key, changes.Exchange(namespace), false, nil)
	}
	var ds <-chan amqp.Delivery
	if err == nil {
		ds, err = ch.Consume(q.Name, "billing-changes-tail", true, true, false, false, nil)
	}
	if err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("feedtail: subscribe to %s with %q: %w", changes.Exchange(namespace), key, err)
	}
	return &Tail{ch: ch, deliveries: ds, tracker: changes.NewTracker(0)}, nil
}

// Run writes a line per change to w until ctx is done (nil) or the
// broker closes the subscription (an error).
func (t *Tail) Run(ctx context.Context, w io.Writer) error {
	defer t.ch.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-t.deliveries:
			if !ok {
				return errors.New("feedtail: the broker closed the subscription")
			}
			if _, err := fmt.Fprintln(w, t.line(d)); err != nil {
				return err
			}
		}
	}
}

func (t *Tail) line(d amqp.Delivery) string {
	c, err := changes.Decode(d.Body)
	if err != nil {
		return fmt.Sprintf("%s %s unreadable message %s: %s", termtext.Time(d.Timestamp), termtext.Cell(d.RoutingKey),
			termtext.Cell(d.MessageId), termtext.OneLine(err.Error(), 200))
	}
	return Line(c, t.tracker.Track(c))
}

// Line is one change for a person: its event's time, routing key,
// object, sequence, each field before→after, and what is unusual (a
// source other than an event, a duplicate, a gap, a late change).
func Line(c changes.Change, v changes.Verdict) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s %s #%d", termtext.Time(c.EventCreated), termtext.Cell(c.Key), termtext.Cell(c.ObjectType),
		termtext.Cell(c.ObjectID), c.Sequence)
	keys := slices.Sorted(maps.Keys(c.After))
	for k := range c.Before {
		if _, ok := c.After[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		before, had := c.Before[k]
		after, has := c.After[k]
		fmt.Fprintf(&b, " %s:", termtext.Cell(k))
		if had {
			b.WriteString(" " + value(before) + " →")
		}
		if has {
			b.WriteString(" " + value(after))
		} else {
			b.WriteString(" -")
		}
	}
	if c.Source != changes.SourceEvent {
		fmt.Fprintf(&b, " (%s)", termtext.Cell(c.Source))
	}
	switch {
	case v.Duplicate:
		b.WriteString(" [duplicate]")
	case v.Late:
		b.WriteString(" [late: a newer change came first]")
	case v.Missing > 0:
		fmt.Fprintf(&b, " [gap: %d missing before it]", v.Missing)
	}
	return b.String()
}

// value is a field's value in a cell: a string as it is, anything else
// as JSON, one line.
func value(v any) string {
	if s, ok := v.(string); ok {
		return termtext.Cell(termtext.OneLine(s, 120))
	}
	j, _ := json.Marshal(v)
	return termtext.Cell(termtext.OneLine(string(j), 120))
}

// Follow is `billing changes tail`: connects to amqpURL, opens a Tail
// with key and runs it to w until ctx ends.
func Follow(ctx context.Context, amqpURL, namespace, key string, w io.Writer) error {
	conn, err := broker.Dial(amqpURL, "billing changes tail", 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	t, err := Open(conn, namespace, key)
	if err != nil {
		return err
	}
	return t.Run(ctx, w)
}
