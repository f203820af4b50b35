// Package backfill imports the objects an account had before the events
// began (`billing backfill`): it lists each kind the worker stores from
// Stripe's list endpoints, page by page through the one rate-limited
// client (reconcile), and hands each page to the ledger, which folds its
// objects as snapshots by the rules events are folded by and saves the
// page's cursor in the same transaction. A kill at any point loses
// nothing: a rerun continues from the saved cursors, and an object
// imported twice writes nothing the second time.
package backfill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/internal/pause"
	"github.com/stripe-billing/billing/ledger"
	"github.com/stripe-billing/billing/reconcile"
	"github.com/stripe-billing/billing/retry"
)

// Kind is one list the backfill imports.
type Kind struct {
	// Name names the kind in flags, logs and its checkpoint.
	Name string
	// Path is the list's API path.
	Path string
	// Params are the list's own filters.
	Params url.Values
	// Unranged: the list takes no created range (created[gte], [lt]).
	Unranged bool
	// slice names one of a kind's ranges imported side by side
	// (Config.Slices) in its cursor's name; "" for the whole kind.
	slice string
}

// Kinds are the lists of every kind the worker stores, customers first
// (the others name them). Subscriptions are listed in every status:
// Stripe's default leaves the canceled out. InvoicePayments (from
// 2025-03-31.basil) come with their invoices, in the same calls; an
// invoice with more than its list holds has the rest listed from the
// InvoicePayments' own list (morePayments). Payment methods are listed
// per customer only: their events alone fill payment_methods.
var Kinds = []Kind{
	{Name: "customers", Path: "/v1/customers"},
	{Name: "subscriptions", Path: "/v1/subscriptions", Params: url.Values{"status": {"all"}}},
	{Name: "invoices", Path: "/v1/invoices"},
	{Name: "payment_intents", Path: "/v1/payment_intents"},
	{Name: "charges", Path: "/v1/charges"},
	{Name: "refunds", Path: "/v1/refunds"},
	{Name: "disputes", Path: "/v1/disputes"},
	{Name: "checkout_sessions", Path: "/v1/checkout/sessions"},
	{Name: "credit_notes", Path: "/v1/credit_notes"},
	{Name: "products", Path: "/v1/products"},
	{Name: "prices", Path: "/v1/prices"},
	{Name: "subscription_schedules", Path: "/v1/subscription_schedules"},
}

// Defaults.
const (
	// DefaultPageSize is Stripe's largest page.
	DefaultPageSize = 100
	// DefaultConcurrency is the most kinds imported at once: as many as
	// the Fetcher's calls in flight by default (reconcile).
	DefaultConcurrency = reconcile.DefaultConcurrency
	// DefaultAttempts bounds the tries of one page that fails with a
	// transient error (429, 5xx, the network, a page cut off).
	DefaultAttempts = 8
	// DefaultBackoff and DefaultMaxBackoff shape the pauses between them.
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = time.Minute
)

// Lister fetches one page of a list (reconcile.Fetcher).
type Lister interface {
	ListPage(ctx context.Context, req reconcile.ListRequest) (reconcile.Page, error)
}

// Applier folds a page's snapshots into their rows and saves its cursor
// in one transaction (ledger.Processor).
type Applier interface {
	ApplySnapshots(ctx context.Context, snaps []billing.Event, cursor ledger.Cursor) (ledger.SnapshotResult, error)
}

// Checkpoints reads the saved cursors (models.Store).
type Checkpoints interface {
	Checkpoint(ctx context.Context, name string) (string, error)
}

