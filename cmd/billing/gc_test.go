package main

import (
	"log/slog"
	"runtime/debug"
	"testing"
)

// TestTuneWorkerGC: the worker's GOGC and memory limit apply where the
// environment sets neither; a GOGC or GOMEMLIMIT it sets is left to the
// runtime. Not parallel: the settings are the process's.
func TestTuneWorkerGC(t *testing.T) {
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	})
	for _, tt := range []struct {
		name             string
		env              map[string]string
		percent, limitMB int64
	}{
		{"defaults", nil, workerGCPercent, workerMemoryLimit >> 20},
		{"GOGC set", map[string]string{"GOGC": "150"}, 100, workerMemoryLimit >> 20},
		{"GOMEMLIMIT set", map[string]string{"GOMEMLIMIT": "1GiB"}, workerGCPercent, 1 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(100) // as the runtime would have read the variables
			debug.SetMemoryLimit(1 << 30)
			tuneWorkerGC(func(k string) string { return tt.env[k] }, slog.New(slog.DiscardHandler))
			p := debug.SetGCPercent(100)
			if l := debug.SetMemoryLimit(-1) >> 20; p != int(tt.percent) || l != tt.limitMB {
				t.Errorf("GOGC %d, memory limit %d MiB; want %d and %d", p, l, tt.percent, tt.limitMB)
			}
		})
	}
}
