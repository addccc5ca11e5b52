"""Buildpacks as the CNB Buildpack API describes them: ``buildpack.toml`` plus ``bin/detect``
and ``bin/build``. A buildpack written to the public spec, not to pallet, runs unmodified.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.errors import PalletError
from builder.lifecycle import tomlio
from builder.lifecycle.tomlio import TomlError, expect

#: Buildpack API versions whose contract pallet implements.
SUPPORTED_APIS = ("0.7", "0.8", "0.9", "0.10", "0.11", "0.12")
_ID_RE = re.compile(r"^[A-Za-z0-9./-]+$")
_RESERVED_IDS = {"app", "config", "generated", "sbom"}


class BuildpackError(PalletError):
    """A buildpack that is malformed or cannot be found."""


def check_runnable(bp: "Buildpack", program: str, sandbox: object) -> None:
    """``bin/<program>``'s ``#!`` interpreter or ELF loader is in the image the sandbox runs
    (``builder.lifecycle.programs``): a BuildpackError naming it, rather than bubblewrap's
    'execvp .../bin/detect: No such file or directory' about a file that is there (a Ruby
    buildpack on a build image without Ruby). Only where the image is a directory pallet sees
    (the bubblewrap sandbox; Docker says it in its own words)."""
    from builder.lifecycle.programs import missing_interpreter

    rootfs = getattr(sandbox, "rootfs", None)
    if rootfs is None:
        return
    missing = missing_interpreter(rootfs, bp.path / "bin" / program)
    if missing is not None:
        raise BuildpackError(f"buildpack {bp.id}: bin/{program} {missing} (the build image)")


@dataclass(frozen=True)
class Target:
    os: str | None = None
    arch: str | None = None
    variant: str | None = None
    distros: tuple[tuple[str | None, str | None], ...] = ()

    def matches(self, os_: str, arch: str, variant: str | None, distro: str | None, version: str | None) -> bool:
        if self.os and self.os != os_:
            return False
        if self.arch and self.arch != arch:
            return False
        if self.variant and variant and self.variant != variant:
            return False
        if not self.distros:
            return True
        return any((not n or n == distro) and (not v or v == version) for n, v in self.distros)


@dataclass(frozen=True)
class GroupRef:
    """A reference to a buildpack inside an order group."""

    id: str
    version: str | None = None
    optional: bool = False


@dataclass(frozen=True)
class Buildpack:
    api: str
    id: str
    version: str
    path: Path
    name: str = ""
    clear_env: bool = False
    targets: tuple[Target, ...] = ()
    stacks: tuple[str, ...] = ()
    order: tuple[tuple[GroupRef, ...], ...] = ()  # a composite (meta) buildpack
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def is_composite(self) -> bool:
        return bool(self.order)

    @property
    def api_tuple(self) -> tuple[int, int]:
        major, _, minor = self.api.partition(".")
        return int(major), int(minor or 0)

    @property
    def layers_name(self) -> str:
        """The buildpack's directory under /layers: its id with ``/`` escaped, as the spec does."""
        return escape_id(self.id)

    def supports(self, os_: str, arch: str, variant: str | None, distro: str | None, version: str | None,
                 stack_id: str | None) -> bool:
        """Whether this buildpack declares it can build for the target (``[[targets]]`` or ``[[stacks]]``)."""
        if self.targets:
            return any(t.matches(os_, arch, variant, distro, version) for t in self.targets)
        if self.stacks:
            return "*" in self.stacks or (stack_id is not None and stack_id in self.stacks)
        return os_ == "linux"  # no targets: os = linux, any arch (bin/build exists)

    def digest(self) -> str:
        """sha256 over the buildpack's files (names, modes, contents): a change makes a new buildpack.
        The build memo's tree digest, whose per-file digests are kept per process by stat: a build
        asks several times, and a buildpack may carry megabytes of prebuilt binaries."""
        from builder.lifecycle.memo import tree_digest

        return "sha256:" + tree_digest(self.path)


def escape_id(buildpack_id: str) -> str:
    return buildpack_id.replace("/", "_")


