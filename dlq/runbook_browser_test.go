//go:build serial

// The browser walk runs in the serial step, alone on the machine: the
// management UI's pages take seconds to render when every core is busy.

package dlq_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/stripe-billing/billing/broker"
	"github.com/stripe-billing/billing/dlq"
	"github.com/stripe-billing/billing/dlq/dlqtest"
	"github.com/stripe-billing/billing/internal/testenv"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/models"
	"github.com/stripe-billing/billing/models/lookup"
)

// screenshotsEnv names the directory `make screenshots` has the browser
// test write its pictures to (docs/runbook); unset, they go to a temporary
// directory.
const screenshotsEnv = "BILLING_RUNBOOK_SCREENSHOTS"

// runbookBrowser is a headless Chromium logged in to nothing yet, writing
// a PNG per runbook step.
type runbookBrowser struct {
	t    *testing.T
	ctx  context.Context
	base string // the management UI, without credentials
	dir  string
}

func newRunbookBrowser(t *testing.T) *runbookBrowser {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not installed (apt-get install chromium): the runbook is not walked in a browser")
	}
	dir := os.Getenv(screenshotsEnv)
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	api, err := url.Parse(testenv.ManagementURL())
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(1200, 900))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	// The browser lives as long as the context of its first run: no timeout
	// on this one, each step has its own.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &runbookBrowser{t: t, ctx: ctx, base: api.Scheme + "://" + api.Host, dir: dir}
}

// do runs one runbook step's actions, each bounded so a missing element
// fails the test instead of hanging it.
func (b *runbookBrowser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 45*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		// What the browser showed when the step failed, to see why: the
		// picture stays in the test's directory, the text goes in the log.
		shot, cancelShot := context.WithTimeout(b.ctx, 5*time.Second)
		var page string
		_ = chromedp.Do(shot, b.shot("failed", ""), into(&page, chromedp.Evaluate[string](`document.location.hash + "\n" + document.body.innerText`)))
		cancelShot()
		if len(page) > 4000 {
			page = page[:4000] + "…"
		}
		b.t.Fatalf("runbook step %q: %v (the page: %s)\n%s", step, err, filepath.Join(b.dir, "failed.png"), page)
	}
}

// shot saves what the person sees, the element sel or the whole window.
func (b *runbookBrowser) shot(name, sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		capture := chromedp.CaptureScreenshot()
		if sel != "" {
			capture = chromedp.Screenshot(sel)
		}
		png, err := capture(ctx, t)
		if err != nil {
			return fmt.Errorf("screenshot %s: %w", name, err)
		}
		return os.WriteFile(filepath.Join(b.dir, name+".png"), png, 0o644)
	})
}

// into runs a and stores its value in dst, so it can be one of the steps.
func into[T any](dst *T, a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		v, err := a(ctx, t)
		*dst = v
		return err
	})
}

// ignore runs a for its effect.
func ignore[T any](a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	var discard T
	return into(&discard, a)
}

// section is a collapsible part of a queue or exchange page, by its title.
func section(title string) string { return `//h2[text()="` + title + `"]/..` }

// openSection unfolds the section unless the UI remembered it open.
func openSection(title, field string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		open, err := chromedp.Evaluate[bool](`$('`+field+`').is(':visible')`)(ctx, t)
		if err != nil {
			return err
		}
		if !open {
			if _, err := chromedp.Click(`//h2[text()="`+title+`"]`)(ctx, t); err != nil {
				return err
			}
		}
		_, err = chromedp.WaitVisible(chromedp.CSS(field))(ctx, t)
		return err
	})
}

// openFromTab clicks a top tab (the link, not its label: 3.13 renamed
// Queues), filters the list by name and clicks the entry, as the runbook
// says. The tab marks the old filter box stale and waits for the new one;
// the filter's Enter (and a form's redirect) render the list again at a
// moment the page does not announce, so the whole is tried again until the
// entry's page opens.
func openFromTab(href, name string) chromedp.Action[chromedp.Void] {
	const box = `input.pagination_class_input[id$="-name"]`
	filter := chromedp.CSS(box + `:not(.stale)`)
	link := `a[href="` + href + `/%2F/` + url.PathEscape(name) + `"]`
	entry := chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(link)),
		// The DOM's click on the link, not a mouse click at coordinates a
		// re-render may have moved.
		ignore(chromedp.Evaluate[any](`document.querySelector('`+link+`').click()`)),
		chromedp.WaitVisible(`//h1/b[text()="`+name+`"]`),
	)
	return retried(chromedp.Steps(
		// From the Overview: a form's redirect can show a list while the
		// address still names the entry's page, and a link to the address
		// the browser is at does nothing.
		chromedp.Click(chromedp.CSS(`#tabs a[href="#/"]`)),
		chromedp.WaitVisible(`//h1[starts-with(., "Overview")]`),
		ignore(chromedp.Evaluate[any](`$('`+box+`').addClass('stale')`)),
		chromedp.Click(chromedp.CSS(`#tabs a[href="`+href+`"]`)),
		chromedp.WaitVisible(filter),
		chromedp.Clear(filter), // the UI keeps the last list's filter
		chromedp.SendKeys(filter, name+kb.Enter),
		entry,
	))
}

