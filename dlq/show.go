package dlq

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/internal/termtext"
	"github.com/stripe-billing/billing/models"
)

// Shown is `billing dlq show`'s report of one event: every parked copy
// (its reason, properties, headers and body) and the event's ledger row
// and discards. Its JSON is `--json`'s; WriteText is for a person.
type Shown struct {
	EventID    string                `json:"event_id"`
	Copies     []ShownCopy           `json:"copies"`
	Ledger     *models.StripeEvent   `json:"ledger"`
	LedgerNote string                `json:"ledger_note,omitempty"`
	Discards   []models.EventDiscard `json:"discards"`

	messages []Message
}

// ShownCopy is one parked message: the reason as `dlq list` reads it, the
// delivery's properties and headers, and the body (JSON as is, or text).
type ShownCopy struct {
	Parked
	Exchange    string         `json:"exchange"`
	RoutingKey  string         `json:"routing_key"`
	ContentType string         `json:"content_type"`
	AppID       string         `json:"app_id"`
	Timestamp   time.Time      `json:"timestamp,omitzero"`
	Headers     map[string]any `json:"headers"`
	Body        any            `json:"body"`
}

// NewShown is the report of event id: its parked copies, its ledger row
// (nil with note saying why there is none) and its discards.
func NewShown(id string, copies []Message, ledger *models.StripeEvent, note string, discards []models.EventDiscard) Shown {
	s := Shown{EventID: id, Copies: []ShownCopy{}, Ledger: ledger, LedgerNote: note, Discards: discards, messages: copies}
	for _, m := range copies {
		s.Copies = append(s.Copies, newShownCopy(m))
	}
	return s
}

func newShownCopy(m Message) ShownCopy {
	d := m.Delivery
	c := ShownCopy{Parked: m.Parked, Exchange: d.Exchange, RoutingKey: d.RoutingKey, ContentType: d.ContentType,
		AppID: d.AppId, Timestamp: d.Timestamp, Headers: map[string]any{}, Body: string(d.Body)}
	for k, v := range d.Headers {
		c.Headers[k] = v
	}
	if json.Valid(d.Body) {
		c.Body = json.RawMessage(d.Body)
	}
	return c
}

// WriteText writes the report for a person. Everything read from a
// message goes through termtext: anyone who can publish wrote it.
func (s Shown) WriteText(out io.Writer) {
	id, copies, ledger, note, discards := s.EventID, s.messages, s.Ledger, s.LedgerNote, s.Discards
	fmt.Fprintf(out, "%s: %d cop(ies) in the DLQ\n", termtext.Cell(id), len(copies))
	for i, m := range copies {
		d, p := m.Delivery, m.Parked
		fmt.Fprintf(out, "\n--- copy %d of %d\n", i+1, len(copies))
		w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, kv := range [][2]string{
			{"type", p.Type}, {"class", string(p.Class)}, {"attempts", strconv.Itoa(p.Attempts)},
			{"replays", strconv.Itoa(p.Replays)}, {"redrives", strconv.Itoa(p.Redrives)},
			{"first failed", termtext.Time(p.FirstFailedAt)}, {"last failed", termtext.Time(p.LastFailedAt)},
			{"parked at", termtext.Time(p.ParkedAt)}, {"source queue", p.SourceQueue}, {"worker host", p.WorkerHost},
			{"error", termtext.OneLine(p.Error, MaxErrorHeader)},
			{"exchange", d.Exchange}, {"routing key", d.RoutingKey}, {"content type", d.ContentType},
			{"app id", d.AppId}, {"timestamp", termtext.Time(d.Timestamp)},
		} {
			fmt.Fprintf(w, "  %s\t%s\n", kv[0], termtext.Cell(kv[1]))
		}
		_ = w.Flush()
		fmt.Fprintln(out, "  headers:")
		keys := make([]string, 0, len(d.Headers))
		for k := range d.Headers {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		for _, k := range keys {
			v := fmt.Sprint(d.Headers[k])
			if k == broker.HeaderStripeSignature {
				v = "(present; not shown)"
			}
			fmt.Fprintf(w, "    %s\t%s\n", termtext.Cell(k), termtext.Cell(termtext.OneLine(v, 300)))
		}
		_ = w.Flush()
		fmt.Fprintln(out, "  body:")
		var pretty bytes.Buffer
		body := d.Body
		if json.Indent(&pretty, d.Body, "    ", "  ") == nil {
			body = pretty.Bytes()
		}
		fmt.Fprintln(out, "    "+termtext.Text(string(body)))
	}
	fmt.Fprintln(out)
	if ledger == nil {
		fmt.Fprintf(out, "ledger: %s\n", note)
	} else {
		processed := "-"
		if ledger.ProcessedAt != nil {
			processed = termtext.Time(*ledger.ProcessedAt)
		}
		lastErr := "-"
		if ledger.LastError != nil {
			lastErr = termtext.Cell(termtext.OneLine(*ledger.LastError, 300))
		}
		fmt.Fprintf(out, "ledger: status %s, attempts %d, redrives %d, received %s, processed %s, last error %s\n",
			ledger.Status, ledger.Attempts, ledger.Redrives, termtext.Time(ledger.ReceivedAt), processed, lastErr)
	}
	for _, d := range discards {
		fmt.Fprintf(out, "discarded %s by %s (%d cop(ies)): %s\n", termtext.Time(d.DiscardedAt), termtext.Cell(d.DiscardedBy), d.Copies, termtext.Cell(termtext.OneLine(d.Reason, 300)))
	}
}
