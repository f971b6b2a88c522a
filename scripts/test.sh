#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine too: installs the servers the tests start
# privately (redis-server for the Redis and Redis Cluster tests, gcc for -race), then runs
# go vet and every test with the race detector. Tests never touch the machine's own
# services; they start their own on free ports. kcat (librdkafka) proves that a Kafka
# client nobody here wrote talks to jaego.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v kcat >/dev/null || missing+=(kcat)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v go >/dev/null || { echo "go is required (https://go.dev/doc/install), Go ${GO_VERSION:-1.26} or newer" >&2; exit 1; }

go vet ./...
CGO_ENABLED=1 go test -race -count=1 -timeout 14m "$@" ./...
