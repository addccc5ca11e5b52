"""Benchmark: pallet's reproducible layer writer against tar piped into gzip, pigz and zstd.

    python bench/bench_layer.py [--runs N] [--tree DIR] [--write-results]

The input is a ~200 MB Debian bookworm root file system made once with mmdebstrap and kept in
~/.cache/pallet-bench/rootfs (device nodes removed: a layer refuses them, and the tar
baselines must read the same tree). Runs are interleaved (one of each variant per round) so
that load from anything else on the machine spreads over all variants alike; the table gives
the median of N rounds, and the minimum, which is what the machine can do when quiet.

CPU/wall is (user + system CPU time of the process and its children) / wall time: about 2.0
means both cores were busy the whole time.

With --write-results the "## Layer creation" section of bench/RESULTS.md is replaced by this
run's (other sections are left alone).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from builder.oci import layer  # noqa: E402

CACHE = Path.home() / ".cache" / "pallet-bench"
TREE = CACHE / "rootfs"
PACKAGES = "python3,perl,vim-tiny,less,ca-certificates"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Layer creation"
TAR = "tar --sort=name --mtime=@315532801 --owner=0 --group=0 --numeric-owner -cf - -C {src} ."


def ensure_tree(tree: Path) -> Path:
    """The cached root file system, made with mmdebstrap the first time."""
    if tree.is_dir():
        return tree
    if shutil.which("mmdebstrap") is None:
        sys.exit("mmdebstrap is needed to make the benchmark tree: apt-get install mmdebstrap")
    tree.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="rootfs.", dir=tree.parent))
    print(f"making {tree} with mmdebstrap (once; takes a minute)...", file=sys.stderr)
    subprocess.run(["mmdebstrap", "--variant=apt", f"--include={PACKAGES}", "bookworm", str(staging)], check=True)
    # Device nodes (mmdebstrap makes /dev/null etc.) cannot go in a layer; remove them so
    # pallet and the tar baselines read exactly the same tree.
    subprocess.run(["find", str(staging), "(", "-type", "b", "-o", "-type", "c", "-o", "-type", "p", "-o",
                    "-type", "s", ")", "-delete"], check=True)
    staging.rename(tree)
    return tree


def tree_stats(tree: Path) -> tuple[int, int]:
    size = entries = 0
    for dirpath, dirnames, filenames in os.walk(tree):
        entries += len(dirnames) + len(filenames)
        for name in filenames:
            st = os.lstat(os.path.join(dirpath, name))
            size += st.st_size
    return size, entries


def cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Variant:
    name: str
    run: Callable[[Path], int]  # returns the output size
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    size: int = 0

    def once(self, out: Path) -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        self.size = self.run(out)
        wall = time.perf_counter() - t0
        self.walls.append(wall)
        self.cpus.append(cpu_seconds() - cpu0)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def best(self) -> float:
        return min(self.walls)

    @property
    def cpu_ratio(self) -> float:
        return statistics.median(c / w for c, w in zip(self.cpus, self.walls))


def shell(command: str) -> Callable[[Path], int]:
    def run(out: Path) -> int:
        subprocess.run(["bash", "-o", "pipefail", "-c", command.format(out=out)], check=True)
        return (out / "layer").stat().st_size
    return run


def pallet(src: Path, compression: str) -> Callable[[Path], int]:
    def run(out: Path) -> int:
        return layer.write_layer(src, out / "layer", compression=compression).size
    return run


def pallet_two(src: Path, compression: str, parallel: bool) -> Callable[[Path], int]:
    def run(out: Path) -> int:
        sizes: list[int] = []

        def one(i: int) -> None:
            sizes.append(layer.write_layer(src, out / f"layer{i}", compression=compression).size)

        if parallel:
            threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        else:
            one(0)
            one(1)
        return sum(sizes)
    return run


def machine() -> dict[str, str]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    import zlib

    import zstandard

    tools = {}
    for tool, args in (("tar", ["--version"]), ("gzip", ["--version"]), ("pigz", ["--version"]), ("zstd", ["-V"])):
        res = subprocess.run([tool, *args], capture_output=True, text=True)
        tools[tool] = (res.stdout or res.stderr).splitlines()[0].strip("* ").removeprefix(f"{tool} ")
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "ram": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "os": platform.platform(),
        "python": platform.python_version(),
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
        "zstandard": f"{zstandard.__version__} (libzstd {'.'.join(map(str, zstandard.ZSTD_VERSION))})",
        **tools,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="rounds (median of these; at least 3)")
    parser.add_argument("--tree", type=Path, default=TREE, help="directory to make layers of")
    parser.add_argument("--write-results", action="store_true", help=f"replace '{SECTION}' in {RESULTS}")
    args = parser.parse_args()
    runs = max(3, args.runs)
    src = ensure_tree(args.tree)
    size, entries = tree_stats(src)
    tar = TAR.format(src=src)
    variants = {
        "pallet gzip": Variant("pallet gzip", pallet(src, "gzip")),
        "tar | gzip -n -6": Variant("tar | gzip -n -6", shell(tar + " | gzip -n -6 > {out}/layer")),
        "tar | pigz -n -6": Variant("tar | pigz -n -6", shell(tar + " | pigz -n -6 > {out}/layer")),
        "pallet zstd": Variant("pallet zstd", pallet(src, "zstd")),
        "tar | zstd -3 -T0": Variant("tar | zstd -3 -T0", shell(tar + " | zstd -q -3 -T0 > {out}/layer")),
        "tar | zstd -3 -T0, both sha256'd": Variant(
            "tar | zstd -3 -T0, both sha256'd",
            shell(tar + " | tee >(sha256sum > {out}/diffid) | zstd -q -3 -T0 | tee >(sha256sum > {out}/digest)"
                  " > {out}/layer")),
        "pallet none": Variant("pallet none", pallet(src, "none")),
        "pallet gzip x2, one after the other": Variant("pallet gzip x2, one after the other",
                                                       pallet_two(src, "gzip", parallel=False)),
        "pallet gzip x2, two threads at once": Variant("pallet gzip x2, two threads at once",
                                                       pallet_two(src, "gzip", parallel=True)),
        "pallet zstd x2, one after the other": Variant("pallet zstd x2, one after the other",
                                                       pallet_two(src, "zstd", parallel=False)),
        "pallet zstd x2, two threads at once": Variant("pallet zstd x2, two threads at once",
                                                       pallet_two(src, "zstd", parallel=True)),
    }
    work = Path(tempfile.mkdtemp(prefix="bench-out.", dir=CACHE))
    try:
        print(f"tree {src}: {size / 1e6:.0f} MB in {entries} entries; {runs} rounds", file=sys.stderr)
        for v in variants.values():  # warm the page cache and the pools; not counted
            v.once(work / "warmup")
            v.walls.clear()
            v.cpus.clear()
        for i in range(runs):
            for v in variants.values():
                v.once(work / "out")
            print(f"round {i + 1}/{runs} done", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def ratio(a: str, b: str) -> str:
        return f"{variants[a].median / variants[b].median:.2f} (best {variants[a].best / variants[b].best:.2f})"

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    rows = [f"| {cell(v.name)} | {v.median:.2f} | {v.best:.2f} | {v.cpu_ratio:.2f} | {v.size / 1e6:.1f} |"
            for v in variants.values()]
    ratios = [
        ("pallet gzip / tar | gzip -n -6", ratio("pallet gzip", "tar | gzip -n -6"), "<= 1.0"),
        ("pallet gzip / tar | pigz -n -6", ratio("pallet gzip", "tar | pigz -n -6"), "(report)"),
        ("pallet gzip / pallet zstd (zstd speed-up)", ratio("pallet gzip", "pallet zstd"), ">= 3"),
        ("pallet zstd / tar | zstd -3 -T0", ratio("pallet zstd", "tar | zstd -3 -T0"), "<= 1.0"),
        ("pallet zstd / tar | zstd -3 -T0 with both sha256s",
         ratio("pallet zstd", "tar | zstd -3 -T0, both sha256'd"), "(report)"),
        ("gzip x2: two threads / one after the other",
         ratio("pallet gzip x2, two threads at once", "pallet gzip x2, one after the other"), "(report)"),
        ("zstd x2: two threads / one after the other",
         ratio("pallet zstd x2, two threads at once", "pallet zstd x2, one after the other"), "(report)"),
    ]
    info = machine()
    lines = [
        SECTION,
        "",
        f"Run {datetime.date.today().isoformat()} with `python bench/bench_layer.py --runs {runs}`.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items()),
        "",
        f"Input: Debian bookworm root file system (mmdebstrap --variant=apt --include={PACKAGES}, device "
        f"nodes removed), {size / 1e6:.0f} MB of files in {entries} entries, in the page cache.",
        "",
        f"Seconds, median and best of {runs} interleaved rounds; CPU/wall = CPU seconds of all threads and "
        "child processes / wall seconds (2.00 = both cores busy throughout).",
        "",
        "| variant | median s | best s | CPU/wall | output MB |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
        "",
        "| ratio | median (best) | target |",
        "| --- | ---: | --- |",
        *[f"| {cell(name)} | {value} | {target} |" for name, value, target in ratios],
        "",
        NOTES,
    ]
    text = "\n".join(lines)
    print(text)
    if args.write_results:
        write_section(text)


NOTES = """\
Notes:
- gzip: pallet deflates 1 MiB chunks on a pool of one thread per core, each primed with the
  32 KiB before it (pigz's scheme), into one gzip member; so it runs at pigz's speed and
  beats single-threaded `gzip -6` by the core count, with the same ratio. The output is
  identical whatever the thread count (tested).
- zstd vs `tar | zstd -T0` (target <= 1.0, not met): both are CPU-bound on two cores, so the
  CPU-seconds decide, and pallet must also compute two SHA-256s that the pipeline does not
  (the diffID over the 216 MB tar, the digest over the 68 MB blob). Measured here on a quiet
  machine, CPU-seconds: libzstd level 3 with two workers on the tar in memory 0.77 (at a
  CPU/wall of about 1.9 at best: its 8 MiB jobs leave a start and a tail); SHA-256 of the
  tar while it is in cache 0.11, of the blob 0.04; the least a Python walk can do (sorted
  scandir, lstat, open/fstat/read/close, no headers) 0.10; writing 0.015. That floor, ~1.03,
  is already all the CLI pipeline takes (1.00-1.07 across runs), so at best pallet could
  tie; it takes 1.10-1.17 (its tar generation 0.12, feeding libzstd 0.07, both hashes 0.15)
  at CPU/wall ~1.78 against the pipeline's ~1.85. The row with both hashes added to the
  shell pipeline (via tee, three more processes) shows what a tool that must know both
  digests pays in a shell.
- 2026-11-25 changes: the walk uses bytes paths and hands the writer plain tuples rather than
  Entry objects; a header skips the pax checks when ustar holds every value and sums only
  its non-zero bytes; a file that fits in the buffer is read with one call. pallet's tar
  generation went from 0.16 to 0.12 CPU-s (floor 0.10), the zstd layer 1-4% faster in
  same-run A/B (median 0.641 -> 0.613 s and 0.664 -> 0.657 s; CLI 0.54-0.58 s). An
  uncompressed layer is the tar, so its digest is its diffID: hashed once, 0.46 -> 0.31 s.
  Output bytes unchanged (same digests for gzip, zstd and none). Tried and dropped: a
  consumer thread for compressing with 4 to 16 buffers in flight (CPU/wall 1.78 -> 1.85, but
  +0.05 CPU-s: no faster, and worse under load, as a double-buffered one was before); 3 or 4
  zstd workers instead of 2 (same bytes, CPU/wall 1.81-1.83, more CPU, same wall).
- Two layers at once: the deflate pool is shared, so two concurrent gzip layers split the
  cores instead of oversubscribing them; one gzip layer already keeps both cores busy, so
  two at once take as long as one after the other. zstd layers each use libzstd's own
  workers; two at once keep the cores busier (higher CPU/wall) but, the work being
  CPU-bound on two cores, take about as long as one after the other.
- Timings on this machine are noisy: other sessions run test suites on the same two cores,
  hence interleaved rounds and the "best" column.
"""


def write_section(text: str) -> None:
    """Replace our section of RESULTS.md (or add it), leaving every other section alone."""
    old = RESULTS.read_text() if RESULTS.exists() else "# Benchmarks\n"
    start = old.find(SECTION + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = old.find("\n## ", start + len(SECTION))
        tail = old[nxt + 1:] if nxt >= 0 else ""
        new = old[:start] + text + ("\n" + tail if tail else "")
    RESULTS.write_text(new.rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
