"""``pallet stack build`` of the bookworm stack vs the raw assembly tool on the same packages.

    sudo python bench/bench_stack.py [--runs 3] [--stack stacks/bookworm.toml] [--write]

Raw: ``mmdebstrap --variant=essential --include=<every locked package of the image>``, once for
the build image and once for the run image, one after the other, each to a tarball (its default
output) -- what a platform team would run by hand. pallet: ``pallet stack build --no-cache`` of
the same stack and lock, which also prunes documentation, writes gzip layers, configs and
manifests and puts both images in a store. Both get the same .deb files from a warm cache (raw
through mmdebstrap's documented ``sync-in`` hook), the same ``SOURCE_DATE_EPOCH`` and the same
temporary directory; rounds are interleaved (this machine is shared and noisy).

Then a cached rebuild (``pallet stack build`` again, unchanged stack and lock), and the sizes of
both images. ``--write`` replaces the "## Stacks" section of bench/RESULTS.md (other sections kept).
"""

from __future__ import annotations

import argparse
import json
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

from builder.stacks import lockfile, spec  # noqa: E402
from builder.stacks.apt import sources_for  # noqa: E402
from builder.stacks.assemble import work_base  # noqa: E402
from builder.stacks.build import cache_root  # noqa: E402

RESULTS = ROOT / "bench" / "RESULTS.md"


