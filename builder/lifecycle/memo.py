"""The whole-build memo: the same inputs as the last build give its image without running a
phase.

pallet builds are reproducible, so a build whose inputs all equal the last build's — every
file of the source (path, exec bit, content), the buildpacks' files, the build and run images
by digest, the run image name, the build env, ``SOURCE_DATE_EPOCH``, pallet's own code — would
produce the same digest again. When that image is still in the destination, the tag is pointed
at it and the build is done. (BuildKit does the same with its cache keys; unlike BuildKit's, the
answer here is provably the image a full build would make.)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from pathlib import Path
from typing import Any

import builder
from builder import treewalk
from builder.lifecycle import sparse

_PALLET_CODE = Path(builder.__file__).resolve().parent


#: Content digests of buildpack files by (path, size, mtime, inode), for this process (a build
#: server's builds, or one build's several keys): buildpacks carry megabytes of prebuilt binaries.
_FILE_DIGESTS: dict[tuple[str, int, int, int], str] = {}


def _tree(h: "hashlib._Hash", root: Path, *, content: bool, skip: tuple[str, ...] = (),
          skip_below: bool = False, stat_cached: bool = False, exclude: frozenset[str] = frozenset()) -> None:
    """Feed ``h`` every file under ``root``: its content's digest, or (``content=False``) its
    size and mtime. ``skip``: directory names left out at the top (``skip_below``: everywhere).
    ``stat_cached``: a file whose stat is unchanged keeps the digest this process computed.
    ``exclude``: paths (relative, ``/``-separated) left out, files or whole directories."""
    for dirpath, dirs, files in treewalk.walk(root):  # deeper than an image may hold: LayerError
        rel_dir = os.path.relpath(dirpath, root)
        if rel_dir == "." or skip_below:
            dirs[:] = sorted(d for d in dirs if d not in skip)
        else:
            dirs.sort()
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        if exclude:
            dirs[:] = [d for d in dirs if prefix + d not in exclude]
        for name in sorted(files) + sorted(d for d in dirs if os.path.islink(os.path.join(dirpath, d))):
            if exclude and prefix + name in exclude:
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if os.path.islink(path):
                h.update(f"L{rel}\0{os.readlink(path)}\n".encode("utf-8", "surrogateescape"))
            elif content and not stat.S_ISREG(st.st_mode):
                # never opened: a FIFO blocks forever, a device like /dev/zero never ends; they
                # are not source, and the copy of the source skips them too (project.copy_source)
                continue
            elif content:
                stamp = (path, st.st_size, st.st_mtime_ns, st.st_ino)
                digest = _FILE_DIGESTS.get(stamp) if stat_cached else None
                if digest is None and sparse.is_sparse(path, st):
                    # not read (terabytes of holes): known by its stat; the source copy refuses
                    # it unless project.toml excludes it
                    digest = f"sparse {st.st_size} {st.st_blocks} {st.st_mtime_ns} {st.st_ino}"
                elif digest is None:
                    with open(path, "rb") as f:
                        digest = hashlib.file_digest(f, "sha256").hexdigest()
                    if stat_cached:
                        if len(_FILE_DIGESTS) > 20_000:
                            _FILE_DIGESTS.clear()
                        _FILE_DIGESTS[stamp] = digest
                h.update(f"F{rel}\0{st.st_mode & 0o111:o}\0{digest}\n".encode("utf-8", "surrogateescape"))
            else:
                h.update(f"F{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode("utf-8", "surrogateescape"))


def tree_digest(root: Path) -> str:
    """Every file under ``root`` by content (per-file digests kept by stat, as for buildpacks)."""
    h = hashlib.sha256()
    _tree(h, root, content=True, stat_cached=True)
    return h.hexdigest()


def base_key(*, buildpack_dirs: list[Path], build_image: str, run_image: str, run_name: str,
             env: dict[str, str], requested: list[str]) -> str:
    """The key of every input but the source: images, env, buildpacks, pallet's own code."""
    h = hashlib.sha256()
    h.update(json.dumps({"build": build_image, "run": run_image, "runName": run_name, "env": env,
                         "requested": requested, "epoch": os.environ.get("SOURCE_DATE_EPOCH", "")},
                        sort_keys=True).encode())
    for d in buildpack_dirs:
        h.update(f"\0buildpacks {d}\n".encode())
        _tree(h, d, content=True, stat_cached=True)
    h.update(b"\0pallet\n" + code_stamp().encode())
    return h.hexdigest()


def code_stamp(root: str | Path = _PALLET_CODE) -> str:
    """pallet's own code as it is now, by stat (size, mtime) of every file: cheap enough for
    every build, and it changes when the code does (the memo, and a stale build server)."""
    h = hashlib.sha256()
    _tree(h, Path(root), content=False, skip=("__pycache__",), skip_below=True)
    return h.hexdigest()


def key(base: str, source: Path) -> str:
    """The key of the whole build: ``base_key`` and every file of the source the build copies
    (what git ignores is no input: a developer's local runs may change it at will)."""
    from builder.lifecycle import gitignored

    h = hashlib.sha256(f"{base}\n".encode())
    _tree(h, source, content=True, skip=(".git",), exclude=frozenset(gitignored.ignored(source)))
    return h.hexdigest()


def load(path: Path) -> dict[str, Any] | None:
    """The last build's record (whatever its key), or None."""
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("key"), str):
            return data
    return None


def save(path: Path, build_key: str, result: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"key": build_key, **result}, sort_keys=True))
    os.replace(tmp, path)
