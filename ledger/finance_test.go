package ledger_test

import (
	"context"
	"encoding/json"
	"maps"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
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

// financeSeeds are lifecycles on two days (seeds from 12 start after
// midnight) in two currencies (seeds divisible by 5 pay in eur); each
// runs in one of the supported API versions, in turn.
var financeSeeds = []int{1, 2, 3, 5, 10, 13, 14, 25}

// TestFinanceQueries runs each query of docs/finance.md on lifecycles of
// every supported API version, delivered shuffled with duplicates, and
// checks its totals per day and currency against the same sums computed
// from the events: each object's last state in Stripe's order.
func TestFinanceQueries(t *testing.T) {
	t.Parallel()
	queries := financeQueries(t)
	if got, want := slices.Sorted(maps.Keys(queries)), []string{"collected", "credited", "disputed_lost", "refunded"}; !slices.Equal(got, want) {
		t.Fatalf("docs/finance.md has queries %v, want %v", got, want)
	}
	versions := billing.SupportedVersions()
	var events [][]byte
	for i, seed := range financeSeeds {
		events = append(events, billingtest.VersionLifecycle(versions[i%len(versions)], seed).Events...)
	}
	want := financeTotals(t, events)

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
	for name, query := range queries {
		t.Run(name, func(t *testing.T) {
			rows, err := s.DB().Raw(query).Rows()
			if err != nil {
				t.Fatalf("%s: %v\n%s", name, err, query)
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
				got[day.Format(time.DateOnly)+" "+currency] = amount
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if len(want[name]) < 4 {
				t.Fatalf("the lifecycles give %s on %d (day, currency) pairs, want 2 days x 2 currencies", name, len(want[name]))
			}
			if !maps.Equal(got, want[name]) {
				t.Errorf("%s per day and currency:\n got  %v\n want %v", name, got, want[name])
			}
		})
	}
}

// financeTotals computes each finance query's totals, by query name and
// "day currency", from events in Stripe's order, without the database.
func financeTotals(t *testing.T, events [][]byte) map[string]map[string]int64 {
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
	}
	last := map[string]object{}      // each object's last state
	lostAt := map[string]time.Time{} // each dispute's first event that says lost
	var order []string
	for _, raw := range events {
		var ev struct {
			Created int64 `json:"created"`
			Data    struct {
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
		last[o.ID] = o
		if _, ok := lostAt[o.ID]; o.Object == "dispute" && o.Status == "lost" && !ok {
			lostAt[o.ID] = time.Unix(ev.Created, 0).UTC()
		}
	}
	totals := map[string]map[string]int64{"collected": {}, "refunded": {}, "credited": {}, "disputed_lost": {}}
	add := func(query string, at time.Time, currency string, amount int64) {
		totals[query][at.Format(time.DateOnly)+" "+currency] += amount
	}
	for _, id := range order {
		o := last[id]
		created := time.Unix(o.Created, 0).UTC()
		switch {
		case o.Object == "charge" && o.Status == "succeeded":
			add("collected", created, o.Currency, o.AmountCaptured)
		case o.Object == "refund" && o.Status == "succeeded":
			add("refunded", created, o.Currency, o.Amount)
		case o.Object == "credit_note" && o.Status != "void":
			add("credited", created, o.Currency, o.Total)
		case o.Object == "dispute" && o.Status == "lost":
			add("disputed_lost", lostAt[id], o.Currency, o.Amount)
		}
	}
	return totals
}
