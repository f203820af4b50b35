#!/usr/bin/env bash
# rabbitmq4.sh start|stop|restart|env|ctl ARGS...|exec CMD...|reset
#
# A RabbitMQ 4.0 node beside (never instead of) the machine's default one,
# so the tests run on the version new users install (issue 22). It runs
# Debian trixie's rabbitmq-server (4.0.5, Erlang 27) in a chroot, as root
# on a Debian machine whose apt reaches Debian's mirrors:
#
#   start    build the chroot when missing (about 40 s and 330 MB the first
#            time; cached in RABBITMQ4_DIR, default /var/cache/billing-rabbitmq4),
#            start the node unless it answers, wait until it does, print env
#   stop     stop the node (its data stays for the next start), unmount /proc
#   restart  stop, then start (keeps the queues and their messages)
#   env      print the TEST_* variables that point the tests at this node
#   ctl      rabbitmqctl against this node, e.g. `rabbitmq4.sh ctl list_queues`
#   exec     start, then run CMD with env's variables (`make test RABBITMQ=4`)
#   reset    stop, then remove the node's data (the chroot stays cached)
#
# Node rabbit4@localhost, guest/guest from 127.0.0.1; its own ports, none in
# the range testenv.FreeAddr hands out (20000-32767): AMQP 5673, management
# 15673, prometheus 15693, distribution 4371, and its own epmd on 4370
# (ERL_EPMD_PORT for the server and for every CLI call: the default node's
# epmd on 4369 is never touched). Plugins: management, shovel,
# shovel_management, prometheus.
#
# Why each step:
# - debootstrap --variant=minbase: the smallest root apt can install into;
# - a policy-rc.d that refuses: the package's postinst would start a node
#   (with the default ports) while installing;
# - the rabbitmq user is created first, with a uid and gid free on the host:
#   the package would take the chroot's next system uid, which can belong
#   to another user of the host (a process list or kill -u would mix them);
# - /proc is mounted while the node runs (Erlang and the CLI read it).
set -euo pipefail

dir=${RABBITMQ4_DIR:-/var/cache/billing-rabbitmq4}
root=$dir/root
suite=${RABBITMQ4_SUITE:-trixie}
mirror=${RABBITMQ4_MIRROR:-http://deb.debian.org/debian}
amqp_port=${RABBITMQ4_AMQP_PORT:-5673}
mgmt_port=${RABBITMQ4_MGMT_PORT:-15673}
prom_port=${RABBITMQ4_PROMETHEUS_PORT:-15693}
dist_port=${RABBITMQ4_DIST_PORT:-4371}
epmd_port=${RABBITMQ4_EPMD_PORT:-4370}
node=rabbit4@localhost
self=$(readlink -f "$0")

log() { echo "rabbitmq4: $*" >&2; }
die() { log "$*"; exit 1; }
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# as_rabbitmq CMD...: run CMD in the chroot as its rabbitmq user, with the
# node's environment.
as_rabbitmq() {
	local ids
	ids=$(cat "$root/.rabbitmq-ids")
	chroot --userspec="$ids" "$root" /usr/bin/env -i \
		HOME=/var/lib/rabbitmq LANG=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		ERL_EPMD_PORT="$epmd_port" ERL_EPMD_ADDRESS=127.0.0.1 RABBITMQ_NODENAME="$node" \
		RABBITMQ_DIST_PORT="$dist_port" \
		RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}' "$@"
}

ctl() { as_rabbitmq /usr/lib/rabbitmq/bin/rabbitmqctl -n "$node" "$@"; }

# free_id: the first id from 400 that is neither a uid nor a gid on the
# host or in the chroot.
free_id() {
	local id
	for ((id = 400; id < 1000; id++)); do
		if ! getent passwd "$id" >/dev/null && ! getent group "$id" >/dev/null &&
			! grep -q "^[^:]*:[^:]*:$id:" "$1/etc/passwd" "$1/etc/group"; then
			echo "$id"
			return
		fi
	done
	die "no uid free in 400-999"
}

mount_proc() { mountpoint -q "$1/proc" || mount -t proc proc "$1/proc"; }
umount_proc() { if mountpoint -q "$1/proc"; then umount "$1/proc"; fi; }

