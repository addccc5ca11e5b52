"""Mass rebase: N app images in a local registry rebased onto a new run image with --jobs 16.

    python bench/bench_rebase.py [--images 1000] [--jobs 16] [--rebuilds 3] [--sample 100]
                                 [--registry-log] [--profile FILE]

The fleet is N distinct app images (one per repository: the same app layer, each config its
own, so every rebase uploads a config of its own) on run image v1. Two passes:

1. timed: all N rebased onto v2 in one ``pallet rebase --from``, straight to the registry
   (``--rounds R``: then onto v3, ... each pass reported on its own, with its load).
   Reports images per second (target >= 100/s on 2 cores), the CPU time per image of pallet
   and of the registry (they share the machine's cores: their sum bounds the rate), and the
   load average before and after (other work on the machine takes cores from both).
2. counted: ``--sample`` of them rebased again, onto v3 (the same kind of change), through a
   counting proxy: bytes sent per image (target < 20 KB; request lines, headers and bodies)
   and requests per image by method, read from the requests themselves.

The registry runs as a benchmark should run one (errors-only log, no access log, blob
descriptors cached in memory, GOGC=1000; its storage on the temp dir's disk);
``--registry-log`` keeps distribution's and Go's defaults (info log and access log, as the
tests run it) to show what that costs. ``PALLET_HTTP_REQUESTS_ONLY=1`` in the environment
sends every request through requests, as before the lean transport. ``--profile FILE`` runs the
timed pass under cProfile in every thread, by CPU time (``bench/cpuprofile.py``).
``--rebuilds``: the ratio against rebuilding instead (scaled to N).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.countproxy import CountingProxy  # noqa: E402
from tests.fixtures_registry import start_registry  # noqa: E402

TINY = str(ROOT / "stacks" / "tiny.toml")
HELLO = str(ROOT / "tests" / "buildpacks" / "hello")


def pallet(*args: str, env: dict[str, str], profile: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [str(ROOT / "bench" / "cpuprofile.py"), profile] if profile else ["-m", "builder"]
    proc = subprocess.run([sys.executable, *command, *args], capture_output=True, text=True,
                          env={**os.environ, **env, "PYTHONPATH": str(ROOT)})
    if proc.returncode != 0:
        raise SystemExit(f"pallet {' '.join(args)} failed:\n{proc.stderr}")
    return proc


def make_fleet(src: str, dsts: list[str]) -> None:
    """The fleet: one image per reference in ``dsts``, each ``src`` with its own config (its
    ``created`` moved by i seconds), so no two images share a config blob, as no two apps of a
    real fleet do. Made in this process (minutes faster than a ``pallet copy`` each)."""
    from concurrent.futures import ThreadPoolExecutor
    from datetime import datetime, timedelta

    from builder.oci import reference as refs
    from builder.oci.copy import copy_blobs
    from builder.oci.image import load_image
    from builder.oci.model import Descriptor
    from builder.oci.stores import StoreOptions, open_store

    src_ref = refs.parse(src)
    with open_store(src_ref, StoreOptions()) as src_store:
        image = load_image(src_store, src_ref.ref)
        config = json.loads(image.config_bytes)
        manifest = json.loads(image.manifest_bytes)
        created = datetime.fromisoformat(config["created"].replace("Z", "+00:00"))

        def one(item: tuple[int, str]) -> None:
            i, dst = item
            dst_ref = refs.parse(dst)
            mine = {**config, "created": (created + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ")}
            config_bytes = json.dumps(mine, sort_keys=True, separators=(",", ":")).encode()
            with open_store(dst_ref, StoreOptions()) as store:
                copy_blobs(src_store, store, list(image.manifest.layers), jobs=1)
                desc = store.put_blob_bytes(config_bytes, image.manifest.config.media_type)
                data = json.dumps({**manifest, "config": Descriptor(desc.media_type, desc.digest, desc.size)
                                   .to_json()}, sort_keys=True, separators=(",", ":")).encode()
                store.put_manifest(data, image.descriptor.media_type, tag=dst_ref.tag)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(one, enumerate(dsts, start=1)))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rebase(targets: Path, run_image: str, jobs: int, env: dict[str, str], profile: str | None = None) -> None:
    res = pallet("rebase", "--from", str(targets), "--run-image", run_image, "--jobs", str(jobs), "--json",
                 env=env, profile=profile)
    results = json.loads(res.stdout)["results"]
    bad = [r for r in results if r["status"] != "rebased"]
    assert not bad, f"not every image was rebased: {bad[:3]}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--rebuilds", type=int, default=3)
    ap.add_argument("--sample", type=int, default=100, help="images in the counted pass")
    ap.add_argument("--registry-log", action="store_true", help="the registry with its info and access log on")
    ap.add_argument("--profile", metavar="FILE", help="cProfile the (first) timed pass into FILE")
    ap.add_argument("--rounds", type=int, default=1,
                    help="timed passes, each onto a newer run image (v2, v3, ...): each one reported")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as work:
        work_p = Path(work)
        env = {"PALLET_HOME": str(work_p / "home")}
        stack = json.loads(pallet("stack", "build", TINY, "--refresh", "--json", env=env).stdout)
        run_ref = stack["images"]["run"]["reference"] if "images" in stack else stack["run"]["reference"]
        reg = start_registry(work_p / "registry", quiet=not args.registry_log)
        try:
            host = reg.host
            pallet("copy", run_ref, f"docker://{host}/run:v1", env=env)
            versions = [f"v{k}" for k in range(2, args.rounds + 3)]
            for version in versions:  # patched run images: one a pass
                patch = work_p / f"patch-{version}" / "etc"
                patch.mkdir(parents=True)
                (patch / version).write_text(f"{version}\n")
                pallet("append", f"docker://{host}/run:v1", str(patch.parent), f"docker://{host}/run:{version}",
                       env=env)
            app = work_p / "app"
            app.mkdir()
            (app / "hello.conf").write_text("bench\n")
            pallet("build", str(app), "-t", f"docker://{host}/apps/app0:1", "--stack", TINY, "--run-image",
                   f"docker://{host}/run:v1", "--buildpack", HELLO, env=env)
            refs = [f"docker://{host}/apps/app{i}:1" for i in range(1, args.images + 1)]
            make_fleet(f"docker://{host}/apps/app0:1", refs)
            targets = work_p / "targets.txt"
            targets.write_text("\n".join(refs) + "\n")

            rounds = []
            for i, version in enumerate(versions[:-1]):
                load = os.getloadavg()[0]
                cpu0, reg0, self0 = _children_cpu(), _process_cpu(reg.process.pid), time.process_time()
                start = time.perf_counter()
                rebase(targets, f"docker://{host}/run:{version}", args.jobs, env, args.profile if i == 0 else None)
                elapsed = time.perf_counter() - start
                rounds.append((version, elapsed, load, os.getloadavg()[0], _children_cpu() - cpu0,
                               _process_cpu(reg.process.pid) - reg0, time.process_time() - self0))

            sample = min(args.sample, args.images)
            reg_host, reg_port = host.split(":")
            proxy = CountingProxy(reg_host, int(reg_port))
            counted = work_p / "sample.txt"
            counted.write_text("".join(r.replace(host, proxy.host, 1) + "\n" for r in refs[:sample]))
            rebase(counted, f"docker://{proxy.host}/run:{versions[-1]}", args.jobs, env)
            sent, methods = proxy.sent, dict(proxy.requests)
            proxy.close()

            rebuild_each = None
            if args.rebuilds:
                start = time.perf_counter()
                for i in range(args.rebuilds):
                    (app / "hello.conf").write_text(f"bench {i}\n")
                    pallet("build", str(app), "-t", f"docker://{host}/rebuilt/app{i}:1", "--stack", TINY,
                           "--run-image", f"docker://{host}/run:v2", "--buildpack", HELLO, env=env)
                rebuild_each = (time.perf_counter() - start) / args.rebuilds
        finally:
            reg.stop()
    n = args.images
    print(f"registry: docker-registry, {'defaults: info and access log' if args.registry_log else 'quiet (errors only, no access log), blob descriptors cached, GOGC=1000'}")
    for version, elapsed, load, load_after, pallet_cpu, registry_cpu, bench_cpu in rounds:
        print(f"rebase of {n} images onto {version}, --jobs {args.jobs}: {elapsed:.2f} s, {n / elapsed:.0f} images/s "
              f"(target >= 100); load average {load:.2f} before, {load_after:.2f} after, on {os.cpu_count()} cores")
        print(f"  CPU per image: pallet {1000 * pallet_cpu / n:.2f} ms, registry {1000 * registry_cpu / n:.2f} ms, "
              f"sum {1000 * (pallet_cpu + registry_cpu) / n:.2f} ms -> at most "
              f"{(os.cpu_count() or 1) * n / (pallet_cpu + registry_cpu):.0f} images/s on idle cores "
              f"(this benchmark's own process: {1000 * bench_cpu / n:.2f} ms)")
    elapsed = sorted(r[1] for r in rounds)[len(rounds) // 2]  # the median round, for the ratio below
    total = sum(methods.values())
    print(f"  counted pass ({sample} images onto {versions[-1]}, through a counting proxy): requests per image "
          f"{total / sample:.2f}: " + ", ".join(f"{m} {c / sample:.2f}" for m, c in sorted(methods.items()))
          + f"; sent {sent / sample / 1024:.1f} KB per image, HTTP headers included (target < 20 KB)")
    if rebuild_each is not None:
        print(f"  rebuild: {rebuild_each:.2f} s per image -> {rebuild_each * n:.0f} s for {n}; "
              f"ratio rebase/rebuild {elapsed / (rebuild_each * n):.3f} (the median round)")


if __name__ == "__main__":
    main()
