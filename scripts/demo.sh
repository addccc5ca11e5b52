#!/usr/bin/env bash
# The main job end to end on the embedded default: build an image into the local store
# (an OCI layout under $PALLET_HOME), hand it to the Docker engine, and run it.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/setup.sh"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# A tiny rootfs from Debian's busybox-static: /bin/busybox and its applets as symlinks.
mkdir -p "$work/rootfs/bin"
cp /bin/busybox "$work/rootfs/bin/busybox"
for applet in sh echo cat ls; do ln -s busybox "$work/rootfs/bin/$applet"; done
cat > "$work/rootfs/bin/hello" <<'SH'
#!/bin/sh
echo "hello from a pallet image"
SH
chmod 0755 "$work/rootfs/bin/hello"

ref=$(pallet append scratch "$work/rootfs" demo:latest --entrypoint /bin/hello)
echo "built    $ref"
pallet copy demo:latest docker-daemon:pallet-demo:latest >/dev/null
echo "loaded   docker-daemon:pallet-demo:latest"
docker run --rm --network none pallet-demo:latest
