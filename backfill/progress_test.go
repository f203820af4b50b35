package backfill_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stripe-billing/billing/backfill"
)

func TestProgress(t *testing.T) {
	t.Parallel()
	origin := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	// customers: a first page 20 days back from the origin, then ten
	// seconds later 10 days back: 10 days done in 10 s, 10 days left.
	pages := []struct {
		at time.Duration
		r  backfill.KindReport
	}{
		{0, backfill.KindReport{Kind: "customers", Pages: 1, Fetched: 100, Written: 100, Oldest: origin.Add(20 * day)}},
		{time.Second, backfill.KindReport{Kind: "refunds", Pages: 1, Finished: true}},
		{10 * time.Second, backfill.KindReport{Kind: "customers", Pages: 6, Fetched: 600, Written: 590, Failed: 1, Oldest: origin.Add(10 * day)}},
		{12 * time.Second, backfill.KindReport{Kind: "customers", Pages: 7, Fetched: 650, Written: 640, Failed: 1, Oldest: origin, Finished: true}},
	}
	run := func(terminal bool) string {
		var out bytes.Buffer
		now := t0
		p := backfill.NewProgress(&out, terminal, backfill.ProgressConfig{Origin: origin, Now: func() time.Time { return now }})
		for _, page := range pages {
			now = t0.Add(page.at)
			p.Update(page.r)
		}
		return out.String()
	}

	t.Run("PlainLinesEveryTenSecondsAndAtEachKindsEnd", func(t *testing.T) {
		t.Parallel()
		want := "refunds: 0 fetched, 0 written, 0 failed, done\n" +
			"customers: 600 fetched, 590 written, 1 failed, 50 objects/s, created back to 2024-01-11, about 10s left\n" +
			"customers: 650 fetched, 640 written, 1 failed, 46 objects/s, done\n"
		if got := run(false); got != want {
			t.Errorf("lines:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("OnATerminalTheKindsLinesAreRedrawnInPlace", func(t *testing.T) {
		t.Parallel()
		got := run(true)
		frames := strings.Split(got, "\x1b[2A")
		if len(frames) != 3 || strings.Count(got, "\x1b[1A") != 1 {
			t.Fatalf("%q: want one line drawn, then two redrawn three times", got)
		}
		last := "\x1b[2Kcustomers: 650 fetched, 640 written, 1 failed, 46 objects/s, done\n\x1b[2Krefunds: 0 fetched, 0 written, 0 failed, done\n"
		if frames[2] != last {
			t.Errorf("last frame %q; want %q", frames[2], last)
		}
		if !strings.Contains(frames[1], "created back to 2024-01-11, about 10s left") {
			t.Errorf("frame %q; want the time left", frames[1])
		}
	})
	t.Run("NoEstimateWithoutAnOrigin", func(t *testing.T) {
		t.Parallel()
		var out bytes.Buffer
		now := t0
		p := backfill.NewProgress(&out, false, backfill.ProgressConfig{LogEvery: time.Second, Now: func() time.Time { return now }})
		p.Update(pages[0].r)
		now = now.Add(10 * time.Second)
		p.Update(pages[2].r)
		if got := out.String(); strings.Contains(got, "left") || !strings.Contains(got, "created back to") {
			t.Errorf("%q; want how far back, no time left", got)
		}
	})
}