// Config configures a Backfill.
type Config struct {
	// Account is the Connect account to import ("acct_..."); "" for the
	// platform's own objects.
	Account string
	// Livemode is the key's mode, for objects that do not say theirs (a
	// Refund).
	Livemode bool
	// APIVersion is the version the objects are listed in; "" for
	// stripe-go's pinned one (reconcile). From 2025-03-31.basil the
	// invoices come with their payments.
	APIVersion string
	// Kinds names the kinds to import (Kind.Name); default all.
	Kinds []string
	// PageSize is the objects asked for per page; default and most 100.
	PageSize int
	// CreatedFrom and CreatedUntil, when set, keep the objects Stripe
	// created at or after the one and before the other (created[gte],
	// created[lt]). A range has cursors of its own.
	CreatedFrom, CreatedUntil time.Time
	// Concurrency is the most kinds imported at once; default
	// DefaultConcurrency. The Lister's own limits still apply.
	Concurrency int
	// Slices, over 1, splits each kind into that many created ranges of
	// equal length, from the import's Origin to when the kind began,
	// imported side by side, each with a cursor of its own: a kind's
	// pages then need not follow one another, and Stripe's round trip
	// stops setting the pace when the Lister allows as many requests in
	// flight. The ranges are saved with the kind's cursor, so a rerun
	// resumes them. Without a known Origin, or once a kind was begun
	// whole, a kind is imported whole. Default 1.
	Slices int
	// Restart starts each kind from the newest object, whatever cursor
	// was saved (a kind done before is imported again); the cursors then
	// move as in any run.
	Restart bool
	// Attempts, Backoff and MaxBackoff: see the defaults.
	Attempts            int
	Backoff, MaxBackoff time.Duration
}

// Backfill imports the objects of one account.
type Backfill struct {
	cfg    Config
	kinds  []Kind
	logger *slog.Logger
	lister Lister
	apply  Applier
	saved  Checkpoints
	rnd    func() float64

	originOnce sync.Once
	origin     time.Time
}

