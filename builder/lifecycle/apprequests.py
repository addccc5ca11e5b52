"""What runtime versions an app asks for, read from its files: the I/O half of the stack choice
(``stackchoice.choose_stack`` is the pure half).

Each reader reads the files the language's buildpack reads, with the same precedence, and
returns ``Request``s. A value the reader cannot make sense of asks for nothing here: the
buildpack that builds the app reads the same file and says exactly what is wrong with it (a
package.json that is not JSON, an ``engines.node`` that is not a range, a go directive that is
not a Go version), so an unreadable file never becomes a traceback or a second, different error.
All of them are read through ``_text``, on the host: a file linked out of the app is refused.

- Python: ``.python-version``, ``runtime.txt``, ``[project] requires-python`` (PEP 621: pip,
  uv, PDM, Poetry 2), ``[tool.poetry.dependencies] python`` (Poetry's own constraint syntax).
- Node.js: ``engines.node`` of package.json, else ``.nvmrc``, else ``.node-version``, as
  ``buildpacks/nodejs/lib/nodeapp.js`` (``nodeRequest``) reads them: in the files a leading
  ``v`` dropped and ``node``, ``stable``, ``latest`` meaning any release; anywhere,
  ``lts/<codename>`` its line, and ``lts/*``, ``lts/-N`` a line the buildpack finds later.
- Go: the ``go`` directive of go.mod, of go.work and of the go.mod of each module go.work
  uses (the go command checks each of them: a minimum). ``toolchain`` lines are not requests:
  pallet builds with ``GOTOOLCHAIN=local``, where the toolchain line is only a suggestion.
"""

from __future__ import annotations

import codecs
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Callable

from builder.errors import InputFileError
from builder.inputfile import check_in_app, read_input
from builder.lifecycle.stackchoice import Request, lts_by_releases, npm_range, poetry_constraint, valid_go_version

#: A manifest larger than this is not read for a version request (the buildpack reads it).
MAX_MANIFEST = 4 << 20


def _text(app: Path, name: str) -> str | None:
    """The text of the app's file ``name`` (relative to ``app``), or None when it is not a
    readable regular file of at most MAX_MANIFEST bytes: every reader here reads through this.
    pallet reads these on the host, before any sandbox, and the source may be anyone's: a
    ``.python-version`` linked to a host file had that file's first line in the stack choice's
    message, and whether a request came showed what the host has. A link out of the app is an
    InputFileError naming it (checked first, whatever the link's target is)."""
    path = app / name
    check_in_app(app, path, name)
    try:  # a regular file, read bounded: a FIFO or /dev/zero is no version file
        data = read_input(path, name, MAX_MANIFEST)
    except (OSError, InputFileError):
        return None
    return decoded(data)


def decoded(data: bytes) -> str:
    """An app's file as text: UTF-8, unless a byte order mark says otherwise (Windows editors
    write UTF-8 with one; PowerShell's `echo python-3.13 > runtime.txt` writes UTF-16, which the
    Python buildpack reads as pip reads requirements.txt, so the choice must read it too)."""
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8", errors="replace").removeprefix("\ufeff")


def _first_line(app: Path, name: str, comment: str = "#") -> str:
    for line in (_text(app, name) or "").splitlines():
        line = line.split(comment, 1)[0].strip()
        if line:
            return line
    return ""


def _toml(app: Path, name: str) -> dict[str, Any]:
    text = _text(app, name)
    if text is None:
        return {}
    try:
        return tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError):
        return {}


def _table(data: Any, *keys: str) -> dict[str, Any]:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else {}


# -- Python -------------------------------------------------------------------------------------


def python_requests(app: Path) -> list[Request]:
    """``.python-version`` and ``runtime.txt`` (``3.13``, ``python-3.11.9``, ``cpython3.12``),
    ``[project] requires-python`` and Poetry's ``python`` dependency."""
    out: list[Request] = []
    for name in (".python-version", "runtime.txt"):
        version = re.sub(r"^(c?python)-?", "", _first_line(app, name))
        if re.fullmatch(r"3(\.\d+){0,2}", version):
            out.append(Request("python", version, name))
        elif re.match(r"(>=|<=|~=|==|!=|>|<)\s*3", version):  # `>= 3.10`, as Google Cloud's samples write it
            out += _pep440_request(version, name)
    pyproject = _toml(app, "pyproject.toml")
    spec = _table(pyproject, "project").get("requires-python")
    if isinstance(spec, str) and spec.strip():
        out += _pep440_request(spec, "pyproject.toml requires-python")
    spec = _table(pyproject, "tool", "poetry", "dependencies").get("python")
    if isinstance(spec, str) and spec.strip() and poetry_constraint(spec) is not None:
        out.append(Request("python", spec.strip(), "pyproject.toml [tool.poetry.dependencies] python", "poetry"))
    pipenv = pipenv_python(app)
    if pipenv:
        out.append(Request("python", *pipenv))
    return out


