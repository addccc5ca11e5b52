"""Environment files (``<layer>/env``, ``env.build``, ``env.launch``) and layer path variables,
with the CNB modification rules. Reading is separate from applying, which is pure.

The launcher applies the same rules at run time in C (``launcher/launcher.c``); this module is
the build-time side, and the reference the launcher's tests compare against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from builder.errors import InputFileError, PalletError
from builder.inputfile import read_input

OVERRIDE, DEFAULT, APPEND, PREPEND = "override", "default", "append", "prepend"
_SUFFIXES = {"": OVERRIDE, "override": OVERRIDE, "default": DEFAULT, "append": APPEND, "prepend": PREPEND}

#: Layer subdirectories that extend path variables at build time (spec: "Layer Paths").
BUILD_PATHS = (("bin", "PATH"), ("lib", "LD_LIBRARY_PATH"), ("lib", "LIBRARY_PATH"),
               ("include", "CPATH"), ("pkgconfig", "PKG_CONFIG_PATH"))
LAUNCH_PATHS = (("bin", "PATH"), ("lib", "LD_LIBRARY_PATH"))


def is_env_name(name: str) -> bool:
    """A variable name pallet will pass on: not empty, no '=' or NUL, and (as build env names are
    file names under ``<platform>/env``) no '/' and not '.' or '..'. Docker-like otherwise."""
    return bool(name) and not any(c in name for c in "=/\0") and name not in (".", "..")


@dataclass(frozen=True)
class EnvOp:
    name: str
    op: str
    value: str
    delim: str | None = None


def read_env_dir(path: Path) -> list[EnvOp]:
    """The operations an env directory asks for, in file-name order (delimiters resolved).

    A buildpack wrote it in its sandbox; we read it on the host: a symlink (the directory, or a
    file in it) would read a host file (``SECRET.override -> /etc/shadow`` put the host's file
    into the next buildpack's environment), a FIFO would block. Each is refused."""
    if path.is_symlink():
        raise EnvFileError(f"{path} is a symlink (to {os.readlink(path)!r}); an env directory a buildpack "
                           "writes must be a real directory: pallet reads it on the host")
    if not path.is_dir():
        return []
    entries = sorted(os.scandir(path), key=lambda e: e.name)
    files = []
    for entry in entries:
        if entry.is_symlink():
            raise EnvFileError(f"{entry.path} is a symlink (to {os.readlink(entry.path)!r}); an env file a "
                               "buildpack writes must be a regular file: pallet reads it on the host")
        if entry.is_file(follow_symlinks=False):
            files.append(Path(entry.path))
        elif not entry.is_dir(follow_symlinks=False):
            raise EnvFileError(f"{entry.path} is a FIFO, socket or device; an env file must be a regular file")
    delims = {p.name[: -len(".delim")]: _read(p) for p in files if p.name.endswith(".delim")}
    ops = []
    for p in files:
        name, _, suffix = p.name.partition(".")
        if suffix == "delim" or suffix not in _SUFFIXES or not name:
            continue
        ops.append(EnvOp(name, _SUFFIXES[suffix], _read(p), delims.get(name)))
    return ops


#: The most one env file may hold: a variable's value.
MAX_ENV_FILE = 1 << 20


def _read(path: Path) -> str:
    try:
        return read_input(path, "env file", MAX_ENV_FILE).decode("utf-8", "surrogateescape")
    except InputFileError as exc:
        raise EnvFileError(str(exc)) from None


class EnvFileError(PalletError):
    """An env directory or file a buildpack wrote that pallet will not read on the host."""


def apply(env: dict[str, str], ops: list[EnvOp]) -> dict[str, str]:
    out = dict(env)
    for op in ops:
        current = out.get(op.name, "")
        delim = op.delim or ""
        if op.op == OVERRIDE:
            out[op.name] = op.value
        elif op.op == DEFAULT:
            if not current:
                out[op.name] = op.value
        elif op.op == APPEND:
            out[op.name] = f"{current}{delim}{op.value}" if current else op.value
        elif op.op == PREPEND:
            out[op.name] = f"{op.value}{delim}{current}" if current else op.value
    return out


def prepend_paths(env: dict[str, str], var: str, paths: list[str]) -> dict[str, str]:
    if not paths:
        return env
    out = dict(env)
    joined = os.pathsep.join(paths)
    out[var] = f"{joined}{os.pathsep}{out[var]}" if out.get(var) else joined
    return out


def buildpack_build_env(env: dict[str, str], layers: list[tuple[Path, str]]) -> dict[str, str]:
    """Add one buildpack's build layers to ``env``: ``layers`` are (host dir, path in sandbox)
    for its ``build = true`` layers, alphabetically; paths first, then env/ and env.build/."""
    for sub, var in BUILD_PATHS:
        env = prepend_paths(env, var, [inside + "/" + sub for host, inside in layers if (host / sub).is_dir()])
    for host, _ in layers:
        env = apply(env, read_env_dir(host / "env") + read_env_dir(host / "env.build"))
    return env


def user_env_over(env: dict[str, str], user: dict[str, str]) -> dict[str, str]:
    """Platform (``--env``) values: prepended to path variables, overriding everything else.

    Detection and build both apply them so: ``--env PATH=/opt/tool/bin`` replacing PATH left
    bin/detect without bash (every group failed with exit 127)."""
    out = dict(env)
    path_vars = {var for _, var in BUILD_PATHS}
    for name, value in user.items():
        if name in path_vars and out.get(name):
            out[name] = f"{value}{os.pathsep}{out[name]}"
        else:
            out[name] = value
    return out
