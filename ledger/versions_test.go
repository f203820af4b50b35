package ledger_test

import (
	"context"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/stripe-billing/billing/billing"
	"github.com/stripe-billing/billing/billing/billingtest"
	"github.com/stripe-billing/billing/internal/stripefixture"
	"github.com/stripe-billing/billing/models"
)

// TestSupportedVersions holds billing.SupportedVersions to the versions
// with Stripe fixtures and to the README's list.
func TestSupportedVersions(t *testing.T) {
	t.Parallel()
	versions := billing.SupportedVersions()
	if !slices.Equal(versions, stripefixture.Versions()) {
		t.Errorf("SupportedVersions() = %v, fixtures cover %v", versions, stripefixture.Versions())
	}
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Stripe API versions\n")
	if !ok {
		t.Fatal(`README has no "## Stripe API versions" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var listed []string
	for _, m := range regexp.MustCompile("(?m)^- `([^`]+)`").FindAllStringSubmatch(section, -1) {
		listed = append(listed, m[1])
	}
	if !slices.Equal(listed, versions) {
		t.Errorf("README lists %v, SupportedVersions() = %v", listed, versions)
	}
}

// versionSeeds are the lifecycles each version runs: test and live mode,
// with and without a Connect account, with and without the invoice's
// payments list.
var versionSeeds = []int{1, 2, 3}

// TestVersionLifecycles runs the same customer lifecycles (and their
// TrafficLifecycles) in every supported API version, in Stripe's order and shuffled with duplicates,
// one event at a time and in batches of 16 (as sets, never event by
// event), and finds the records each version's lifecycles must leave, links
// included, and the same records in every version (invoice_payments
// aside, which only versions from basil have).
func TestVersionLifecycles(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	got := map[string]billingtest.Records{}
	t.Run("group", func(t *testing.T) {
		for _, version := range billing.SupportedVersions() {
			for _, order := range []string{"ordered", "shuffled", "ordered/batches", "shuffled/batches"} {
				t.Run(version+"/"+order, func(t *testing.T) {
					t.Parallel()
					var events [][]byte
					var want billingtest.Records
					for _, seed := range versionSeeds {
						l, tr := billingtest.VersionLifecycle(version, seed), billingtest.VersionTraffic(version, seed)
						events = append(append(events, l.Events...), tr.Events...)
						want = want.Add(l.Want).Add(tr.Want)
					}
					if strings.HasPrefix(order, "shuffled") {
						seed := rand.Uint64()
						t.Logf("shuffle seed %d", seed)
						rng := rand.New(rand.NewPCG(seed, seed))
						events = append(events, events[:len(events)/3]...) // redeliveries
						rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
					}
					s, p, fb := batchSetup(t)
					if strings.HasSuffix(order, "/batches") {
						processBatches(t, p, events, 16)
						if n := fb.n.Load(); n != 0 {
							t.Errorf("%d batches applied event by event, want the sets", n)
						}
					} else {
						for _, raw := range events {
							if _, err := p.Process(context.Background(), raw); err != nil {
								t.Fatalf("Process(%.200s): %v", raw, err)
							}
						}
					}
					records, err := billingtest.ReadRecords(s.DB())
					if err != nil {
						t.Fatal(err)
					}
					diffTables(t, records.Tables(), want.Tables())
					var dead int64
					s.DB().Model(&models.StripeEvent{}).Where("status <> ?", models.EventProcessed).Count(&dead)
					if dead != 0 {
						t.Errorf("%d ledger rows not processed", dead)
					}
					mu.Lock()
					got[version+"/"+order] = records
					mu.Unlock()
				})
			}
		}
	})
	oldest := billing.SupportedVersions()[0]
	base := got[oldest+"/ordered"]
	base.InvoicePayments = nil
	for key, r := range got {
		r.InvoicePayments = nil
		t.Run("same as "+oldest+"/"+key, func(t *testing.T) { diffTables(t, r.Tables(), base.Tables()) })
	}
}

// diffTables reports the rows of each table that differ.
func diffTables(t *testing.T, got, want map[string][]string) {
	t.Helper()
	for table, w := range want {
		g := got[table]
		if slices.Equal(g, w) {
			continue
		}
		t.Errorf("%s: %d rows, want %d", table, len(g), len(w))
		for i := range max(len(g), len(w)) {
			var gr, wr string
			if i < len(g) {
				gr = g[i]
			}
			if i < len(w) {
				wr = w[i]
			}
			if gr != wr {
				t.Errorf("%s row %d:\n got  %s\n want %s", table, i, gr, wr)
			}
		}
	}
	if len(got) != len(want) {
		t.Errorf("tables %d, want %d", len(got), len(want))
	}
}
