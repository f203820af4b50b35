// Package notify is `billing notify`, the change feed's consumer that
// emails: a failed payment to the customer (with the invoice's hosted
// link and amount), an opened dispute to support. It reads its own queue
// <ns>.notify, which `billing topology` binds to the feed's exchange; each change is notified once
// however often it is delivered (change_notices in MySQL), an SMTP server
// that is down is retried with backoff while the change stays unacked,
// and a recipient the server refuses is recorded, counted and not
// retried. Only changes a Stripe event made notify: a backfill's snapshot
// of last year's failed charge emails no one. See docs/changes.md.
package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/changes"
	"github.com/stripe-billing/billing/metrics"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/feed"
)

// A failed payment is a charge whose status became failed
// (broker.NotifyKeys, the queue's bindings): Stripe's charge.failed in
// every API version. A payment intent's failure goes back to
// requires_payment_method, which every new intent has too, and an
// invoice stays open when a payment fails (its attempt_count is no
// change of the feed), so neither says it alone. A charge first seen
// failed is a Created change, hence charge.created, filtered on its
// status. An opened dispute is a dispute created in an open status.

// Defaults (config.Vars refers to them).
const (
	DefaultSMTPAddr    = "127.0.0.1:1025"
	DefaultFrom        = "billing@localhost"
	DefaultSMTPTimeout = 30 * time.Second
	// DefaultLinkWait is how long a failed charge of a payment intent
	// waits for its invoice: from 2025-03-31.basil nothing on the charge
	// names it, and the worker links the intent to the invoice when
	// invoice.payment_failed comes, right after charge.failed. A payment
	// of no invoice is emailed without a link after it.
	DefaultLinkWait = time.Minute
)

// Config configures a Notifier.
type Config struct {
	// Queue is the queue to consume (broker.Topology.Notify), declared
	// by `billing topology`.
	Queue string
	// SMTPAddr is the SMTP server's host:port; From the sender address.
	SMTPAddr, From string
	// Support receives opened disputes; empty: they are recorded, not sent.
	Support string
	// Templates is a directory whose <notice>.tmpl files replace the
	// embedded ones; empty: the embedded ones.
	Templates string
	// Prefetch is how many changes the broker hands over unacked (default 16).
	Prefetch int
	// Backoff is the wait before retry n (from 0) of an SMTP failure that
	// is worth a retry (default 1s doubling to 1m).
	Backoff func(n int) time.Duration
	// TLS is STARTTLS's client configuration, used when the server offers
	// it; nil: the system's roots and SMTPAddr's host.
	TLS *tls.Config
	// LinkWait is how long a failed charge waits for its invoice's link
	// (default DefaultLinkWait).
	LinkWait time.Duration
	// SMTPTimeout bounds one delivery (default DefaultSMTPTimeout).
	SMTPTimeout time.Duration
	Now         func() time.Time
}

// Notifier consumes <ns>.notify and sends the emails.
type Notifier struct {
	cfg       Config
	logger    *slog.Logger
	store     *models.Store
	conn      *broker.Conn
	metrics   *metrics.Notify
	templates *Templates
}