def load(path: Path) -> Buildpack:
    """Read a buildpack directory; BuildpackError (naming the file) if it is malformed."""
    path = Path(path)
    descriptor = path / "buildpack.toml"
    if not path.is_dir():
        raise BuildpackError(f"{path}: no such buildpack directory")
    data = tomlio.read(descriptor)
    where = str(descriptor)
    api = str(expect(data, "api", str, where))
    if api not in SUPPORTED_APIS:
        raise BuildpackError(f"{where}: Buildpack API {api} is not supported (pallet supports "
                             f"{', '.join(SUPPORTED_APIS)})")
    info = expect(data, "buildpack", dict, where)
    bp_where = f"{where} [buildpack]"
    bp_id = expect(info, "id", str, bp_where)
    if not _ID_RE.match(bp_id) or bp_id.lower() in _RESERVED_IDS:
        raise BuildpackError(f"{bp_where}: invalid id {bp_id!r} (letters, digits, '.', '/', '-'; "
                             "not app/config/generated/sbom)")
    if any(part in ("", ".", "..") for part in bp_id.split("/")):
        # the id names directories (/layers/<id>, the plan's): '..' would be the build's work directory,
        # which the plan's set-up empties and the sandbox binds writable
        raise BuildpackError(f"{bp_where}: invalid id {bp_id!r}: no part of it between '/' may be "
                             "empty, '.' or '..'")
    version = expect(info, "version", str, bp_where)
    targets = []
    for i, t in enumerate(expect(data, "targets", list, where, required=False, default=[])):
        if not isinstance(t, dict):
            raise TomlError(f"{where}: targets[{i}] must be a table")
        distros = tuple((d.get("name"), d.get("version")) for d in t.get("distros") or [] if isinstance(d, dict))
        targets.append(Target(os=t.get("os"), arch=t.get("arch"), variant=t.get("variant"), distros=distros))
    stacks = tuple(str(s.get("id")) for s in expect(data, "stacks", list, where, required=False, default=[])
                   if isinstance(s, dict))
    order = []
    for i, o in enumerate(expect(data, "order", list, where, required=False, default=[])):
        group = o.get("group") if isinstance(o, dict) else None
        if not isinstance(group, list):
            raise TomlError(f"{where}: order[{i}] needs a [[order.group]] list")
        order.append(tuple(_group_ref(g, f"{where} order[{i}]") for g in group))
    bp = Buildpack(api=api, id=bp_id, version=version, path=path.resolve(), name=str(info.get("name", "")),
                   clear_env=bool(info.get("clear-env", False)), targets=tuple(targets), stacks=stacks,
                   order=tuple(order), metadata=dict(data.get("metadata") or {}))
    if not bp.is_composite:
        for exe in ("detect", "build"):
            f = path / "bin" / exe
            if not f.is_file() or not os.access(f, os.X_OK):
                raise BuildpackError(f"buildpack {bp_id}: {f} is missing or not executable")
    return bp


def _group_ref(g: Any, where: str) -> GroupRef:
    if not isinstance(g, dict) or not isinstance(g.get("id"), str):
        raise TomlError(f"{where}: each group entry needs an 'id'")
    return GroupRef(id=g["id"], version=g.get("version"), optional=bool(g.get("optional", False)))


class Registry:
    """Buildpacks known by id: the built-in ones, plus any the user points at."""

    def __init__(self, buildpacks: list[Buildpack] | None = None) -> None:
        self._by_id: dict[str, list[Buildpack]] = {}
        for bp in buildpacks or []:
            self.add(bp)

    def add(self, bp: Buildpack) -> None:
        self._by_id.setdefault(bp.id, []).append(bp)

    def get(self, bp_id: str, version: str | None = None) -> Buildpack:
        found = self._by_id.get(bp_id) or []
        for bp in found:
            if version is None or bp.version == version:
                return bp
        have = ", ".join(sorted(self._by_id)) or "none"
        want = f"{bp_id}@{version}" if version else bp_id
        raise BuildpackError(f"unknown buildpack {want} (known: {have})")

    def __contains__(self, bp_id: str) -> bool:
        return bp_id in self._by_id

    @classmethod
    def from_dirs(cls, root: Path) -> "Registry":
        reg = cls()
        if root.is_dir():
            for sub in sorted(root.iterdir()):
                if (sub / "buildpack.toml").is_file():
                    reg.add(load(sub))
        return reg
