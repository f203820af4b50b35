package main

import (
	"log/slog"
	"runtime"
	"runtime/debug"
	"testing"
)

// TestTuneWorkerRuntime: the worker's GOGC, memory limit and GOMAXPROCS
// apply where the environment does not set them; a GOGC, GOMEMLIMIT or
// GOMAXPROCS it sets is left to the runtime. Not parallel: the settings
// are the process's.
func TestTuneWorkerRuntime(t *testing.T) {
	percent, limit, procs := debug.SetGCPercent(100), debug.SetMemoryLimit(-1), runtime.GOMAXPROCS(0)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
		runtime.GOMAXPROCS(procs)
	})
	for _, tt := range []struct {
		name             string
		env              map[string]string
		percent, limitMB int64
		procs            int
	}{
		{"defaults", nil, workerGCPercent, workerMemoryLimit >> 20, workerMaxProcs},
		{"GOGC set", map[string]string{"GOGC": "150"}, 100, workerMemoryLimit >> 20, workerMaxProcs},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, workerGCPercent, 1 << 10, workerMaxProcs},
		{"GOMAXPROCS set", map[string]string{"GOMAXPROCS": "3"}, workerGCPercent, workerMemoryLimit >> 20, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(100) // as the runtime would have read the variables
			debug.SetMemoryLimit(1 << 30)
			runtime.GOMAXPROCS(3)
			tuneWorkerRuntime(func(k string) string { return tt.env[k] }, slog.New(slog.DiscardHandler))
			p, n := debug.SetGCPercent(100), runtime.GOMAXPROCS(0)
			if l := debug.SetMemoryLimit(-1) >> 20; p != int(tt.percent) || l != tt.limitMB || n != tt.procs {
				t.Errorf("GOGC %d, memory limit %d MiB, GOMAXPROCS %d; want %d, %d and %d", p, l, n, tt.percent, tt.limitMB, tt.procs)
			}
		})
	}
}
