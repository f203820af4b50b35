package backfill

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// DefaultLogEvery is how often Progress writes a plain line for a kind
// under way (not on a terminal).
const DefaultLogEvery = 10 * time.Second

// Progress shows where a run stands, per kind: what was fetched, written
// and failed, objects a second, and an estimate of the time left. On a
// terminal its lines are redrawn in place at each page; elsewhere (a log
// file, a pipe) it writes a plain line per kind every LogEvery and when
// the kind ends. Its Update is Run's progress function.
//
// Stripe's lists say nothing of their length, so the time left is
// estimated from the objects' created times: a list runs from the newest
// to the oldest, and Origin is where the account's history begins (its
// creation, or the range's start). An account's objects older than
// Origin (adopted from elsewhere) make the estimate short.
type Progress struct {
	w        io.Writer
	terminal bool
	cfg      ProgressConfig

	mu    sync.Mutex
	kinds []*kindProgress // in the order first told of
	drawn int             // lines drawn on the terminal
}

// ProgressConfig configures a Progress.
type ProgressConfig struct {
	// Origin is the oldest time the run goes back to; zero: unknown, and
	// no estimate of the time left.
	Origin time.Time
	// LogEvery is how often a plain line is written for a kind under
	// way; default DefaultLogEvery.
	LogEvery time.Duration
	// Now is the clock; default time.Now.
	Now func() time.Time
}

type kindProgress struct {
	r KindReport
	// base is the kind's first page, told at start: the pace is what
	// came after it.
	base          KindReport
	start, logged time.Time
}

// NewProgress returns a Progress writing to w; terminal: w is one.
func NewProgress(w io.Writer, terminal bool, cfg ProgressConfig) *Progress {
	if cfg.LogEvery <= 0 {
		cfg.LogEvery = DefaultLogEvery
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Progress{w: w, terminal: terminal, cfg: cfg}
}

// Terminal says whether w is a terminal (a character device).
func Terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Update is told of a kind's page (Run's progress).
func (p *Progress) Update(r KindReport) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Now()
	var k *kindProgress
	for _, c := range p.kinds {
		if c.r.Kind == r.Kind {
			k = c
		}
	}
	if k == nil {
		k = &kindProgress{base: r, start: now, logged: now}
		p.kinds = append(p.kinds, k)
	}
	k.r = r
	if p.terminal {
		p.draw(now)
		return
	}
	if r.Finished || now.Sub(k.logged) >= p.cfg.LogEvery {
		k.logged = now
		fmt.Fprintln(p.w, p.line(k, now))
	}
}

// draw redraws every kind's line in place.
func (p *Progress) draw(now time.Time) {
	var b strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&b, "\x1b[%dA", p.drawn) // back to the first line
	}
	for _, k := range p.kinds {
		b.WriteString("\x1b[2K") // the line cleared
		b.WriteString(p.line(k, now))
		b.WriteByte('\n')
	}
	p.drawn = len(p.kinds)
	_, _ = io.WriteString(p.w, b.String())
}

// line is one kind's progress.
func (p *Progress) line(k *kindProgress, now time.Time) string {
	r := k.r
	s := fmt.Sprintf("%s: %d fetched, %d written, %d failed", r.Kind, r.Fetched, r.Written, r.Failed)
	if elapsed := now.Sub(k.start); elapsed > 0 && r.Pages > k.base.Pages {
		s += fmt.Sprintf(", %.0f objects/s", float64(r.Fetched-k.base.Fetched)/elapsed.Seconds())
	}
	switch {
	case r.Finished:
		return s + ", done"
	case !r.Oldest.IsZero():
		s += ", created back to " + r.Oldest.Format(time.DateOnly)
	}
	if eta, ok := p.eta(k, now); ok {
		s += ", about " + eta.String() + " left"
	}
	return s
}

// eta estimates the time k has left: the stretch of created times still
// to go, at the pace the run went through the stretch since its first
// page.
func (p *Progress) eta(k *kindProgress, now time.Time) (time.Duration, bool) {
	r := k.r
	done, left := k.base.Oldest.Sub(r.Oldest), max(r.Oldest.Sub(p.cfg.Origin), 0)
	if p.cfg.Origin.IsZero() || r.Oldest.IsZero() || done <= 0 {
		return 0, false
	}
	eta := time.Duration(float64(now.Sub(k.start)) * float64(left) / float64(done))
	return eta.Round(time.Second), true
}
