"""Skipping a buildpack whose inputs did not change: pallet's answer to Docker's layer cache.

The CNB lifecycle always re-runs every ``bin/build``; buildpacks then decide for themselves
whether to reuse a layer, which still costs a process start, a dependency manager's resolve
step and, often, seconds. A built-in buildpack here may declare its inputs instead:

    [metadata.pallet]
    inputs = ["requirements.txt", "Procfile"]   # globs, relative to the app

The key below covers those files' contents (path, exec bit, sha256), the buildpack's own files,
the build image, the target, the build plan entries it receives and the environment it sees.
When the key matches the last build's and the buildpack's layers came back from the cache, its
last outputs (layer metadata, launch.toml, build.toml) are put back and ``bin/build`` is not
run. A buildpack without declared inputs is always run, as the spec says.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from builder.lifecycle.buildpack import Buildpack


def declared_inputs(bp: Buildpack) -> list[str] | None:
    pallet_md = (bp.metadata or {}).get("pallet") or {}
    inputs = pallet_md.get("inputs")
    if isinstance(inputs, list) and all(isinstance(x, str) for x in inputs):
        return inputs
    return None


def _files(app_dir: Path, patterns: list[str]) -> list[Path]:
    found: set[Path] = set()
    for pattern in patterns:
        for path in app_dir.glob(pattern):
            if path.is_file() and not path.is_symlink():
                found.add(path)
            elif path.is_dir() and not path.is_symlink():
                found.update(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return sorted(found)


def inputs_key(bp: Buildpack, app_dir: Path, *, build_image: str, target: dict[str, str],
               plan: list[dict[str, Any]], env: dict[str, str]) -> str | None:
    patterns = declared_inputs(bp)
    if patterns is None:
        return None
    h = hashlib.sha256()
    h.update(json.dumps({"buildpack": [bp.id, bp.version, bp.digest()], "build_image": build_image,
                         "target": target, "plan": plan, "env": env, "patterns": patterns},
                        sort_keys=True, default=str).encode())
    for path in _files(app_dir, patterns):
        rel = path.relative_to(app_dir).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        h.update(f"{rel}\0{int(os.access(path, os.X_OK))}\0{digest}\n".encode())
    return h.hexdigest()
