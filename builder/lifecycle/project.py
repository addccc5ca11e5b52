"""The CNB project descriptor (``project.toml``) and copying an app's source for a build.

What is copied is what the image may contain: ``.git``, what git ignores (gitignored.py) and
virtualenvs never; ``[build] exclude`` or
``include`` (gitignore-style patterns, one or the other) decide the rest. Symlinks are copied
as symlinks and never followed, so a link pointing outside the source cannot pull host files in.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from builder import treewalk
from builder.errors import PalletError
from builder.lifecycle import sparse, tomlio
from builder.lifecycle.envfiles import is_env_name
from builder.lifecycle.tomlio import TomlError

ALWAYS_EXCLUDED = (".git",)


@dataclass(frozen=True)
class BuildpackRef:
    id: str | None = None
    version: str | None = None
    uri: str | None = None


@dataclass
class Project:
    exclude: list[str] = field(default_factory=list)
    include: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    buildpacks: list[BuildpackRef] = field(default_factory=list)


def read_project(src: Path) -> Project:
    from builder.inputfile import check_in_app

    path = src / "project.toml"
    check_in_app(src, path, "project.toml")
    data = tomlio.read_optional(path)
    if data is None:
        return Project()
    where = str(path)
    _check_schema_version(data, where)
    io = data.get("io") or {}
    if not isinstance(io, dict):
        raise TomlError(f"{where}: [io] must be a table")
    # Schema 0.1: [build] (exclude, include, [[build.env]], [[build.buildpacks]]). Schema 0.2:
    # [io.buildpacks] (exclude, include, [[io.buildpacks.group]], [[io.buildpacks.build.env]]);
    # its env and buildpacks are also taken where pallet once read them (io.buildpacks.env/.buildpacks).
    if isinstance(io.get("buildpacks"), dict):  # in a schema 0.1 file too: never skipped unsaid
        _refuse_pre_post(io["buildpacks"], where)
    v1 = "build" in data
    build = data.get("build") if v1 else io.get("buildpacks", {})
    prefix = "build" if v1 else "io.buildpacks"
    if not isinstance(build, dict):
        raise TomlError(f"{where}: [{prefix}] must be a table")
    exclude, include = build.get("exclude") or [], build.get("include") or []
    for key, value in (("exclude", exclude), ("include", include)):
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise TomlError(f"{where}: {prefix}.{key} must be an array of strings")
    if exclude and include:
        raise TomlError(f"{where}: {prefix}.exclude and {prefix}.include cannot both be set")
    env_key, bps_key = "env", "buildpacks"
    if not v1:
        inner = build.get("build")
        if inner is not None and not isinstance(inner, dict):
            raise TomlError(f"{where}: [io.buildpacks.build] must be a table")
        if inner and "env" in inner:
            build = {**build, "env": inner["env"]}
            env_key = "build.env"
        if "group" in build:
            build = {**build, "buildpacks": build["group"]}
            bps_key = "group"
    for key, shown in (("env", env_key), ("buildpacks", bps_key)):
        if not isinstance(build.get(key) or [], list):
            raise TomlError(f"{where}: {prefix}.{shown} must be an array of tables")
    env = {}
    for i, e in enumerate(build.get("env") or []):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str) or not isinstance(e.get("value"), str):
            raise TomlError(f"{where}: {prefix}.{env_key}[{i}] needs string 'name' and 'value'")
        if not is_env_name(e["name"]):
            raise TomlError(f"{where}: {prefix}.{env_key}[{i}].name {e['name']!r} is not a variable name "
                            "(empty, or with '=', '/' or a NUL byte)")
        env[e["name"]] = e["value"]
    bps = []
    for i, b in enumerate(build.get("buildpacks") or []):
        if not isinstance(b, dict) or not (b.get("id") or b.get("uri")):
            raise TomlError(f"{where}: {prefix}.{bps_key}[{i}] needs an 'id' or a 'uri'")
        if not all(isinstance(b.get(k), (str, type(None))) for k in ("id", "version", "uri")):
            raise TomlError(f"{where}: {prefix}.{bps_key}[{i}]: 'id', 'version' and 'uri' must be strings")
        bps.append(BuildpackRef(b.get("id"), b.get("version"), b.get("uri")))
    return Project(exclude=list(exclude), include=list(include), env=env, buildpacks=bps)


def _check_schema_version(data: dict, where: str) -> None:
    """``[_] schema-version`` says which descriptor schema the file is written in; a value of the
    wrong type means the file is not what its author thinks, so it is refused rather than skipped."""
    meta = data.get("_")
    if meta is None:
        return
    if not isinstance(meta, dict):
        raise TomlError(f"{where}: [_] must be a table")
    version = meta.get("schema-version")
    if version is not None and not isinstance(version, str):
        raise TomlError(f"{where}: _.schema-version must be a string (\"0.2\"), not {type(version).__name__}")


def _refuse_pre_post(build: dict, where: str) -> None:
    """Schema 0.2's ``[[io.buildpacks.pre.group]]``/``[[io.buildpacks.post.group]]`` add buildpacks
    around every group of the builder's order; pallet does not run them, and ignoring them would
    build an image without buildpacks the app asked for."""
    for key in ("pre", "post"):
        if key in build:
            raise TomlError(f"{where}: [[io.buildpacks.{key}.group]] is not supported by pallet; name every "
                            "buildpack in [[io.buildpacks.group]] instead, in the order they run")


def _matches(rel: str, is_dir: bool, pattern: str) -> bool:
    pattern = pattern.strip()
    if not pattern or pattern.startswith("#"):
        return False
    dir_only = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    if dir_only and not is_dir:
        return False
    if pattern.startswith("/"):
        return fnmatch.fnmatchcase(rel, pattern[1:])
    if "/" in pattern:
        return fnmatch.fnmatchcase(rel, pattern)
    return fnmatch.fnmatchcase(os.path.basename(rel), pattern)


def copy_source(src: Path, dst: Path, project: Project) -> list[str]:
    """Copy the app into ``dst`` (which must not exist, or be empty), applying project.toml's
    filters, and leaving out what git ignores (gitignored) and virtualenvs (a directory with a
    ``pyvenv.cfg``: its interpreter links point into the machine that made it). Returns what
    was left out for those two reasons, for the build to say."""
    if not src.is_dir():
        raise PalletError(f"{src}: source directory not found")
    from builder.lifecycle import gitignored

    git_ignored = set(gitignored.ignored(src))
    left_out: list[str] = []

    def excluded(rel: str, is_dir: bool) -> bool:
        if rel.split("/", 1)[0] in ALWAYS_EXCLUDED:
            return True
        if rel in git_ignored:
            left_out.append(rel + ("/" if is_dir else ""))
            return True
        if is_dir and os.path.isfile(os.path.join(src, rel, "pyvenv.cfg")):
            left_out.append(rel + "/")
            return True
        if project.exclude:
            return any(_matches(rel, is_dir, p) for p in project.exclude)
        if project.include and not is_dir:
            return not any(_matches(rel, is_dir, p) or _matches_parent(rel, p) for p in project.include)
        return False

    dst.mkdir(parents=True, exist_ok=True)
    for root, dirs, files in treewalk.walk(src):  # deeper than an image may hold: LayerError
        rel_root = os.path.relpath(root, src)
        rel_root = "" if rel_root == "." else rel_root
        keep = []
        for d in sorted(dirs):
            rel = f"{rel_root}/{d}" if rel_root else d
            full = os.path.join(root, d)
            if os.path.islink(full):
                files.append(d)  # a symlink to a directory: copied as a link, not followed
                continue
            if not excluded(rel, True):
                keep.append(d)
                os.makedirs(dst / rel, exist_ok=True)
                shutil.copystat(full, dst / rel, follow_symlinks=False)
        dirs[:] = keep
        for f in sorted(files):
            rel = f"{rel_root}/{f}" if rel_root else f
            full = os.path.join(root, f)
            if excluded(rel, False):
                continue
            if os.path.islink(full):
                os.symlink(os.readlink(full), dst / rel)
            elif os.path.isfile(full):
                sparse.check(full, os.stat(full), rel)  # its holes would be written out as zeros
                shutil.copy2(full, dst / rel)
            # sockets, FIFOs and devices in a source tree are skipped: they are not source
    return sorted(left_out)


def _matches_parent(rel: str, pattern: str) -> bool:
    parts = rel.split("/")
    return any(_matches("/".join(parts[:i]), True, pattern) for i in range(1, len(parts)))