// retried runs a, each try bounded to a few seconds, until it succeeds or
// the step's own deadline ends.
func retried(a chromedp.Action[chromedp.Void]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for {
			try, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := a(try, t)
			cancel()
			if err == nil || ctx.Err() != nil {
				return err
			}
		}
	})
}

// getMessages fills and submits the DLQ page's "Get messages" form. What
// the UI says instead of showing a message (a popup: "Queue is empty", an
// error) fails the try with its words; a Nack-requeue get leaves the queue
// as it was, so that one is tried again.
func getMessages(ackMode string) chromedp.Action[chromedp.Void] {
	const popup = `.form-popup-info, .form-popup-warn`
	get := chromedp.Steps(
		openSection("Get messages", `select[name="ackmode"]`),
		chromedp.SetValue(chromedp.CSS(`select[name="ackmode"]`), ackMode),
		chromedp.SetValue(chromedp.CSS(`input[name="count"]`), "1"),
		ignore(chromedp.Evaluate[any](`$('#msg-wrapper').empty(); $('`+popup+`').remove()`)),
		chromedp.Click(chromedp.CSS(`input[value="Get Message(s)"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#msg-wrapper .box, `+popup)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			said, err := chromedp.Evaluate[string](`$('`+popup+`').text()`)(ctx, t)
			if err != nil || said == "" {
				return err
			}
			_, _ = chromedp.Evaluate[any](`$('`+popup+`').remove()`)(ctx, t)
			return fmt.Errorf("Get messages: the UI said %q", strings.TrimSpace(said))
		}),
		settled(`#msg-wrapper`),
	)
	if ackMode == "ack_requeue_true" {
		return retried(get)
	}
	return get
}

// settled waits until jQuery's animations of sel (a slide-down) are done,
// so a screenshot shows all of it.
func settled(sel string) chromedp.Action[chromedp.Void] {
	return ignore(chromedp.Evaluate[bool](`new Promise(done => $('`+sel+`').promise().done(() => done(true)))`, chromedp.EvalAwaitPromise))
}

// runbookState is what a runbook step must leave: the event's ledger
// status, its customer rows, the messages ready in the DLQ, and how many
// deliveries of it the worker has handled. The work queue is empty after
// every step (the worker has acked what it took).
type runbookState struct {
	status     string
	customers  int
	dlq        int
	deliveries int
}

