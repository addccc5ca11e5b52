"""Mass rebase: N app images in a local registry rebased onto a new run image with --jobs 16.

    python bench/bench_rebase.py [--images 1000] [--jobs 16] [--rebuilds 3]

Reports images per second (target >= 100/s on 2 cores), bytes uploaded per image (target
< 20 KB, counted by a proxy in front of the registry: every request, headers included),
requests per image by method (from the registry's log), the CPU time per image of pallet and
of the registry (the two share the machine's cores: their sum bounds the rate), the machine's
load average, and the ratio against rebuilding the same images (--rebuilds builds, scaled to N).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.countproxy import CountingProxy  # noqa: E402
from tests.fixtures_registry import start_registry  # noqa: E402

TINY = str(ROOT / "stacks" / "tiny.toml")
HELLO = str(ROOT / "tests" / "buildpacks" / "hello")


def pallet(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "builder", *args], capture_output=True, text=True,
                          env={**os.environ, **env, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"pallet {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def _copies(src: str, dsts: list[str]) -> None:
    """The fleet: copies of one app image, made in this process (minutes faster than a
    ``pallet copy`` each; copying is not what is measured)."""
    from concurrent.futures import ThreadPoolExecutor

    from builder.oci import reference as refs
    from builder.oci.copy import copy_image
    from builder.oci.stores import StoreOptions, open_store

    src_ref = refs.parse(src)
    with open_store(src_ref, StoreOptions()) as src_store:
        def one(dst: str) -> None:
            dst_ref = refs.parse(dst)
            with open_store(dst_ref, StoreOptions()) as store:
                copy_image(src_store, src_ref.ref, store, dst_ref.tag)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, dsts))


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--rebuilds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work_p = Path(work)
        env = {"PALLET_HOME": str(work_p / "home")}
        stack = json.loads(pallet("stack", "build", TINY, "--refresh", "--json", env=env).stdout)
        run_ref = stack["images"]["run"]["reference"] if "images" in stack else stack["run"]["reference"]
        patch = work_p / "patch" / "etc"
        patch.mkdir(parents=True)
        (patch / "v2").write_text("v2\n")
        reg = start_registry(work_p / "registry")
        try:
            reg_host, reg_port = reg.host.split(":")
            proxy = CountingProxy(reg_host, int(reg_port))
            host = proxy.host  # every request goes through the counting proxy
            pallet("copy", run_ref, f"docker://{host}/run:v1", env=env)
            pallet("append", f"docker://{host}/run:v1", str(patch.parent), f"docker://{host}/run:v2", env=env)
            app = work_p / "app"
            app.mkdir()
            (app / "hello.conf").write_text("bench\n")
            pallet("build", str(app), "-t", f"docker://{host}/apps/app0:1", "--stack", TINY, "--run-image",
                   f"docker://{host}/run:v1", "--buildpack", HELLO, env=env)
            refs = [f"docker://{host}/apps/app{i}:1" for i in range(args.images)]
            _copies(refs[0], refs[1:])
            targets = work_p / "targets.txt"
            targets.write_text("\n".join(refs) + "\n")
            before = len(reg.log_text())
            proxy.reset()
            load = os.getloadavg()[0]
            cpu0, reg0 = _children_cpu(), _process_cpu(reg.process.pid)
            start = time.perf_counter()
            res = pallet("rebase", "--from", str(targets), "--run-image", f"docker://{host}/run:v2",
                         "--jobs", str(args.jobs), "--json", env=env)
            elapsed = time.perf_counter() - start
            pallet_cpu, registry_cpu = _children_cpu() - cpu0, _process_cpu(reg.process.pid) - reg0
            log = reg.log_text()[before:]
            results = json.loads(res.stdout)["results"]
            assert all(r["status"] == "rebased" for r in results), "not every image was rebased"
            methods = Counter(re.findall(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) /v2/apps/', log))
            layer_uploads = len(re.findall(r'"PATCH /v2/apps/[^"]*/blobs/uploads', log))
            puts = re.findall(r'"PUT /v2/apps/[^ ]+', log)
            per_image = proxy.sent / args.images
            start = time.perf_counter()
            for i in range(args.rebuilds):
                (app / "hello.conf").write_text(f"bench {i}\n")
                pallet("build", str(app), "-t", f"docker://{host}/rebuilt/app{i}:1", "--stack", TINY,
                       "--run-image", f"docker://{host}/run:v2", "--buildpack", HELLO, env=env)
            rebuild_each = (time.perf_counter() - start) / args.rebuilds
        finally:
            reg.stop()
    rate = args.images / elapsed
    print(f"rebase of {args.images} images, --jobs {args.jobs}: {elapsed:.2f} s, {rate:.0f} images/s (target >= 100); "
          f"load average {load:.1f} on {os.cpu_count()} cores at the start")
    print("  requests per image: " + ", ".join(f"{m} {n / args.images:.2f}" for m, n in sorted(methods.items())))
    print(f"  CPU per image: pallet {1000 * pallet_cpu / args.images:.1f} ms, registry "
          f"{1000 * registry_cpu / args.images:.1f} ms")
    print(f"  requests: {len(puts)} PUTs, {layer_uploads} layer PATCHes; "
          f"sent {per_image / 1024:.1f} KB per image, HTTP headers included (target < 20 KB)")
    print(f"  rebuild: {rebuild_each:.2f} s per image -> {rebuild_each * args.images:.0f} s for {args.images}; "
          f"ratio rebase/rebuild {elapsed / (rebuild_each * args.images):.3f}")


if __name__ == "__main__":
    main()
