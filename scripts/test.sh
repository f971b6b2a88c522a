#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine too: installs the servers the tests start
# privately (redis-server for the Redis and Redis Cluster tests, PostgreSQL, gcc for -race),
# then runs go vet and every test with the race detector. Tests never touch the machine's
# own data: they start their own Redis on free ports, and create (and drop) a private
# database per test on PostgreSQL. kcat (librdkafka) proves that a Kafka client nobody here
# wrote talks to jaego, and Standard Webhooks' TypeScript library (on Node) checks every
# webhook signature. promtool and amtool check the alert rules, dashboard and
# Alertmanager routes of deploy/ (no Prometheus or Alertmanager server is started). Headless
# Chromium drives the web console's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v kcat >/dev/null || missing+=(kcat)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
command -v promtool >/dev/null || missing+=(prometheus)
command -v amtool >/dev/null || missing+=(prometheus-alertmanager)
command -v chromium >/dev/null || missing+=(chromium) # the console's browser tests
command -v npm >/dev/null || missing+=(nodejs npm) # the webhook receiver (Standard Webhooks' library)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v go >/dev/null || { echo "go is required (https://go.dev/doc/install), Go ${GO_VERSION:-1.26} or newer" >&2; exit 1; }

# PostgreSQL: the machine's server on 5432 with trust auth when there is one (CI), else a
# private throwaway cluster with trust auth on a free port, run as the postgres user.
if [ -z "${JAEGO_TEST_POSTGRES_URL:-}" ] && ! pg_isready -q -h 127.0.0.1 -p 5432 -U postgres 2>/dev/null; then
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  pgdir=$(mktemp -d /tmp/jaego-pg.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 55432)
  run_pg() { if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$pgdir"; su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
  run_pg "$bin/initdb -D $pgdir/data -A trust -U postgres >/dev/null"
  run_pg "$bin/pg_ctl -D $pgdir/data -o '-p $port -k $pgdir -c listen_addresses=127.0.0.1' -l $pgdir/log -w start >/dev/null"
  trap 'run_pg "$bin/pg_ctl -D $pgdir/data -m immediate stop >/dev/null"; rm -rf "$pgdir"' EXIT
  export JAEGO_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
  echo "started a private PostgreSQL on 127.0.0.1:$port"
fi

# The webhook receiver of the end-to-end tests verifies signatures with the Standard
# Webhooks reference library, from the npm registry (pinned by its package-lock.json).
(cd testdata/webhook-receiver && npm ci --no-audit --no-fund --silent)

# go vet with -race compiles the dependencies as the race-enabled tests below use them: a
# fresh machine compiles each once, not once for vet and again for the tests (16 min in all
# on a fresh 2-core machine instead of 20). The binary tests build jaego without -race: its
# dependencies compile here too, before the tests' timeouts start.
go vet -race ./...
go build -o /dev/null ./cmd/jaego
# -parallel 4: the binary tests that run in parallel mostly wait on servers and processes.
CGO_ENABLED=1 go test -race -count=1 -parallel 4 -timeout 14m "$@" ./...
