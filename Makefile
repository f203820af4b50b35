.PHONY: test test-parallel test-serial build

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

test: test-parallel test-serial

test-parallel:
	flock -o -s $(LOCK) bash scripts/deps-up.sh go test -count=1 -timeout 10m ./...

test-serial:
	flock -o -x $(LOCK) bash scripts/deps-up.sh go test -tags serial -p 1 -count=1 -timeout 5m -run '^TestSerial' ./e2e/

build:
	go build -o bin/billing ./cmd/billing
