#!/bin/sh
# Build the launcher from launcher.c, bit for bit reproducibly: static, no libc, stripped, no
# build id, no compiler ident, no paths of this machine in it, fixed SOURCE_DATE_EPOCH.
#
#   builder/lifecycle/launcher/build.sh [OUT]          amd64 (default OUT: launcher-amd64 here)
#   ARCH=arm64 builder/lifecycle/launcher/build.sh [OUT]  arm64 (default OUT: launcher-arm64 here)
#
# amd64 needs musl-gcc (Debian: apt-get install musl-tools): only for its headers now, which are
# libc-neutral here (gcc with glibc's gives the same bytes). arm64 is cross-compiled with
# Debian's aarch64-linux-gnu-gcc (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross),
# again only for headers. The bytes depend on the compiler's version; the committed binaries
# were built on Debian bookworm (gcc 12, musl 1.2.3), where a rebuild gives the same bytes
# (tests/test_launcher.py checks, marked slow).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
arch=${ARCH:-amd64}
case "$arch" in
    amd64) default_cc=musl-gcc; pkg=musl-tools ;;
    arm64) default_cc=aarch64-linux-gnu-gcc; pkg="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" ;;
    *) echo "build.sh: no launcher for ARCH=$arch (amd64, arm64)" >&2; exit 1 ;;
esac
out=${1:-$here/launcher-$arch}
cc=${CC:-$default_cc}
command -v "$cc" >/dev/null 2>&1 || { echo "build.sh: $cc not found (apt-get install $pkg)" >&2; exit 1; }
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-315532801}" LC_ALL=C TZ=UTC

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$here/launcher.c" "$work/launcher.c"
cd "$work"
# No libc (launcher.c makes its own system calls): -nostdlib -ffreestanding, and so no stack
# protector (its canary lives in TLS, which nothing sets up). -Os, no unwind tables, and
# -z noseparate-code: the ELF headers, code and read-only data in one segment instead of three
# page-aligned ones (6 kB of padding otherwise; the code stays read-only). No calls to memcpy
# or memset may appear (there is none to link): -fno-tree-loop-distribute-patterns.
"$cc" -static -nostdlib -ffreestanding -fno-stack-protector -Os -s -std=c11 -Wall -Wextra -Werror \
    -fno-ident -ffile-prefix-map="$work"=. -fdebug-prefix-map="$work"=. \
    -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-tree-loop-distribute-patterns \
    -Wl,-z,noseparate-code -Wl,--build-id=none -Wl,--hash-style=gnu \
    -o launcher launcher.c
chmod 0755 launcher
mv launcher "$out.tmp"
mv "$out.tmp" "$out"
