#!/usr/bin/env bash
# cluster-down.sh: stop the cluster of cluster-up.sh (in parallel: about 8 s)
# and remove its state. It stops only the nodes c1-c3@localhost it started,
# by their pid files, never the machine's default node.
# cluster-down.sh N stops node cN with kill -9 (the tests' node loss).
set -uo pipefail

dir=${CLUSTER_DIR:-/tmp/billing-cluster}
bin=${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}

if (($# == 1)); then
	pid=$(cat "$dir/c${1#c}/pid" 2>/dev/null) && kill -9 "$pid"
	exit
fi

[[ -d $dir ]] || exit 0
for n in 1 2 3; do
	HOME="$dir/home" RABBITMQ_CONF_ENV_FILE="$dir/empty-env.conf" \
		timeout 30 "$bin/rabbitmqctl" -n "c$n@localhost" -q stop >/dev/null 2>&1 &
done
wait
# Whatever did not stop in time.
for n in 1 2 3; do
	if pid=$(cat "$dir/c$n/pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
	fi
done
rm -rf "$dir"
