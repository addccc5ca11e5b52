"""Audit of a fleet against advisories: N app images in a local registry, M OSV records in a zip.

    python bench/bench_audit.py [--images 100] [--advisories 10000]

Everything is generated here: a run image whose dpkg database lists 300 packages (some built
from one source package, as Debian's are), N app images on it (each its own app layer with 20
Python packages and an npm lockfile; half of them with their SBOM attached, as ``build
--sign-key`` leaves them, half computed from their layers), and M OSV records over Debian:12,
PyPI and npm names (one in a hundred naming packages the images have, at versions that do and do not
affect them). Reports the time of ``pallet audit REF... --advisories ZIP --json`` (one process,
start-up included), images/s, and the findings found, checked against a count made here.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder.oci.copy import copy_image  # noqa: E402
from builder.oci.stores.registry import RegistryStore  # noqa: E402
from builder.supply import sbom  # noqa: E402
from tests.fixtures_registry import start_registry  # noqa: E402
from tests.supplykit import OS_RELEASE, Entry, push  # noqa: E402


def status(n: int) -> bytes:
    out = []
    for i in range(n):
        source = f"src{i // 3}"  # three binaries a source package
        out.append(f"Package: bin{i}\nStatus: install ok installed\nArchitecture: amd64\nSource: {source}\n"
                   f"Version: 1.{i % 7}-{i % 5}+deb12u1\n")
    return "\n".join(out).encode()


def app_layer(i: int) -> list[Entry]:
    entries = []
    for j in range(20):
        meta = f"Metadata-Version: 2.1\nName: py{j}\nVersion: {j % 4}.{i % 3}.0\n\n".encode()
        entries.append(Entry(f"layers/py/site-packages/py{j}-{j % 4}.{i % 3}.0.dist-info/METADATA", meta))
    lock = {"name": f"app{i}", "lockfileVersion": 3, "packages": {
        "": {"name": f"app{i}", "version": "1.0.0"},
        **{f"node_modules/js{j}": {"version": f"{j % 3}.{i % 2}.0"} for j in range(20)}}}
    entries.append(Entry("workspace/package-lock.json", json.dumps(lock).encode()))
    entries.append(Entry("workspace/app.txt", f"app {i}\n".encode()))
    return entries


def advisories(m: int, rng: random.Random) -> tuple[list[dict], int]:
    """Records, and how many (image-independent) of them hit the run image (for the check)."""
    records = []
    run_hits = 0
    for k in range(m):
        kind = k % 3
        real = k % 100 == 0
        if kind == 0:
            eco, name = "Debian:12", f"src{rng.randrange(100)}" if real else f"nosuch{k}"
            fixed = f"1.{rng.randrange(8)}-0"
        elif kind == 1:
            eco, name, fixed = "PyPI", f"py{rng.randrange(20)}" if real else f"nosuch{k}", f"{rng.randrange(4)}.1.0"
        else:
            eco, name, fixed = "npm", f"js{rng.randrange(20)}" if real else f"nosuch{k}", f"{rng.randrange(3)}.1.0"
        records.append({"schema_version": "1.6.0", "id": f"BENCH-{k}", "aliases": [f"CVE-2099-{k}"],
                        "modified": "2026-01-01T00:00:00Z",
                        "affected": [{"package": {"ecosystem": eco, "name": name},
                                      "ranges": [{"type": "ECOSYSTEM",
                                                  "events": [{"introduced": "0"}, {"fixed": fixed}]}]}]})
        run_hits += real and kind == 0
    return records, run_hits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--advisories", type=int, default=10000)
    args = ap.parse_args()
    rng = random.Random(14)
    with tempfile.TemporaryDirectory() as tmp:
        reg = start_registry(Path(tmp) / "registry")
        try:
            store = RegistryStore(reg.host, "fleet/run")
            run = push(store, [[Entry("usr/lib/os-release", OS_RELEASE), Entry("etc/os-release", link="../usr/lib/os-release"),
                                Entry("var/lib/dpkg/status", status(300))]], tag="v1")
            note = {"org.opencontainers.image.base.digest": run.digest,
                    "org.opencontainers.image.base.name": f"docker://{reg.host}/fleet/run:v1"}
            refs = []
            t0 = time.perf_counter()
            for i in range(args.images):
                apps = RegistryStore(reg.host, f"fleet/app{i}")
                copy_image(store, run.digest, apps, None)
                desc = push(apps, [app_layer(i)], tag="latest", base=run, annotations=note)
                if i % 2 == 0:
                    sbom.attach_sbom(apps, desc.digest)
                refs.append(f"docker://{reg.host}/fleet/app{i}:latest")
            made = time.perf_counter() - t0
            records, _ = advisories(args.advisories, rng)
            zpath = Path(tmp) / "all.zip"
            with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as z:
                for r in records:
                    z.writestr(f"{r['id']}.json", json.dumps(r))
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "builder", "audit", *refs, "--advisories", str(zpath),
                                   "--json"], capture_output=True, text=True, env=env)
            took = time.perf_counter() - t0
            if proc.returncode != 0:
                raise SystemExit(proc.stderr)
            report = json.loads(proc.stdout)
            from builder.supply import osv

            t0 = time.perf_counter()
            osv.load(zpath)
            load = time.perf_counter() - t0
        finally:
            reg.stop()
    findings = sum(len(e["findings"]) for e in report["images"])
    where = {}
    for e in report["images"]:
        for f in e["findings"]:
            where[f["location"]] = where.get(f["location"], 0) + 1
    print(f"made {args.images} images in {made:.1f} s; {args.advisories} advisories "
          f"({zpath.name}, {len(records)} records)")
    print(f"audit: {took:.2f} s for {args.images} images = {args.images / took:.1f} images/s; "
          f"{len(report['images'])} affected, {findings} findings {where}")
    print(f"  of which reading the {len(records)} records: {load:.2f} s (in-process, measured apart)")


if __name__ == "__main__":
    main()
