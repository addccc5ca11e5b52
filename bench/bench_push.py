"""Push a ~200 MB image from an OCI layout to a fresh repository of a local registry:
pallet copy vs skopeo copy, in the same run, on the same layout and registry binary.

    python bench/bench_push.py [--runs 5] [--rootfs DIR]

Each run gets a fresh registry (empty storage) so neither tool benefits from blobs the other
already uploaded. Prints medians and the ratio pallet/skopeo (target <= 1.0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from builder.oci import mediatypes as mt  # noqa: E402
from builder.oci.layer import write_layer  # noqa: E402
from builder.oci.model import History, ImageConfig, Manifest  # noqa: E402
from builder.oci.stores.layout import LayoutStore  # noqa: E402
from tests.fixtures_registry import start_registry  # noqa: E402

CACHE = Path.home() / ".cache" / "pallet-bench"


def make_layout(rootfs: Path, layout: Path, compression: str) -> str:
    """An image of the rootfs in four layers (usr/lib, usr/share, usr/bin+sbin, the rest)."""
    store = LayoutStore(layout)
    if store.list_tags() == ["v1"]:
        return store.resolve("v1").digest
    groups = [["usr/lib"], ["usr/share"], ["usr/bin", "usr/sbin"]]
    taken = {p for g in groups for p in g}
    rest = [p.name for p in rootfs.iterdir() if p.name != "usr"] + \
           [f"usr/{p.name}" for p in (rootfs / "usr").iterdir() if f"usr/{p.name}" not in taken]
    groups.append(rest)
    layers, diff_ids, history = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, group in enumerate(groups):
            stage = Path(tmp) / f"g{i}"
            stage.mkdir()
            for rel in group:
                src = rootfs / rel
                dst = stage / rel
                dst.parent.mkdir(parents=True, exist_ok=True)
                if src.is_dir() and not src.is_symlink():
                    shutil.copytree(src, dst, symlinks=True, ignore=lambda d, names: [
                        n for n in names if not (Path(d) / n).is_symlink() and not (Path(d) / n).is_dir()
                        and not (Path(d) / n).is_file()])
                else:
                    os.symlink(os.readlink(src), dst) if src.is_symlink() else shutil.copy2(src, dst)
            result = write_layer(stage, Path(tmp) / f"layer{i}", compression=compression)
            with open(Path(tmp) / f"layer{i}", "rb") as f:
                store.put_blob(result.descriptor(), f)
            layers.append(result.descriptor())
            diff_ids.append(result.diff_id)
            history.append(History(created_by=f"bench layer {i}"))
    config = ImageConfig(diff_ids=tuple(diff_ids), history=tuple(history))
    cdesc = store.put_blob_bytes(config.to_bytes(), mt.OCI_CONFIG)
    manifest = Manifest(config=cdesc, layers=tuple(layers))
    return store.put_manifest(manifest.to_bytes(), mt.OCI_MANIFEST, tag="v1").digest


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rootfs", type=Path, default=CACHE / "rootfs")
    # gzip only: skopeo compresses uncompressed layers when pushing, so "none" would not compare like with like.
    parser.add_argument("--compression", default="gzip", choices=["gzip"])
    args = parser.parse_args()
    if not args.rootfs.is_dir():
        raise SystemExit(f"{args.rootfs}: no rootfs; run bench/bench_layer.py first (it builds one)")
    layout = CACHE / f"push-layout-{args.compression}"
    digest = make_layout(args.rootfs, layout, args.compression)
    size = sum(p.stat().st_size for p in (layout / "blobs" / "sha256").iterdir())
    pallet = [sys.executable, "-m", "builder"]
    times: dict[str, list[float]] = {"pallet": [], "skopeo": []}
    for run in range(args.runs):
        order = ["pallet", "skopeo"] if run % 2 == 0 else ["skopeo", "pallet"]
        for tool in order:
            with tempfile.TemporaryDirectory() as work:
                reg = start_registry(Path(work))
                try:
                    dst = f"docker://{reg.host}/bench/{tool}:v1"
                    if tool == "pallet":
                        times[tool].append(timed([*pallet, "copy", f"oci:{layout}:v1", dst]))
                    else:
                        times[tool].append(timed(["skopeo", "copy", "--dest-tls-verify=false",
                                                  f"oci:{layout}:v1", dst]))
                    pushed = json.loads(subprocess.run(
                        ["skopeo", "inspect", "--tls-verify=false", dst], capture_output=True, text=True,
                        check=True).stdout)["Digest"]
                    assert pushed == digest, f"{tool} pushed {pushed}, expected {digest}"
                finally:
                    reg.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"image: {size / 1e6:.0f} MB in {len(list((layout / 'blobs' / 'sha256').iterdir()))} blobs "
          f"({args.compression} layers), {args.runs} runs each")
    for tool, values in times.items():
        print(f"  {tool:7s} median {med[tool]:6.2f} s   runs: " + " ".join(f"{v:.2f}" for v in values))
    print(f"  ratio pallet/skopeo: {med['pallet'] / med['skopeo']:.2f}  (target <= 1.0)")


if __name__ == "__main__":
    main()
