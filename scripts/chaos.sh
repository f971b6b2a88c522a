#!/usr/bin/env bash
# Runs TestChaos (cmd/jaego/chaos_test.go) with a seed and a duration of faults of your own:
#   ./scripts/chaos.sh [seed] [duration]      e.g. ./scripts/chaos.sh 7 30m
# jaego serve (--write-ack replicas) on a 3 + 3 Redis Cluster with the durable copy and
# Kafka, under mixed load (POS events, web events, holds and their ends, lookups, a live
# tail): a minute on a healthy Redis (its RSS may grow 20% at most), then faults for the
# duration in rounds of the four kinds (a master killed, a master hung, a planned failover,
# every master flushed and restored), each round's order drawn from the seed, then every
# total checked exactly against what the clients were told. The suite runs seed 1 with
# 30 s of faults. The same seed draws the same schedule (its timing, and so what the load
# was doing at each fault, moves with the machine).
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${1:-$RANDOM}"
duration="${2:-10m}"
echo "chaos: seed $seed, faults for $duration"
JAEGO_CHAOS_SEED="$seed" JAEGO_CHAOS_DURATION="$duration" \
  go test ./cmd/jaego -run '^TestChaos$' -count 1 -v -timeout 24h | grep -v '^ *{"time"'
