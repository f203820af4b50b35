package config

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
// limit makes it collect sooner whenever the heap nears WorkerMemoryLimit,
// so the worker stays within the 128 MiB its peak RSS is held to
// (docs/benchmarks.md) whatever the GOGC.
const (
	WorkerGCPercent   = 400
	WorkerMemoryLimit = 96 << 20
)

// TuneWorkerGC sets the worker's GOGC and memory limit where the
// environment sets neither, and logs what is in force. Either variable,
// set, is the runtime's as usual ("off", "200", "256MiB"). `billing
// worker` calls it at start, and the benchmark's in-process worker for
// its runs, so that both measure the same worker.
func TuneWorkerGC(getenv func(string) string, logger *slog.Logger) {
	gogc := getenv("GOGC")
	if gogc == "" {
		debug.SetGCPercent(WorkerGCPercent)
		gogc = strconv.Itoa(WorkerGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(WorkerMemoryLimit)
	}
	logger.Info("worker: garbage collector", "gogc", gogc, "memory_limit_bytes", debug.SetMemoryLimit(-1))
}
