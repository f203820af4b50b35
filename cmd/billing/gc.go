package main

import (
	"log/slog"
	"runtime/debug"
	"strconv"
)

// The worker's garbage collector, unless GOGC or GOMEMLIMIT say otherwise
// (docs/design.md, "The worker's garbage collector"). Its live heap is
// small (a few MiB: the prefetched messages, gorm's schemas, the pools)
// and nearly all it allocates is dead by the end of the batch (JSON, SQL
// text, rows), so at Go's default GOGC of 100 it collects every few MiB
// allocated. A GOGC of 400 collects a quarter as often; the soft memory
// limit makes it collect sooner whenever the heap nears workerMemoryLimit,
// so the worker stays within the 128 MiB its peak RSS is held to
// (docs/benchmarks.md) whatever the GOGC.
const (
	workerGCPercent   = 400
	workerMemoryLimit = 96 << 20
)

// tuneWorkerGC sets the worker's GOGC and memory limit where the
// environment sets neither, and logs what is in force. Either variable,
// set, is the runtime's as usual ("off", "200", "256MiB"). `billing
// worker` calls it at start: the settings are the process's, so they
// belong where the process starts, not in config, which only reads
// settings. The benchmark's in-process worker sets the same values
// (bench/load_test.go, workerGC).
func tuneWorkerGC(getenv func(string) string, logger *slog.Logger) {
	gogc := getenv("GOGC")
	if gogc == "" {
		debug.SetGCPercent(workerGCPercent)
		gogc = strconv.Itoa(workerGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(workerMemoryLimit)
	}
	logger.Info("worker: garbage collector", "gogc", gogc, "memory_limit_bytes", debug.SetMemoryLimit(-1))
}
