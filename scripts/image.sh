#!/usr/bin/env bash
# Builds the jaego container image from the static binary with buildah (Debian's package;
# `apt-get install buildah`), FROM scratch: nothing is pulled from a registry.
#   scripts/image.sh [tag]        # default tag: jaego:<version>
# Then it runs `jaego version` inside the image (buildah run; chroot isolation, so it works
# where the machine has no container runtime of its own) and fails when that fails.
# The version and commit come from git when there is a checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v buildah >/dev/null || { echo "buildah is required: apt-get install buildah" >&2; exit 1; }
version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
commit=$(git rev-parse HEAD 2>/dev/null || echo unknown)
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
tag=${1:-jaego:$version}
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version -X main.commit=$commit -X main.date=$date" -o "$ctx/jaego" ./cmd/jaego
cp /etc/ssl/certs/ca-certificates.crt "$ctx/" 2>/dev/null || : > "$ctx/ca-certificates.crt"
cp deploy/container/Containerfile "$ctx/"
buildah bud --quiet --layers=false -f "$ctx/Containerfile" -t "$tag" "$ctx" >/dev/null
ctr=$(buildah from "$tag")
trap 'buildah rm "$ctr" >/dev/null 2>&1; rm -rf "$ctx"' EXIT
echo "built $tag: $(buildah run --isolation chroot "$ctr" -- /jaego version)"