// New returns a Backfill of cfg.Account's objects.
func New(cfg Config, logger *slog.Logger, lister Lister, apply Applier, saved Checkpoints) (*Backfill, error) {
	if cfg.PageSize <= 0 || cfg.PageSize > DefaultPageSize {
		cfg.PageSize = DefaultPageSize
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = DefaultConcurrency
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	kinds, err := Select(Kinds, cfg.Kinds, func(k Kind) string { return k.Name })
	if err != nil {
		return nil, fmt.Errorf("backfill: %w", err)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Backfill{cfg: cfg, kinds: kinds, logger: logger, lister: lister, apply: apply, saved: saved, rnd: rand.Float64}, nil
}

// Select is the kinds of all named names (all of them when names is
// empty), in names' order; name names a kind. An unknown name is an
// error that lists KindNames: backfill and audit name kinds alike.
func Select[K any](all []K, names []string, name func(K) string) ([]K, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []K
	for _, n := range names {
		i := slices.IndexFunc(all, func(k K) bool { return name(k) == n })
		if i < 0 {
			return nil, fmt.Errorf("no kind %q (want one of %s)", n, strings.Join(KindNames(), ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// KindNames lists the kinds by name, in Kinds' order.
func KindNames() []string {
	names := make([]string, len(Kinds))
	for i, k := range Kinds {
		names[i] = k.Name
	}
	return names
}

// Cursor values: a kind not begun has none, one begun the id of the last
// object imported (starting_after), one finished done.
const (
	cursorAfter  = "after:"
	cursorDone   = "done"
	cursorSlices = "slices:"
)

// CheckpointName is where kind's cursor on account ("" for the
// platform's) is saved, for the whole history.
func CheckpointName(account, kind string) string {
	if account == "" {
		account = "platform"
	}
	return "backfill/" + account + "/" + kind
}

// checkpoint is where k's cursor is saved: CheckpointName, and the
// created range when the import has one.
func (b *Backfill) checkpoint(k Kind) string {
	name := CheckpointName(b.cfg.Account, k.Name)
	if from, until := b.cfg.CreatedFrom, b.cfg.CreatedUntil; !from.IsZero() || !until.IsZero() {
		name += fmt.Sprintf("/created:%d-%d", unixOrZero(from), unixOrZero(until))
	}
	return name + k.slice
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// KindReport is what the backfill did, or would do, with one kind.
type KindReport struct {
	Kind string
	// After is the id the kind resumed after ("" from the start); Done
	// that it was finished before this run.
	After string
	Done  bool
	// Pages, Fetched, Written and Failed count this run's pages, the
	// objects fetched, those whose rows they created or changed, and
	// those that could not be read (logged with their ids).
	Pages, Fetched, Written, Failed int
	// Finished: the kind's last page is in.
	Finished bool
	// Oldest is the created time of the last object written: how far
	// back, from the newest, the kind's import has come (in slices, as
	// far back as one list would have come for the same share).
	Oldest time.Time
}

// Plan says where each kind stands, asking Stripe nothing: what a dry
// run prints.
func (b *Backfill) Plan(ctx context.Context) ([]KindReport, error) {
	out := make([]KindReport, 0, len(b.kinds))
	for _, k := range b.kinds {
		r, err := b.resume(ctx, k)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// Request is the first request a kind's import makes from r: what a dry
// run prints.
func (b *Backfill) Request(r KindReport) reconcile.ListRequest {
	i := slices.IndexFunc(b.kinds, func(k Kind) bool { return k.Name == r.Kind })
	return b.request(b.kinds[i], r.After)
}

func (b *Backfill) resume(ctx context.Context, k Kind) (KindReport, error) {
	if b.cfg.Restart {
		return KindReport{Kind: k.Name}, nil
	}
	v, err := b.saved.Checkpoint(ctx, b.checkpoint(k))
	if err != nil {
		return KindReport{}, fmt.Errorf("backfill: %s: read the saved cursor: %w", k.Name, err)
	}
	r := KindReport{Kind: k.Name, Done: v == cursorDone}
	r.After, _ = strings.CutPrefix(v, cursorAfter)
	if strings.HasPrefix(v, cursorSlices) {
		r.After = ""
	}
	if r.Done {
		r.After = ""
	}
	return r, nil
}

func (b *Backfill) request(k Kind, after string) reconcile.ListRequest {
	q := url.Values{"limit": {strconv.Itoa(b.cfg.PageSize)}}
	for key, v := range k.Params {
		q[key] = v
	}
	if after != "" {
		q.Set("starting_after", after)
	}
	// Stripe's versions begin with their date, so they sort in time.
	if k.Path == "/v1/invoices" && b.cfg.APIVersion >= billing.InvoicePaymentsSince { // expandable on the invoices' list: one call a page
		q.Add("expand[]", "data.payments")
	}
	if !k.Unranged {
		if !b.cfg.CreatedFrom.IsZero() {
			q.Set("created[gte]", strconv.FormatInt(b.cfg.CreatedFrom.Unix(), 10))
		}
		if !b.cfg.CreatedUntil.IsZero() {
			q.Set("created[lt]", strconv.FormatInt(b.cfg.CreatedUntil.Unix(), 10))
		}
	}
	return reconcile.ListRequest{Path: k.Path, Params: q, APIVersion: b.cfg.APIVersion, Account: b.cfg.Account}
}

// Run imports every kind not finished yet, Concurrency kinds at a time
// (a list's pages follow one another), each from its saved cursor, and
// reports on each, in Kinds' order. A kind that fails does not stop the
// others: err joins the failures, each naming its kind and what to do;
// the pages written are kept. progress, when set, is told of each page,
// one call at a time.
func (b *Backfill) Run(ctx context.Context, progress func(KindReport)) ([]KindReport, error) {
	out := make([]KindReport, len(b.kinds))
	errs := make([]error, len(b.kinds))
	var mu sync.Mutex
	told := func(r KindReport) {
		if progress != nil {
			mu.Lock()
			defer mu.Unlock()
			progress(r)
		}
	}
	slots := make(chan struct{}, b.cfg.Concurrency)
	var wg sync.WaitGroup
	for i, k := range b.kinds {
		// A slot is taken before the kind starts: kinds start in order.
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			out[i], errs[i] = KindReport{Kind: k.Name}, stopped(ctx, k)
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			r, err := b.resume(ctx, k)
			if err == nil && !r.Done {
				err = b.importSliced(ctx, k, &r, told)
			}
			out[i], errs[i] = r, err
		})
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// importSliced imports k in its ranges side by side (Config.Slices),
// telling progress of the kind's sums, or whole when it is not sliced.
func (b *Backfill) importSliced(ctx context.Context, k Kind, r *KindReport, progress func(KindReport)) error {
	bounds, err := b.slicePlan(ctx, k, r.After)
	if err != nil || bounds == nil {
		if err == nil {
			err = b.importKind(ctx, k, r, progress)
		}
		return err
	}
	n := len(bounds) - 1
	parts, errs := make([]KindReport, n), make([]error, n)
	var mu sync.Mutex
	sum := func() KindReport { // under mu
		s := KindReport{Kind: k.Name, Done: true, Finished: true}
		var covered float64
		for i, p := range parts {
			s.Pages += p.Pages
			s.Fetched += p.Fetched
			s.Written += p.Written
			s.Failed += p.Failed
			s.Done = s.Done && p.Done
			s.Finished = s.Finished && (p.Finished || p.Done)
			lo, hi := bounds[i], bounds[i+1]
			switch {
			case p.Finished || p.Done:
				covered += float64(hi - lo)
			case !p.Oldest.IsZero():
				covered += float64(hi - max(min(p.Oldest.Unix(), hi), lo))
			}
		}
		if s.Done {
			s.Finished = false
		}
		// As far back as one list would have come for the same share.
		s.Oldest = time.Unix(bounds[n]-int64(covered), 0).UTC()
		return s
	}
	var wg sync.WaitGroup
	for i := range n {
		sk := k
		sk.Params = url.Values{}
		maps.Copy(sk.Params, k.Params)
		sk.slice, sk.Unranged = fmt.Sprintf("/slice:%d-%d", bounds[i], bounds[i+1]), true
		if i > 0 || !b.cfg.CreatedFrom.IsZero() { // the first takes what is older than the origin too
			sk.Params.Set("created[gte]", strconv.FormatInt(bounds[i], 10))
		}
		sk.Params.Set("created[lt]", strconv.FormatInt(bounds[i+1], 10))
		wg.Go(func() {
			p, err := b.resume(ctx, sk)
			p.Kind = k.Name
			mu.Lock()
			parts[i] = p
			mu.Unlock()
			if err == nil && !p.Done {
				err = b.importKind(ctx, sk, &p, func(p KindReport) {
					mu.Lock() // the sums told in the order made
					defer mu.Unlock()
					parts[i] = p
					progress(sum())
				})
			}
			mu.Lock()
			parts[i], errs[i] = p, err
			mu.Unlock()
		})
	}
	wg.Wait()
	*r = sum()
	// The ranges stopped or refused alike say it once.
	var once []error
	for _, err := range errs {
		if err != nil && !slices.ContainsFunc(once, func(e error) bool { return e.Error() == err.Error() }) {
			once = append(once, err)
		}
	}
	if err := errors.Join(once...); err != nil {
		return err
	}
	if _, err := b.apply.ApplySnapshots(ctx, nil, ledger.Cursor{Name: b.checkpoint(k), Value: cursorDone}); err != nil {
		return fmt.Errorf("backfill: %s: save the cursor: %w (run again: the ranges are done)", k.Name, err)
	}
	return nil
}

// slicePlan is the bounds (Unix seconds) of k's ranges: those saved
// with its cursor (whatever Slices is now), or new ones, saved; nil when
// k is imported whole.
func (b *Backfill) slicePlan(ctx context.Context, k Kind, after string) ([]int64, error) {
	if k.Unranged || after != "" {
		return nil, nil
	}
	name := b.checkpoint(k)
	if !b.cfg.Restart {
		v, err := b.saved.Checkpoint(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("backfill: %s: read the saved cursor: %w", k.Name, err)
		}
		if saved, ok := strings.CutPrefix(v, cursorSlices); ok {
			var bounds []int64
			for _, f := range strings.Split(saved, ",") {
				t, err := strconv.ParseInt(f, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("backfill: %s: the saved ranges %q: %w (run with --restart)", k.Name, v, err)
				}
				bounds = append(bounds, t)
			}
			if len(bounds) < 2 {
				return nil, fmt.Errorf("backfill: %s: the saved ranges %q: no range (run with --restart)", k.Name, v)
			}
			return bounds, nil
		}
	}
	if b.cfg.Slices <= 1 {
		return nil, nil
	}
	from, until := b.Origin(ctx), b.cfg.CreatedUntil
	if until.IsZero() {
		until = time.Now().Add(time.Second)
	}
	if from.IsZero() || !until.After(from) {
		return nil, nil
	}
	lo, span := from.Unix(), until.Unix()-from.Unix()
	bounds := []int64{lo}
	for i := 1; i <= b.cfg.Slices; i++ {
		if t := lo + span*int64(i)/int64(b.cfg.Slices); t > bounds[len(bounds)-1] {
			bounds = append(bounds, t)
		}
	}
	fields := make([]string, len(bounds))
	for i, t := range bounds {
		fields[i] = strconv.FormatInt(t, 10)
	}
	if _, err := b.apply.ApplySnapshots(ctx, nil, ledger.Cursor{Name: name, Value: cursorSlices + strings.Join(fields, ",")}); err != nil {
		return nil, fmt.Errorf("backfill: %s: save the ranges: %w (run again)", k.Name, err)
	}
	return bounds, nil
}

// importKind imports k's pages from r.After on, each page and its cursor
// in one transaction. The next page is fetched while one is written (its
// cursor is the last id of the page before): the kind moves at the pace
// of the slower of the two, not of both in turn. A page fetched but not
// written when the import stops is fetched again by the next run.
func (b *Backfill) importKind(ctx context.Context, k Kind, r *KindReport, progress func(KindReport)) error {
	ctx, cancel := context.WithCancel(ctx)
	pages := make(chan fetched)
	var wg sync.WaitGroup
	wg.Go(func() { b.fetchPages(ctx, k, r.After, pages) })
	defer wg.Wait()
	defer cancel()
	for {
		var f fetched
		select {
		case f = <-pages:
		case <-ctx.Done():
			return stopped(ctx, k)
		}
		if f.err != nil {
			return f.err
		}
		page, after := f.page, f.last.id
		snaps := make([]billing.Event, 0, len(page.Objects))
		failed := 0
		for _, obj := range append(slices.Clip(page.Objects), f.more...) {
			ev, err := billing.Snapshot(obj, billing.Fetched{At: page.FetchedAt, APIVersion: b.cfg.APIVersion,
				Account: b.cfg.Account, Livemode: b.cfg.Livemode})
			if err != nil {
				failed++
				b.logger.WarnContext(ctx, "backfill: object skipped", "kind", k.Name, "error", err)
				continue
			}
			snaps = append(snaps, ev)
		}
		value := cursorAfter + after
		if !page.HasMore || len(page.Objects) == 0 {
			value = cursorDone
		}
		res, err := b.apply.ApplySnapshots(ctx, snaps, ledger.Cursor{Name: b.checkpoint(k), Value: value})
		if err != nil && ctx.Err() != nil {
			return stopped(ctx, k)
		}
		if err != nil {
			return fmt.Errorf("backfill: %s: write a page: %w (nothing of the page was kept; run again to resume from the last page written)", k.Name, err)
		}
		for id, err := range res.Failed {
			b.logger.WarnContext(ctx, "backfill: object not imported", "kind", k.Name, "object_id", id, "error", err)
		}
		r.Pages++
		r.Fetched += len(page.Objects)
		r.Written += res.Written
		r.Failed += failed + len(res.Failed)
		r.Finished = value == cursorDone
		if len(page.Objects) > 0 {
			r.Oldest = f.last.created
		}
		if progress != nil {
			progress(*r)
		}
		if r.Finished {
			return nil
		}
	}
}

// fetched is one page of a kind on its way to be written: its last
// object (whose id is the next page's cursor) and the objects that come
// with it (more), or err, what ended the fetching instead.
type fetched struct {
	page reconcile.Page
	last objectKey
	more []json.RawMessage
	err  error
}

// fetchPages fetches k's pages from after on into out, one ahead of the
// writing, until the last page, an error (sent too) or ctx's end.
func (b *Backfill) fetchPages(ctx context.Context, k Kind, after string, out chan<- fetched) {
	for {
		page, err := b.fetch(ctx, k, after)
		f := fetched{page: page, err: err}
		if n := len(page.Objects); err == nil && n > 0 {
			if f.last, err = keyOf(page.Objects[n-1]); err != nil {
				f.err = fmt.Errorf("backfill: %s: the page after %q ends with an object without an id (%w): run again; if it persists, report it", k.Name, after, err)
			}
			after = f.last.id
			if f.err == nil {
				f.more, f.err = b.morePayments(ctx, k, page)
			}
		}
		select {
		case out <- f:
		case <-ctx.Done():
			return
		}
		if f.err != nil || !page.HasMore || len(page.Objects) == 0 {
			return
		}
	}
}

// fetch gets k's page after after, trying again after a pause while the
// failure is transient.
func (b *Backfill) fetch(ctx context.Context, k Kind, after string) (reconcile.Page, error) {
	for n := 0; ; n++ {
		page, err := b.lister.ListPage(ctx, b.request(k, after))
		if err == nil {
			return page, nil
		}
		if ctx.Err() != nil {
			return reconcile.Page{}, stopped(ctx, k)
		}
		if failure.Of(err) == failure.Permanent {
			if b.cfg.Account != "" {
				return reconcile.Page{}, fmt.Errorf("backfill: %s on %s: Stripe refused the list: %w (check that %s is still connected to the platform and the key's read rights on %s; what was imported is kept)", k.Name, b.cfg.Account, err, b.cfg.Account, k.Name)
			}
			return reconcile.Page{}, fmt.Errorf("backfill: %s: Stripe refused the list: %w (check the key's read rights on %s; what was imported is kept)", k.Name, err, k.Name)
		}
		if n+1 >= b.cfg.Attempts {
			return reconcile.Page{}, fmt.Errorf("backfill: %s: %d tries of the page after %q failed: %w (run again later to resume from it; what was imported is kept)", k.Name, n+1, after, err)
		}
		wait := retry.Backoff(n, b.cfg.Backoff, b.cfg.MaxBackoff, 0.5, b.rnd)
		b.logger.InfoContext(ctx, "backfill: page failed, trying again", "kind", k.Name, "try", n+1, "pause", wait, "error", err)
		if pause.For(ctx, wait) != nil {
			return reconcile.Page{}, stopped(ctx, k)
		}
	}
}

// morePayments lists the rest of the payments of each invoice of page
// whose own list was cut short (has_more), from the InvoicePayments'
// list: an invoice paid in more payments than its list holds.
func (b *Backfill) morePayments(ctx context.Context, k Kind, page reconcile.Page) ([]json.RawMessage, error) {
	if k.Path != "/v1/invoices" || b.cfg.APIVersion < billing.InvoicePaymentsSince {
		return nil, nil
	}
	var more []json.RawMessage
	for _, obj := range page.Objects {
		var inv struct {
			ID       string `json:"id"`
			Payments *struct {
				Data []struct {
					ID string `json:"id"`
				} `json:"data"`
				HasMore bool `json:"has_more"`
			} `json:"payments"`
		}
		if json.Unmarshal(obj, &inv) != nil || inv.Payments == nil || !inv.Payments.HasMore || len(inv.Payments.Data) == 0 {
			continue
		}
		of := Kind{Name: k.Name, Path: "/v1/invoice_payments", Params: url.Values{"invoice": {inv.ID}}, Unranged: true}
		after := inv.Payments.Data[len(inv.Payments.Data)-1].ID
		for {
			p, err := b.fetch(ctx, of, after)
			if err != nil {
				return nil, fmt.Errorf("%w (the payments of invoice %s)", err, inv.ID)
			}
			more = append(more, p.Objects...)
			if !p.HasMore || len(p.Objects) == 0 {
				break
			}
			key, err := keyOf(p.Objects[len(p.Objects)-1])
			if err != nil {
				return nil, fmt.Errorf("backfill: %s: a payment of invoice %s without an id (%w)", k.Name, inv.ID, err)
			}
			after = key.id
		}
	}
	return more, nil
}

// origins tells when an account was created (reconcile.Fetcher).
type origins interface {
	AccountCreated(ctx context.Context, account string) (time.Time, error)
}

// Origin is where the import's history begins, for Progress's estimate
// of the time left: the range's start, else the account's creation when
// the Lister can tell it; zero when unknown.
func (b *Backfill) Origin(ctx context.Context) time.Time {
	if !b.cfg.CreatedFrom.IsZero() {
		return b.cfg.CreatedFrom
	}
	b.originOnce.Do(func() {
		if o, ok := b.lister.(origins); ok {
			if t, err := o.AccountCreated(ctx, b.cfg.Account); err == nil {
				b.origin = t
			}
		}
	})
	return b.origin
}

// accountsKind is the list of the platform's connected accounts.
var accountsKind = Kind{Name: "accounts", Path: "/v1/accounts", Unranged: true}

// Accounts lists the ids of the platform's connected accounts (Stripe
// Connect), page by page, each page tried again as a kind's are: the
// accounts `billing backfill --all-accounts` imports one after another.
// The Backfill must be the platform's (no Config.Account).
func (b *Backfill) Accounts(ctx context.Context) ([]string, error) {
	if b.cfg.Account != "" {
		return nil, fmt.Errorf("backfill: accounts: listed by the platform, not by %s", b.cfg.Account)
	}
	var ids []string
	after := ""
	for {
		page, err := b.fetch(ctx, accountsKind, after)
		if err != nil {
			return nil, err
		}
		for _, obj := range page.Objects {
			key, err := keyOf(obj)
			if err != nil {
				return nil, fmt.Errorf("backfill: accounts: an account without an id (%w)", err)
			}
			after = key.id
			ids = append(ids, after)
		}
		if !page.HasMore || len(page.Objects) == 0 {
			return ids, nil
		}
	}
}

// objectKey is what a page's order rests on: an object's id and when
// Stripe created it.
type objectKey struct {
	id      string
	created time.Time
}

// keyOf reads an object's id and created time (zero when it has none).
func keyOf(obj json.RawMessage) (objectKey, error) {
	var o struct {
		ID      string `json:"id"`
		Created int64  `json:"created"`
	}
	if err := json.Unmarshal(obj, &o); err != nil {
		return objectKey{}, err
	}
	if o.ID == "" {
		return objectKey{}, errors.New("no id")
	}
	k := objectKey{id: o.ID}
	if o.Created > 0 {
		k.created = time.Unix(o.Created, 0).UTC()
	}
	return k, nil
}

// stopped is the error of a kind whose import ctx ended.
func stopped(ctx context.Context, k Kind) error {
	return fmt.Errorf("backfill: %s: stopped: %w (run again to resume)", k.Name, ctx.Err())
}
