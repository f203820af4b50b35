package main

import (
	"log/slog"
	"runtime"
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
//
// And its scheduler: one P, unless GOMAXPROCS says otherwise. The worker
// waits on MySQL and RabbitMQ nearly all the time, its goroutines (the
// lanes, amqp091-go's readers and buffers, the MySQL driver's cancel
// watchers, database/sql's) running for microseconds between round trips.
// With a P per core, a goroutine made ready on one thread woke another
// (a futex), which spun, stole it or found nothing, and slept again: a
// third of the worker's CPU went to the scheduler, its idle threads and
// the kernel's switches (perf, 2026-12-07). With one P the goroutine runs
// on the thread that readied it, and system calls still run on threads of
// their own: 21% less CPU per 1,000 events beside the two Ps, the rate no
// lower (BENCH_BASELINE, bench/scale_test.go). One P runs at most a core
// of Go code, some 15,000 events/s at that cost: past it, more worker
// processes (docs/scaling.md), or GOMAXPROCS.
const (
	workerGCPercent   = 400
	workerMemoryLimit = 96 << 20
	workerMaxProcs    = 1
)

// tuneWorkerRuntime sets the worker's GOGC, memory limit and GOMAXPROCS
// where the environment does not, and logs what is in force. Each
// variable, set, is the runtime's as usual ("off", "200", "256MiB", "4").
// `billing worker` calls it at start: the settings are the process's, so
// they belong where the process starts, not in config, which only reads
// settings. The benchmark's in-process worker sets the same values
// (bench/load_test.go, workerRuntime).
func tuneWorkerRuntime(getenv func(string) string, logger *slog.Logger) {
	gogc := getenv("GOGC")
	if gogc == "" {
		debug.SetGCPercent(workerGCPercent)
		gogc = strconv.Itoa(workerGCPercent)
	}
	if getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(workerMemoryLimit)
	}
	if getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(workerMaxProcs)
	}
	logger.Info("worker: garbage collector and scheduler", "gogc", gogc, "memory_limit_bytes", debug.SetMemoryLimit(-1),
		"gomaxprocs", runtime.GOMAXPROCS(0))
}
