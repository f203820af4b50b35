package bench

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is Linux's USER_HZ, the unit of /proc/<pid>/stat's times: 100
// on every architecture Go supports (sysconf(_SC_CLK_TCK) needs cgo).
const clockTick = 10 * time.Millisecond

// CPUTime is the processor time pid has used so far, user and system,
// all its threads, from /proc/<pid>/stat. Rates move with whatever else
// runs on a shared machine; the CPU a process spends per event holds
// still.
func CPUTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("bench: read cpu time of %d: %w", pid, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// the fields counted from after its closing one, utime and stime are
	// the 12th and 13th.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("bench: /proc/%d/stat has %d fields", pid, len(f))
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bench: /proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// FindProcesses returns the pids whose /proc/<pid>/comm is name, such as
// "beam.smp" (RabbitMQ) or "mariadbd"; none where there is no /proc or
// the server runs elsewhere.
func FindProcesses(name string) []int {
	paths, _ := filepath.Glob("/proc/[0-9]*/comm")
	var pids []int
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || strings.TrimSpace(string(b)) != name {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			pids = append(pids, pid)
		}
	}
	slices.Sort(pids)
	return pids
}

// Procs names the processes of a measurement: each name may cover several
// pids (two api processes count as one "api").
type Procs struct {
	Names []string // in the order they are printed
	Pids  map[string][]int
}

// Add names pids; a name without any is left out.
func (p *Procs) Add(name string, pids ...int) {
	if len(pids) == 0 {
		return
	}
	if p.Pids == nil {
		p.Pids = map[string][]int{}
	}
	if _, ok := p.Pids[name]; !ok {
		p.Names = append(p.Names, name)
	}
	p.Pids[name] = append(p.Pids[name], pids...)
}

// cpuTimes reads the CPU time of each pid of p; a pid that is gone (a
// short-lived process of the same name, such as rabbitmqctl's beam.smp,
// or a server restarted meanwhile) is left out.
func (p *Procs) cpuTimes() (map[int]time.Duration, error) {
	t := map[int]time.Duration{}
	for _, pids := range p.Pids {
		for _, pid := range pids {
			d, err := CPUTime(pid)
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
				continue
			}
			if err != nil {
				return nil, err
			}
			t[pid] = d
		}
	}
	return t, nil
}

// CPUUse is the CPU each named process spent over one measured stretch.
type CPUUse struct {
	Names   []string
	Spent   map[string]time.Duration
	Elapsed time.Duration
}

// Measure reads p's CPU times, runs fn, and reads them again; a pid is
// counted when it is there at the second read (a process fn starts, and
// adds to p, from its start), and left out when it is gone by then.
func (p *Procs) Measure(fn func() error) (CPUUse, error) {
	before, err := p.cpuTimes()
	if err != nil {
		return CPUUse{}, err
	}
	start := time.Now()
	if err := fn(); err != nil {
		return CPUUse{}, err
	}
	elapsed := time.Since(start)
	after, err := p.cpuTimes()
	if err != nil {
		return CPUUse{}, err
	}
	u := CPUUse{Names: p.Names, Spent: map[string]time.Duration{}, Elapsed: elapsed}
	for name, pids := range p.Pids {
		for _, pid := range pids {
			// A pid added during fn started there, from no CPU time;
			// one gone by the second read is left out.
			if a, ok := after[pid]; ok {
				u.Spent[name] += a - before[pid]
			}
		}
	}
	return u, nil
}

// Settle waits, at most limit, until p's processes together keep less
// than busy of a core over one step, so that a measurement neither counts
// nor competes with what an earlier one left them to do (RabbitMQ writing
// a queue's segments, InnoDB flushing pages and purging). It returns how
// long it waited and whether they settled.
func (p *Procs) Settle(busy float64, step, limit time.Duration) (time.Duration, bool, error) {
	start := time.Now()
	for {
		before, err := p.cpuTimes()
		if err != nil {
			return 0, false, err
		}
		time.Sleep(step)
		after, err := p.cpuTimes()
		if err != nil {
			return 0, false, err
		}
		var spent time.Duration
		for pid, a := range after {
			if b, ok := before[pid]; ok {
				spent += a - b
			}
		}
		if waited := time.Since(start); spent.Seconds() < busy*step.Seconds() {
			return waited, true, nil
		} else if waited >= limit {
			return waited, false, nil
		}
	}
}

// MsPerThousand is the CPU milliseconds process name spent per 1,000 of
// n events.
func (u CPUUse) MsPerThousand(name string, n int) float64 {
	return float64(u.Spent[name]) / float64(time.Millisecond) * 1000 / float64(max(n, 1))
}

// PerThousand formats the CPU milliseconds each process spent per 1,000
// of n events.
func (u CPUUse) PerThousand(n int) string {
	var parts []string
	for _, name := range u.Names {
		parts = append(parts, fmt.Sprintf("%s %.0f", name, u.MsPerThousand(name, n)))
	}
	return strings.Join(parts, ", ") + " CPU ms per 1,000 events"
}

// Cores formats the cores each process kept busy on average, the busiest
// first: on a machine of N cores, a process near its own limit (one core
// for a single-threaded one) or a sum near N says what bounds a rate.
func (u CPUUse) Cores() string {
	names := slices.Clone(u.Names)
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(u.Spent[b], u.Spent[a]) })
	var parts []string
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s %.2f", name, u.Spent[name].Seconds()/max(u.Elapsed.Seconds(), 1e-9)))
	}
	return "cores busy: " + strings.Join(parts, ", ")
}
