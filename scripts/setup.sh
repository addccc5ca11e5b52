#!/usr/bin/env bash
# Install everything pallet and its tests need on a fresh Debian machine (idempotent).
# Sourced by demo.sh and test.sh; run it alone to only set up.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APT_PACKAGES=(docker.io docker-registry skopeo umoci busybox-static mmdebstrap bubblewrap zstd pigz gnupg
              ca-certificates git uidmap musl-tools curl passt
              qemu-user-static binfmt-support arch-test gcc-aarch64-linux-gnu libc6-dev-arm64-cross)

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# arm64 builds and runs (QEMU through binfmt_misc, F flag): mount binfmt_misc and register the
# emulator when we may; else say what is missing (amd64 work does not need it).
if ! arch-test arm64 >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
        update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
    fi
    if ! arch-test arm64 >/dev/null 2>&1; then
        echo "setup: WARNING: this machine cannot run arm64 programs (binfmt_misc has no enabled" \
             "qemu-aarch64 entry: /proc/sys/fs/binfmt_misc/qemu-aarch64); arm64 stacks, builds and" \
             "runs will fail, and their tests with them. As root: mount -t binfmt_misc binfmt_misc" \
             "/proc/sys/fs/binfmt_misc && update-binfmts --enable qemu-aarch64" >&2
    fi
fi

VENV="${PALLET_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating $VENV" >&2
    python3 -m venv "$VENV"
fi
stamp="$VENV/.pallet-installed"
if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "setup: installing pallet and test dependencies into $VENV" >&2
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    # compat: a .pth naming the checkout, instead of an import hook that costs every `pallet`
    # start ~10 ms (the build race counts them); the default mode where compat is gone.
    "$VENV/bin/pip" install -q -e "$ROOT[test]" --config-settings editable_mode=compat 2>/dev/null \
        || "$VENV/bin/pip" install -q -e "$ROOT[test]"
    touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"

# A Docker engine: start dockerd when no socket answers (tests would too; the demo needs it).
if ! docker version >/dev/null 2>&1; then
    if command -v dockerd >/dev/null && [ "$(id -u)" = 0 ]; then
        echo "setup: starting dockerd" >&2
        mkdir -p "$HOME/.cache/pallet"
        nohup dockerd >"$HOME/.cache/pallet/dockerd.log" 2>&1 &
        for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
    fi
fi
