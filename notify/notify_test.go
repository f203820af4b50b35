package notify_test

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	amqp "github.com/rabbitmq/amqp091-go"
	"golang.org/x/sync/errgroup"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/changes"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/metrics"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/feed"
	"github.com/stripe-billing/billing/notify"
	"github.com/stripe-billing/billing/notify/notifytest"
)

const support = "support@example.com"

type env struct {
	ns      string
	store   *models.Store
	mail    *notifytest.Server
	pub     *amqp.Channel
	metrics *metrics.Notify
}

// setup seeds a store, starts a mail server refusing refuse, declares the
// namespace's topology (the feed's exchange, notify's queue bound to it)
// and runs a Notifier until t ends.
func setup(t *testing.T, refuse ...string) *env {
	t.Helper()
	return setupWith(t, notifytest.Start(t, refuse...), nil)
}

// setupWith is setup with mail as the SMTP server and tlsConfig as
// notify's STARTTLS configuration.
func setupWith(t *testing.T, mail *notifytest.Server, tlsConfig *tls.Config) *env {
	t.Helper()
	e := &env{ns: testenv.Namespace(t), store: testenv.Store(t), mail: mail}
	topo := testenv.Declare(t, broker.NewTopology(e.ns, []time.Duration{time.Minute}, 20))
	conn, err := amqp.Dial(testenv.AMQPURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if e.pub, err = conn.Channel(); err != nil {
		t.Fatal(err)
	}
	seed(t, e.store)

	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	bconn := broker.NewConn(broker.ConnConfig{URL: testenv.AMQPURL(), Name: "notify-test", Topology: topo}, logger)
	e.metrics = metrics.NewNotify(prometheus.NewRegistry())
	n, err := notify.New(notify.Config{
		Queue: topo.Notify, SMTPAddr: e.mail.Addr(), From: "billing@example.com", Support: support,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond }, TLS: tlsConfig, LinkWait: 200 * time.Millisecond,
	}, logger, e.store, bconn, e.metrics)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	g.Go(func() error { return bconn.Run(ctx) })
	g.Go(func() error { return n.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Error(err)
		}
	})
	return e
}

func ptr[T any](v T) *T { return &v }

// seed stores what the emails read: customers, a failed charge on an
// invoice before 2025-03-31.basil (the charge names it) and one from basil
// (an invoice payment links the intent), a dispute.
func seed(t *testing.T, s *models.Store) {
	t.Helper()
	now := time.Now().UTC()
	rows := []any{
		&models.Customer{StripeID: "cus_A", Email: ptr("ada@example.com"), Name: ptr("Ada\r\nBcc: evil@example.com")},
		&models.Customer{StripeID: "cus_R", Email: ptr("gone@example.com")},
		&models.Payment{StripeID: "ch_A", Object: "charge", CustomerID: ptr("cus_A"), InvoiceID: ptr("in_A"), Status: ptr("failed"),
			Currency: ptr("usd"), Amount: ptr(int64(1250)), FailureMessage: ptr("Your card was declined.")},
		&models.Invoice{StripeID: "in_A", CustomerID: ptr("cus_A"), Number: ptr("A-0001"), Currency: ptr("usd"), AmountDue: ptr(int64(1250)),
			HostedInvoiceURL: ptr("https://invoice.stripe.com/i/acct_1/test_A"), StripeCreated: &now},
		&models.Payment{StripeID: "ch_B", Object: "charge", CustomerID: ptr("cus_A"), PaymentIntentID: ptr("pi_B"), Status: ptr("failed"),
			Currency: ptr("jpy"), Amount: ptr(int64(3000))},
		&models.InvoicePayment{StripeID: "inpay_B", InvoiceID: ptr("in_B"), PaymentIntentID: ptr("pi_B")},
		&models.Invoice{StripeID: "in_B", CustomerID: ptr("cus_A"), Currency: ptr("jpy"), AmountDue: ptr(int64(3000)),
			HostedInvoiceURL: ptr("https://invoice.stripe.com/i/acct_1/test_B"), StripeCreated: &now},
		&models.Payment{StripeID: "ch_P", Object: "charge", CustomerID: ptr("cus_A"), PaymentIntentID: ptr("pi_P"), Status: ptr("failed"),
			Currency: ptr("usd"), Amount: ptr(int64(700))},
		&models.Payment{StripeID: "ch_R", Object: "charge", CustomerID: ptr("cus_R"), Status: ptr("failed"), Currency: ptr("eur"), Amount: ptr(int64(990))},
		&models.Dispute{StripeID: "dp_A", ChargeID: ptr("ch_A"), Status: ptr("needs_response"), Currency: ptr("usd"), Amount: ptr(int64(1250)),
			Reason: ptr("fraudulent"), EvidenceDueBy: ptr(time.Date(2026, 12, 21, 23, 59, 59, 0, time.UTC))},
	}
	for _, r := range rows {
		if err := s.DB().Create(r).Error; err != nil {
			t.Fatal(err)
		}
	}
}

