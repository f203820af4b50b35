#!/usr/bin/env bash
# run-local.sh: the whole pipeline on this machine, without Docker
# (docs/operations.md#running-without-docker; e2e.TestRunLocal runs it).
#
#   MYSQL_DSN=... STRIPE_WEBHOOK_SECRET=whsec_... scripts/run-local.sh
#
# Builds bin/billing (or runs BILLING_BIN), then, with the environment as
# given (AMQP_URL, BILLING_NAMESPACE, HTTP_ADDR and the rest of the README's
# configuration table reach every process):
#   billing migrate             MYSQL_DSN: the schema, up to date
#   billing topology            AMQP_URL: the exchanges and queues
#   billing api                 STRIPE_WEBHOOK_SECRET; METRICS_ADDR=$API_METRICS_ADDR
#   billing worker              STRIPE_WEBHOOK_SECRET (it checks every event
#                               again), MYSQL_DSN; METRICS_ADDR=$WORKER_METRICS_ADDR
#   billing sweep --every 5m    MYSQL_DSN; METRICS_ADDR=$SWEEP_METRICS_ADDR
# the last three in the background (metrics on 127.0.0.1:9092, 9090 and
# 9091 unless set), until SIGTERM or SIGINT (Ctrl-C), which each of them
# gets: they drain and stop, and the script exits 0 if all three did. If
# one stops by itself, the script stops the others and exits 1.
set -euo pipefail

cd "$(dirname "$0")/.."

log() { echo "run-local: $*" >&2; }

: "${MYSQL_DSN:?set MYSQL_DSN, for example root@tcp(127.0.0.1:3306)/billing?parseTime=true on a development machine}"
: "${STRIPE_WEBHOOK_SECRET:?set STRIPE_WEBHOOK_SECRET to the endpoint signing secret whsec_... (the api and the worker check every event with it)}"
export MYSQL_DSN STRIPE_WEBHOOK_SECRET

bin=${BILLING_BIN:-}
if [[ -z "$bin" ]]; then
	log "building bin/billing"
	go build -o bin/billing ./cmd/billing
	bin=bin/billing
fi

log "billing migrate"
"$bin" migrate
log "billing topology"
"$bin" topology

stopping=false
trap 'stopping=true' TERM INT

pids=()
start() {
	local metrics=$1
	shift
	log "billing $* (metrics on $metrics)"
	METRICS_ADDR=$metrics "$bin" "$@" &
	pids+=($!)
}
start "${API_METRICS_ADDR:-127.0.0.1:9092}" api
start "${WORKER_METRICS_ADDR:-127.0.0.1:9090}" worker
start "${SWEEP_METRICS_ADDR:-127.0.0.1:9091}" sweep --every 5m

# Returns when one of them exits or a signal comes.
wait -n || true
$stopping || log "a process stopped by itself: stopping the others"
kill -TERM "${pids[@]}" 2>/dev/null || true
status=0
for pid in "${pids[@]}"; do
	while true; do
		code=0
		wait "$pid" || code=$?
		# A second signal interrupts wait (above 128) while it runs on.
		((code > 128)) && kill -0 "$pid" 2>/dev/null || break
	done
	((code == 0)) || status=1
done
$stopping || status=1
log "stopped (exit $status)"
exit "$status"