// New checks cfg and loads the templates: a malformed template, or one
// that fails on sample data, is an error naming its file and line.
func New(cfg Config, logger *slog.Logger, store *models.Store, conn *broker.Conn, m *metrics.Notify) (*Notifier, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Prefetch <= 0 {
		cfg.Prefetch = 16
	}
	if cfg.Backoff == nil {
		cfg.Backoff = func(n int) time.Duration { return min(time.Second<<min(n, 6), time.Minute) }
	}
	if cfg.LinkWait <= 0 {
		cfg.LinkWait = DefaultLinkWait
	}
	if cfg.SMTPTimeout <= 0 {
		cfg.SMTPTimeout = DefaultSMTPTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	var err error
	if cfg.From, err = address(cfg.From); err != nil {
		return nil, fmt.Errorf("notify: from address: %w", err)
	}
	if cfg.Support != "" {
		if cfg.Support, err = address(cfg.Support); err != nil {
			return nil, fmt.Errorf("notify: support address: %w", err)
		}
	}
	ts, err := LoadTemplates(cfg.Templates)
	if err != nil {
		return nil, err
	}
	return &Notifier{cfg: cfg, logger: logger, store: store, conn: conn, metrics: m, templates: ts}, nil
}

// Run consumes until ctx is done, again after each lost connection.
func (n *Notifier) Run(ctx context.Context) error {
	for {
		conn, err := n.conn.Await(ctx)
		if err != nil {
			return nil
		}
		err = n.consume(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
		n.logger.Warn("notify: consuming stopped, starting again", "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (n *Notifier) consume(ctx context.Context, conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Qos(n.cfg.Prefetch, 0, false); err != nil {
		return err
	}
	ds, err := ch.ConsumeWithContext(ctx, n.cfg.Queue, "billing-notify", false, false, false, false, nil)
	if err != nil {
		return err
	}
	// Each delivery is handled on its own (at most Prefetch at once), so
	// that one waiting for its invoice or for SMTP holds no other back.
	var wg sync.WaitGroup
	var mu sync.Mutex // one ack at a time on the channel
	for d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := n.Handle(ctx, d.Body)
			mu.Lock()
			defer mu.Unlock()
			if ctx.Err() != nil {
				_ = d.Nack(false, true) // back to the queue: sent by the next notify
				return
			}
			if err != nil {
				n.logger.Error("notify: change dropped", "message_id", d.MessageId, "error", err)
			}
			if err := d.Ack(false); err != nil {
				n.logger.Warn("notify: ack failed: the change comes again, and is found notified", "message_id", d.MessageId, "error", err)
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("notify: deliveries closed")
}

// errNoLinkYet: a failed charge of a payment intent whose invoice is not
// linked yet, within LinkWait.
var errNoLinkYet = errors.New("notify: the charge's invoice is not linked yet")

// Handle notifies one message's change, retrying SMTP until it succeeds,
// is refused, or ctx ends. An error means the message can never be
// notified (not a change): it is to be dropped.
func (n *Notifier) Handle(ctx context.Context, body []byte) error {
	c, err := changes.Decode(body)
	if err != nil {
		n.metrics.Notice("", "bad_message")
		return err
	}
	notice := NoticeOf(c)
	if notice == "" {
		return nil
	}
	linkBy := n.cfg.Now().Add(n.cfg.LinkWait)
	for attempt := 0; ; attempt++ {
		outcome, err := n.notify(ctx, c, notice, linkBy)
		if err == nil {
			n.metrics.Notice(notice, outcome)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := n.cfg.Backoff(attempt)
		if errors.Is(err, errNoLinkYet) {
			wait = min(wait, time.Second, max(linkBy.Sub(n.cfg.Now()), 0))
			attempt = -1 // no failure: the backoff starts again after it
		} else {
			n.metrics.Retry()
			n.logger.Warn("notify: will retry", "change_id", c.ID, "notice", notice, "attempt", attempt+1, "retry_in", wait.String(), "error", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// NoticeOf is the notice c calls for, or "": a charge that became failed,
// a dispute created open, from a Stripe event.
func NoticeOf(c changes.Change) string {
	if c.Source != changes.SourceEvent {
		return ""
	}
	status, _ := c.After["status"].(string)
	switch {
	case c.ObjectType == "charge" && (c.Kind == changes.Created || c.Kind == changes.Status) && status == "failed":
		return PaymentFailed
	case c.ObjectType == "dispute" && c.Kind == changes.Created && !disputeClosed(status):
		return DisputeOpened
	}
	return ""
}

func disputeClosed(s string) bool {
	switch s {
	case "won", "lost", "warning_closed", "prevented":
		return true
	}
	return false
}

// notify is one attempt, in one transaction: claim the change's notice,
// build the email, send it, record the outcome. A notice already recorded
// is a "duplicate".
func (n *Notifier) notify(ctx context.Context, c changes.Change, notice string, linkBy time.Time) (string, error) {
	var outcome string
	err := n.store.DB().WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		prior, isNew, err := feed.ClaimNotice(tx, feed.Notice{ID: c.ID, Notice: notice, ObjectID: c.ObjectID, CreatedAt: n.cfg.Now().UTC()})
		if err != nil {
			return err
		}
		if !isNew {
			n.logger.Info("notify: already notified", "change_id", c.ID, "outcome", prior)
			outcome = "duplicate"
			return nil
		}
		e, err := n.email(tx, c, notice, linkBy)
		if err != nil {
			return err
		}
		var detail *string
		switch {
		case e.to == "":
			outcome = feed.NoticeNoRecipient
		default:
			err := send(ctx, n.cfg.SMTPAddr, n.cfg.SMTPTimeout, n.cfg.TLS, e)
			var refused *RefusedError
			switch {
			case errors.As(err, &refused):
				outcome, detail = feed.NoticeRefused, &refused.Reply
			case err != nil:
				return err
			default:
				outcome = feed.NoticeSent
			}
		}
		var to *string
		if e.to != "" {
			to = &e.to
		}
		return feed.FinishNotice(tx, c.ID, outcome, to, detail)
	})
	return outcome, err
}

// email builds notice's email for c from the store; to is empty when
// there is no one to send it to.
func (n *Notifier) email(tx *gorm.DB, c changes.Change, notice string, linkBy time.Time) (email, error) {
	e := email{id: c.ID, from: n.cfg.From, date: n.cfg.Now()}
	var data any
	switch notice {
	case PaymentFailed:
		d, err := paymentFailed(tx, c)
		if err != nil {
			return e, err
		}
		if d.InvoiceID == "" && d.paymentIntent != "" && n.cfg.Now().Before(linkBy) {
			return e, errNoLinkYet
		}
		e.to, data = d.CustomerEmail, d
	case DisputeOpened:
		d, err := disputeOpened(tx, c)
		if err != nil {
			return e, err
		}
		e.to, data = n.cfg.Support, d
	}
	if e.to != "" {
		to, err := address(e.to)
		if err != nil { // an address no SMTP server takes: no recipient
			n.logger.Warn("notify: not an email address", "change_id", c.ID, "error", err)
		}
		e.to = to
	}
	var err error
	if e.subject, e.body, err = n.templates.Render(notice, data); err != nil {
		return e, fmt.Errorf("notify: render %s: %w", notice, err)
	}
	return e, nil
}

func paymentFailed(tx *gorm.DB, c changes.Change) (PaymentFailedData, error) {
	d := PaymentFailedData{ChargeID: c.ObjectID, CustomerID: c.Customer, Livemode: c.Livemode}
	ch, err := feed.PaymentByID(tx, c.ObjectID)
	if err != nil {
		return d, err
	}
	pi := ""
	if ch != nil {
		d.Amount = money(ch.Amount, ch.Currency)
		d.FailureCode, d.FailureMessage = str(ch.FailureCode), str(ch.FailureMessage)
		pi = str(ch.PaymentIntentID)
		d.paymentIntent = pi
		if d.CustomerID == "" {
			d.CustomerID = str(ch.CustomerID)
		}
	}
	inv, err := feed.InvoiceOfPayment(tx, c.ObjectID, pi)
	if err != nil {
		return d, err
	}
	if inv != nil {
		d.InvoiceID, d.InvoiceNumber, d.InvoiceURL = inv.StripeID, str(inv.Number), str(inv.HostedInvoiceURL)
		if inv.AmountDue != nil {
			d.Amount = money(inv.AmountDue, inv.Currency)
		}
		if d.CustomerID == "" {
			d.CustomerID = str(inv.CustomerID)
		}
	}
	if d.CustomerID != "" {
		cus, err := feed.CustomerByID(tx, d.CustomerID)
		if err != nil {
			return d, err
		}
		if cus != nil {
			d.CustomerName, d.CustomerEmail = str(cus.Name), str(cus.Email)
		}
	}
	return d, nil
}

func disputeOpened(tx *gorm.DB, c changes.Change) (DisputeOpenedData, error) {
	d := DisputeOpenedData{DisputeID: c.ObjectID, CustomerID: c.Customer, Livemode: c.Livemode}
	dp, err := feed.DisputeByID(tx, c.ObjectID)
	if err != nil || dp == nil {
		return d, err
	}
	d.ChargeID, d.Amount, d.Reason, d.Status = str(dp.ChargeID), money(dp.Amount, dp.Currency), str(dp.Reason), str(dp.Status)
	if dp.EvidenceDueBy != nil {
		d.EvidenceDueBy = dp.EvidenceDueBy.UTC().Format(time.DateTime + " UTC")
	}
	if d.CustomerID == "" && d.ChargeID != "" {
		if ch, err := feed.PaymentByID(tx, d.ChargeID); err != nil {
			return d, err
		} else if ch != nil {
			d.CustomerID = str(ch.CustomerID)
		}
	}
	if d.CustomerID != "" {
		cus, err := feed.CustomerByID(tx, d.CustomerID)
		if err != nil {
			return d, err
		}
		if cus != nil {
			d.CustomerEmail = str(cus.Email)
		}
	}
	return d, nil
}

// str is *s on one line, "" for nil: a value of Stripe's goes into a
// template that may put it in a subject.
func str(s *string) string {
	if s == nil {
		return ""
	}
	return strings.Join(strings.Fields(*s), " ")
}

// zeroDecimal are Stripe's currencies without minor units.
var zeroDecimal = map[string]bool{"bif": true, "clp": true, "djf": true, "gnf": true, "jpy": true, "kmf": true, "krw": true,
	"mga": true, "pyg": true, "rwf": true, "ugx": true, "vnd": true, "vuv": true, "xaf": true, "xof": true, "xpf": true}

// money is an amount in minor units with its currency: "12.50 USD".
func money(amount *int64, currency *string) string {
	if amount == nil {
		return "?"
	}
	cur := strings.ToLower(str(currency))
	a := *amount
	if zeroDecimal[cur] {
		return strconv.FormatInt(a, 10) + " " + strings.ToUpper(cur)
	}
	sign := ""
	if a < 0 {
		sign, a = "-", -a
	}
	return fmt.Sprintf("%s%d.%02d %s", sign, a/100, a%100, strings.ToUpper(cur))
}

// Serve is `billing notify`: a Notifier on a supervised connection to
// amqpURL (checking topo), and its /metrics, /healthz and /readyz on
// metricsAddr, until ctx ends.
func Serve(ctx context.Context, cfg Config, logger *slog.Logger, store *models.Store, amqpURL string, topo broker.Topology, metricsAddr string) error {
	cfg.Queue = topo.Notify
	conn := broker.NewConn(broker.ConnConfig{URL: amqpURL, Name: "billing-notify", Topology: topo}, logger)
	reg := metrics.NewRegistry()
	n, err := New(cfg, logger, store, conn, metrics.NewNotify(reg))
	if err != nil {
		return err
	}
	srv, err := metrics.NewServer(metrics.ServerConfig{Addr: metricsAddr, Registry: reg, Checks: []metrics.Check{{Name: "database", Probe: store.Ping}}}, logger)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return srv.Run(gctx) })
	g.Go(func() error { return conn.Run(gctx) })
	g.Go(func() error { return n.Run(gctx) })
	return g.Wait()
}
