"""Start-up of one sandboxed build step: what the build race pays per ``bin/detect``/``bin/build``.

    python bench/bench_step.py [--steps 80] [--rounds 3]

A build-like step (``true`` as uid 1000 over a busybox rootfs, the host's network, a writable
bind at /workspace, the host CA bundle) run again and again through ``BwrapSandbox.run``;
median and 10th percentile wall time per round, and the CPU time (ours and bubblewrap's, user +
system) per step, which a busy machine disturbs less than wall time. Compare two checkouts by
running it from each (``PYTHONPATH=CHECKOUT``) in alternation.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from builder.lifecycle.sandbox import Bind, BwrapSandbox, Step


def busybox_rootfs(root: Path) -> Path:
    (root / "usr" / "bin").mkdir(parents=True)
    shutil.copy("/bin/busybox", root / "usr" / "bin" / "busybox")
    for applet in ("sh", "true"):
        os.symlink("busybox", root / "usr" / "bin" / applet)
    os.symlink("usr/bin", root / "bin")
    for name in ("tmp", "etc", "workspace"):
        (root / name).mkdir()
    return root


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rootfs = busybox_rootfs(Path(tmp) / "rootfs")
        workspace = Path(tmp) / "workspace"
        workspace.mkdir()
        box = BwrapSandbox(rootfs)
        step = Step(argv=("true",), env={"PATH": "/bin", "CNB_LAYERS_DIR": "/layers/x"}, cwd="/workspace",
                    uid=1000, gid=1000, binds=(Bind(workspace, "/workspace", writable=True),))
        box.run(step, lambda line: None)  # the preflight and the page cache, once
        for _ in range(args.rounds):
            times = []
            cpu_before = _cpu()
            for _ in range(args.steps):
                started = time.perf_counter()
                box.run(step, lambda line: None)
                times.append(time.perf_counter() - started)
            cpu = (_cpu() - cpu_before) / args.steps
            times.sort()
            print(f"median {statistics.median(times) * 1000:.2f} ms  p10 {times[len(times) // 10] * 1000:.2f} ms"
                  f"  cpu {cpu * 1000:.2f} ms/step  ({args.steps} steps)")


if __name__ == "__main__":
    main()
