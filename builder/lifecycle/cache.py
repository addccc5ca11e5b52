"""The build cache: ``cache = true`` layers (and their metadata) kept between builds of one
image, restored before the build so buildpacks can skip work.

Layers move by rename (the cache and the work directory share a file system), so restoring a
large dependency layer costs nothing and keeps its inodes and mtimes, which lets the exporter
reuse its compressed blob without tarring it again (``layercache``).

With each buildpack's layers the cache keeps a ``Record`` of its last outputs (layer metadata
with types, launch.toml, build.toml) and the key of its declared inputs, so an unchanged
buildpack need not run at all (``inputs``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from builder import treewalk
from builder.lifecycle import tomlio
from builder.lifecycle.buildpack import Buildpack

if TYPE_CHECKING:
    from builder.lifecycle.build import BuildResult

RECORD = "pallet-record.json"


def plain_name(name: object) -> bool:
    """A name for one entry of a directory: a string with no '/', NUL, and not '', '.' or '..'.
    Records name files pallet writes (and workspace entries it removes) on the host; a cache
    restored from a registry (``--cache-image``) is anyone's who can push there."""
    return isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\0" not in name


def _record(data: object) -> "Record":
    """A Record from its JSON; ValueError if any name in it is not ``plain_name`` (the record is
    then dropped, as a damaged one is)."""
    if not isinstance(data, dict):
        raise ValueError("not an object")
    files, layers, workspace = dict(data["files"]), list(data["layers"]), dict(data.get("workspace") or {})
    if not all(plain_name(n) and isinstance(t, str) for n, t in files.items()) \
            or not all(plain_name(n) for n in layers) \
            or not all(plain_name(n) and (t is None or isinstance(t, str)) for n, t in workspace.items()):
        raise ValueError("a record names something that is not a plain file name")
    return Record(key=str(data["key"]), files=files, layers=layers, workspace=workspace)


@dataclass
class Record:
    """A buildpack's outputs at the end of the last build."""

    key: str
    files: dict[str, str] = field(default_factory=dict)   # launch.toml, build.toml, <layer>.toml
    layers: list[str] = field(default_factory=list)       # layers whose content must be present
    #: Top-level /workspace symlinks bin/build made (name -> target) and entries it removed (None).
    workspace: dict[str, str | None] = field(default_factory=dict)

    def reinstate(self, bp_layers: Path) -> bool:
        """Put the recorded outputs back, if every layer they name was restored; else False."""
        if not all(plain_name(name) for name in [*self.layers, *self.files, *self.workspace]):
            return False  # not from a record ``_record`` read: refuse to write outside bp_layers
        if not all((bp_layers / name).is_dir() for name in self.layers):
            return False
        bp_layers.mkdir(parents=True, exist_ok=True)
        for name, text in self.files.items():
            (bp_layers / name).write_text(text)
        return True

    def reinstate_workspace(self, app_dir: Path) -> dict[str, str | None]:
        """Make bin/build's recorded changes to the top of /workspace again."""
        for name, target in self.workspace.items():
            path = app_dir / name
            if path.is_symlink() or path.is_file():
                path.unlink()
            elif path.is_dir():
                treewalk.rmtree(path)
            if target is not None:
                os.symlink(target, path)
        return dict(self.workspace)


class BuildCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def restore(self, group: list[Buildpack], layers_dir: Path) -> dict[str, Record]:
        """Move cached layers of the group's buildpacks into place (metadata without [types],
        as the spec says) and return the records of their last outputs."""
        records: dict[str, Record] = {}
        for bp in group:
            src = self.root / bp.layers_name
            if src.is_symlink() or not src.is_dir():
                continue  # a link (a restored --cache-image can hold one): its target is a host directory
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError, RecursionError):
                records[bp.id] = _record(json.loads((src / RECORD).read_text()))
            dst = layers_dir / bp.layers_name
            dst.mkdir(parents=True, exist_ok=True)
            for toml_path in sorted(src.glob("*.toml")):
                name = toml_path.name[: -len(".toml")]
                content = src / name
                if toml_path.is_symlink() or content.is_symlink():
                    continue  # a link in a cache: it would be read (or moved into /layers) as a host path
                if name == "store":
                    shutil.copy2(toml_path, dst / toml_path.name)
                    continue
                if not content.is_dir():
                    continue
                try:
                    data = tomlio.read(toml_path, follow_symlinks=False)
                except tomlio.TomlError:
                    continue  # a damaged cache entry is dropped, not fatal
                data.pop("types", None)
                tomlio.write(dst / toml_path.name, data)
                os.rename(content, dst / name)
            treewalk.rmtree_quiet(src)
        return records

    def save(self, result: "BuildResult", layers_dir: Path) -> None:
        """Keep this build's ``cache = true`` layers and each buildpack's record."""
        for output in result.outputs:
            bp = output.buildpack
            bp_layers = layers_dir / bp.layers_name
            dst = self.root / bp.layers_name
            treewalk.rmtree_quiet(dst)
            cached = [layer for layer in output.layers if layer.types.cache and layer.path.is_dir()]
            store = bp_layers / "store.toml"
            if not cached and not store.is_file() and output.inputs_key is None:
                continue
            dst.mkdir(parents=True, exist_ok=True)
            files: dict[str, str] = {}
            for name in ("launch.toml", "build.toml"):
                if (bp_layers / name).is_file():
                    files[name] = (bp_layers / name).read_text()
            for layer in output.layers:
                toml_path = bp_layers / f"{layer.name}.toml"
                if toml_path.is_file() and not layer.types.ignored:
                    files[toml_path.name] = toml_path.read_text()
            for layer in cached:
                shutil.copy2(bp_layers / f"{layer.name}.toml", dst / f"{layer.name}.toml")
                os.rename(layer.path, dst / layer.name)
            if store.is_file():
                shutil.copy2(store, dst / "store.toml")
            uncached = [x for x in output.layers if not x.types.ignored and not x.types.cache]
            if output.inputs_key is not None and not uncached:
                # Only a buildpack whose every layer is cached can be skipped next time.
                record = {"key": output.inputs_key, "files": files, "layers": [x.name for x in cached],
                          "workspace": output.workspace}
                tmp = dst / f".{RECORD}.tmp"
                tmp.write_text(json.dumps(record, sort_keys=True))
                os.replace(tmp, dst / RECORD)

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            treewalk.rmtree(self.root)
