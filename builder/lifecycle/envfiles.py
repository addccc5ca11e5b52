"""Environment files (``<layer>/env``, ``env.build``, ``env.launch``) and layer path variables,
with the CNB modification rules. Reading is separate from applying, which is pure.

The launcher applies the same rules at run time in C (``launcher/launcher.c``); this module is
the build-time side, and the reference the launcher's tests compare against.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

OVERRIDE, DEFAULT, APPEND, PREPEND = "override", "default", "append", "prepend"
_SUFFIXES = {"": OVERRIDE, "override": OVERRIDE, "default": DEFAULT, "append": APPEND, "prepend": PREPEND}

#: Layer subdirectories that extend path variables at build time (spec: "Layer Paths").
BUILD_PATHS = (("bin", "PATH"), ("lib", "LD_LIBRARY_PATH"), ("lib", "LIBRARY_PATH"),
               ("include", "CPATH"), ("pkgconfig", "PKG_CONFIG_PATH"))
LAUNCH_PATHS = (("bin", "PATH"), ("lib", "LD_LIBRARY_PATH"))


@dataclass(frozen=True)
class EnvOp:
    name: str
    op: str
    value: str
    delim: str | None = None


def read_env_dir(path: Path) -> list[EnvOp]:
    """The operations an env directory asks for, in file-name order (delimiters resolved)."""
    if not path.is_dir():
        return []
    files = sorted(p for p in path.iterdir() if p.is_file())
    delims = {p.name[: -len(".delim")]: p.read_text() for p in files if p.name.endswith(".delim")}
    ops = []
    for p in files:
        name, _, suffix = p.name.partition(".")
        if suffix == "delim" or suffix not in _SUFFIXES or not name:
            continue
        ops.append(EnvOp(name, _SUFFIXES[suffix], p.read_text(), delims.get(name)))
    return ops


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
