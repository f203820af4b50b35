package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/stripe-billing/billing/failure"
	"github.com/stripe-billing/billing/verify"
)

// listWait is how long a page waits for its turn under the Fetcher's
// limits: a backfill has nothing else to do meanwhile, so it waits for
// as long as its context lets it.
const listWait = 24 * time.Hour

// ListRequest names one page of a Stripe list.
type ListRequest struct {
	// Path is the list's API path: "/v1/customers".
	Path string
	// Params are the page's query: limit, starting_after, expand[], and
	// the list's own filters (status=all).
	Params url.Values
	// APIVersion is the shape the objects are served in (stripe-go's
	// pinned one when empty); Account the Connect account to list on.
	APIVersion, Account string
}

// Page is one page of a Stripe list.
type Page struct {
	Objects []json.RawMessage
	HasMore bool
	// FetchedAt is when the request was sent: Stripe read the objects
	// after it (billing.Fetched.At).
	FetchedAt time.Time
}

// ListPage GETs one page of a list, through the Fetcher's limits (it
// waits for its turn as long as ctx lets it) and without the negative
// cache: a backfill retries a page on purpose, after a pause. Stripe's
// refusal (400, 401, 403, 404, or Stripe-Should-Retry: false) is an
// error marked permanent that says what Stripe said; anything else (429,
// 5xx, the network, a page cut off) is transient: worth the same request
// again after a pause.
func (f *Fetcher) ListPage(ctx context.Context, req ListRequest) (Page, error) {
	if req.Account != "" && !verify.ValidAccount(req.Account) {
		return Page{}, failure.MarkPermanent(fmt.Errorf("reconcile: list %s: %w", req.Path, verify.ErrBadAccount))
	}
	path := req.Path
	if len(req.Params) > 0 {
		path += "?" + req.Params.Encode()
	}
	done, err := f.limit.take(ctx, listWait)
	if err != nil {
		f.observe(PurposeBackfill, OutcomeLimited)
		return Page{}, fmt.Errorf("reconcile: list %s: %w", req.Path, err)
	}
	at := f.now()
	ans := f.call(ctx, path, req.APIVersion, req.Account)
	done()
	f.observe(PurposeBackfill, ans.outcome)
	switch {
	case ans.outcome == OutcomeOK:
	case ans.noRetry || ans.status == http.StatusUnauthorized || ans.outcome == OutcomeNotFound || ans.outcome == OutcomeRefused:
		return Page{}, failure.MarkPermanent(fmt.Errorf("reconcile: list %s: %w", req.Path, ans.err))
	default:
		return Page{}, fmt.Errorf("reconcile: list %s: %w", req.Path, ans.err)
	}
	var list struct {
		Object  string            `json:"object"`
		Data    []json.RawMessage `json:"data"`
		HasMore *bool             `json:"has_more"`
	}
	if err := json.Unmarshal(ans.body, &list); err != nil || list.Object != "list" || list.HasMore == nil {
		// A page cut off on its way, most likely: the same request again.
		return Page{}, fmt.Errorf("reconcile: list %s: not a whole list page (%d bytes): %v", req.Path, len(ans.body), err)
	}
	return Page{Objects: list.Data, HasMore: *list.HasMore, FetchedAt: at}, nil
}

// AccountCreated is when account ("" for the platform's own) was
// created, as Stripe says (GET /v1/account), asked through the Fetcher's
// limits; zero when Stripe's answer has no time.
func (f *Fetcher) AccountCreated(ctx context.Context, account string) (time.Time, error) {
	if account != "" && !verify.ValidAccount(account) {
		return time.Time{}, fmt.Errorf("reconcile: account: %w", verify.ErrBadAccount)
	}
	done, err := f.limit.take(ctx, listWait)
	if err != nil {
		return time.Time{}, fmt.Errorf("reconcile: account: %w", err)
	}
	ans := f.call(ctx, "/v1/account", "", account)
	done()
	f.observe(PurposeBackfill, ans.outcome)
	if ans.outcome != OutcomeOK {
		return time.Time{}, fmt.Errorf("reconcile: account: %w", ans.err)
	}
	var a struct {
		Created int64 `json:"created"`
	}
	if err := json.Unmarshal(ans.body, &a); err != nil {
		return time.Time{}, fmt.Errorf("reconcile: account: %w", err)
	}
	if a.Created <= 0 {
		return time.Time{}, nil
	}
	return time.Unix(a.Created, 0).UTC(), nil
}
