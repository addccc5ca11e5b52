#!/bin/sh
# Build pallet-static from this directory, bit for bit reproducibly: static (CGO off), no paths
# of the building machine (-trimpath), no build id, no VCS stamp, stripped.
#
#   GOARCH=amd64 buildpacks/static/server/build.sh [OUT]   (default OUT: ../prebuilt/pallet-static-$GOARCH)
#
# The bytes depend on the Go release: the committed binaries (buildpacks/static/prebuilt/) were
# built with go1.24.4, Debian trixie's golang-1.24 (the trixie stack's build image), where a
# rebuild gives the same bytes (tests/test_buildpacks.py checks it, marked slow). Standard library
# only: no module download. After changing main.go, rebuild both architectures and commit them.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
arch=${GOARCH:-amd64}
out=${1:-$here/../prebuilt/pallet-static-$arch}
command -v go >/dev/null 2>&1 || { echo "build.sh: go not found (Debian: apt-get install golang-go)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/main.go" "$here/go.mod" "$work/"
cd "$work"
CGO_ENABLED=0 GOOS=linux GOARCH="$arch" GOFLAGS=-mod=mod GOPROXY=off GOTOOLCHAIN=local GOTELEMETRY=off \
    GOCACHE="$work/cache" GOPATH="$work/gopath" \
    go build -trimpath -buildvcs=false -ldflags="-buildid= -s -w" -o "$work/pallet-static" .
mv "$work/pallet-static" "$out.tmp"
mv "$out.tmp" "$out"
