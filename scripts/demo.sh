#!/usr/bin/env bash
# The main job end to end on the embedded default: build samples/python-flask with buildpacks
# into the local store (an OCI layout under $PALLET_HOME), no Dockerfile and no daemon, then run
# it daemonless and ask it something over HTTP. The first run also builds the default (trixie) stack.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/setup.sh"

port="${PORT:-8080}"
ref=$(pallet build "$ROOT/samples/python-flask" -t python-flask:demo)
echo "built    $ref"

pallet run python-flask:demo -p "$port" > /tmp/pallet-demo.log 2>&1 &
app=$!
trap 'kill -INT $app 2>/dev/null; wait $app 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
    if body=$(curl -fsS "http://127.0.0.1:$port/api/greet?name=pallet" 2>/dev/null); then
        echo "running  pallet run python-flask:demo -p $port"
        echo "GET /api/greet?name=pallet -> $body"
        exit 0
    fi
    sleep 0.2
done
echo "the app did not answer on port $port; its output:" >&2
cat /tmp/pallet-demo.log >&2
exit 1
