.PHONY: test test-parallel test-serial fuzz fuzz-short bench build screenshots rabbitmq4-stop

# All tests against a real MySQL and RabbitMQ. scripts/deps-up.sh starts them
# with docker compose when they do not already answer on 127.0.0.1.
#
# Two steps: the parallel tests (each in its own namespace and database,
# faults through in-process proxies), then the serial ones (build tag
# serial: they restart RabbitMQ and MariaDB and raise a memory alarm, so
# they run alone, -p 1, under an exclusive lock; they need rabbitmqctl and
# start-stop-daemon on this host, as root). The lock file lets other
# test or benchmark runs on the same servers take a shared lock. -o: the
# lock's descriptor must not leak into a server a test restarts (a detached
# rabbitmq-server would hold the lock for ever).
LOCK := /tmp/billing-servers.lock
# flock is util-linux: where it is missing (macOS), run without the lock.
FLOCK := $(if $(shell command -v flock),flock -o,)
SHARED := $(if $(FLOCK),$(FLOCK) -s $(LOCK),)
EXCLUSIVE := $(if $(FLOCK),$(FLOCK) -x $(LOCK),)

# RABBITMQ=4 (`make test RABBITMQ=4`): the packages whose tests touch the
# broker run against the RabbitMQ 4.0 node of scripts/rabbitmq4.sh (started
# when down, as root) instead of the default node, and of the serial tests
# those that restart or starve RabbitMQ (not MariaDB's restart; the cluster
# test runs the machine's own RabbitMQ). .ci/run runs both.
ifeq ($(RABBITMQ),4)
ON_BROKER := bash scripts/rabbitmq4.sh exec
PARALLEL_PKGS := ./api/ ./broker/ ./cmd/billing/ ./consumer/ ./dlq/ ./e2e/ ./status/
SERIAL_RUN := ^TestSerial(RabbitMQRestart|MemoryAlarm|RunbookReplayInTheBrowser)$$
TEST_FUZZ :=
else
ON_BROKER :=
PARALLEL_PKGS := ./...
SERIAL_RUN := ^TestSerial
TEST_FUZZ := fuzz-short
endif

# The fuzz targets need no broker: once, on the default run.
test: test-parallel $(TEST_FUZZ) test-serial

test-parallel:
	$(SHARED) $(ON_BROKER) bash scripts/deps-up.sh go test -count=1 -timeout 10m $(PARALLEL_PKGS)

test-serial:
	$(EXCLUSIVE) $(ON_BROKER) bash scripts/deps-up.sh go test -tags serial -p 1 -count=1 -timeout 12m -run '$(SERIAL_RUN)' ./e2e/ ./dlq/

rabbitmq4-stop:
	bash scripts/rabbitmq4.sh stop

# The native Go fuzz targets (func FuzzXxx), each alone for FUZZTIME:
# `make fuzz` searches (30 s each), `make test` runs fuzz-short (3 s each)
# so that CI keeps them working. They need no server. A crash leaves its
# input in the package's testdata/fuzz/: keep it, and go test runs it.
FUZZTIME ?= 30s
fuzz:
	FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

fuzz-short:
	FUZZTIME=3s bash scripts/fuzz.sh

# The benchmark table of docs/benchmarks.md (a few minutes).
bench:
	$(SHARED) bash scripts/deps-up.sh env BILLING_BENCH=1 go test -count=1 -timeout 30m -run '^TestBenchTable$$' -v ./bench/

# docs/runbook/*.png, the runbook's pictures: the browser test walks the
# UI replay in Chromium as the support user and writes a screenshot per
# step, on RabbitMQ 4.0 (the version the stack ships; scripts/rabbitmq4.sh).
screenshots:
	$(SHARED) bash scripts/rabbitmq4.sh exec bash scripts/deps-up.sh env BILLING_RUNBOOK_SCREENSHOTS=$(CURDIR)/docs/runbook go test -tags serial -count=1 -run '^TestSerialRunbookReplayInTheBrowser$$' -v ./dlq/

build:
	go build -o bin/billing ./cmd/billing
