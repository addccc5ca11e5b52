#!/usr/bin/env bash
# Set up a fresh Debian machine and run the whole test suite (registries and dockerd are
# started by the test fixtures themselves). Extra arguments go to pytest.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec python -m pytest -q "$@"