func randomID(prefix string) string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// change is the change the ledger writes for a Stripe event that made
// objectType/objectID's status status (kind Created: first seen).
func change(objectType, objectID string, kind changes.Kind, status, source string) changes.Change {
	ev := randomID("evt_")
	return changes.Change{
		Version: changes.Version, ID: changes.MessageID(ev, objectType, objectID, kind),
		Key: changes.RoutingKey(objectType, kind, status), Kind: kind, ObjectType: objectType, ObjectID: objectID,
		Sequence: 1, Source: source, EventID: ev, EventCreated: time.Now().UTC().Truncate(time.Second),
		After: map[string]any{"status": status},
	}
}

func (e *env) publish(t *testing.T, c changes.Change) {
	t.Helper()
	body, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	err = e.pub.PublishWithContext(context.Background(), changes.Exchange(e.ns), c.Key, true, false, amqp.Publishing{
		ContentType: changes.ContentType, MessageId: c.ID, DeliveryMode: amqp.Persistent, Body: body,
		Headers: amqp.Table{changes.HeaderSequence: int64(c.Sequence)},
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) next(t *testing.T) notifytest.Mail { return e.mail.Next(t) }

func (e *env) notices(t *testing.T, objectID string) []feed.Notice {
	t.Helper()
	var ns []feed.Notice
	if err := e.store.DB().Where("object_id = ?", objectID).Order("created_at, id").Find(&ns).Error; err != nil {
		t.Fatal(err)
	}
	return ns
}

// waitNotices waits until objectID has a notice recorded (the mail is in
// before notify commits) and returns them.
func (e *env) waitNotices(t *testing.T, objectID string) []feed.Notice {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if ns := e.notices(t, objectID); len(ns) > 0 {
			return ns
		}
	}
	t.Fatalf("no notice of %s recorded", objectID)
	return nil
}

func mustContain(t *testing.T, m notifytest.Mail, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(m.Data, p) {
			t.Fatalf("mail to %s lacks %q:\n%s", m.To, p, m.Data)
		}
	}
}

