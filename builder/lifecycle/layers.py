"""What a buildpack leaves in its layers directory: ``<layer>.toml``, ``launch.toml`` and
``build.toml``, parsed with errors that name the file and the buildpack.

The layers directory is written by buildpacks in their sandbox, where a symlink resolves inside
the sandbox; pallet reads it on the host, where the same symlink names a host path. So a
buildpack's directory, and every entry at its top (layer directories, their ``.toml`` and
``.sbom.*`` files, ``launch.toml``, ``build.toml``), must not be a symlink (``check_no_symlinks``):
a layer directory linked to ``/root`` was exported into the image, a ``<layer>.toml`` linked to a
host file became the image's metadata. Any buildpack may write any buildpack's directory (the
CNB layout shares ``/layers``), so the check runs after each buildpack and again after the last.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.errors import PalletError
from builder.lifecycle import tomlio
from builder.lifecycle.process import Process
from builder.lifecycle.tomlio import TomlError

class SymlinkInLayersError(PalletError):
    """A buildpack left a symlink where pallet reads its layers directory on the host."""


def check_no_symlinks(bp_layers: Path, buildpack_id: str) -> None:
    """SymlinkInLayersError if ``bp_layers`` or an entry at its top is a symlink (module docstring)."""
    paths = [bp_layers]
    if not bp_layers.is_symlink() and bp_layers.is_dir():
        paths += [Path(entry.path) for entry in os.scandir(bp_layers)]
    for path in paths:
        if path.is_symlink():
            raise SymlinkInLayersError(
                f"buildpack {buildpack_id}: {path} is a symlink (to {os.readlink(path)!r}); pallet reads the "
                "layers directory on the host, where it would name a host path: a buildpack's directory, its "
                "layers and their .toml files must be real files and directories")


_PROCESS_TYPE_RE = re.compile(r"^[A-Za-z0-9._-]{1,255}$")   # a file name: /cnb/process/TYPE
RESERVED_LAYER_NAMES = {"build", "launch", "store"}


@dataclass(frozen=True)
class LayerTypes:
    launch: bool = False
    build: bool = False
    cache: bool = False

    @property
    def ignored(self) -> bool:
        return not (self.launch or self.build or self.cache)


@dataclass
class Layer:
    buildpack_id: str
    name: str
    path: Path            # host directory (may not exist: reuse from the previous image)
    types: LayerTypes
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def has_content(self) -> bool:
        return self.path.is_dir()


@dataclass
class LaunchInfo:
    processes: list[Process] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    slices: list[list[str]] = field(default_factory=list)


def read_layer(toml_path: Path, buildpack_id: str) -> Layer:
    data = tomlio.read(toml_path, f"buildpack {buildpack_id}", follow_symlinks=False)
    where = f"buildpack {buildpack_id}: {toml_path}"
    types = data.get("types") or {}
    if not isinstance(types, dict):
        raise TomlError(f"{where}: [types] must be a table")
    for key in ("launch", "build", "cache"):
        if key in types and not isinstance(types[key], bool):
            raise TomlError(f"{where}: types.{key} must be true or false")
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise TomlError(f"{where}: [metadata] must be a table")
    name = toml_path.name[: -len(".toml")]
    return Layer(buildpack_id, name, toml_path.parent / name,
                 LayerTypes(bool(types.get("launch")), bool(types.get("build")), bool(types.get("cache"))),
                 metadata)


def read_layers(bp_layers: Path, buildpack_id: str) -> list[Layer]:
    """Every ``<layer>.toml`` (sorted by name), except launch/build/store.toml."""
    check_no_symlinks(bp_layers, buildpack_id)
    if not bp_layers.is_dir():
        return []
    layers = []
    for toml_path in sorted(bp_layers.glob("*.toml")):
        if toml_path.name[: -len(".toml")] in RESERVED_LAYER_NAMES:
            continue
        layers.append(read_layer(toml_path, buildpack_id))
    return layers


def read_launch(bp_layers: Path, buildpack_id: str) -> LaunchInfo:
    check_no_symlinks(bp_layers, buildpack_id)
    path = bp_layers / "launch.toml"
    data = tomlio.read_optional(path, f"buildpack {buildpack_id}", follow_symlinks=False)
    info = LaunchInfo()
    if data is None:
        return info
    where = f"buildpack {buildpack_id}: {path}"
    seen: set[str] = set()
    for i, p in enumerate(data.get("processes") or []):
        if not isinstance(p, dict):
            raise TomlError(f"{where}: processes[{i}] must be a table")
        ptype = p.get("type")
        if not isinstance(ptype, str) or not _PROCESS_TYPE_RE.match(ptype):
            raise TomlError(f"{where}: processes[{i}].type must be letters, digits, '.', '_' or '-', at most 255")
        if ptype in seen:
            raise TomlError(f"{where}: process type {ptype!r} is declared twice")
        seen.add(ptype)
        command = p.get("command")
        if isinstance(command, str):  # Buildpack API < 0.9: a string, args separate
            command = [command]
        if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
            raise TomlError(f"{where}: processes[{i}].command must be a non-empty array of strings")
        args = p.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise TomlError(f"{where}: processes[{i}].args must be an array of strings")
        wd = p.get("working-dir")
        if wd is not None and not isinstance(wd, str):
            raise TomlError(f"{where}: processes[{i}].working-dir must be a string")
        info.processes.append(Process(type=ptype, command=tuple(command), args=tuple(args),
                                      default=bool(p.get("default", False)), working_dir=wd,
                                      buildpack_id=buildpack_id))
    for i, label in enumerate(data.get("labels") or []):
        if not isinstance(label, dict) or not isinstance(label.get("key"), str) or not isinstance(
                label.get("value"), str):
            raise TomlError(f"{where}: labels[{i}] needs string 'key' and 'value'")
        info.labels[label["key"]] = label["value"]
    for i, s in enumerate(data.get("slices") or []):
        paths = s.get("paths") if isinstance(s, dict) else None
        if not isinstance(paths, list) or not all(isinstance(x, str) for x in paths):
            raise TomlError(f"{where}: slices[{i}].paths must be an array of strings")
        info.slices.append(list(paths))
    return info


def read_unmet(bp_layers: Path, buildpack_id: str) -> set[str]:
    check_no_symlinks(bp_layers, buildpack_id)
    data = tomlio.read_optional(bp_layers / "build.toml", f"buildpack {buildpack_id}", follow_symlinks=False) or {}
    unmet = set()
    for i, u in enumerate(data.get("unmet") or []):
        if not isinstance(u, dict) or not isinstance(u.get("name"), str):
            raise TomlError(f"buildpack {buildpack_id}: {bp_layers / 'build.toml'}: unmet[{i}] needs a 'name'")
        unmet.add(u["name"])
    return unmet


def merge_processes(per_buildpack: list[list[Process]]) -> tuple[list[Process], str | None]:
    """Later buildpacks override earlier ones' process types; the last ``default = true`` wins
    (and a later non-default definition of that type leaves no default), as the spec says. An
    image with one process and no default runs that one (a Procfile of only ``worker:``): there
    is nothing else it could be started for."""
    merged: dict[str, Process] = {}
    default: str | None = None
    for processes in per_buildpack:
        for proc in processes:
            merged[proc.type] = proc
            if proc.default:
                default = proc.type
            elif default == proc.type:
                default = None
    if default is None and len(merged) == 1:
        default = next(iter(merged))
    return [merged[t] for t in sorted(merged)], default
