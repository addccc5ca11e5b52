"""What QEMU costs: arm64 vs amd64 on one amd64 machine, for the tiny two-platform stack and an app.

    python bench/bench_multiarch.py [--runs 1] [--write]
    python bench/bench_multiarch.py --full [--write]

``--full``: the full-size run, not a test -- the default stack (stacks/trixie.toml) made
two-platform (a copy with ``architectures = ["amd64", "arm64"]``, written and locked into a
temporary directory at run time, so it follows the shipped stack; the shipped one stays
amd64-only, so a fresh machine's demo does not assemble arm64), assembled from scratch in a
private cache (each architecture's "assembled and layered" time), then samples/python-flask
built for each platform alone (empty build cache; pip downloads the platform's wheels) and for
both into one index, and the arm64 image run under QEMU and asked ``/api/greet`` over HTTP.
``--write`` replaces the "### Full size" part of the Multi-architecture section.

Stack: ``pallet stack build tests/stacks/tiny-multi.toml --no-cache --verbose`` in a private
stack cache (the .deb files come from the machine's warm cache, so no download is timed); each
architecture's "assembled and layered ARCH in N s" line is its time (both assemble the same
package names from one lock; arm64's maintainer scripts run under QEMU through binfmt_misc).
App: the hello buildpack plus a Procfile on that stack, ``pallet build --platform linux/amd64``
vs ``--platform linux/arm64``, each with an empty build cache, rounds interleaved (the machine is
shared). ``--go``: the Go buildpack's cross-compiled build (``--cross``: Go for amd64 building
GOARCH=arm64) vs the emulated one (``--emulate``: arm64's Go under QEMU), both forced, and the
automatic choice (no flag: which way it took is in the table), samples/go-http for linux/arm64 on a
two-platform stack with Go written at run time (trixie's essential set plus golang-go; no
shipped stack has Go for arm64), each with an empty build cache. ``--write`` replaces the "## Multi-architecture" section of
bench/RESULTS.md (other sections kept).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder.stacks.build import cache_root  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"
STACK = ROOT / "tests" / "stacks" / "tiny-multi.toml"
HELLO_BP = ROOT / "tests" / "buildpacks" / "hello"
ASSEMBLED = re.compile(r"assembled and layered (\w+) in (\d+) s")


def pallet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "builder", *args], capture_output=True, text=True, env=full)
    if proc.returncode != 0:
        raise SystemExit(f"pallet {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def stack_round(work: Path) -> dict[str, float]:
    """Seconds per architecture of one from-scratch stack build."""
    cache = work / "cache"
    cache.mkdir(parents=True)
    (cache / "debs").symlink_to(cache_root() / "debs")
    env = {"PALLET_HOME": str(work / "home"), "PALLET_CACHE": str(cache)}
    out = pallet("stack", "build", str(STACK), "--no-cache", "--verbose", "--refresh", env=env)
    times = {arch: float(s) for arch, s in ASSEMBLED.findall(out.stderr)}
    if set(times) != {"amd64", "arm64"}:
        raise SystemExit(f"no per-architecture times in the stack build's output:\n{out.stderr}")
    return times


def app_round(work: Path, arch: str, env: dict[str, str]) -> float:
    app = work / f"app-{arch}"
    app.mkdir(parents=True)
    (app / "hello.conf").write_text("Hi there\n")
    (app / "Procfile").write_text("arch: uname -m\n")
    start = time.perf_counter()
    pallet("build", str(app), "-t", f"bench-{arch}:1", "--stack", str(STACK), "--buildpack", str(HELLO_BP),
           "--buildpack", "pallet/procfile", "--platform", f"linux/{arch}", "--cache-dir", str(work / f"c-{arch}"),
           env=env)
    return time.perf_counter() - start


def write_section(text: str, heading: str = "## Multi-architecture") -> None:
    """Replace the text under ``heading`` in RESULTS.md, up to the next heading of any level (a
    "###" part inside the section is kept: the full-size run writes its own), or append it."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^#+ |\Z)", re.S | re.M)
    parent = re.compile(r"^## Multi-architecture\n.*?(?=^## |\Z)", re.S | re.M).search(current)
    if pattern.search(current):
        current = pattern.sub(lambda _: text.rstrip("\n") + "\n\n", current)
    elif heading.startswith("### ") and parent:  # a new part: at the end of the section
        current = current[:parent.end()].rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n\n" + current[parent.end():]
    else:
        current = current.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(current.rstrip("\n") + "\n")