// TestSerialRunbookReplayInTheBrowser walks docs/runbook.md's "Replay from
// the RabbitMQ management UI" in Chromium as the support user
// (broker.RoleSupport's permissions), against the real broker, a real
// worker and MySQL: log in, open the DLQ, read the reason, replay with
// "Reject requeue false" while the cause is still there, publish the event
// by hand once fixed, send the original back; then `billing dlq replay`
// and `billing dlq discard` of an event sent by hand, as the support
// user's broker and MySQL users (deploy/mysql) do them. After each step it checks the ledger and the
// queues: no step loses an event or applies one twice.
func TestSerialRunbookReplayInTheBrowser(t *testing.T) {
	t.Parallel()
	b := newRunbookBrowser(t)
	const id, typ, cus = "evt_runbook_browser", "customer.created", "cus_runbook_browser"
	const byHand, byHandCus = "evt_runbook_by_hand", "cus_runbook_by_hand"
	w := newReplayWorld(t, id, byHand)
	body := w.sendFailing(t, id, typ, cus)
	supportURL := testenv.RabbitUser(t, w.Topo.Permissions()[broker.RoleSupport])
	support, err := url.Parse(supportURL)
	if err != nil {
		t.Fatal(err)
	}
	password, _ := support.User.Password()

	afterFor := func(step, id, cus string, want runbookState) {
		t.Helper()
		testenv.Eventually(t, 15*time.Second, func() bool { return len(w.outcomes(id)) >= want.deliveries },
			"after %q: %d deliveries of %s handled (%v)", step, want.deliveries, id, w.outcomes(id))
		w.WaitReady(t, w.Topo.DLQ, want.dlq)
		w.WaitReady(t, w.Topo.Work, 0)
		testenv.Eventually(t, 5*time.Second, func() bool { n, err := testenv.QueueDepth(w.Topo.Work); return err == nil && n == 0 }, "after %q: work queue drained, acked", step)
		got := runbookState{status: w.ledger(t, id).Status, customers: w.customers(t, cus), dlq: w.Ready(t, w.Topo.DLQ), deliveries: len(w.outcomes(id))}
		if got != want {
			t.Fatalf("after %q: %s %+v, want %+v", step, id, got, want)
		}
	}
	after := func(step string, want runbookState) { t.Helper(); afterFor(step, id, cus, want) }
	parked := runbookState{status: models.EventDead, dlq: 1, deliveries: 1}

	b.do("log in as the support user",
		chromedp.Navigate(b.base+"/"),
		chromedp.WaitVisible(chromedp.CSS(`input[name="username"]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name="username"]`), support.User.Username()),
		chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), password),
		b.shot("01-login", ""),
		chromedp.Click(chromedp.CSS(`input[value="Login"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#logout`)),
		// The UI's periodic refresh re-renders lists under the test's clicks;
		// each page it opens is fresh anyway.
		ignore(chromedp.Evaluate[any](`$('#update-every').val('').change()`)),
	)
	after("log in", parked)

	// The queue's page shows the management API's counts, which lag the
	// broker by up to its statistics interval: the picture is taken once
	// they count the parked message (the runbook's "Ready 1").
	testenv.Eventually(t, 30*time.Second, func() bool {
		n, err := testenv.QueueDepth(w.Topo.DLQ)
		return err == nil && n >= 1
	}, "the management API counting the parked message")
	b.do("open the DLQ", openFromTab("#/queues", w.Topo.DLQ), b.shot("02-dlq", ""))
	after("open the DLQ", parked)

	var shown string
	b.do("read the reason: Get messages, Nack message requeue true",
		getMessages("ack_requeue_true"),
		into(&shown, chromedp.Text(chromedp.CSS(`#msg-wrapper`))),
		b.shot("03-get-messages-nack", section("Get messages")),
	)
	for _, want := range []string{"billing-error", "rejected by a bug", "billing-error-class", "permanent", id} {
		if !strings.Contains(shown, want) {
			t.Errorf("Get messages shows no %q:\n%s", want, shown)
		}
	}
	after("read the reason", parked)

	// (a) replayed with the cause still there: the event comes back to the
	// DLQ once, the ledger row stays dead.
	b.do("replay: Get messages, Reject requeue false",
		getMessages("reject_requeue_false"),
		b.shot("04-get-messages-reject", section("Get messages")),
	)
	after("replay with the cause still there", runbookState{status: models.EventDead, dlq: 1, deliveries: 2})
	b.do("see it parked again",
		openFromTab("#/queues", w.Topo.DLQ),
		getMessages("ack_requeue_true"),
		into(&shown, chromedp.Text(chromedp.CSS(`#msg-wrapper`))),
		b.shot("05-parked-again", section("Get messages")),
	)
	if !strings.Contains(strings.Join(strings.Fields(shown), " "), "billing-replays: 1") {
		t.Errorf("the re-parked event shows no billing-replays: 1:\n%s", shown)
	}
	after("see it parked again", runbookState{status: models.EventDead, dlq: 1, deliveries: 2})

	// (b) fixed, the event published by hand on the ingress exchange with
	// its signature is applied once; the parked original stays.
	w.fixed.Store(true)
	sig := testenv.Sign(body, testenv.WebhookSecret, time.Now())
	publish := func(field string) string { return `form[action="#/exchanges/publish"] ` + field }
	var popup string
	b.do("publish the event on the exchange",
		chromedp.Navigate(b.base+"/#/overview"),
		openFromTab("#/exchanges", w.Topo.Events),
		openSection("Publish message", publish(`input[name="routing_key"]`)),
		chromedp.SendKeys(chromedp.CSS(publish(`input[name="routing_key"]`)), typ),
		chromedp.SendKeys(chromedp.CSS(publish(`input[name="headers_1_mfkey"]`)), "stripe-signature"),
		chromedp.SendKeys(chromedp.CSS(publish(`input[name="headers_1_mfvalue"]`)), sig),
		chromedp.SetValue(chromedp.CSS(publish(`textarea[name="payload"]`)), string(body)),
		b.shot("06-publish-message", section("Publish message")),
		chromedp.Click(chromedp.CSS(publish(`input[value="Publish message"]`))),
		chromedp.WaitVisible(chromedp.CSS(`.form-popup-info`)),
		settled(`.form-popup-info`),
		into(&popup, chromedp.Text(chromedp.CSS(`.form-popup-info`))),
		b.shot("07-message-published", ""),
		chromedp.Click(chromedp.CSS(`.form-popup-info span`)),
	)
	if !strings.Contains(popup, "Message published.") {
		t.Errorf("publish popup %q, want Message published.", popup)
	}
	after("publish the fixed event", runbookState{status: models.EventProcessed, customers: 1, dlq: 1, deliveries: 3})
	applied := w.ledger(t, id)

	// The original sent back the same way is a duplicate: acked, nothing
	// applied twice, the DLQ empty.
	b.do("send the original back: Get messages, Reject requeue false",
		openFromTab("#/queues", w.Topo.DLQ),
		getMessages("reject_requeue_false"),
	)
	after("send the original back", runbookState{status: models.EventProcessed, customers: 1, dlq: 0, deliveries: 4})
	if got := w.outcomes(id); got[0] != "failed" || got[1] != "failed" || got[2] != string(ledger.Processed) || got[3] != string(ledger.Duplicate) {
		t.Errorf("outcomes %v, want failed, failed, processed, duplicate", got)
	}
	if again := w.ledger(t, id); !again.ProcessedAt.Equal(*applied.ProcessedAt) {
		t.Errorf("the duplicate changed the ledger row: %+v → %+v", applied, again)
	}
	done := runbookState{status: models.EventProcessed, customers: 1, deliveries: 4}

	// An event nobody wants applied (sent by hand, say) leaves the DLQ by
	// `billing dlq discard` only: what the command does, as its users.
	// The ledger row stays, marked discarded, with who and why beside it.
	w.fixed.Store(false)
	w.sendFailing(t, byHand, typ, byHandCus)
	afterFor("park an event sent by hand", byHand, byHandCus, runbookState{status: models.EventDead, dlq: 1, deliveries: 1})
	// `billing dlq replay --event` first, the cause still there: parked again.
	supportDLQ := dlqtest.NewEnvAs(t, w.Topo, supportURL).Queue(t, time.Now())
	moved, err := supportDLQ.Move(t.Context(), dlq.MoveOptions{Match: func(_ context.Context, p dlq.Parked) (bool, error) { return p.EventID == byHand, nil }})
	if err != nil || len(moved.Moved) != 1 {
		t.Fatalf("replay %s as support: %+v, %v", byHand, moved, err)
	}
	afterFor("billing dlq replay", byHand, byHandCus, runbookState{status: models.EventDead, dlq: 1, deliveries: 2})
	mysqlUsers := testenv.MySQLUsersFromScripts(t, w.dsn, "../deploy/mysql/init/01-users.sql", "../deploy/mysql/grants.sql")
	supportStore := testenv.StoreAt(t, mysqlUsers["support"])
	copies, err := supportDLQ.Discard(t.Context(), byHand, func(ctx context.Context, copies []dlq.Parked) error {
		return supportStore.RecordDiscard(ctx, models.EventDiscard{EventID: byHand, EventType: copies[0].Type, Copies: len(copies), DiscardedBy: "support", Reason: "sent by hand"})
	})
	if err != nil || len(copies) != 1 {
		t.Fatalf("discard %s as support: %d copies, %v", byHand, len(copies), err)
	}
	afterFor("billing dlq discard", byHand, byHandCus, runbookState{status: models.EventDiscarded, dlq: 0, deliveries: 2})
	if ds, err := lookup.New(w.store).Discards(t.Context(), []string{byHand}); err != nil || len(ds) != 1 || ds[0].DiscardedBy != "support" || ds[0].Reason != "sent by hand" {
		t.Errorf("discards of %s: %+v, %v", byHand, ds, err)
	}
	after("billing dlq discard", done)
}
