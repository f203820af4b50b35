// Package bench measures the billing system against this machine's own
// limits: every figure (ingest through the api, processing by the worker,
// end to end, memory) is measured in the same run as the raw figure it is
// compared with (bare RabbitMQ publishes, a bare net/http handler, bare
// MySQL transactions), because the machines it runs on are shared and
// noisy. The measurements live in the package's tests: Go benchmarks for
// `go test -bench`, and TestBenchTable, which `make bench` runs to print
// one table. This file holds what they share: statistics and the table.
package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Stats is one measured run: N operations in Elapsed, with each
// operation's latency when the run records them.
type Stats struct {
	N         int
	Elapsed   time.Duration
	Latencies []time.Duration
	// CPU is what the processes spent over the run, when it is measured.
	CPU CPUUse
}

// Rate is operations per second.
func (s Stats) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.N) / s.Elapsed.Seconds()
}

// Percentile returns the q-th quantile (0..1) of the latencies, nearest
// rank; 0 when none were recorded.
func (s Stats) Percentile(q float64) time.Duration {
	return Percentile(s.Latencies, q)
}

// Percentile returns the q-th quantile (0..1) of ls by nearest rank; ls is
// sorted in place. It returns 0 for an empty slice.
func Percentile(ls []time.Duration, q float64) time.Duration {
	if len(ls) == 0 {
		return 0
	}
	slices.Sort(ls)
	i := int(q*float64(len(ls))+0.5) - 1
	return ls[min(max(i, 0), len(ls)-1)]
}

// Median returns the run with the median rate of runs (the lower one of
// an even count), so that one noisy run moves no figure.
func Median(runs []Stats) Stats {
	if len(runs) == 0 {
		return Stats{}
	}
	s := slices.Clone(runs)
	slices.SortFunc(s, func(a, b Stats) int {
		switch {
		case a.Rate() < b.Rate():
			return -1
		case a.Rate() > b.Rate():
			return 1
		}
		return 0
	})
	return s[(len(s)-1)/2]
}

// Row is one line of the table: a figure, what it is compared with, and
// the target when there is one.
type Row struct {
	Part    string // "limit", "ingest", "processing", "end to end", "memory"
	What    string
	Figure  string
	Limit   string // the limit measured beside it, "" for the limits themselves
	Ratio   string
	Target  string
	Verdict string // "met", "missed by ...", "" when there is no target
}

// WriteTable prints rows as a Markdown table.
func WriteTable(w io.Writer, rows []Row) error {
	var b strings.Builder
	b.WriteString("| part | what | figure | limit beside it | ratio | target | verdict |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n",
			r.Part, r.What, dash(r.Figure), dash(r.Limit), dash(r.Ratio), dash(r.Target), dash(r.Verdict))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func dash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// PerSecond formats a rate.
func PerSecond(r float64, unit string) string { return fmt.Sprintf("%.0f %s/s", r, unit) }

// Millis formats a latency in milliseconds.
func Millis(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

// AtLeast says whether got ≥ want and by how much it falls short.
func AtLeast(got, want float64, format string) string {
	if got >= want {
		return "met"
	}
	return "missed by " + fmt.Sprintf(format, want-got)
}

// AtMost says whether got ≤ want and by how much it exceeds it.
func AtMost(got, want float64, format string) string {
	if got <= want {
		return "met"
	}
	return "missed by " + fmt.Sprintf(format, got-want)
}