FLASK = ROOT / "samples" / "python-flask"
TRIXIE = ROOT / "stacks" / "trixie.toml"


def private_stack(work: Path, stack: Path, text: str) -> tuple[dict[str, str], float, dict[str, float]]:
    """``text`` written to ``stack``, locked and built from scratch in a private home and cache
    (the .deb files from the machine's cache, so no download is timed): the environment to use
    it with, the build's seconds, and each architecture's "assembled and layered" seconds."""
    stack.write_text(text)
    cache = work / "cache"
    cache.mkdir(parents=True)
    (cache / "debs").symlink_to(cache_root() / "debs")
    env = {"PALLET_HOME": str(work / "home"), "PALLET_CACHE": str(cache), "PALLET_SERVER": "0"}
    pallet("stack", "lock", str(stack), env=env)
    start = time.perf_counter()
    out = pallet("stack", "build", str(stack), "--verbose", env=env)
    return env, time.perf_counter() - start, {a: float(t) for a, t in ASSEMBLED.findall(out.stderr)}


def full_run(work: Path) -> dict[str, object]:
    """The full-size run (see the module's docstring); seconds and what answered."""
    import json
    import urllib.request

    stack = work / "trixie-multi.toml"
    text = TRIXIE.read_text()
    if 'architectures = ["amd64"]' not in text:
        raise SystemExit(f"{TRIXIE}: no `architectures = [\"amd64\"]` line to make two-platform")
    env, wall, assembled = private_stack(work, stack, "# stacks/trixie.toml for amd64 and arm64 (bench/bench_multiarch.py "
                                         "--full)\n" + text.replace('architectures = ["amd64"]',
                                                                    'architectures = ["amd64", "arm64"]'))
    result: dict[str, object] = {"stack_wall": wall, "stack": assembled}
    apps: dict[str, float] = {}
    for arch in ("amd64", "arm64"):
        start = time.perf_counter()
        pallet("build", str(FLASK), "-t", f"flask-{arch}:1", "--stack", str(stack), "--platform", f"linux/{arch}",
               "--cache-dir", str(work / f"c-{arch}"), env=env)
        apps[arch] = time.perf_counter() - start
    result["app"] = apps
    start = time.perf_counter()
    both = json.loads(pallet("build", str(FLASK), "-t", "flask:1", "--stack", str(stack), "--platform",
                             "linux/amd64,linux/arm64", "--json", "--cache-dir", str(work / "c-both"),
                             env=env).stdout)
    result["index_wall"] = time.perf_counter() - start
    result["index"] = both["digest"]
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "builder", "run", "flask:1", "--platform", "linux/arm64", "-p",
                             str(port)], env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    start = time.perf_counter()
    answer = None
    try:
        while time.perf_counter() - start < 300 and proc.poll() is None and answer is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/greet?name=arm64", timeout=5) as resp:
                    answer = resp.read().decode().strip()
            except OSError:
                time.sleep(0.5)
        result["arm64_first_answer"] = time.perf_counter() - start
        result["arm64_answer"] = answer
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return result


GO_HTTP = ROOT / "samples" / "go-http"
GO_STACK = """\
# Debian 13's essential set and golang-go, for amd64 and arm64 (bench/bench_multiarch.py --go)
id = "io.pallet.stacks.go-multi"
version = "0.1.0"
description = "Debian 13 essential set and Go, for amd64 and arm64 (a benchmark)"
architectures = ["amd64", "arm64"]

[distro]
name = "debian"
version = "13"
suite = "trixie"
mirror = "http://deb.debian.org/debian"
security-mirror = "http://deb.debian.org/debian-security"

[user]
uid = 1000
gid = 1000
name = "cnb"
home = "/home/cnb"

[env]
LANG = "C.UTF-8"

[files]
exclude = ["/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*"]
keep = ["/usr/share/doc/*/copyright"]

[build]
packages = ["golang-go", "ca-certificates"]

[run]
packages = ["ca-certificates"]
"""


