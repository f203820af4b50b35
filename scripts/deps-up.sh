#!/usr/bin/env bash
# deps-up.sh COMMAND [ARGS...]
#
# Makes sure the tests have a MySQL and a RabbitMQ, then runs COMMAND.
# A TEST_* variable that is set wins. Otherwise a server of this project's
# compose stack (docker-compose.yml, running or started here with `docker
# compose up -d --wait`) is used with the compose credentials
# (config/compose_test.go keeps the two in step), and any other server
# that answers on its local port with testenv's defaults (root without a
# password; guest/guest).
set -euo pipefail

cd "$(dirname "$0")/.."

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

compose=false
running=""
if docker compose version >/dev/null 2>&1; then
	compose=true
	running=$(docker compose ps --status running --services 2>/dev/null || true)
fi
# from_compose SERVICE PORT: the compose stack's SERVICE is what the tests
# reach on PORT, or must be started because nothing answers there.
from_compose() { grep -qx "$1" <<<"$running" || ! up "$2"; }

services=()

if [[ -z "${TEST_MYSQL_DSN:-}" ]] && from_compose mysql 3306; then
	up 3306 || services+=(mysql)
	export TEST_MYSQL_DSN='root:billing_root_dev_pw@tcp(127.0.0.1:3306)/?parseTime=true'
fi

if [[ -z "${TEST_AMQP_URL:-}" ]]; then
	if from_compose rabbitmq 5672; then
		up 5672 || services+=(rabbitmq)
		export TEST_AMQP_URL='amqp://billing:billing_dev_pw@127.0.0.1:5672/'
		export TEST_RABBITMQ_API='http://billing:billing_dev_pw@127.0.0.1:15672'
	elif [[ -z "${TEST_RABBITMQ_API:-}" ]] && ! up 15672; then
		echo "deps-up: RabbitMQ answers on 5672 but its management API on 15672 does not;" >&2
		echo "deps-up: run: rabbitmq-plugins enable rabbitmq_management rabbitmq_shovel rabbitmq_shovel_management" >&2
		exit 1
	fi
fi

if ((${#services[@]} > 0)); then
	if ! $compose; then
		echo "deps-up: ${services[*]} not reachable on 127.0.0.1 and \`docker compose\` is not available;" >&2
		echo "deps-up: start them locally (MySQL/MariaDB on 3306, RabbitMQ on 5672 with management on 15672) or install Docker with the compose plugin" >&2
		exit 1
	fi
	echo "deps-up: starting ${services[*]} with docker compose" >&2
	docker compose up -d --wait "${services[@]}"
fi

exec "$@"
