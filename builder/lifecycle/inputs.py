"""Skipping a buildpack whose inputs did not change: pallet's answer to Docker's layer cache.

The CNB lifecycle always re-runs every ``bin/build``; buildpacks then decide for themselves
whether to reuse a layer, which still costs a process start, a dependency manager's resolve
step and, often, seconds. A built-in buildpack here may declare its inputs instead:

    [metadata.pallet]
    inputs = ["requirements.txt", "Procfile"]      # globs, relative to the app: whole files
    input-names = ["manage.py"]                     # only whether such files exist
    detect-inputs = ["go.mod"]                      # what bin/detect reads (default: inputs)
    [metadata.pallet.input-lines]                   # only the lines a regex matches
    "app.py" = '^(app|application)\\s*(:[^=\\n]*)?='
    input-skip-dirs = ["node_modules"]              # directories no glob looks into

The key below covers those files (path, exec bit, and the sha256 of the whole file or of the
matching lines), the buildpack's own files, the build image, the target, the build plan entries
it receives and the environment it sees. When the key matches the last build's and the
buildpack's layers came back from the cache, its last outputs (layer metadata, launch.toml,
build.toml) are put back and ``bin/build`` is not run. A buildpack without declared inputs is
always run, as the spec says.

Line filters exist because an app's entry file is both the app's code (which changes all the
time) and where a buildpack looks for what to start (which almost never changes): a buildpack
that only reads ``app = Flask(...)`` from ``app.py`` need not run again when a route changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from builder.lifecycle.buildpack import Buildpack


@dataclass(frozen=True)
class Inputs:
    """What of the app a buildpack's build (or detect) depends on."""

    files: tuple[str, ...] = ()                       # globs: whole files (a directory: all below)
    names: tuple[str, ...] = ()                       # globs: existence only
    lines: tuple[tuple[str, str], ...] = ()           # (glob, regex): the lines the regex matches
    skip_dirs: tuple[str, ...] = ()                   # directory names no glob looks into

    def patterns(self) -> list[str]:
        return [*self.files, *self.names, *(glob for glob, _ in self.lines)]


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return tuple(value)
    return None


def declared(bp: Buildpack, *, detect: bool = False) -> Inputs | None:
    """The buildpack's declared inputs (for ``detect``: what bin/detect reads), or None."""
    meta = (bp.metadata or {}).get("pallet") or {}
    files = _strings(meta.get("inputs"))
    if files is None:
        return None
    if detect and "detect-inputs" in meta:
        files = _strings(meta.get("detect-inputs"))
        if files is None:
            return None
    names = _strings(meta.get("input-names", [])) or ()
    raw_lines = meta.get("input-lines") or {}
    if not isinstance(raw_lines, dict) or not all(isinstance(v, str) for v in raw_lines.values()):
        return None
    skip = _strings(meta.get("input-skip-dirs", [])) or ()
    return Inputs(files=files, names=names, lines=tuple(sorted(raw_lines.items())), skip_dirs=skip)


def _walk_matches(app_dir: Path, pattern: str, skip: tuple[str, ...]) -> list[Path]:
    """``app_dir.glob(pattern)`` without descending into directories named in ``skip`` (a
    developer's node_modules may hold a hundred thousand files no buildpack declares it reads).
    ``**/`` matches any depth, the top included; ``*`` does not cross ``/``."""
    rx = re.compile(_glob_regex(pattern))
    found = []
    for root, dirs, files in os.walk(app_dir):
        dirs[:] = [d for d in dirs if d not in skip]
        rel_root = os.path.relpath(root, app_dir)
        for name in dirs + files:
            rel = name if rel_root == "." else f"{rel_root}/{name}"
            if rx.fullmatch(rel):
                found.append(Path(root) / name)
    return found


def _glob_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def _matches(app_dir: Path, pattern: str, *, expand_dirs: bool, skip: tuple[str, ...] = ()) -> set[Path]:
    found: set[Path] = set()
    for path in (_walk_matches(app_dir, pattern, skip) if skip else app_dir.glob(pattern)):
        if path.is_symlink():
            continue
        if path.is_file():
            found.add(path)
        elif expand_dirs and path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()
                         and not (skip and any(part in skip for part in p.relative_to(app_dir).parts)))
    return found


def matching_lines(text: str, rx: re.Pattern[str]) -> list[str]:
    """Each whole line (or run of lines) a match of ``rx`` touches, in order."""
    out = []
    for m in rx.finditer(text):
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.end())
        out.append(text[start:] if end < 0 else text[start:end])
    return out


#: The largest file whose matching lines alone make the key (read whole, as text): a bigger one
#: (an app.py of gigabytes, read into memory twice over) counts whole, streamed through the hash.
MAX_FILTERED = 16 << 20


def digest_app(h: "hashlib._Hash", app_dir: Path, inputs: Inputs) -> None:
    """Feed ``h`` what of ``app_dir`` the inputs cover, in a canonical order."""
    skip = inputs.skip_dirs
    whole = (set().union(*(_matches(app_dir, p, expand_dirs=True, skip=skip) for p in inputs.files))
             if inputs.files else set())
    names = (set().union(*(_matches(app_dir, p, expand_dirs=False, skip=skip) for p in inputs.names))
             if inputs.names else set())
    filtered: dict[Path, list[str]] = {}
    for glob, source in inputs.lines:
        for path in _matches(app_dir, glob, expand_dirs=False, skip=skip):
            filtered.setdefault(path, []).append(source)
    for path in sorted(whole | names | set(filtered)):
        rel = path.relative_to(app_dir).as_posix()
        x = int(os.access(path, os.X_OK))
        if path in whole or (path in filtered and path.stat().st_size > MAX_FILTERED):
            with open(path, "rb") as f:   # streamed: an app's file may be gigabytes
                digest = hashlib.file_digest(f, "sha256").hexdigest()
            h.update(f"F{rel}\0{x}\0{digest}\n".encode("utf-8", "surrogateescape"))
            continue
        h.update(f"N{rel}\0{x}\n".encode("utf-8", "surrogateescape"))
        if path in filtered:
            text = path.read_bytes().decode("utf-8", "surrogateescape")
            for source in filtered[path]:
                lines = matching_lines(text, re.compile(source, re.M))  # re caches compiled patterns
                h.update(f"L{source}\0{json.dumps(lines)}\n".encode("utf-8", "surrogateescape"))


def inputs_key(bp: Buildpack, app_dir: Path, *, build_image: str, target: dict[str, str],
               plan: list[dict[str, Any]], env: dict[str, str]) -> str | None:
    inputs = declared(bp)
    if inputs is None:
        return None
    h = hashlib.sha256()
    h.update(json.dumps({"buildpack": [bp.id, bp.version, bp.digest()], "build_image": build_image,
                         "target": target, "plan": plan, "env": env,
                         "inputs": [inputs.files, inputs.names, inputs.lines, inputs.skip_dirs]},
                        sort_keys=True, default=str).encode())
    digest_app(h, app_dir, inputs)
    return h.hexdigest()