def go_main(runs: int, write: bool) -> None:
    """Cross-compiled vs emulated Go for arm64 (see the module's docstring)."""
    import json

    with tempfile.TemporaryDirectory(prefix="bench-multiarch-go-") as tmp:
        work = Path(tmp)
        stack = work / "go-multi.toml"
        env, stack_wall, assembled = private_stack(work, stack, GO_STACK)
        times: dict[str, list[float]] = {}
        digests: dict[str, set[str]] = {}
        ways = (("amd64 (native)", "linux/amd64", ()), ("arm64, --cross", "linux/arm64", ("--cross",)),
                ("arm64, --emulate", "linux/arm64", ("--emulate",)), ("arm64, automatic", "linux/arm64", ()))
        chosen: set[str] = set()
        for r in range(runs):
            for i, (name, plat, extra) in enumerate(ways):
                start = time.perf_counter()
                done = pallet("build", str(GO_HTTP), "-t", f"go-{i}:{r}", "--stack", str(stack), "--platform", plat,
                              "--json", "--cache-dir", str(work / f"c-{i}-{r}"), *extra, env=env)
                times.setdefault(name, []).append(time.perf_counter() - start)
                out = json.loads(done.stdout)
                digests.setdefault(name, set()).add(out["digest"])
                if name == "arm64, automatic":
                    chosen.add(out["platforms"][0]["build"]["way"])
    load = os.getloadavg()[0]
    med = {name: statistics.median(t) for name, t in times.items()}
    same = digests["arm64, --cross"] == digests["arm64, --emulate"] == digests["arm64, automatic"]
    lines = [
        "### Go: cross-compiled vs emulated",
        "",
        f"`python bench/bench_multiarch.py --go --runs {runs}`, {time.strftime('%Y-%m-%d', time.gmtime())}, on "
        f"{platform.machine()}, {os.cpu_count()} cores (load average {load:.1f} at the end): a two-platform "
        "stack with Go (trixie's essential set plus golang-go, written at run time: no shipped stack has Go "
        f"for arm64), assembled in {stack_wall:.0f} s (amd64 {assembled.get('amd64', 0):.0f} s, arm64 under "
        f"QEMU {assembled.get('arm64', 0):.0f} s); samples/go-http built with an empty build cache each time "
        f"(median of {runs}; the amd64 row includes unpacking the amd64 build image on first use, which the "
        "later rows found unpacked; the automatic row includes its detection in that image, which decides):",
        "",
        "| build | seconds | vs --cross |",
        "|---|---:|---:|",
        *(f"| {name} | {med[name]:.1f} | {med[name] / med['arm64, --cross']:.1f}x |" for name, _, _ in ways),
        "",
        f"Without a flag the arm64 build was {' and '.join(sorted(chosen))} (pallet's choice: the Go buildpack "
        "cross-compiles, the app has no cgo). The cross-compiled, emulated and automatic arm64 images are "
        + ("the same image (one digest: Go's output does not depend on the machine it runs on)."
           if same else f"different images ({sorted(digests['arm64, --cross'])[0][:19]}... vs "
                        f"{sorted(digests['arm64, --emulate'])[0][:19]}... vs "
                        f"{sorted(digests['arm64, automatic'])[0][:19]}...)."),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if write:
        write_section(text, "### Go: cross-compiled vs emulated")


def full_main(write: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-multiarch-full-") as tmp:
        r = full_run(Path(tmp))
    stack, app = r["stack"], r["app"]
    load = os.getloadavg()[0]
    lines = [
        "### Full size",
        "",
        f"`python bench/bench_multiarch.py --full`, {time.strftime('%Y-%m-%d', time.gmtime())}, on "
        f"{platform.machine()}, {os.cpu_count()} cores (shared; load average {load:.1f} at the end): "
        "stacks/trixie.toml made two-platform (every package of the default stack), assembled from "
        "scratch (the .deb files from the machine's cache); samples/python-flask on it.",
        "",
        "| what | amd64 (native) | arm64 (QEMU) | ratio |",
        "|---|---|---|---|",
        f"| trixie stack, one architecture assembled and layered | {stack['amd64']:.0f} s | {stack['arm64']:.0f} s "
        f"| {stack['arm64'] / stack['amd64']:.1f}x |",
        f"| python-flask, empty build cache (pip downloads that platform's wheels) | {app['amd64']:.0f} s "
        f"| {app['arm64']:.0f} s | {app['arm64'] / app['amd64']:.1f}x |",
        "",
        f"Whole stack build (both architectures at once): {r['stack_wall']:.0f} s. python-flask for "
        f"`linux/amd64,linux/arm64` into one index ({str(r['index'])[:19]}...): {r['index_wall']:.0f} s. "
        f"The arm64 image under QEMU (`pallet run --platform linux/arm64`) first answered after "
        f"{r['arm64_first_answer']:.1f} s: `{r['arm64_answer']}`. The one-platform builds include "
        "unpacking that platform's build and run images on first use (the index build found them unpacked).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if write:
        write_section(text, "### Full size")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--full", action="store_true", help="the full-size run: trixie for both platforms, flask")
    parser.add_argument("--go", action="store_true", help="Go for arm64: cross-compiled vs emulated")
    parser.add_argument("--write", action="store_true", help="update the Multi-architecture section of RESULTS.md")
    args = parser.parse_args()
    if args.go:
        go_main(args.runs, args.write)
        return
    if args.full:
        full_main(args.write)
        return
    stacks: dict[str, list[float]] = {"amd64": [], "arm64": []}
    apps: dict[str, list[float]] = {"amd64": [], "arm64": []}
    with tempfile.TemporaryDirectory(prefix="bench-multiarch-") as tmp:
        home = {"PALLET_HOME": str(Path(tmp) / "apps-home")}
        pallet("stack", "build", str(STACK), "--refresh", env=home)  # the images the app rounds use
        for i in range(args.runs):
            for arch, seconds in stack_round(Path(tmp) / f"stack-{i}").items():
                stacks[arch].append(seconds)
            for arch in (("amd64", "arm64") if i % 2 == 0 else ("arm64", "amd64")):
                apps[arch].append(app_round(Path(tmp) / f"app-{i}", arch, home))
            shutil.rmtree(Path(tmp) / f"stack-{i}", ignore_errors=True)
    med = {k: {a: statistics.median(v) for a, v in d.items()} for k, d in (("stack", stacks), ("app", apps))}
    load = os.getloadavg()[0]
    lines = [
        "## Multi-architecture",
        "",
        f"`python bench/bench_multiarch.py --runs {args.runs}` on {platform.machine()}, {os.cpu_count()} cores "
        f"(shared; load average {load:.1f} at the end); arm64 under QEMU user emulation (binfmt_misc). Medians:",
        "",
        "| what | amd64 (native) | arm64 (QEMU) | ratio |",
        "|---|---|---|---|",
        f"| tiny-multi stack, one architecture assembled and layered from scratch | {med['stack']['amd64']:.0f} s "
        f"| {med['stack']['arm64']:.0f} s | {med['stack']['arm64'] / med['stack']['amd64']:.1f}x |",
        f"| hello + Procfile app on it, empty build cache | {med['app']['amd64']:.1f} s | {med['app']['arm64']:.1f} s "
        f"| {med['app']['arm64'] / med['app']['amd64']:.1f}x |",
        "",
        "dpkg's maintainer scripts (perl, shell) dominate the stack's emulated time; a bash buildpack's "
        "build is short, so the app ratio is mostly QEMU start-up per process. Not measured: the Go "
        "buildpack cross-compiling natively vs emulated (no stack ships Go for arm64 yet).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