# build: debootstrap into a temporary directory and install the server;
# renamed into place only when complete, so an interrupted build is redone.
build() {
	local tmp=$dir/root.tmp id
	command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
	umount_proc "$tmp" 2>/dev/null || true
	rm -rf "$tmp"
	mkdir -p "$dir"
	log "debootstrap $suite into $tmp"
	debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
		die "debootstrap failed; see $dir/debootstrap.log"
	printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
	chmod +x "$tmp/usr/sbin/policy-rc.d"
	id=$(free_id "$tmp")
	chroot "$tmp" groupadd --system --gid "$id" rabbitmq
	chroot "$tmp" useradd --system --uid "$id" --gid "$id" --home-dir /var/lib/rabbitmq \
		--shell /usr/sbin/nologin rabbitmq
	echo "$id:$id" >"$tmp/.rabbitmq-ids"
	printf '127.0.0.1 localhost\n::1 localhost\n' >"$tmp/etc/hosts"
	mount_proc "$tmp"
	log "installing rabbitmq-server in the chroot"
	if ! chroot "$tmp" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
		'apt-get install -y -qq --no-install-recommends rabbitmq-server && apt-get clean' >"$dir/install.log" 2>&1; then
		umount_proc "$tmp"
		die "apt-get install rabbitmq-server failed; see $dir/install.log"
	fi
	umount_proc "$tmp"
	mv "$tmp" "$root"
}

configure() {
	cat >"$root/etc/rabbitmq/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$amqp_port
management.tcp.ip = 127.0.0.1
management.tcp.port = $mgmt_port
prometheus.tcp.ip = 127.0.0.1
prometheus.tcp.port = $prom_port
loopback_users.guest = true
CONF
	echo '[rabbitmq_management,rabbitmq_shovel,rabbitmq_shovel_management,rabbitmq_prometheus].' \
		>"$root/etc/rabbitmq/enabled_plugins"
	# The package's file would set its own node name.
	: >"$root/etc/rabbitmq/rabbitmq-env.conf"
}

running() { [[ -d $root ]] && ctl -q -t 5 ping >/dev/null 2>&1; }

start() {
	[[ -d $root ]] || build
	if running; then
		log "$node already running"
		return
	fi
	for port in "$amqp_port" "$mgmt_port" "$dist_port"; do
		up "$port" && die "port $port is taken by another process"
	done
	configure
	mount_proc "$root"
	local logdir=$root/var/log/rabbitmq
	mkdir -p "$logdir"
	log "starting $node"
	setsid "$self" __server >"$logdir/stdout.log" 2>&1 </dev/null &
	for _ in $(seq 90); do
		if ctl -q await_startup >/dev/null 2>&1 && up "$amqp_port" && up "$mgmt_port"; then
			log "$node up: AMQP $amqp_port, management $mgmt_port"
			return
		fi
		sleep 1
	done
	die "$node did not start; logs in $logdir"
}

stop() {
	[[ -d $root ]] || return 0
	if running; then
		log "stopping $node"
		ctl -q stop >/dev/null 2>&1 || true
	fi
	# The node's own epmd, then whatever still runs inside the chroot
	# (only ours: found by its root directory).
	as_rabbitmq /usr/bin/epmd -port "$epmd_port" -kill >/dev/null 2>&1 || true
	local pid
	for pid in $(ls /proc | grep -E '^[0-9]+$'); do
		if [[ $(readlink "/proc/$pid/root" 2>/dev/null) == "$root" ]]; then
			kill -9 "$pid" 2>/dev/null || true
		fi
	done
	umount_proc "$root"
}

env_vars() {
	cat <<ENV
export TEST_AMQP_URL=amqp://guest:guest@127.0.0.1:$amqp_port/
export TEST_RABBITMQ_API=http://guest:guest@127.0.0.1:$mgmt_port
export TEST_RABBITMQ_PROMETHEUS=127.0.0.1:$prom_port
export TEST_RABBITMQ_CTL="$self ctl"
export TEST_RABBITMQ_START="$self start"
ENV
}

# lock: one start or stop at a time (several test runs may share the node).
lock() {
	mkdir -p "$dir"
	exec 9>"$dir/lock"
	flock 9
}

case ${1:-} in
start | stop | restart | reset | ctl | exec | __server)
	[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, mount)"
	;;
esac
case ${1:-} in
start)
	lock
	start
	env_vars
	;;
stop)
	lock
	stop
	;;
restart)
	"$self" stop
	"$self" start
	;;
reset)
	"$self" stop
	rm -rf "$root/var/lib/rabbitmq/mnesia"
	;;
env) env_vars ;;
exec)
	shift
	"$self" start >/dev/null
	eval "$(env_vars)"
	exec "$@"
	;;
ctl)
	shift
	ctl "$@"
	;;
__server)
	# The node in the foreground; start runs this detached (setsid).
	exec 9>&-
	as_rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server
	;;
*)
	echo "usage: $0 start|stop|restart|env|ctl ARGS...|exec CMD...|reset" >&2
	exit 2
	;;
esac
