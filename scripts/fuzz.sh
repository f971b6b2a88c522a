#!/usr/bin/env bash
# Runs every native Go fuzz target for a while each (default 10m; ./scripts/fuzz.sh 30s).
# The seed corpora (testdata/fuzz/<Target>/ and the f.Add seeds) run in every `go test`;
# this explores beyond them. A finding is written to testdata/fuzz/<Target>/ by Go: commit
# it with the fix, so that the suite keeps running it.
set -euo pipefail
cd "$(dirname "$0")/.."
time="${1:-10m}"
workers="${FUZZ_WORKERS:-2}" # fuzzing processes per target (FUZZ_WORKERS=1 leaves a core free)
targets=(
  "./internal/inventory FuzzDecodeEvent"
  "./internal/inventory FuzzParseNote"
  "./internal/inventory/redis FuzzParseCursor"
  "./internal/promo FuzzDecodeSpec"
  "./internal/pos FuzzDecode"
  "./internal/jaego FuzzIDRules"
  "./internal/inventory FuzzStockJSON"
)
for t in "${targets[@]}"; do
  set -- $t
  echo "== $2 ($1) for $time"
  go test -run "^$2\$" -fuzz "^$2\$" -fuzztime "$time" -parallel "$workers" "$1"
done
