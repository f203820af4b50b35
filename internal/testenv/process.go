package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreeAddr returns a loopback address no one listens on right now, for a
// server whose port the test must know before it starts (127.0.0.1:0
// would not tell). The port is below Linux's ephemeral range (32768 and
// up): a port from that range, free when checked, may be taken by an
// outgoing connection of a parallel test before the server binds it.
// Within a process no port is handed out twice.
func FreeAddr(t testing.TB) string {
	t.Helper()
	freeMu.Lock()
	defer freeMu.Unlock()
	for range 1000 {
		port := freeLow + rand.IntN(freeHigh-freeLow)
		if freeGiven[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		ln.Close()
		freeGiven[port] = true
		return addr
	}
	t.Fatalf("no free port in %d-%d on 127.0.0.1", freeLow, freeHigh)
	return ""
}

// The ports FreeAddr picks from, and those it has handed out.
const freeLow, freeHigh = 20000, 32768

var (
	freeMu    sync.Mutex
	freeGiven = map[int]bool{}
)

// ProcStatusMiB reads a kB field of /proc/<pid>/status in MiB: VmHWM is a
// process's peak resident set, VmRSS its current one.
func ProcStatusMiB(t testing.TB, pid int, field string) float64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			if err != nil {
				t.Fatal(err)
			}
			return float64(kb) / 1024
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// EnvInt reads a positive integer knob of a test run (a benchmark's
// size) from the environment; def when unset.
func EnvInt(t testing.TB, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
