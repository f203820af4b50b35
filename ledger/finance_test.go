package ledger_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/models"
)

// financeQueries are the SQL blocks of docs/finance.md whose first line
// is a "-- name" comment, by name: the test runs the page itself.
func financeQueries(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile("../docs/finance.md")
	if err != nil {
		t.Fatal(err)
	}
	queries := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)```sql\n-- ([a-z_]+)\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		queries[m[1]] = m[2]
	}
	return queries
}

// financeSeeds are the lifecycles of TestFinanceQueries by scope: live
// mode and the platform, test mode and the platform, and connected
// accounts (seeds divisible by 3, each an account of its own: live for
// odd seeds, test for even ones). Seeds from 12 start after midnight,
// seeds divisible by 5 pay in eur, so that each platform scope has two
// days and two currencies; each scope runs every supported API version,
// one a seed, in turn.
var financeSeeds = [][]int{
	{1, 5, 13, 25, 7},  // live, the platform
	{2, 10, 14, 20, 4}, // test, the platform
	{3, 6, 15, 30, 9},  // connected accounts
}

// platformScopes are the conditions of docs/finance.md's scope table for
// the platform, live as every query is written, and test.
const (
	livePlatform = "livemode = 1 AND account IS NULL"
	testPlatform = "livemode = 0 AND account IS NULL"
)

// scopeOf is the condition of docs/finance.md that selects an event's
// rows: its mode, and the platform or its connected account.
func scopeOf(livemode bool, account string) string {
	mode := 0
	if livemode {
		mode = 1
	}
	if account == "" {
		return fmt.Sprintf("livemode = %d AND account IS NULL", mode)
	}
	return fmt.Sprintf("livemode = %d AND account = '%s'", mode, account)
}

// scopeName names a scope condition for a subtest: LivePlatform,
// TestPlatform, or the account and its mode.
func scopeName(scope string) string {
	var mode int
	var account string
	if _, err := fmt.Sscanf(scope, "livemode = %d AND account = '%s", &mode, &account); err != nil {
		return map[string]string{livePlatform: "LivePlatform", testPlatform: "TestPlatform"}[scope]
	}
	return strings.TrimSuffix(account, "'") + map[int]string{0: "_test", 1: "_live"}[mode]
}

// scopeCondition is the scope condition in a query of docs/finance.md,
// a table's alias and all.
var scopeCondition = regexp.MustCompile(`(\w+\.)?livemode = 1 AND (\w+\.)?account IS NULL`)

// inScope is query, written for live mode and the platform, with the
// condition of scope instead, as the page's scope table says.
func inScope(query, scope string) string {
	return scopeCondition.ReplaceAllStringFunc(query, func(m string) string {
		alias := scopeCondition.FindStringSubmatch(m)[1]
		return alias + strings.Replace(scope, " AND account", " AND "+alias+"account", 1)
	})
}

// TestFinanceQueries runs each query of docs/finance.md on lifecycles of
// every supported API version in live mode, test mode and connected
// accounts, each with holds canceled, expired and captured in part
// (billingtest.HoldLifecycle: before basil Stripe refunds what it never
// captured, which is not refunded money), delivered shuffled with duplicates, once in each scope (the
// page's condition changed as its scope table says), and checks its
// totals per day and currency against the same sums computed from the
// events of that scope: each object's last state in Stripe's order. The
// views charges and payment_intents hold live mode and the platform
// only.
func TestFinanceQueries(t *testing.T) {
	t.Parallel()
	queries := financeQueries(t)
	if got, want := slices.Sorted(maps.Keys(queries)), []string{"collected", "credited", "disputed_lost", "refunded"}; !slices.Equal(got, want) {
		t.Fatalf("docs/finance.md has queries %v, want %v", got, want)
	}
	doc, err := os.ReadFile("../docs/finance.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, variant := range []string{"`" + livePlatform + "`", "`" + testPlatform + "`", "`livemode = 1 AND account = 'acct_...'`"} {
		if !strings.Contains(string(doc), variant) {
			t.Errorf("docs/finance.md's scope table lacks %s", variant)
		}
	}
	for name, query := range queries {
		if n := len(scopeCondition.FindAllString(query, -1)); n != 1 {
			t.Errorf("query %s has the scope condition %q %d times, want once:\n%s", name, livePlatform, n, query)
		}
	}
	versions := billing.SupportedVersions()
	var events [][]byte
	for _, seeds := range financeSeeds {
		for i, seed := range seeds {
			v := versions[i%len(versions)]
			events = append(events, billingtest.VersionLifecycle(v, seed).Events...)
			for _, h := range billingtest.Holds {
				events = append(events, billingtest.HoldLifecycle(v, seed, h)...)
			}
		}
	}
	want := financeTotals(t, events)
	if len(want) != 2+len(financeSeeds[2]) {
		t.Fatalf("the lifecycles give %d scopes, want the platform's two and %d accounts", len(want), len(financeSeeds[2]))
	}

	s, p := setup(t)
	seed := rand.Uint64()
	t.Logf("shuffle seed %d", seed)
	delivered := append(slices.Clone(events), events[:len(events)/4]...)
	rand.New(rand.NewPCG(seed, seed)).Shuffle(len(delivered), func(i, j int) { delivered[i], delivered[j] = delivered[j], delivered[i] })
	for _, raw := range delivered {
		if _, err := p.Process(context.Background(), raw); err != nil {
			t.Fatalf("Process(%.200s): %v", raw, err)
		}
	}
	for _, scope := range slices.Sorted(maps.Keys(want)) {
		for name, query := range queries {
			t.Run(scopeName(scope)+"/"+name, func(t *testing.T) {
				got := dayTotals(t, s, inScope(query, scope))
				if (scope == livePlatform || scope == testPlatform) && len(want[scope][name]) < 4 {
					t.Fatalf("the lifecycles give %s on %d (day, currency) pairs, want 2 days x 2 currencies", name, len(want[scope][name]))
				}
				if !maps.Equal(got, want[scope][name]) {
					t.Errorf("%s per day and currency:\n got  %v\n want %v", name, got, want[scope][name])
				}
			})
		}
	}
	t.Run("Views", func(t *testing.T) {
		collected := dayTotals(t, s, `SELECT DATE(stripe_created) AS day, currency, SUM(amount_captured) AS amount
			FROM charges WHERE status = 'succeeded' GROUP BY day, currency`)
		if !maps.Equal(collected, want[livePlatform]["collected"]) {
			t.Errorf("collected over the view charges:\n got  %v\n want the live platform's %v", collected, want[livePlatform]["collected"])
		}
		var n int64
		if err := s.DB().Raw("SELECT COUNT(*) FROM payment_intents").Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		if want := int64(len(financeSeeds[0]) * (1 + len(billingtest.Holds))); n != want {
			t.Errorf("the view payment_intents has %d rows, want the live platform's %d", n, want)
		}
	})
}

// dayTotals runs query, whose rows are (day, currency, amount), and
// returns the amounts by "day currency".
func dayTotals(t *testing.T, s *models.Store, query string) map[string]int64 {
	t.Helper()
	rows, err := s.DB().Raw(query).Rows()
	if err != nil {
		t.Fatalf("%v\n%s", err, query)
	}
	defer rows.Close()
	got := map[string]int64{}
	for rows.Next() {
		var day time.Time
		var currency string
		var amount int64
		if err := rows.Scan(&day, &currency, &amount); err != nil {
			t.Fatal(err)
		}
		if amount != 0 { // as no row: the uncaptured holds' days
			got[day.Format(time.DateOnly)+" "+currency] = amount
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// financeTotals computes each finance query's totals from events in
// Stripe's order, without the database: by scope (scopeOf the event
// that last wrote the object), query name and "day currency".
func financeTotals(t *testing.T, events [][]byte) map[string]map[string]map[string]int64 {
	t.Helper()
	type object struct {
		ID             string `json:"id"`
		Object         string `json:"object"`
		Status         string `json:"status"`
		Currency       string `json:"currency"`
		Created        int64  `json:"created"`
		Amount         int64  `json:"amount"`
		AmountCaptured int64  `json:"amount_captured"`
		Total          int64  `json:"total"`
		Charge         string `json:"charge"`
		Captured       bool   `json:"captured"`
	}
	last := map[string]object{}      // each object's last state
	scope := map[string]string{}     // and the scope of its last event
	lostAt := map[string]time.Time{} // each dispute's first event that says lost
	// capturedAt is each charge's first event that says captured: what a
	// refund created by then gave back was never captured (the rest of a
	// partial capture), nor was a refund of a charge never captured.
	capturedAt := map[string]int64{}
	var order []string
	for _, raw := range events {
		var ev struct {
			Created  int64  `json:"created"`
			Livemode bool   `json:"livemode"`
			Account  string `json:"account"`
			Data     struct {
				Object object `json:"object"`
			} `json:"data"`
		}
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		o := ev.Data.Object
		if _, seen := last[o.ID]; !seen {
			order = append(order, o.ID)
		}
		last[o.ID], scope[o.ID] = o, scopeOf(ev.Livemode, ev.Account)
		if at, ok := capturedAt[o.ID]; o.Object == "charge" && o.Captured && (!ok || ev.Created < at) {
			capturedAt[o.ID] = ev.Created
		}
		if _, ok := lostAt[o.ID]; o.Object == "dispute" && o.Status == "lost" && !ok {
			lostAt[o.ID] = time.Unix(ev.Created, 0).UTC()
		}
	}
	totals := map[string]map[string]map[string]int64{}
	add := func(id, query string, at time.Time, currency string, amount int64) {
		if totals[scope[id]] == nil {
			totals[scope[id]] = map[string]map[string]int64{"collected": {}, "refunded": {}, "credited": {}, "disputed_lost": {}}
		}
		if amount != 0 { // a day's total of 0 is no row of it
			totals[scope[id]][query][at.Format(time.DateOnly)+" "+currency] += amount
		}
	}
	for _, id := range order {
		o := last[id]
		created := time.Unix(o.Created, 0).UTC()
		switch {
		case o.Object == "charge" && o.Status == "succeeded":
			add(id, "collected", created, o.Currency, o.AmountCaptured)
		case o.Object == "refund" && o.Status == "succeeded":
			if at, ok := capturedAt[o.Charge]; ok && o.Created > at {
				add(id, "refunded", created, o.Currency, o.Amount)
			}
		case o.Object == "credit_note" && o.Status != "void":
			add(id, "credited", created, o.Currency, o.Total)
		case o.Object == "dispute" && o.Status == "lost":
			add(id, "disputed_lost", lostAt[id], o.Currency, o.Amount)
		}
	}
	return totals
}