def _pep440_request(spec: str, source: str) -> list[Request]:
    """A request for the Pythons a PEP 440 specifier set allows; none when it is not one."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        SpecifierSet(spec)
    except InvalidSpecifier:
        return []
    return [Request("python", spec.strip(), source, "pep440")]


def pipenv_python(app: Path) -> tuple[str, str] | None:
    """(version, source) of Pipenv's request: Pipfile.lock's ``_meta.requires``, else the
    Pipfile's ``[requires]``; ``python_full_version`` (3.11.9) before ``python_version`` (3.11),
    as Heroku's and Paketo's Pipenv support read them. The Python buildpack checks the same."""
    lock = None
    text = _text(app, "Pipfile.lock")
    if text is not None:
        try:
            lock = json.loads(text)
        except (ValueError, RecursionError):
            lock = None
    for requires, source in ((_table(lock, "_meta", "requires"), "Pipfile.lock _meta.requires"),
                             (_table(_toml(app, "Pipfile"), "requires"), "Pipfile [requires]")):
        for key in ("python_full_version", "python_version"):
            version = requires.get(key)
            if isinstance(version, str) and re.fullmatch(r"3(\.\d+){0,2}", version.strip()):
                return version.strip(), f"{source} {key}"
    return None


# -- Node.js ------------------------------------------------------------------------------------


def node_requests(app: Path) -> list[Request]:
    """The one Node.js request the Node.js buildpack acts on: ``engines.node`` when it is a
    non-empty string, else the first non-comment line of ``.nvmrc``, else of ``.node-version``.
    A package.json that is not JSON asks for nothing (the buildpack refuses it, naming it)."""
    text = _text(app, "package.json")
    if text is not None:
        try:
            pkg = json.loads(text)
        except (ValueError, RecursionError):
            return []
        engines = pkg.get("engines") if isinstance(pkg, dict) else None
        node = engines.get("node") if isinstance(engines, dict) else None
        if isinstance(node, str) and node.strip():
            return _node_request(node.strip(), "package.json engines.node", "npm")
    for name in (".nvmrc", ".node-version"):
        line = _first_line(app, name)
        if line:
            return _node_request(line, name, "nvm")
    return []


def _node_request(spec: str, source: str, kind: str) -> list[Request]:
    if lts_by_releases(spec):
        return [Request("node", spec, source, "lts")]
    return [Request("node", spec, source, kind)] if npm_range(spec, kind == "nvm") else []


# -- Go -----------------------------------------------------------------------------------------

_GO_LINE = re.compile(r"^go[ \t]+(\S+)[ \t]*(?://.*)?$", re.M)
_USE_ONE = re.compile(r"^use[ \t]+([^\s(][^\s]*)", re.M)
_USE_BLOCK = re.compile(r"^use[ \t]*\(([^)]*)\)", re.M)


def _go_directive(app: Path, name: str) -> str | None:
    text = _text(app, name)
    if text is None:
        return None
    m = _GO_LINE.search(text)
    return m.group(1) if m and valid_go_version(m.group(1)) else None


def _used_modules(app: Path, go_work: str) -> list[str]:
    """The directories go.work's ``use`` directives name, inside the app (``../x`` is not read)."""
    dirs = [m.group(1) for m in _USE_ONE.finditer(go_work)]
    for block in _USE_BLOCK.finditer(go_work):
        dirs += [ln.split("//", 1)[0].strip() for ln in block.group(1).splitlines()]
    root = app.resolve()
    out = []
    for d in dirs:
        d = d.strip('"')
        if not d or d == ".":
            continue
        try:
            if (app / d).resolve().is_relative_to(root):
                out.append(d.removeprefix("./").rstrip("/"))
        except (OSError, ValueError):
            continue
    return list(dict.fromkeys(out))


def go_requests(app: Path) -> list[Request]:
    """go.mod's go directive, go.work's, and those of the modules go.work uses: each a minimum
    the stack's Go must meet (``GOTOOLCHAIN=local``: no newer toolchain is downloaded)."""
    out = []
    files = ["go.mod", "go.work"]
    work = _text(app, "go.work")
    if work is not None:
        files += [f"{d}/go.mod" for d in _used_modules(app, work)]
    for name in dict.fromkeys(files):
        version = _go_directive(app, name)
        if version is not None:
            out.append(Request("go", version, name, "minimum"))
    return out


#: Readers of runtime requests, one per language: app directory -> requests.
READERS: list[Callable[[Path], list[Request]]] = [python_requests, node_requests, go_requests]


def app_requests(app: Path) -> list[Request]:
    return [r for reader in READERS for r in reader(app)]