func TestNotify(t *testing.T) {
	t.Parallel()
	failed := func(id string, kind changes.Kind) changes.Change {
		return change("charge", id, kind, "failed", changes.SourceEvent)
	}

	t.Run("PaymentFailedToCustomer", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.publish(t, failed("ch_A", changes.Created))
		m := e.next(t)
		if m.To != "ada@example.com" || m.From != "billing@example.com" {
			t.Fatalf("mail from %s to %s", m.From, m.To)
		}
		mustContain(t, m, "Subject: Your payment of 12.50 USD failed\n", "Hello Ada Bcc: evil@example.com,",
			"invoice A-0001", "https://invoice.stripe.com/i/acct_1/test_A", "Your bank said: Your card was declined.")
		if strings.Contains(m.Data, "\r\nBcc:") {
			t.Fatalf("a customer's name made a header:\n%s", m.Data)
		}
		// From basil the intent's invoice payment names the invoice; a
		// status change to failed notifies as a first sight does.
		e.publish(t, failed("ch_B", changes.Status))
		m = e.next(t)
		mustContain(t, m, "Subject: Your payment of 3000 JPY failed\n", "https://invoice.stripe.com/i/acct_1/test_B")
		if ns := e.waitNotices(t, "ch_A"); len(ns) != 1 || ns[0].Outcome != feed.NoticeSent || *ns[0].Recipient != "ada@example.com" || ns[0].Notice != notify.PaymentFailed {
			t.Fatalf("notices of ch_A = %+v", ns)
		}
	})

	// An intent's charge no invoice names: LinkWait later, without a link.
	t.Run("PaymentOfNoInvoice", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.publish(t, failed("ch_P", changes.Created))
		m := e.next(t)
		mustContain(t, m, "Subject: Your payment of 7.00 USD failed\n", "We could not take your payment of 7.00 USD.\n")
		if strings.Contains(m.Data, "https://") {
			t.Fatalf("a link in the mail of a payment of no invoice:\n%s", m.Data)
		}
	})

	t.Run("DisputeOpenedToSupport", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.publish(t, change("dispute", "dp_A", changes.Created, "needs_response", changes.SourceEvent))
		m := e.next(t)
		if m.To != support {
			t.Fatalf("dispute mail to %s", m.To)
		}
		mustContain(t, m, "Subject: Dispute dp_A opened: 12.50 USD (fraudulent)", "Charge:    ch_A", "Customer:  ada@example.com",
			"Evidence due by: 2026-12-21 23:59:59 UTC")
	})

	t.Run("DeliveredTwiceSentOnce", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		c := failed("ch_A", changes.Created)
		e.publish(t, c)
		e.publish(t, c)
		e.publish(t, failed("ch_B", changes.Created))
		// Handled side by side: the second copy waits for the first's
		// record and finds it sent.
		for deadline := time.Now().Add(time.Minute); testutil.ToFloat64(e.metrics.Notices.WithLabelValues(notify.PaymentFailed, "duplicate")) < 1; {
			if time.Now().After(deadline) {
				t.Fatal("the second copy was not found a duplicate")
			}
			time.Sleep(10 * time.Millisecond)
		}
		a, b := e.next(t), e.next(t)
		if strings.Contains(a.Data, "test_B") {
			a, b = b, a
		}
		if !strings.Contains(a.Data, "test_A") || !strings.Contains(b.Data, "test_B") {
			t.Fatalf("mails are not ch_A's and ch_B's (ch_A's sent twice?):\n%s\n%s", a.Data, b.Data)
		}
		if n := len(e.mail.Got); n != 0 {
			t.Fatalf("%d more mails", n)
		}
	})

	t.Run("OnlyEventsNotify", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.publish(t, change("charge", "ch_A", changes.Created, "failed", changes.SourceBackfill))
		e.publish(t, change("charge", "ch_A", changes.Status, "failed", changes.SourceCorrection))
		e.publish(t, change("dispute", "dp_A", changes.Created, "needs_response", changes.SourceBackfill))
		e.publish(t, change("charge", "ch_A", changes.Status, "succeeded", changes.SourceEvent)) // not bound: unroutable
		e.publish(t, failed("ch_B", changes.Created))
		if m := e.next(t); !strings.Contains(m.Data, "test_B") {
			t.Fatalf("a snapshot or correction emailed:\n%s", m.Data)
		}
		if ns := e.notices(t, "ch_A"); len(ns) != 0 {
			t.Fatalf("notices of a backfilled charge: %+v", ns)
		}
	})

	t.Run("RecipientRefused", func(t *testing.T) {
		t.Parallel()
		e := setup(t, "gone@example.com")
		e.publish(t, failed("ch_R", changes.Created))
		e.publish(t, failed("ch_B", changes.Created))
		if m := e.next(t); m.To != "ada@example.com" {
			t.Fatalf("mail to %s", m.To)
		}
		ns := e.waitNotices(t, "ch_R")
		if len(ns) != 1 || ns[0].Outcome != feed.NoticeRefused || *ns[0].Recipient != "gone@example.com" ||
			*ns[0].Detail != "RCPT TO gone@example.com: 550 5.1.1 <gone@example.com>: no such mailbox" {
			t.Fatalf("notices of ch_R = %+v", ns)
		}
		if got := testutil.ToFloat64(e.metrics.Notices.WithLabelValues(notify.PaymentFailed, feed.NoticeRefused)); got != 1 {
			t.Fatalf("refusals counted: %v, want 1", got)
		}
		if got := testutil.ToFloat64(e.metrics.Retries); got != 0 {
			t.Fatalf("a refusal was retried %v times", got)
		}
	})

	t.Run("STARTTLS", func(t *testing.T) {
		t.Parallel()
		mail := notifytest.StartTLS(t)
		e := setupWith(t, mail, mail.ClientTLS())
		e.publish(t, failed("ch_A", changes.Created))
		if m := e.next(t); !m.TLS || m.To != "ada@example.com" {
			t.Fatalf("mail to %s, TLS %v: want it after STARTTLS", m.To, m.TLS)
		}
	})

	// A server that offers STARTTLS under a certificate notify does not
	// trust gets nothing, in plain text or otherwise: notify retries.
	t.Run("STARTTLSUntrusted", func(t *testing.T) {
		t.Parallel()
		e := setupWith(t, notifytest.StartTLS(t), nil)
		e.publish(t, failed("ch_A", changes.Created))
		for deadline := time.Now().Add(time.Minute); testutil.ToFloat64(e.metrics.Retries) < 3; {
			if time.Now().After(deadline) {
				t.Fatal("notify did not retry")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if n, ns := len(e.mail.Got), e.notices(t, "ch_A"); n != 0 || len(ns) != 0 {
			t.Fatalf("%d mails, notices %+v: want none", n, ns)
		}
	})

	t.Run("SMTPDownThenUp", func(t *testing.T) {
		t.Parallel()
		e := setup(t)
		e.mail.Stop()
		e.publish(t, failed("ch_A", changes.Created))
		for deadline := time.Now().Add(time.Minute); testutil.ToFloat64(e.metrics.Retries) < 3; {
			if time.Now().After(deadline) {
				t.Fatal("notify did not retry the SMTP server")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if ns := e.notices(t, "ch_A"); len(ns) != 0 {
			t.Fatalf("notices while SMTP is down: %+v", ns)
		}
		e.mail.Start()
		mustContain(t, e.next(t), "test_A")
		if ns := e.waitNotices(t, "ch_A"); len(ns) != 1 || ns[0].Outcome != feed.NoticeSent {
			t.Fatalf("notices of ch_A = %+v", ns)
		}
	})
}