def pallet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "builder", *args], capture_output=True, text=True, env=full)
    if proc.returncode != 0:
        raise SystemExit(f"pallet {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def raw_assembly(stack: spec.Stack, lock: lockfile.Lock, debs: Path, out: Path, tmpdir: Path) -> dict[str, int]:
    """mmdebstrap by hand, build image then run image; returns the tarball sizes."""
    arch = stack.architectures[0]
    arch_lock = lock.arch(arch)
    sources = [s.line() for s in sources_for(stack.distro, str(stack.path))]
    sizes = {}
    for kind in ("build", "run"):
        include = ",".join(p.apt_spec for p in arch_lock.added(kind))
        tarball = out / f"{kind}.tar"
        cmd = ["mmdebstrap", "--mode=root", "--variant=essential", "--quiet", f"--architectures={arch}",
               "--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives",
               f"--setup-hook=sync-in {debs} /var/cache/apt/archives/",
               *([f"--include={include}"] if include else []), stack.distro.suite, str(tarball), *sources]
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(lock.epoch), "TMPDIR": str(tmpdir)}
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        sizes[kind] = tarball.stat().st_size
        tarball.unlink()
    return sizes


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    mem = int(next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal"))) / (1 << 20)
    mm = subprocess.run(["mmdebstrap", "--version"], capture_output=True, text=True).stdout.strip()
    return (f"nproc {os.cpu_count()}; cpu {cpu}; ram {mem:.1f} GiB; os {platform.platform()}; "
            f"python {platform.python_version()}; {mm}")


def write_section(text: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Stacks\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(current):
        current = pattern.sub(text.rstrip("\n") + "\n\n", current)
    else:
        current = current.rstrip("\n") + "\n\n" + text
    RESULTS.write_text(current.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stack", type=Path, default=ROOT / "stacks" / "bookworm.toml")
    parser.add_argument("--write", action="store_true", help="update the Stacks section of bench/RESULTS.md")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: both tools assemble with mmdebstrap --mode=root")

    with tempfile.TemporaryDirectory(prefix="pallet-bench-stack-") as tmp:
        work = Path(tmp)
        stack_path = work / "stacks" / args.stack.name
        stack_path.parent.mkdir()
        shutil.copy(args.stack, stack_path)
        debs = cache_root() / "debs"
        debs.mkdir(parents=True, exist_ok=True)

        def env(name: str) -> dict[str, str]:
            cache = work / name / "cache"
            cache.mkdir(parents=True, exist_ok=True)
            if not (cache / "debs").exists():
                (cache / "debs").symlink_to(debs)
            return {"PALLET_HOME": str(work / name / "home"), "PALLET_CACHE": str(cache)}

        print("locking and warming the .deb cache ...", file=sys.stderr)
        pallet("stack", "lock", str(stack_path), env=env("warm"))
        first = json.loads(pallet("stack", "build", str(stack_path), "--json", env=env("warm")).stdout)
        stack = spec.load(stack_path)
        lock, _ = lockfile.load(stack)
        n_build = len(lock.arch(stack.architectures[0]).build)
        n_run = len(lock.arch(stack.architectures[0]).run)
        tmpdir = work_base(cache_root())
        raw_out = work / "raw"
        raw_out.mkdir()

        times: dict[str, list[float]] = {"raw": [], "pallet": []}
        raw_sizes: dict[str, int] = {}
        for i in range(args.runs):
            for tool in (("raw", "pallet") if i % 2 == 0 else ("pallet", "raw")):
                print(f"round {i + 1}: {tool} ...", file=sys.stderr)
                if tool == "raw":
                    t, raw_sizes = timed(lambda: raw_assembly(stack, lock, debs, raw_out, tmpdir))
                else:
                    t, out = timed(lambda: json.loads(pallet("stack", "build", str(stack_path), "--no-cache", "--json",
                                                             env=env(f"p{i}")).stdout))
                    assert out["build"]["digest"] == first["build"]["digest"], "not reproducible"
                    assert out["run"]["digest"] == first["run"]["digest"], "not reproducible"
                times[tool].append(t)
        cached = []
        for _ in range(max(3, args.runs)):
            t, out = timed(lambda: json.loads(pallet("stack", "build", str(stack_path), "--json",
                                                     env=env("warm")).stdout))
            assert out["cached"]
            cached.append(t)

    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["pallet"] / med["raw"]
    build, run = first["build"], first["run"]
    shared = sum(layer["size"] for layer in build["layers"] if layer in run["layers"])
    mb = lambda n: f"{n / 1e6:.1f}"  # noqa: E731
    lines = [
        "## Stacks",
        "",
        f"Run {time.strftime('%Y-%m-%d')} with `sudo python bench/bench_stack.py --runs {args.runs}`.",
        "",
        f"Machine: {machine()}",
        "",
        f"Stack: `{args.stack.relative_to(ROOT) if args.stack.is_relative_to(ROOT) else args.stack}`, locked at "
        f"the time of the run: build image {n_build} packages, run image {n_run} packages (amd64). Work trees in "
        f"`{tmpdir}` for both tools; .deb files from a warm cache for both.",
        "",
        "| what | median s | runs (s) |",
        "| --- | ---: | --- |",
        f"| raw: mmdebstrap build image, then run image, to tarballs | {med['raw']:.1f} | "
        + " ".join(f"{t:.1f}" for t in times["raw"]) + " |",
        f"| `pallet stack build --no-cache` (both images, into the local store) | {med['pallet']:.1f} | "
        + " ".join(f"{t:.1f}" for t in times["pallet"]) + " |",
        f"| `pallet stack build`, unchanged stack and lock (cached) | {statistics.median(cached):.2f} | "
        + " ".join(f"{t:.2f}" for t in cached) + " |",
        "",
        "| ratio / size | value | target |",
        "| --- | ---: | --- |",
        f"| pallet / raw assembly | {ratio:.2f} (best {min(times['pallet']) / min(times['raw']):.2f}) | <= 1.3 |",
        f"| cached rebuild | {statistics.median(cached):.2f} s | < 5 s |",
        f"| build image, compressed (config + {len(build['layers'])} gzip layers) | {mb(build['size'])} MB | (report) |",
        f"| run image, compressed (config + {len(run['layers'])} gzip layers) | {mb(run['size'])} MB | (report) |",
        f"| of which shared by both images | {mb(shared)} MB | (report) |",
        f"| raw tarballs, uncompressed (build, run) | {mb(raw_sizes.get('build', 0))}, {mb(raw_sizes.get('run', 0))} MB"
        " | (report) |",
        "",
        "Notes:",
        "- Both tools run the same mmdebstrap over the same locked package set. pallet runs the two",
        "  assemblies at once (dpkg is mostly one core), and writes the essential layer and the run",
        "  image's layer while the build image is still installing; the build image's own layer (the",
        "  toolchains) is gzip-compressed after its tree is done, which is most of the difference.",
        "  The raw tarballs are neither compressed nor pruned of documentation, and have no digests.",
        "- Every pallet round gave the same two digests as the first build (checked), in a fresh",
        "  stack cache each time.",
        "- A cached rebuild reads the stack file and lock, finds the images in the stack cache",
        "  (`~/.cache/pallet/stacks`) and hard-links their blobs into the local store: no assembly.",
        "- Timings on this machine are noisy: other sessions run test suites on the same two cores,",
        "  hence interleaved rounds and the best-of ratio.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.write:
        write_section(text)


if __name__ == "__main__":
    main()
