#!/usr/bin/env bash
# cluster-up.sh: start a three-node RabbitMQ cluster on this machine, beside
# (never instead of) its default node, and wait until the three are formed.
#
# Nodes c1@localhost, c2@localhost, c3@localhost; node N listens for AMQP on
# 127.0.0.1:$((CLUSTER_AMQP_BASE+N)) (5701-5703), management on
# $((CLUSTER_MGMT_BASE+N)) (15701-15703), distribution on
# $((CLUSTER_DIST_BASE+N)) (25701-25703); user guest/guest (loopback only).
# State, logs and the cluster's own Erlang cookie live in CLUSTER_DIR
# (default /tmp/billing-cluster); cluster-down.sh stops the nodes and removes it.
#
# Why each setting (measured on RabbitMQ 3.10.8, issue 14):
# - /usr/lib/rabbitmq/bin/rabbitmq-server, not the /usr/sbin wrapper, which
#   switches to the rabbitmq user, its HOME and its cookie;
# - HOME holds this cluster's .erlang.cookie; rabbitmqctl uses the same HOME;
# - RABBITMQ_CONF_ENV_FILE is an empty file: the machine's rabbitmq-env.conf
#   sets the node name;
# - vm_memory_high_watermark.absolute: otherwise each node assumes 40 % of
#   the machine is its own;
# - setsid with output redirected, or the caller's pipe stays open;
# - classic_config peer discovery: nodes 2 and 3 join node 1 as they boot.
set -euo pipefail

dir=${CLUSTER_DIR:-/tmp/billing-cluster}
amqp_base=${CLUSTER_AMQP_BASE:-5700}
mgmt_base=${CLUSTER_MGMT_BASE:-15700}
dist_base=${CLUSTER_DIST_BASE:-25700}
memory=${CLUSTER_NODE_MEMORY:-512MB}
bin=${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
nodes=(c1 c2 c3)

# start_node N: start node cN in the background, detached from this shell.
start_node() {
	local n=$1 name=c$1 nd="$dir/c$1"
	mkdir -p "$nd/mnesia" "$nd/log"
	cat >"$nd/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$((amqp_base + n))
management.tcp.ip = 127.0.0.1
management.tcp.port = $((mgmt_base + n))
vm_memory_high_watermark.absolute = $memory
loopback_users.guest = true
cluster_formation.peer_discovery_backend = classic_config
cluster_formation.classic_config.nodes.1 = c1@localhost
cluster_formation.classic_config.nodes.2 = c2@localhost
cluster_formation.classic_config.nodes.3 = c3@localhost
CONF
	echo '[rabbitmq_management].' >"$nd/enabled_plugins"
	HOME="$dir/home" \
		RABBITMQ_CONF_ENV_FILE="$dir/empty-env.conf" \
		RABBITMQ_NODENAME="$name@localhost" \
		RABBITMQ_DIST_PORT=$((dist_base + n)) \
		RABBITMQ_MNESIA_BASE="$nd/mnesia" \
		RABBITMQ_LOG_BASE="$nd/log" \
		RABBITMQ_PID_FILE="$nd/pid" \
		RABBITMQ_CONFIG_FILE="$nd/rabbitmq.conf" \
		RABBITMQ_ENABLED_PLUGINS_FILE="$nd/enabled_plugins" \
		setsid "$bin/rabbitmq-server" >"$nd/log/stdout.log" 2>&1 </dev/null &
}

ctl() { HOME="$dir/home" RABBITMQ_CONF_ENV_FILE="$dir/empty-env.conf" "$bin/rabbitmqctl" "$@"; }

# await_node N: wait until node cN has booted. await_startup fails at once
# while the node is not yet registered with epmd, so it is retried.
await_node() {
	for _ in $(seq 120); do
		ctl -n "c$1@localhost" -q await_startup >/dev/null 2>&1 && return 0
		sleep 1
	done
	echo "cluster-up: node c$1 did not start; logs in $dir/c$1/log" >&2
	return 1
}

# A node number or name alone: restart that node of a running cluster (the
# tests bring back a node they killed). No argument: start the cluster.
if (($# == 1)); then
	start_node "${1#c}"
	await_node "${1#c}"
	exit
fi

for n in 1 2 3; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$((amqp_base + n))") 2>/dev/null; then
		echo "cluster-up: port $((amqp_base + n)) is taken: is a cluster already up? (scripts/cluster-down.sh)" >&2
		exit 1
	fi
done
mkdir -p "$dir/home"
: >"$dir/empty-env.conf"
if [[ ! -f "$dir/home/.erlang.cookie" ]]; then
	head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' >"$dir/home/.erlang.cookie"
	chmod 400 "$dir/home/.erlang.cookie"
fi
for n in 1 2 3; do start_node "$n"; done

# await_online_nodes needs node 1 to answer first.
await_node 1
if ! timeout 120 env HOME="$dir/home" RABBITMQ_CONF_ENV_FILE="$dir/empty-env.conf" \
	"$bin/rabbitmqctl" -n c1@localhost await_online_nodes 3 >/dev/null; then
	echo "cluster-up: the three nodes did not form a cluster; logs in $dir/c*/log" >&2
	exit 1
fi
for n in 2 3; do await_node "$n"; done
echo "cluster-up: c1 c2 c3 on 127.0.0.1:$((amqp_base + 1))-$((amqp_base + 3)) (management $((mgmt_base + 1))-$((mgmt_base + 3)))"
