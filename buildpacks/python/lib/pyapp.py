"""What the Python buildpack knows about an app, computed from its files (no I/O beyond reading
them): which package manager, which Python it asks for, what starts it.

Runs with the build image's python3, which is the stack's Python (the run image has the same
version), from ``bin/detect`` and ``bin/build``:

    pyapp.py detect                 what was found, one line each; exit 0 (pass) or 100 (fail)
    pyapp.py plan LAYERS BP_DIR     shell assignments for bin/build (installer, cache key, ...),
                                    and launch.toml when the cached venv is current (REUSE=1);
                                    exit 1 with a message when the app cannot be built
    pyapp.py requirements MODE OUT  a requirements file from Pipfile.lock or [project].dependencies
    pyapp.py launch LAYERS VENV     write launch.toml: the web process, from what is installed
    pyapp.py diagnose LOG           after a failed install: a package that could not be built here, said
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import sys
import tomllib
from pathlib import Path

APP = Path(".")
#: Package managers, by the file that selects them, in order of precedence.
MANAGERS = (("uv.lock", "uv"), ("poetry.lock", "poetry"), ("pdm.lock", "pdm"), ("Pipfile.lock", "pipenv"),
            ("Pipfile", "pipenv"), ("requirements.txt", "pip"))
MARKERS = ("requirements.txt", "pyproject.toml", "uv.lock", "poetry.lock", "pdm.lock", "Pipfile", "setup.py",
           ".python-version", "*.py")
#: Scripts that start an app, in order, when nothing declares how it starts.
ENTRY_SCRIPTS = ("main.py", "app.py", "bot.py", "server.py")
#: Files whose content decides the virtual environment (hashed into the layer's cache key).
MANIFESTS = ("requirements.txt", "pyproject.toml", "uv.lock", "poetry.lock", "pdm.lock", "Pipfile", "Pipfile.lock",
             "setup.py", "setup.cfg", ".python-version", "runtime.txt")
WSGI_FRAMEWORKS = ("flask", "django", "falcon", "bottle", "pyramid")
ASGI_FRAMEWORKS = ("fastapi", "starlette", "quart", "litestar", "sanic")
#: Servers that run an ASGI app, in order of preference (FastAPI's docs name uvicorn, Quart's
#: hypercorn, Django Channels' daphne); WSGI servers likewise (Flask's docs name gunicorn and
#: waitress).
ASGI_SERVERS = ("uvicorn", "hypercorn", "daphne")
WSGI_SERVERS = ("gunicorn", "waitress")
ENTRY_ATTRS = ("app", "application")
#: App factories, as ``flask run`` finds them: a module-level function returning the app.
FACTORIES = ("create_app", "make_app")
#: Top-level files that are never the app itself: packaging, task runners, test and server
#: configuration (``python setup.py`` is not a web process).
NOT_ENTRY = ("setup.py", "conftest.py", "noxfile.py", "fabfile.py", "tasks.py", "manage.py", "gunicorn.conf.py",
             "gunicorn_config.py", "gunicorn.config.py", "docs_conf.py")
#: Directories that hold no app code: not searched for a WSGI/ASGI app or a ``__main__``.
NOT_APP_DIRS = ("tests", "test", "docs", "doc", "migrations", "scripts", "examples", "build", "dist", "venv",
                "node_modules", "static", "templates")


class AppError(Exception):
    """The app cannot be built as it is; the message says what to change."""


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


#: The shapes of the values this module reads from each file of the app, checked once when the
#: file is read, so a hostile or mistyped file is one clear error naming the value rather than a
#: crash where it is used. A path's ``*`` is each value of a table, ``[]`` each item of a list.
TABLE, LIST, STRING, STRINGS = "table", "list", "string", "list of strings"
_LOCK = {"package": LIST, "package[]": TABLE, "package[].name": STRING, "package[].version": STRING,
         "package[].groups": STRINGS, "package[].marker": STRING, "package[].files": LIST,
         "package[].files[]": TABLE, "package[].files[].hash": STRING, "metadata": TABLE, "metadata.files": TABLE,
         "metadata.files.*": LIST, "metadata.files.*[]": TABLE, "metadata.files.*[].hash": STRING}
SHAPES: dict[str, dict[str, str]] = {
    "pyproject.toml": {
        "project": TABLE, "project.name": STRING, "project.requires-python": STRING, "project.dependencies": STRINGS,
        "project.scripts": TABLE, "build-system": TABLE, "build-system.build-backend": STRING, "tool": TABLE,
        "tool.poetry": TABLE, "tool.poetry.name": STRING, "tool.poetry.dependencies": TABLE,
        "tool.poetry.scripts": TABLE, "tool.uv": TABLE, "tool.pdm": TABLE, "tool.setuptools": TABLE,
        "tool.hatch": TABLE, "tool.hatch.build": TABLE, "tool.hatch.build.targets": TABLE,
        "tool.hatch.build.targets.wheel": TABLE},
    "Pipfile": {"requires": TABLE, "packages": TABLE, "packages.*.extras": STRINGS, "packages.*.version": STRING,
                "packages.*.markers": STRING},
    "Pipfile.lock": {"_meta": TABLE, "_meta.requires": TABLE, "default": TABLE, "default.*": TABLE,
                     "default.*.version": STRING, "default.*.markers": STRING, "default.*.hashes": STRINGS},
    "poetry.lock": _LOCK, "uv.lock": _LOCK, "pdm.lock": _LOCK,
}
_KINDS = {TABLE: dict, LIST: list, STRING: str}


def _values(data: object, path: str) -> list[tuple[str, object]]:
    """``(where, value)`` for each value the path names in data (``*`` and ``[]`` fan out)."""
    found: list[tuple[str, object]] = [("", data)]
    for step in re.findall(r"\[\]|[^.\[]+", path):
        nxt = []
        for where, value in found:
            if step == "[]" and isinstance(value, list):
                nxt += [(f"{where}[{i}]", v) for i, v in enumerate(value)]
            elif step == "*" and isinstance(value, dict):
                nxt += [(f"{where}.{k}".lstrip("."), v) for k, v in value.items()]
            elif isinstance(value, dict) and step in value:
                nxt.append((f"{where}.{step}".lstrip("."), value[step]))
        found = nxt
    return found


def check_shapes(data: dict, name: str) -> dict:
    for path, kind in SHAPES.get(name, {}).items():
        for where, value in _values(data, path):
            ok = (isinstance(value, list) and all(isinstance(v, str) for v in value)) if kind == STRINGS \
                else isinstance(value, _KINDS[kind])
            if not ok:
                shown = f"[{where}]" if kind == TABLE else where
                got = "" if isinstance(value, _KINDS.get(kind, list)) else f", not {type(value).__name__}"
                raise AppError(f"{name}: {shown} must be a {kind}{got}")
    return data


def read_text(name: str) -> str:
    try:
        return (APP / name).read_text()
    except UnicodeDecodeError as exc:
        raise AppError(f"{name} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise AppError(f"{name} cannot be read: {exc.strerror}") from None


def read_json(name: str) -> dict:
    try:
        data = json.loads(read_text(name))
    except json.JSONDecodeError as exc:
        raise AppError(f"{name} is not valid JSON: {exc}") from None
    except RecursionError:
        raise AppError(f"{name} is not valid JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise AppError(f"{name} must hold a JSON object, not {type(data).__name__}")
    return check_shapes(data, name)


def read_toml(name: str) -> dict:
    try:
        data = tomllib.loads((APP / name).read_text())
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AppError(f"{name} is not valid TOML: {exc}") from None
    except RecursionError:   # tomllib recurses into nested arrays and tables
        raise AppError(f"{name} is not valid TOML: nested too deeply") from None
    return check_shapes(data, name)


def exists(name: str) -> bool:
    return (APP / name).is_file()


# -- package manager -----------------------------------------------------------------------


def manager() -> tuple[str, str]:
    """(installer, the file that chose it). Installers: uv, poetry, pdm, pipenv, pip, pip-project,
    pip-deps (a pyproject without a build system: only its dependencies), pipfile (a Pipfile
    without its lock: resolved at build time), none."""
    found = []
    for name, mgr in MANAGERS:
        if exists(name) and mgr not in [m for _, m in found]:
            found.append((name, mgr))
    if len(found) > 1:
        files = ", ".join(f"{name} ({mgr})" for name, mgr in found)
        raise AppError(f"found the files of more than one package manager: {files}. Keep the one you use "
                       "and delete the others (or leave them out of the build with [build] exclude in "
                       "project.toml)")
    if found:
        name, mgr = found[0]
        if mgr == "pipenv":
            if not exists("Pipfile.lock"):
                return "pipfile", "Pipfile"
            return "pipenv", "Pipfile.lock"
        return mgr, name
    pyproject = read_toml("pyproject.toml")
    if pyproject.get("tool", {}).get("poetry") and not exists("poetry.lock"):
        raise AppError("pyproject.toml is a Poetry project but there is no poetry.lock: run `poetry lock` "
                       "and commit poetry.lock")
    if ("build-system" in pyproject or exists("setup.py")) and is_package():
        return "pip-project", "pyproject.toml" if pyproject else "setup.py"
    if pyproject.get("project", {}).get("dependencies"):
        return "pip-deps", "pyproject.toml"
    return "none", ""


_INCLUDE = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)(?:\s*=\s*|\s+|(?<=-r)|(?<=-c))(\S+)")


def written_text(name: str) -> str:
    """A requirements or version file as pip reads the first: UTF-8, unless a byte order mark says
    otherwise (PowerShell's `pip freeze > requirements.txt` and `echo python-3.13 > runtime.txt`
    write UTF-16; Notepad's UTF-8 starts with a mark, which was read as part of the version)."""
    import codecs

    data = (APP / name).read_bytes()
    for bom, encoding in ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if data.startswith(bom):
            return data.decode(encoding, "replace")
    return data.decode("utf-8", "replace")


def requirement_files(name: str = "requirements.txt") -> list[str]:
    """``name`` and every file of the app it includes (``-r``, ``-c``: paths relative to the
    including file, as pip reads them), depth first: they decide the venv as much as it does."""
    found: list[str] = []

    def visit(rel: str) -> None:
        if rel in found or not exists(rel):
            return
        found.append(rel)
        text = written_text(rel).replace("\\\n", "")
        for line in text.splitlines():
            m = _INCLUDE.match(line.split(" #")[0])
            if not m or "://" in m.group(1):
                continue
            target = os.path.normpath(os.path.join(os.path.dirname(rel), m.group(1)))
            if not target.startswith(".." + os.sep) and not os.path.isabs(target) and target != "..":
                visit(target)

    visit(name)
    return found


def top_level_scripts() -> list[str]:
    return sorted(p.name for p in APP.glob("*.py") if p.is_file())


def is_package() -> bool:
    """Whether installing the project itself installs anything: a build system (or setup.py),
    not switched off (Poetry's ``package-mode = false``, uv's ``package = false``, PDM's
    ``distribution = false``), and code to build -- packages named in the configuration, or a
    package or module named after the project (``name/``, ``src/name/``, ``name.py``), as the
    build backends find them by default. Projects that only list their dependencies are not."""
    pyproject = read_toml("pyproject.toml")
    tool = pyproject.get("tool", {})
    if exists("setup.py"):
        return True
    poetry = tool.get("poetry", {})
    if poetry.get("package-mode") is False or tool.get("uv", {}).get("package") is False \
            or tool.get("pdm", {}).get("distribution") is False:
        return False
    if "build-system" not in pyproject and not poetry:
        return False
    if poetry.get("packages") or tool.get("setuptools", {}).get("packages") \
            or tool.get("setuptools", {}).get("py-modules") \
            or tool.get("hatch", {}).get("build", {}).get("targets", {}).get("wheel", {}).get("packages"):
        return True
    cfg = setup_cfg()
    if cfg.get("options", {}).get("packages") or cfg.get("options", {}).get("py_modules"):
        return True  # setuptools' declarative configuration (packages = find:)
    name = pyproject.get("project", {}).get("name") or poetry.get("name") or cfg.get("metadata", {}).get("name") or ""
    module = re.sub(r"[-.]+", "_", name).lower()
    if module and any((APP / d / module).is_dir() or (APP / d / f"{module}.py").is_file() for d in (".", "src")):
        return True
    # setuptools (also when [build-system] names no backend) and pdm-backend find the packages of
    # a src/ layout whatever they are called (name = "my-service", code in src/app/).
    backend = str(pyproject.get("build-system", {}).get("build-backend") or "setuptools")
    if backend.split(".")[0] in ("setuptools", "pdm") and src_packages():
        return True
    return False


def setup_cfg() -> dict[str, dict[str, str]]:
    """setup.cfg's sections, as setuptools reads them (no interpolation); {} without one. A
    project configured there (``[options] packages = find:``, ``install_requires``) is a package
    whose pyproject.toml may hold only ``[build-system]``."""
    if not exists("setup.cfg"):
        return {}
    import configparser

    parser = configparser.RawConfigParser()
    try:
        parser.read_string(read_text("setup.cfg"), "setup.cfg")
    except configparser.Error as exc:
        raise AppError(f"setup.cfg cannot be read: {str(exc).splitlines()[0]}") from None
    return {section: dict(parser.items(section)) for section in parser.sections()}


#: Build plugins that read the project's version from git, and the variable each takes it from
#: instead (``{name}``: the project's name as setuptools-scm spells it; hatch-vcs gives it no name).
VCS_VERSIONING = (("setuptools-scm", "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_{name}"),
                  ("hatch-vcs", "SETUPTOOLS_SCM_PRETEND_VERSION"),
                  ("poetry-dynamic-versioning", "POETRY_DYNAMIC_VERSIONING_BYPASS"))


def vcs_version_env() -> tuple[str, str] | None:
    """(variable, plugin) when the project is built by a plugin that reads its version from git
    (setuptools-scm, hatch-vcs, poetry-dynamic-versioning, pdm-backend's ``source = "scm"``):
    the build never has ``.git`` (pallet leaves it out of the app), so each would fail ("unable
    to detect version"); the variable gives the version instead, unless the user gave one."""
    if not is_package():
        return None
    pyproject = read_toml("pyproject.toml")
    requires = pyproject.get("build-system", {}).get("requires", [])
    names = {norm(re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0]) for r in requires if isinstance(r, str)}
    if exists("setup.py") and re.search(r"use_scm_version|setuptools_scm", read_text("setup.py")):
        names.add("setuptools-scm")
    found = None
    for plugin, var in VCS_VERSIONING:
        if plugin in names:
            project = pyproject.get("project", {}).get("name") or setup_cfg().get("metadata", {}).get("name")
            found = (var.format(name=re.sub(r"[-_.]+", "_", str(project)).upper()) if project else
                     var.replace("_FOR_{name}", ""), plugin)
            break
    version = pyproject.get("tool", {}).get("pdm", {}).get("version", {})
    if found is None and isinstance(version, dict) and version.get("source") == "scm":
        found = ("PDM_BUILD_SCM_VERSION", "pdm-backend's scm version source")
    return None if found is None or given_vcs_versions() else found


def vcs_version_notes(scm: tuple[str, str] | None) -> list[str]:
    if not scm:
        return []
    return [f"notice: the project's version comes from git ({scm[1]}), and the build has no .git (pallet leaves it "
            f"out of the app): built as version 0.0.0; give the real one with --env {scm[0]}=VERSION"]


def given_vcs_versions() -> list[str]:
    """The user's ``VAR=version`` settings for the plugins above (they decide the venv too)."""
    prefixes = ("SETUPTOOLS_SCM_PRETEND_VERSION", "PDM_BUILD_SCM_VERSION", "POETRY_DYNAMIC_VERSIONING_BYPASS")
    return sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith(prefixes))


def src_packages() -> list[str]:
    """The importable names a src/ layout holds: packages (with ``__init__.py``) and modules."""
    src = APP / "src"
    if not src.is_dir():
        return []
    names = {p.parent.name for p in src.glob("*/__init__.py")} | {p.stem for p in src.glob("*.py")}
    return sorted(n for n in names if n.isidentifier())


# -- Python version -----------------------------------------------------------------------


def stack_python() -> str:
    return ".".join(str(x) for x in sys.version_info[:3])


def _stack_name() -> str:
    return os.environ.get("CNB_STACK_ID") or "this stack"


def pipenv_python() -> list[tuple[str, str]]:
    """Pipenv's Python request, ``[(where, version)]``: Pipfile.lock's ``_meta.requires``, else
    the Pipfile's ``[requires]``, ``python_full_version`` before ``python_version`` (as Heroku
    reads them; builder/lifecycle/apprequests.py chooses the stack by the same)."""
    sources = []
    if exists("Pipfile.lock"):
        try:
            sources.append((read_json("Pipfile.lock").get("_meta", {}).get("requires"), "Pipfile.lock _meta.requires"))
        except AppError:
            pass
    if exists("Pipfile"):
        sources.append((read_toml("Pipfile").get("requires"), "Pipfile [requires]"))
    for requires, where in sources:
        for key in ("python_full_version", "python_version"):
            version = requires.get(key) if isinstance(requires, dict) else None
            if isinstance(version, str) and re.fullmatch(r"3(\.\d+){0,2}", version.strip()):
                return [(f"{where} {key}", version.strip())]
    return []


#: A version file's line that is a PEP 440 specifier (``>= 3.10``, as Google Cloud's
#: buildpack-samples write .python-version; ``~=3.12``), not a version.
SPECIFIER_LINE = re.compile(r"(>=|<=|~=|==|!=|>|<)\s*3[\s\d.,*<>=!~]*")


def _specifier_set(spec: str):
    """packaging's SpecifierSet of SPEC (pip's vendored copy), or None on a stack without pip."""
    try:
        from pip._vendor.packaging.specifiers import InvalidSpecifier, SpecifierSet
    except ImportError:
        import site  # run with -S (faster start): add the system's site-packages now

        sys.path.extend(p for p in site.getsitepackages() if p not in sys.path)
        try:
            from pip._vendor.packaging.specifiers import InvalidSpecifier, SpecifierSet
        except ImportError:  # a stack without pip: nothing to check with
            return None
    try:
        return SpecifierSet(spec)
    except InvalidSpecifier:
        raise AppError(f"{spec!r} is not a valid version specifier") from None


def _version_file_request(name: str, have: str) -> str | None:
    """The version (or PEP 440 specifier) .python-version or runtime.txt asks for; None for
    pyenv's ``system``; AppError for anything else."""
    lines = [ln.strip() for ln in written_text(name).splitlines()]
    wanted = next((ln for ln in lines if ln and not ln.startswith("#")), "")
    version = re.sub(r"^(c?python)-?", "", wanted)
    if name == ".python-version" and wanted == "system":
        return None  # pyenv's "the Python of the system" (`pyenv local system`): here, the stack's.
    if re.fullmatch(r"3(\.\d+){0,2}", version) or SPECIFIER_LINE.fullmatch(version):
        return version
    raise AppError(f"{name} asks for {wanted!r}; only CPython versions like 3.11 (or a range, >=3.10) are "
                   f"supported (the stack {_stack_name()} has Python {have})")


def _mismatch(name: str, version: str, have: str) -> AppError:
    """The error for a request the stack's Python does not meet."""
    return AppError(f"{name} asks for Python {version}, but the stack {_stack_name()} has Python {have}: "
                    f"build without --stack (pallet then picks a shipped stack with that Python, or names the "
                    f"Pythons they have), change "
                    f"{name} to {'.'.join(have.split('.')[:2])}, or build on a stack with Python {version}")


def check_python() -> list[str]:
    """The app's Python requests, each checked against the stack's; AppError if one fails."""
    have = stack_python()
    notes = []
    asked = []
    for name in (".python-version", "runtime.txt"):
        if exists(name):
            version = _version_file_request(name, have)
            if version is None:
                notes.append(f"{name} says system")
            else:
                asked.append((name, version))
    asked += pipenv_python()
    for name, version in asked:
        want, got = version.split("."), have.split(".")
        if SPECIFIER_LINE.fullmatch(version):
            specifiers = _specifier_set(version)
            if specifiers is not None and not specifiers.contains(have, prereleases=True):
                raise _mismatch(name, version, have)
            notes.append(f"{name} asks for Python {version}")
        elif got[: len(want)] == want:
            notes.append(f"{name} asks for Python {version}")
        elif len(want) == 3 and got[:2] == want[:2]:
            # A patch level the stack does not have: the same minor release is compatible (the
            # stack's Debian package gets the security fixes, through rebase).
            notes.append(f"notice: {name} asks for Python {version}; the stack has {have}, the same "
                         f"{'.'.join(want[:2])}")
        else:
            raise _mismatch(name, version, have)
    spec = read_toml("pyproject.toml").get("project", {}).get("requires-python")
    if spec:
        try:
            specifiers = _specifier_set(spec)
        except AppError:
            raise AppError(f"pyproject.toml: requires-python {spec!r} is not a valid version specifier") from None
        if specifiers is None:
            return notes
        if not specifiers.contains(have, prereleases=True):
            raise AppError(f"pyproject.toml requires-python {spec!r}, but the stack {_stack_name()} has "
                           f"Python {have}: widen requires-python, or build on another stack")
        notes.append(f"requires-python {spec}")
    return notes


# -- dependencies and the start command ------------------------------------------------------


#: What a dependency (with an extra) installs that decides the web process, for detection when
#: no lock lists everything: ``fastapi[standard]`` brings uvicorn (``fastapi run`` serves with
#: it), Quart always hypercorn, ``channels[daphne]`` daphne, Dash Flask.
IMPLIED = {"fastapi[standard]": "uvicorn", "fastapi[standard-no-fastapi-cloud-cli]": "uvicorn",
           "fastapi[all]": "uvicorn", "quart": "hypercorn", "channels[daphne]": "daphne", "dash": "flask"}
_SPEC = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[([^\]]*)\])?")


def spec_names(spec: str, extras: list[str] | None = None) -> set[str]:
    """The normalised name a requirement line names, with what it implies (``IMPLIED``); a
    Pipfile's or Poetry's table gives its ``extras`` apart."""
    m = _SPEC.match(spec)
    if not m:
        return set()
    name = norm(m.group(1))
    wanted = [norm(e) for e in (m.group(2) or "").split(",") + list(extras or []) if e.strip()]
    return {name} | {IMPLIED[key] for key in [name] + [f"{name}[{e}]" for e in wanted] if key in IMPLIED}


def _table_extras(value: object) -> list[str]:
    extras = value.get("extras") if isinstance(value, dict) else None
    return [e for e in extras if isinstance(e, str)] if isinstance(extras, list) else []


def declared_dependencies(installer: str) -> set[str]:
    """Names the manifests declare (direct and, from lock files, locked); for detect's guess."""
    names: set[str] = set()
    pyproject = read_toml("pyproject.toml")
    specs = [s for s in pyproject.get("project", {}).get("dependencies", []) or [] if isinstance(s, str)]
    specs += setup_cfg().get("options", {}).get("install_requires", "").splitlines() + setup_py_requires()
    if installer == "pip":
        lines = [ln for name in requirement_files() for ln in written_text(name).splitlines()]
        specs += [line for line in lines if not line.lstrip().startswith("-")]
    for spec in specs:
        names |= spec_names(spec)
    tables = dict(pyproject.get("tool", {}).get("poetry", {}).get("dependencies", {}) or {})
    if installer == "pipfile":
        tables.update(read_toml("Pipfile").get("packages", {}))
    for name, value in tables.items():
        names |= spec_names(name, _table_extras(value))
    if installer == "pipenv":
        data = read_json("Pipfile.lock")
        names |= {norm(n) for n in data.get("default", {})}
    if installer in ("uv", "poetry", "pdm"):
        lock = read_toml(f"{installer}.lock")
        group = {"uv": None, "poetry": "main", "pdm": "default"}[installer]
        names |= {norm(p.get("name", "")) for p in lock.get("package", [])
                  if group is None or group in (p.get("groups") or [group])}
    return names


def setup_py_requires() -> list[str]:
    """The literal ``install_requires=[...]`` of setup.py's ``setup()`` call: a project whose
    dependencies are only there (``-e .`` in requirements.txt, or no requirements.txt) installs
    gunicorn and Flask through it, and detection read nothing, so said the build would fail."""
    import ast

    if not exists("setup.py"):
        return []
    try:
        tree = ast.parse((APP / "setup.py").read_bytes())
    except (SyntaxError, ValueError, OSError, RecursionError, MemoryError):
        return []
    specs: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires" \
                and isinstance(node.value, (ast.List, ast.Tuple)):
            specs += [e.value for e in node.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return specs


def installed_distributions(venv: Path) -> dict[str, str]:
    """{normalized name: version} of what is installed in the venv."""
    found = {}
    for site in venv.glob("lib/python3*/site-packages"):
        for info in site.glob("*.dist-info"):
            name, _, version = info.name[: -len(".dist-info")].rpartition("-")
            found[norm(name)] = version
    return found


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


#: The lines _defines_app reads (buildpack.toml's input-lines must match each of them).
_ASSIGN = r"^({attr})\s*(:[^=\n]*)?="
_FROM_IMPORT = re.compile(r"^from\s+[\w.]+\s+import\s+\(?([^#\n]*)", re.M)
_FACTORY = re.compile(r"^(?:async\s+)?def\s+(" + "|".join(FACTORIES) + r")\s*\(", re.M)
#: The WSGI app a framework object exposes (Dash's ``server = app.server``: the Flask app).
_EXPOSED = re.compile(r"^(\w+)\s*=\s*(?:app|application)\.server\s*(?:#.*)?$", re.M)
#: A module-level app made by its framework's class under another name (``api = FastAPI()``,
#: ``server = Flask(__name__)``): what uvicorn or gunicorn is then given.
_CONSTRUCTED = re.compile(r"^(\w+)\s*(?::[^=\n]*)?=\s*(?:[\w.]+\.)?(?:Flask|FastAPI|Starlette|Quart|Litestar|Sanic|Bottle"
                          r"|falcon\.(?:asgi\.)?App)\(", re.M)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _defines_app(path: Path) -> str | None:
    """The module-level WSGI/ASGI app a file has: ``app`` or ``application`` (assigned, or
    imported: a ``wsgi.py`` that is ``from myapp import app``), else another name a framework's
    class is assigned to (``api = FastAPI()``), else an app factory (``create_app()``, called by
    the server)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    imported = set()
    for m in _FROM_IMPORT.finditer(text):
        for name in m.group(1).rstrip(")\\ ").split(","):
            words = name.split()
            if words:
                imported.add(words[-1])  # "a as b" binds b
    m = _EXPOSED.search(text)
    if m:  # Dash: app = Dash(__name__); server = app.server, the WSGI app its docs serve
        return m.group(1)
    for attr in ENTRY_ATTRS:
        if re.search(_ASSIGN.format(attr=attr), text, re.M) or attr in imported:
            return attr
    m = _CONSTRUCTED.search(text)
    if m:
        return m.group(1)
    m = _FACTORY.search(text)
    return f"{m.group(1)}()" if m else None


def _app_dirs() -> list[tuple[str, str]]:
    """(directory, import prefix) where an app module may live: the top of the app, each
    top-level package (``app/main.py`` is ``app.main``), and each package of a src/ layout
    (found through the server's path option: ``src/svc/api.py`` is ``svc.api`` from src)."""
    found = [("", "")]
    for base in ("", "src/"):
        # With or without __init__.py: app/main.py imports as app.main either way (a namespace
        # package), and many FastAPI projects leave it out.
        dirs = {p.parent.name for p in (APP / base).glob("*/*.py")} if (APP / base).is_dir() else set()
        for name in sorted(dirs):
            if name.isidentifier() and name not in NOT_APP_DIRS:
                found.append((f"{base}{name}/", f"{name}."))
    return found


def find_app(files: tuple[str, ...]) -> tuple[str, str] | None:
    """``(module:attr, path directory)`` of the WSGI/ASGI app: the first of ``files`` at the top
    of the app that has one, else the one other top-level script that has one (Flask's
    quickstart ``hello.py``, a Flit module), else in src/, else the one package that has one (first
    of ``files`` then ``__init__.py`` in it); none when several packages do (nothing to tell them
    apart)."""
    for name in files:
        attr = _defines_app(APP / name)
        if attr:
            return f"{name[:-3]}:{attr}", ""
    # Another script counts only with a framework's class assigned in it (app = Flask(__name__)):
    # bot.py's `application = Application.builder()...` is no WSGI/ASGI app.
    others = [(name, _defines_app(APP / name)) for name in entry_scripts()
              if name not in files and name[:-3].isidentifier() and _CONSTRUCTED.search(_read(APP / name))]
    others = [(name, attr) for name, attr in others if attr]
    if len(others) == 1:
        return f"{others[0][0][:-3]}:{others[0][1]}", ""
    for name in files:  # src/ as the code's root: src/main.py is main, from src
        attr = _defines_app(APP / "src" / name)
        if attr:
            return f"{name[:-3]}:{attr}", "src"
    hits = []
    for directory, prefix in _app_dirs()[1:]:
        for name in (*files, "__init__.py"):
            attr = _defines_app(APP / directory / name)
            if attr:
                module = prefix[:-1] if name == "__init__.py" else prefix + name[:-3]
                hits.append((f"{module}:{attr}", "src" if directory.startswith("src/") else ""))
                break
    if hits:
        return hits[0] if len(hits) == 1 else None
    return member_app(files)


def uv_members() -> list[Path]:
    """The member directories of a uv workspace (``[tool.uv.workspace] members``, globs, less
    ``exclude``), each with its pyproject.toml; uv sync installs them into the venv."""
    workspace = read_toml("pyproject.toml").get("tool", {}).get("uv", {}).get("workspace", {})
    if not isinstance(workspace, dict) or not exists("uv.lock"):
        return []
    members = workspace.get("members") or []
    exclude = workspace.get("exclude") or []
    found: dict[Path, None] = {}
    for pattern in members if isinstance(members, list) else []:
        if isinstance(pattern, str) and ".." not in pattern and not pattern.startswith("/"):
            found.update((p, None) for p in sorted(APP.glob(pattern)) if (p / "pyproject.toml").is_file())
    skipped = {p for pattern in exclude if isinstance(pattern, str) and ".." not in pattern and not pattern.startswith("/")
               for p in APP.glob(pattern)}
    return [p for p in found if p not in skipped]


def member_app(files: tuple[str, ...]) -> tuple[str, str] | None:
    """The app in the one package of a uv workspace's members that has one (apps/api/src/api/
    main.py is api.main): the members are installed, so it imports from anywhere."""
    hits = []
    for member in uv_members():
        for base in (member / "src", member):
            for package in sorted(p for p in base.glob("*/") if p.is_dir() and p.name.isidentifier()
                                  and p.name not in NOT_APP_DIRS):
                attr = next(((name, a) for name in (*files, "__init__.py") for a in [_defines_app(package / name)] if a),
                            None)
                if attr:
                    module = package.name if attr[0] == "__init__.py" else f"{package.name}.{attr[0][:-3]}"
                    hits.append((f"{module}:{attr[1]}", ""))
    return hits[0] if len(hits) == 1 else None


def manage_dir() -> str | None:
    """Where the Django project's manage.py is: the top of the app (""), else the one directory
    below it that has one (``src/manage.py``, ``backend/manage.py`` beside a requirements.txt at
    the top, as Heroku finds it); None without one."""
    if exists("manage.py"):
        return ""
    found = sorted(p.parent.name for p in APP.glob("*/manage.py") if p.is_file() and p.parent.name not in NOT_APP_DIRS)
    return found[0] if len(found) == 1 else None


def _django_entry(kind: str = "wsgi") -> tuple[str, str] | None:
    """(module:application, path directory) of the Django project's ``wsgi.py`` (or ``asgi.py``),
    when manage.py and one project package beside it say which; the path is manage.py's
    directory when it is not the top (the server puts it on the import path)."""
    where = manage_dir()
    if where is None:
        return None
    found = sorted(p.parent.name for p in (APP / where).glob(f"*/{kind}.py"))
    return (f"{found[0]}.{kind}:application", where) if len(found) == 1 else None


def _with_path(path: str) -> str:
    """The shell words that put ``path`` (src) first on the import path of the server started after them."""
    return f"PYTHONPATH={path}${{PYTHONPATH:+:$PYTHONPATH}} " if path else ""


def asgi_command(server: str, target: str, path: str) -> list[str] | None:
    """The command that serves the ASGI app ``target`` (``module:attr``, or ``module:factory()``)
    with ``server`` on 0.0.0.0:$PORT; None when that server cannot call a factory (daphne)."""
    factory = target.endswith("()")
    port = '"${PORT:-8080}"'
    if server == "uvicorn":
        flags = (" --factory" if factory else "") + (f" --app-dir {path}" if path else "")
        return ["/bin/sh", "-c", f'exec uvicorn {target.rstrip("()")}{flags} --host 0.0.0.0 --port {port}']
    if server == "hypercorn":  # it evaluates what follows the colon: a factory call works as written
        return ["/bin/sh", "-c", f"{_with_path(path)}exec hypercorn {shlex.quote(target)} --bind "
                                 f'"0.0.0.0:${{PORT:-8080}}"']
    if server == "daphne" and not factory:
        return ["/bin/sh", "-c", f"{_with_path(path)}exec daphne -b 0.0.0.0 -p {port} {target}"]
    return None


def wsgi_command(server: str, target: str, path: str, versions: dict[str, str]) -> list[str]:
    """The command that serves the WSGI app ``target`` with ``server`` (gunicorn binds $PORT itself)."""
    if server == "waitress":
        call = " --call" if target.endswith("()") else ""
        return ["/bin/sh", "-c", f"{_with_path(path)}exec waitress-serve --listen \"0.0.0.0:${{PORT:-8080}}\"{call} "
                                 f"{target.rstrip('()')}"]
    command = ["gunicorn", target]
    if path:
        command[1:1] = ["--pythonpath", path]
    if _version_tuple(versions.get("gunicorn", "0")) >= (25, 1):
        # gunicorn >= 25.1 opens a control socket under $HOME, which is read-only in the image
        command[1:1] = ["--control-socket", "/tmp/gunicorn.ctl"]
    return command


def _dev_server_note(script: str, deps: set[str]) -> str:
    """Warnings for ``python SCRIPT`` listening where requests to $PORT never arrive: a port
    written in the code (``app.run(host="0.0.0.0", port=5000)``, ``uvicorn.run(app, port=8000)``),
    and Flask's development server as it is called by default, on 127.0.0.1."""
    text = (APP / script).read_text(errors="replace")
    notes = ""
    fixed = re.search(r"\.run(?:_app)?\((?:[^)]*[\s,(])?port\s*=\s*(\d+)\s*[,)]", text) \
        or re.search(r"\.listen\(\s*(\d+)\s*[,)]", text) \
        or re.search(r"Server\(\s*\(\s*(?:[\"'][^\"']*[\"'])\s*,\s*(\d+)\s*\)", text)
    # ... app.listen(8888) (Tornado's), HTTPServer(("", 8000), Handler) (the standard library's)
    if fixed and fixed.group(1) != "8080":
        notes += (f"; warning: it listens on port {fixed.group(1)}, written in {script}: requests to $PORT (8080 unless "
                  "the platform sets another) would not reach it; read the port from the environment "
                  "(port=int(os.environ.get(\"PORT\", 8080)))")
    served = re.search(r"\buvicorn\.run\(([^)]*)\)", text)  # uvicorn.run's host defaults to 127.0.0.1
    if served and not re.search(r"host\s*=\s*(?![\"'](127\.0\.0\.1|localhost)[\"'])", served.group(1)):
        notes += (f"; warning: uvicorn.run() in {script} listens on 127.0.0.1 (its default host): no request from "
                  "outside the container would reach it; give it host=\"0.0.0.0\"")
    if "flask" not in deps or "gunicorn" in deps:
        return notes
    run = re.search(r"\.run\(([^)]*)\)", text)
    if not run or "0.0.0.0" in run.group(1) or re.search(r"host\s*=\s*[A-Za-z_]", run.group(1)):
        return notes
    return notes + ("; warning: it runs Flask's development server, which listens on 127.0.0.1 (port 5000) unless "
                    "app.run() is given host='0.0.0.0' and the port $PORT: add gunicorn to the dependencies (pallet then "
                    "starts gunicorn on $PORT)")


_GUNICORN_BIND = re.compile(r"^bind\s*=\s*(.+)$", re.M)
_GUNICORN_APP = re.compile(r"^wsgi_app\s*=\s*[\"']([^\"'\n]+)[\"']", re.M)


def gunicorn_config_app() -> str | None:
    """The app ``./gunicorn.conf.py`` names (``wsgi_app = "web.views:app"``, gunicorn 20.1+):
    gunicorn run without an app argument reads that file by itself and serves it. Such an app
    (one in no file pallet looks into) failed the build with no web process."""
    path = APP / "gunicorn.conf.py"
    if not path.is_file():
        return None
    m = _GUNICORN_APP.search(_read(path))
    return m.group(1).strip() if m else None

#: What requests to $PORT never reach: a Unix socket (for nginx beside it, in a VM's setup) or a
#: file descriptor a process manager hands over (systemd's socket activation).
_NOT_A_PORT = ("unix:", "fd://")


def _command_binds(words: list[str]) -> list[str]:
    """The addresses given on gunicorn's command line (``-b``, ``--bind``, repeatable)."""
    binds = []
    for i, word in enumerate(words[1:], 1):
        if word in ("-b", "--bind") and i + 1 < len(words):
            binds.append(words[i + 1])
        elif word.startswith("--bind="):
            binds.append(word.split("=", 1)[1])
        elif word.startswith("-b") and len(word) > 2 and not word.startswith("--"):
            binds.append(word[2:])
    return binds


def _socket_warning(where: str, bind: str) -> str:
    """``where`` (the command, or its configuration file) binds only ``bind``, which is no port."""
    return (f"warning: {where} binds {bind}, not a port: gunicorn listens there only (a Unix socket is for a proxy "
            "beside it, nginx), so requests to $PORT (8080 unless the platform sets another) would not reach it; "
            "bind to the port the environment gives (with no bind, gunicorn binds $PORT)")


def gunicorn_bind_note(words: list[str]) -> str:
    """A warning when the gunicorn command ``words`` listens where requests to $PORT never come:
    a port its configuration file writes (``bind = "0.0.0.0:8000"``: gunicorn reads
    ``./gunicorn.conf.py``, or ``-c FILE``, by itself, and a bind there wins over $PORT), or a
    Unix socket only (``--bind unix:/run/app.sock``, or in that file). A bind that reads PORT
    (Heroku's getting-started app's) or a port on the command line is left alone."""
    given = _command_binds(words)
    if given:
        return _socket_warning("gunicorn", given[0]) if all(b.startswith(_NOT_A_PORT) for b in given) else ""
    config = "gunicorn.conf.py"
    for i, word in enumerate(words):
        if word in ("-c", "--config") and i + 1 < len(words):
            config = words[i + 1]
        elif word.startswith("--config="):
            config = word.split("=", 1)[1]
    rel = os.path.normpath(config)
    if rel.startswith("..") or os.path.isabs(rel) or not (APP / rel).is_file():
        return ""
    m = _GUNICORN_BIND.search(_read(APP / rel))
    if m and "PORT" not in m.group(1):
        addresses = re.findall(r"[\"']([^\"']*)[\"']", m.group(1))
        if addresses and all(a.startswith(_NOT_A_PORT) for a in addresses):
            return _socket_warning(rel, m.group(1).strip())
    port = re.search(r":(\d+)\b", m.group(1)) if m and "PORT" not in m.group(1) else None
    if not port or port.group(1) == "8080":
        return ""
    return (f"warning: {rel} binds {m.group(1).strip()}: gunicorn reads it and listens there, so requests "
            "to $PORT (8080 unless the platform sets another) would not reach it; bind to the port the "
            "environment gives (bind = \"0.0.0.0:\" + os.environ.get(\"PORT\", \"8080\"))")


def procfile_web_words() -> list[str]:
    """The words of the Procfile's web command ([] without one), for warnings about what it runs."""
    try:
        lines = (APP / "Procfile").read_text(errors="replace").splitlines()
    except OSError:
        return []
    for line in lines:
        m = re.match(r"^\s*web\s*:(.*)$", line)
        if m:
            try:
                return shlex.split(m.group(1))
            except ValueError:
                return m.group(1).split()
    return []


def procfile_web_note() -> str:
    """Warnings about the Procfile's web command that only the Python buildpack can give: a
    gunicorn it runs binding the port its configuration file writes."""
    words = procfile_web_words()
    return gunicorn_bind_note(words[words.index("gunicorn"):]) if "gunicorn" in words else ""


def main_package() -> str | None:
    """The one package the app runs as ``python -m NAME`` (it has a ``__main__.py``): at the top
    of the app, or in src/ when the project is installed."""
    dirs = [d for d, _ in _app_dirs()[1:] if not d.startswith("src/") or is_package()]
    found = [d.rstrip("/").split("/")[-1] for d in dirs
             if (APP / d / "__main__.py").is_file() and (APP / d / "__init__.py").is_file()]
    return found[0] if len(found) == 1 else None


def src_start(deps: set[str]) -> tuple[list[str], str] | None:
    """A script in src/ that is not installed as a package (requirements.txt, no build system),
    as such apps' READMEs run it: ``python src/main.py`` (its directory is then on the import
    path, as for a top-level script), else the one package there with a ``__main__.py``, run
    with src/ on the path (``PYTHONPATH=src python -m bot``)."""
    for name in ENTRY_SCRIPTS:
        if exists(f"src/{name}"):
            return ["python", f"src/{name}"], f"rule: src/{name}" + _dev_server_note(f"src/{name}", deps)
    found = [d.name for d in sorted((APP / "src").glob("*/")) if d.is_dir() and d.name not in NOT_APP_DIRS
             and (d / "__main__.py").is_file() and (d / "__init__.py").is_file()]
    if len(found) != 1 or is_package():
        return None
    return (["/bin/sh", "-c", f'PYTHONPATH="src${{PYTHONPATH:+:$PYTHONPATH}}" exec python -m {found[0]}'],
            f"rule: python -m {found[0]}, the one package in src/ with a __main__.py (src/ on the import path)")


def entry_scripts() -> list[str]:
    """Top-level *.py files that may be the app (not setup.py, conftest.py, a gunicorn config...)."""
    return [name for name in top_level_scripts() if name not in NOT_ENTRY and not name.startswith("test_")]


def module_file(module: str) -> str | None:
    """The app's file of ``module`` (``myapi.main``: myapi/main.py, else src/myapi/main.py, or a
    package's __init__.py), relative to the app; None when the app has none."""
    rel = module.replace(".", "/")
    return next((name for base in ("", "src/") for name in (f"{base}{rel}.py", f"{base}{rel}/__init__.py")
                 if exists(name)), None)


def script_entry() -> tuple[str, str, str] | None:
    """The project's one entry point, ``(name, "module:function", table)``, when
    ``[project.scripts]`` and ``[tool.poetry.scripts]`` declare exactly one between them."""
    pyproject = read_toml("pyproject.toml")
    found: dict[str, tuple[str, str]] = {}
    for table, scripts in (("[project.scripts]", pyproject.get("project", {}).get("scripts")),
                           ("[tool.poetry.scripts]", pyproject.get("tool", {}).get("poetry", {}).get("scripts"))):
        for name, target in (scripts or {}).items():
            if isinstance(target, dict):  # Poetry's {reference = "m:f", type = "console"}
                target = target.get("reference") if target.get("type", "console") == "console" else None
            if isinstance(target, str) and re.fullmatch(r"[\w.]+:[\w.]+", target.strip()):
                found.setdefault(name, (target.strip(), table))
    if len(found) != 1:
        return None
    name, (target, table) = next(iter(found.items()))
    return name, target, table


def start_command(deps: dict[str, str] | set[str], bin_dir: Path | None = None) -> tuple[list[str] | None, str]:
    """(command, why) for the web process; (None, why) when there is nothing to start.
    ``deps``: names (with versions when installed); ``bin_dir``: the venv's bin, once built.

    In order (a Procfile wins over all of them, in the Procfile buildpack): the project's one
    script entry point; a WSGI/ASGI app (or app factory) with gunicorn/uvicorn, at the top or in
    the one package that has one; main.py, app.py, bot.py, server.py; ``python -m`` the one
    package with a ``__main__.py``; the only top-level *.py that is not setup.py, conftest.py,
    manage.py or the like. When none applies, ``why`` names what was found but cannot start
    (a Django project without gunicorn)."""
    versions = deps if isinstance(deps, dict) else {}
    deps = set(deps)
    entry = script_entry()
    if entry:
        name, target, table = entry
        module, func = target.split(":", 1)
        source = module_file(module)
        # The function may start a server where $PORT never reaches (uvicorn.run(app, port=8000)).
        note = _dev_server_note(source, deps) if source else ""
        if bin_dir is None and is_package() or bin_dir is not None and (bin_dir / name).is_file():
            return [name], f"rule: the only entry point in {table}, {name} = {target!r}{note}"
        # Not installed as a package (dependencies only): call the function from the source.
        code = f"import sys; from {module} import {func.split('.')[0]} as f; sys.exit(f{func[len(func.split('.')[0]):]}())"
        return ["python", "-c", code], f"rule: the only entry point in {table}, {name} = {target!r}, from the source{note}"
    configured = gunicorn_config_app() if "gunicorn" in deps else None
    if configured:
        command = wsgi_command("gunicorn", configured, "", versions)[:-1]  # the app is the config's
        note = gunicorn_bind_note(command)
        return command, f"rule: gunicorn.conf.py's wsgi_app {configured}, gunicorn" + (f"; {note}" if note else "")
    asgi = sorted(deps & set(ASGI_FRAMEWORKS))
    wsgi = sorted(deps & set(WSGI_FRAMEWORKS))
    asgi_servers = [s for s in ASGI_SERVERS if s in deps]
    wsgi_servers = [s for s in WSGI_SERVERS if s in deps]
    hints = []
    if asgi:
        found = find_app(("asgi.py", "main.py", "app.py"))
        for server in asgi_servers if found else ():
            command = asgi_command(server, *found)
            if command:
                return command, f"rule: ASGI, {asgi[0]} app {found[0]}, {server}"
        if found:
            hints.append(f"an ASGI app {found[0]} without an ASGI server (add uvicorn to the dependencies)")
    found = find_app(("wsgi.py", "app.py", "main.py"))
    django = _django_entry()
    django_asgi = _django_entry("asgi") if "django" in deps else None
    if wsgi_servers and (found or django):
        target, path = found or django
        server = wsgi_servers[0]
        command = wsgi_command(server, target, path, versions)
        return command, f"rule: WSGI, {wsgi[0] if wsgi else 'WSGI'} app {target}, {server}" + (
            f"; {gunicorn_bind_note(command)}" if server == "gunicorn" and gunicorn_bind_note(command) else "")
    if django_asgi and asgi_servers and \
            _defines_app(APP / django_asgi[1] / django_asgi[0].split(".")[0] / "asgi.py") == "application":
        # A Django project served over ASGI (Channels, async views) with no WSGI server installed.
        return (asgi_command(asgi_servers[0], *django_asgi) or [],
                f"rule: ASGI, django app {django_asgi[0]}, {asgi_servers[0]}")
    if django and "django" in deps:
        hints.append(f"a Django project ({django[0]}) without gunicorn (add gunicorn to the dependencies)")
    elif found and wsgi and not any(exists(name) for name in ENTRY_SCRIPTS):
        hints.append(f"a WSGI app {found[0]} without gunicorn (add gunicorn to the dependencies)")
    if "streamlit" in deps:
        # A Streamlit app is a script `streamlit run` serves (`python app.py` only warns and exits).
        scripts = entry_scripts()
        script = next((n for n in ("streamlit_app.py", *ENTRY_SCRIPTS) if n in scripts), None)
        script = script or (scripts[0] if len(scripts) == 1 else None)
        if script:
            return (["/bin/sh", "-c", f'exec streamlit run {script} --server.port "${{PORT:-8080}}" '
                                      "--server.address 0.0.0.0 --server.headless true"],
                    f"rule: Streamlit, streamlit run {script}")
    if "gradio" in deps:
        # Gradio's launch() listens on 127.0.0.1:7860 unless its environment says otherwise.
        script = next((n for n in ENTRY_SCRIPTS if exists(n)), None) or (
            entry_scripts()[0] if len(entry_scripts()) == 1 else None)
        if script:
            return (["/bin/sh", "-c", 'GRADIO_SERVER_NAME="${GRADIO_SERVER_NAME:-0.0.0.0}" '
                                      'GRADIO_SERVER_PORT="${GRADIO_SERVER_PORT:-${PORT:-8080}}" '
                                      f"exec python {script}"],
                    f"rule: Gradio, python {script} listening on 0.0.0.0:$PORT")
    for name in ENTRY_SCRIPTS:
        if exists(name):
            return ["python", name], f"rule: {name}" + _dev_server_note(name, deps)
    package = main_package()
    if package:
        return ["python", "-m", package], f"rule: python -m {package}, the one package with a __main__.py"
    src_entry = src_start(deps)
    if src_entry:
        return src_entry
    scripts = entry_scripts()
    if len(scripts) == 1:
        return ["python", scripts[0]], f"rule: {scripts[0]}, the only top-level *.py"
    hints += site_source_hints()
    why = (f"no entry point in [project.scripts], no WSGI/ASGI app with a server to run it ("
           f"{', '.join(WSGI_SERVERS + ASGI_SERVERS)}), no {', '.join(ENTRY_SCRIPTS)} (at the top or in src/), no package with a __main__.py, and {len(scripts)} top-level *.py files "
           "to choose from")
    return None, why + "".join(f"; found {hint}" for hint in hints)


#: Python static site generators' sources: (config file names, what, the command that builds the
#: HTML, its output directory). Their requirements.txt (mkdocs-material) made the app a Python one
#: that failed with "no web process", not saying the site is to be built and served as files.
SITE_SOURCES = ((("mkdocs.yml", "mkdocs.yaml"), "an MkDocs site's source", "mkdocs build", "site"),
                (("pelicanconf.py",), "a Pelican site's source", "pelican content", "output"))


def site_source_hints() -> list[str]:
    """'an MkDocs site's source (mkdocs.yml)...' when the app is a site generator's source, which
    is no web process: its HTML is built first, then served as a static site."""
    hints = []
    for names, what, command, output in SITE_SOURCES:
        seen = [name for name in names if exists(name)]
        if seen:
            hints.append(f"{what} ({seen[0]}), no server: a static site once built: run `{command}` and build its "
                         f"output (pallet build ./{output}), served by pallet-static")
    return hints


# -- commands -------------------------------------------------------------------------------


def found_markers() -> list[str]:
    found = [name for name in MARKERS if "*" not in name and exists(name)]
    scripts = [name for name in top_level_scripts() if name not in found]  # setup.py is named once
    if scripts and (found or not (exists("package.json") or exists("go.mod"))):  # as bin/detect
        found.append(", ".join(scripts[:3]) + (f" (and {len(scripts) - 3} more *.py)" if len(scripts) > 3 else ""))
    return found


def procfile_web() -> bool:
    try:
        return any(re.match(r"^\s*web\s*:", ln) for ln in (APP / "Procfile").read_text(errors="replace").splitlines())
    except OSError:
        return False


def procfile_runs(script: str) -> str | None:
    """The Procfile's process type (not web) that runs ``script`` (``worker: python worker.py``),
    when there is no web line: then the script is that process, not a web process to guess."""
    if procfile_web():
        return None
    try:
        lines = (APP / "Procfile").read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        m = re.match(r"^\s*([A-Za-z0-9._-]+)\s*:(.*)$", line)
        if m and any(word.removeprefix("./") == script for word in m.group(2).split()):
            return m.group(1)
    return None


def cmd_detect() -> int:
    found = found_markers()
    if not found:
        print("no Python files: looked for " + ", ".join(MARKERS))
        return 100
    print("found " + ", ".join(found))
    try:
        installer, chosen = manager()
        notes = check_python() + vcs_version_notes(vcs_version_env())
        check_imports(installer)
        check_lock(installer)
    except AppError as exc:
        print(f"the build will fail: {exc}")  # still a Python app: say so at build time
        return 0
    root = "" if is_package() else ", dependencies only (the project is not a package)"
    members = [m.relative_to(APP).as_posix() for m in uv_members()] if installer == "uv" else []
    if members:
        root += f"; workspace members {', '.join(members)} (installed by uv sync)"
    how = {"uv": f"uv sync --locked (uv.lock){root}", "poetry": f"poetry install (poetry.lock){root}",
           "pdm": f"pip, from pdm.lock{root}", "pipenv": "pip, from Pipfile.lock",
           "pipfile": "pip, from Pipfile (no Pipfile.lock: not reproducible)", "pip": "pip install -r requirements.txt",
           "pip-project": f"pip install -e . ({chosen})", "pip-deps": "pip, [project].dependencies",
           "none": "nothing to install"}[installer]
    print(f"Python {stack_python()} from the stack" + (f" ({'; '.join(notes)})" if notes else "") + f"; {how}")
    command, why = start_command(declared_dependencies(installer))
    runs = procfile_runs(command[1]) if command and command[0] == "python" and len(command) == 2 else None
    if procfile_web():
        note = procfile_web_note()
        print("web: the Procfile's (rule: Procfile" + (f"; {note}" if note else "") + ")"
              + (f"; without it: {' '.join(command)} ({why.split('; warning:')[0]})" if command else ""))
    elif runs:
        print(f"no web process: {command[1]} is what the Procfile's {runs} runs (the Procfile has no web)")
    elif command:
        print(f"web: {' '.join(command)} ({why})")
    else:
        print("processes from the Procfile" if exists("Procfile") else
              f"the build will fail: no web process ({why}); add a Procfile (web: <command>)")
    return 0


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _layer_key(toml_path: Path) -> str | None:
    try:
        return tomllib.loads(toml_path.read_text()).get("metadata", {}).get("key")
    except (OSError, tomllib.TOMLDecodeError):
        return None


#: Dependency files of tools pallet does not install with (a conda environment) or of places it
#: does not look (requirements in a subdirectory): named when an app without a manifest imports
#: what only they would install.
#: requirements.txt under a name pip is never given: Windows' case, a typo, Notepad's extra .txt.
MISNAMED = ("Requirements.txt", "requirement.txt", "requirements.txt.txt", "requirements")
ELSEWHERE = ("environment.yml", "environment.yaml", "conda.yml", "requirements/*.txt", "*/requirements.txt",
             "requirements.in", *MISNAMED)


def _module_imports(path: Path) -> list[str]:
    """The top-level names a script imports unconditionally (module-level ``import``/``from``,
    not inside ``try`` or ``if``): without them it cannot start."""
    import ast

    try:
        tree = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError, OSError):
        return []
    names = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            names += [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module.split(".")[0])
    return list(dict.fromkeys(names))


def unprovided_imports() -> tuple[str, list[str]] | None:
    """(script, names) when the app installs nothing (no manifest) and the script that starts it
    (ours, or the Procfile's ``python FILE``) imports modules that are neither the standard
    library's nor the app's own: the image could only fail at start-up."""
    scripts = []
    command, _ = start_command(set())
    if command and command[0] == "python" and command[1].endswith(".py"):
        scripts.append(command[1])
    if exists("Procfile"):
        scripts += re.findall(r"\bpython3?\s+(?:-\S+\s+)*([\w./-]+\.py)\b", read_text("Procfile"))
    for script in dict.fromkeys(scripts):
        path = APP / script
        here = path.parent
        missing = [name for name in _module_imports(path)
                   if name not in sys.stdlib_module_names and name != "__future__"
                   and not any((d / name).is_dir() or (d / f"{name}.py").is_file() for d in (here, APP, APP / "src"))]
        if missing:
            return script, missing
    return None


def check_lock(installer: str) -> None:
    """AppError when a lock pallet installs from without its tool (Pipfile.lock, pdm.lock) lacks
    a dependency the manifest lists: one added without `pipenv lock`/`pdm lock` was left out of
    the image (ImportError as the app started), where ``pipenv install --deploy`` (Heroku) fails.
    By name only: a changed version range is the tool's to check."""
    if installer == "pipenv":
        wanted = {norm(n): n for n in read_toml("Pipfile").get("packages", {})}
        locked = {norm(n) for n in read_json("Pipfile.lock").get("default", {})}
        manifest, lock, relock = "Pipfile's [packages]", "Pipfile.lock", "pipenv lock"
    elif installer == "pdm":
        specs = read_toml("pyproject.toml").get("project", {}).get("dependencies", []) or []
        wanted = {norm(m.group(1)): m.group(1) for spec in specs if isinstance(spec, str)
                  for m in [_SPEC.match(spec)] if m}
        locked = {norm(p.get("name", "")) for p in read_toml("pdm.lock").get("package", [])
                  if "default" in p.get("groups", ["default"])}
        manifest, lock, relock = "pyproject.toml's dependencies", "pdm.lock", "pdm lock"
    else:
        return
    missing = [name for key, name in wanted.items() if key not in locked]
    if missing:
        raise AppError(f"{lock} is older than {manifest}: it does not have {', '.join(sorted(missing))}; run "
                       f"`{relock}` and commit {lock}")


def check_imports(installer: str) -> None:
    """AppError when the app installs nothing but its start script imports what it would need."""
    lacking = unprovided_imports() if installer == "none" else None
    if not lacking:
        return
    script, names = lacking
    others = sorted({p.relative_to(APP).as_posix() for glob in ELSEWHERE for p in APP.glob(glob) if p.is_file()})
    # requirements/dev.txt sorts first but brings the test tools: the production file is the one to
    # include (bin/detect names the same one for an app with no Python file at the top).
    others.sort(key=lambda rel: not re.search(r"/(prod|production|base|common|main)[^/]*\.txt$", rel))
    misnamed = [rel for rel in others if rel in MISNAMED]
    if misnamed:  # Windows' case, a typo, Notepad's extra .txt: pip on Linux reads requirements.txt only
        raise AppError(f"{script} imports {', '.join(names)}, and no requirements.txt installs it: found "
                       f"{misnamed[0]}, which is not read (the name is requirements.txt, exactly): rename it "
                       f"(git mv {misnamed[0]} requirements.txt)")
    raise AppError(f"{script} imports {', '.join(names)}, which no manifest installs (no requirements.txt, "
                   "pyproject.toml, Pipfile, uv.lock, poetry.lock, pdm.lock or setup.py at the top of the app)"
                   + (f"; found {', '.join(others)}, which pallet does not install from" if others else "")
                   + ": list the packages in requirements.txt"
                   + (f" (-r {others[0]})" if others and others[0].endswith(".txt") else ""))


def _glob_regex(pattern: str) -> str:
    """A glob as pallet's inputs read it (builder/lifecycle/inputs.py): ``*`` stays within a
    directory, ``**/`` is any depth (the top included), ``**`` anything."""
    out = re.escape(pattern).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
    return out.replace(r"\?", "[^/]")


def watched(rel: str, bp_dir: str) -> bool:
    """Whether ``rel`` is among this buildpack's declared inputs (so editing it runs the buildpack)."""
    meta = tomllib.loads(Path(bp_dir, "buildpack.toml").read_text()).get("metadata", {}).get("pallet", {})
    return any(re.fullmatch(_glob_regex(glob), rel) or rel.startswith(glob.rstrip("/") + "/")
               for glob in meta.get("inputs", []))


def cmd_plan(layers: str, bp_dir: str) -> int:
    try:
        installer, chosen = manager()
        notes = check_python()
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    key = hashlib.sha256()
    key.update(f"python {stack_python()}\ninstaller {installer}\n".encode())
    for name in MANIFESTS:
        if exists(name):
            key.update(f"{name} {file_digest(APP / name)}\n".encode())
    try:
        check_imports(installer)
        check_lock(installer)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    scm = vcs_version_env()
    for given in given_vcs_versions():
        key.update(f"version {given}\n".encode())
    notes += vcs_version_notes(scm)
    included = requirement_files()[1:] if installer == "pip" else []
    for name in included:
        key.update(f"included {name} {file_digest(APP / name)}\n".encode())
    unwatched = [name for name in included if not watched(name, bp_dir)]
    if unwatched:
        notes.append(f"warning: requirements.txt includes {', '.join(unwatched)}, which pallet does not watch: "
                     "a change there alone does not rebuild the virtual environment; move it to requirements/ "
                     "or name it requirements-*.txt")
    own = Path(bp_dir)
    for rel in ("bin/build", "lib/pyapp.py"):
        key.update(f"buildpack {rel} {file_digest(own / rel)}\n".encode())
    key_hex = key.hexdigest()
    # The venv that came back from the cache is current: the web process can be written now,
    # and bin/build has nothing else to do (one python3 start on the fast path).
    venv = Path(layers, "venv")
    reuse = venv.is_dir() and _layer_key(Path(layers, "venv.toml")) == key_hex
    if reuse:
        import contextlib

        with contextlib.redirect_stdout(sys.stderr):  # stdout is for bin/build's eval
            if cmd_launch(layers, str(venv)) != 0:
                return 1
    out = {"INSTALLER": installer, "CHOSEN": chosen, "PY_VERSION": stack_python(),
           "NO_ROOT": "" if is_package() else "1",
           "PY_MINOR": ".".join(stack_python().split(".")[:2]), "KEY": key_hex,
           "NOTES": "; ".join(notes), "REUSE": "1" if reuse else "", "SCM_VERSION_ENV": f"{scm[0]}=0.0.0" if scm else ""}
    for name, value in out.items():
        print(f"{name}={shlex.quote(value)}")
    return 0


def cmd_requirements(mode: str, out: str) -> int:
    lines = []
    if mode == "pipenv":
        data = read_json("Pipfile.lock")
        local = []
        for name, entry in sorted(data.get("default", {}).items()):
            path = _local_path(entry)
            if path:
                local.append(f"-e {path}")
                continue
            if "version" not in entry:
                print(f"error: Pipfile.lock: {name} is not a pinned registry package or a directory of the app (VCS "
                      "and URL dependencies are not supported)", file=sys.stderr)
                return 1
            # "*": pipenv locks no version (and no hashes) for a package whose marker is false
            # where it locked (colorama ; sys_platform == 'win32'); pip skips it by the marker.
            version = entry["version"].strip()
            line = f"{name}{'' if version in ('*', '') else version}"
            if entry.get("markers"):
                line += f" ; {entry['markers']}"
            lines.append(line + "".join(f" --hash={h}" for h in entry.get("hashes", [])))
        # The app's own packages (pipenv install -e ./libs/greet, or -e . for the project), after
        # the locked ones: pip refuses an editable requirement among hashed ones. Editable, so
        # their code is the app's, current even when the venv is reused.
        Path(f"{out}.local").write_text("".join(f"{line}\n" for line in local))
    elif mode == "pdm":
        lines = pdm_requirements()
    elif mode == "pipfile":
        lines = pipfile_requirements()
    else:  # pip-deps
        lines = list(read_toml("pyproject.toml").get("project", {}).get("dependencies", []))
    Path(out).write_text("\n".join(lines) + "\n")
    return 0


def _local_path(entry: dict) -> str | None:
    """The directory of the app a Pipfile.lock entry installs (``{"path": "./libs/greet",
    "editable": true}``) as ``./DIR``, or None for any other entry; one outside the app (which
    the build does not have) is an AppError."""
    path = entry.get("path") if isinstance(entry, dict) else None
    if not isinstance(path, str) or "file" in entry or "git" in entry:
        return None
    rel = os.path.normpath(path)
    if os.path.isabs(rel) or rel == ".." or rel.startswith(".." + os.sep) or not (APP / rel).is_dir():
        raise AppError(f"Pipfile.lock installs {path}, which is not a directory of the app (the build has the app's "
                       "directory only)")
    return "." if rel == "." else f"./{rel}"


def pdm_requirements() -> list[str]:
    """pdm.lock's default group as pinned, hashed requirements (pip installs them with
    --no-deps: the lock already has every dependency). No PDM is needed to install."""
    lock = read_toml("pdm.lock")
    old_hashes = lock.get("metadata", {}).get("files", {})  # lock files before PDM 2.0
    lines = []
    for pkg in lock.get("package", []):
        if "default" not in pkg.get("groups", ["default"]):
            continue
        name, version = pkg.get("name"), pkg.get("version")
        if not name or not version or any(k in pkg for k in ("path", "git", "url", "editable")):
            raise AppError(f"pdm.lock: {name or pkg} is not a pinned registry package (path, VCS and URL "
                           "dependencies are not supported)")
        line = f"{name}=={version}" + (f" ; {pkg['marker']}" if pkg.get("marker") else "")
        files = pkg.get("files") or old_hashes.get(f"{name} {version}", [])
        lines.append(line + "".join(f" --hash={f['hash']}" for f in files if f.get("hash")))
    return lines


def pipfile_requirements() -> list[str]:
    """Pipfile's [packages] as requirements, resolved by pip at build time (no lock)."""
    lines = []
    for name, spec in read_toml("Pipfile").get("packages", {}).items():
        if isinstance(spec, str):
            lines.append(name if spec.strip() in ("*", "") else f"{name}{spec.strip()}")
            continue
        if not isinstance(spec, dict) or any(k in spec for k in ("git", "path", "file", "editable")):
            raise AppError(f"Pipfile: {name} is not a registry package (path, VCS and file dependencies need "
                           "Pipfile.lock: run `pipenv lock`)")
        extras = f"[{','.join(spec['extras'])}]" if spec.get("extras") else ""
        version = spec.get("version", "*")
        line = f"{name}{extras}{'' if version == '*' else version}"
        lines.append(line + (f" ; {spec['markers']}" if spec.get("markers") else ""))
    return lines


def toml_str(s: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, but JSON leaves DEL as it is (invalid TOML)."""
    return json.dumps(s, ensure_ascii=False).replace("\x7f", "\\u007f")


def gunicorn_env(venv: Path, installed: dict[str, str]) -> None:
    """gunicorn >= 25.1 opens a control socket under $HOME, read-only in the image, and logs an
    error at every start: its default moves to /tmp for every gunicorn command, a Procfile's
    included (``GUNICORN_CMD_ARGS``; a value given at run time replaces it)."""
    path = venv / "env.launch" / "GUNICORN_CMD_ARGS.default"
    if _version_tuple(installed.get("gunicorn", "0")) >= (25, 1):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("--control-socket /tmp/gunicorn.ctl")
    elif path.exists():
        path.unlink()


#: The module a console script pip or uv wrote runs (``from gunicorn.app.wsgiapp import run``).
_SCRIPT_ENTRY = re.compile(r"^from ([A-Za-z_][\w.]*) import [A-Za-z_]\w*\s*$", re.M)


def _program(words: list[str]) -> str | None:
    """The program a command runs: past variable assignments and ``exec``; inside ``sh -c``."""
    if len(words) > 2 and words[0] in ("/bin/sh", "sh", "/bin/bash", "bash") and words[1] == "-c":
        try:
            words = shlex.split(words[2])
        except ValueError:
            return None
    words = [w for w in words if w != "exec"]
    while words and re.match(r"^[A-Za-z_]\w*=", words[0]):
        words = words[1:]
    return words[0] if words else None


def start_failure(venv: Path, words: list[str], installed: dict[str, str]) -> str | None:
    """Why the web process's program cannot start in the image, if importing the module its
    console script runs fails in the venv just installed: an image that builds and then dies at
    every start is worse than a build that stops and says why. The classic case is time: an
    unpinned setuptools (81 and newer) no longer has pkg_resources, which old servers import
    (gunicorn 20). Only the server's module is imported, in isolated mode (-I), never the app,
    and without writing byte-code (-B): lib/bytecode.py compiles the venv meanwhile, and a .pyc
    this import wrote first (timestamp-based) made two builds of one source two images."""
    program = _program(words)
    script = venv / "bin" / program if program and "/" not in program else None
    if script is None or not script.is_file():
        return None
    try:
        head = script.read_text(errors="replace")[:4096]
    except OSError:
        return None
    entry = _SCRIPT_ENTRY.search(head)
    if not head.startswith("#!") or not entry:
        return None
    import subprocess

    try:
        done = subprocess.run([str(venv / "bin" / "python"), "-I", "-B", "-c", "import importlib, sys; "
                               "importlib.import_module(sys.argv[1])", entry.group(1)],
                              cwd="/", capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    last = (done.stderr.strip().splitlines() or [""])[-1][:300]
    if done.returncode == 0 or not re.match(r"^(ModuleNotFoundError|ImportError)\b", last):
        return None
    why = f"the web process's {program} cannot start: importing {entry.group(1)} fails ({last})"
    if "'pkg_resources'" in last and "setuptools" in installed:
        why += (f"; pkg_resources is gone from setuptools 81 and newer, and setuptools {installed['setuptools']} "
                f"was installed: require a newer {program} that does not import it, or setuptools<81 beside it")
    return why


def cmd_startcheck(layers: str, venv: str) -> int:
    """start_failure for the web process (the Procfile's, else the one launch wrote), run once the
    venv's byte-code is compiled: the import then reads .pyc files instead of compiling the
    server's sources, and no longer competes with the compilation for the CPU (a cold build of
    a Flask app took a third of a second longer)."""
    if procfile_web():
        words = procfile_web_words()
    else:
        try:
            processes = tomllib.loads(Path(layers, "launch.toml").read_text()).get("processes", [])
        except (OSError, tomllib.TOMLDecodeError):
            return 0
        words = next((p.get("command", []) for p in processes if isinstance(p, dict) and p.get("type") == "web"), [])
    failure = start_failure(Path(venv), [w for w in words if isinstance(w, str)], installed_distributions(Path(venv)))
    if failure:
        print(f"error: {failure}", file=sys.stderr)
        return 1
    return 0


def cmd_launch(layers: str, venv: str) -> int:
    installed = installed_distributions(Path(venv))
    gunicorn_env(Path(venv), installed)
    command, why = start_command(installed, Path(venv) / "bin")
    runs = procfile_runs(command[1]) if command and command[0] == "python" and len(command) == 2 else None
    if runs:
        print(f"no web process: {command[1]} is what the Procfile's {runs} runs (the Procfile has no web)")
        return 0
    if procfile_web_note():
        print(procfile_web_note().replace("warning: ", "warning: the Procfile's web process: ", 1))
    if procfile_web():  # the Procfile's web process wins: warnings about this one would mislead
        why = why.split("; warning:")[0]
    if command is None:
        if not exists("Procfile"):
            # An image with nothing to start is no app: fail the build, saying what was found.
            print(f"error: no web process: {why}. Add a Procfile (web: <command>)", file=sys.stderr)
            return 1
        return 0
    print(f"web process: {' '.join(command)} ({why})")
    text = ("[[processes]]\ntype = \"web\"\ncommand = [" + ", ".join(toml_str(c) for c in command) + "]\n"
            "default = true\n")
    Path(layers, "launch.toml").write_text(text)
    return 0


#: What a failed build of a package from source said, and what it means here.
_BUILD_FAILURES = (
    (r"pg_config executable not found|pg_config is required", "pg_config (Debian's libpq-dev)"),
    (r"mysql_config not found|Can not find valid pkg-config name", "MySQL's client headers (Debian's "
                                                                    "default-libmysqlclient-dev)"),
    (r"can't find Rust compiler|Cargo, the Rust package manager, is not installed", "a Rust compiler"),
)
_FAILED_PACKAGE = (
    re.compile(r"Failed building wheel for ([A-Za-z0-9._-]+)"),
    re.compile(r"Failed to build `([A-Za-z0-9._-]+)"),  # uv
    re.compile(r"problem with poetry but with ([A-Za-z0-9._-]+) \("),
    re.compile(r"Failed to build (?!installable)([A-Za-z0-9._-]+)"),
)
#: An sdist the installer fetched: its name (hyphens and all: psycopg2-binary-2.9.9.tar.gz) and version.
_SDIST = re.compile(r"(?:Downloading|Using cached|Processing) (?:\S*/)?([A-Za-z0-9][A-Za-z0-9_.-]*?)-(\d[\w.!+]*)"
                    r"\.(?:tar\.gz|zip)\b")
_UV_PIN = re.compile(r"Failed to build `[A-Za-z0-9._-]+==([^`\s]+)`")
#: A wheel's file name: ... -{python tag}-{abi tag}-{platform tag}.whl
_WHEEL = re.compile(r"^(?P<name>[^-]+)-(?P<version>[^-]+)(?:-\d[^-]*)?-(?P<py>[^-]+)-(?P<abi>[^-]+)-(?P<plat>[^-]+)\.whl$")


_GIT_FAILED = re.compile(r"fatal: unable to access '([^']+)': ([^\n]+)")
_INDEX_FAILED = re.compile(r"NewConnectionError|ProxyError|ConnectTimeoutError|NameResolutionError")
_INDEXES = re.compile(r"Looking in indexes: ([^\n]+)")
_NOT_FOUND = re.compile(r"Could not find a version that satisfies the requirement (\S+) \(from versions: none\)")


def _unreachable(text: str) -> str | None:
    """What the install could not reach, when that is why it failed: a git dependency's
    repository, or the package index that has a requirement (the build reaches PyPI through the
    machine's proxy; a private index or forge may be out of its reach)."""
    git = _GIT_FAILED.search(text)
    if git:
        return (f"a dependency is fetched with git from {git.group(1)}, which the build cannot reach ({git.group(2).strip()}): "
                "publish it to a package index the build reaches, or put it in the app (a directory or a wheel named "
                "by path in requirements.txt)")
    missing, indexes = _NOT_FOUND.search(text), _INDEXES.search(text)
    if missing and _INDEX_FAILED.search(text):
        where = "the package index"
        if indexes:  # pip names the indexes it was given (--index-url); credentials left out
            where += " " + ", ".join(re.sub(r"//[^/@]*@", "//", u.strip()) for u in indexes.group(1).split(","))
        return (f"{missing.group(1)} was not found: {where} could not be reached from the build (above); use an "
                "index the build reaches (PyPI), or put the package in the app")
    return None


_OTHER_PYTHON = re.compile(r"Ignored the following versions that require a different python version: ([^\n]*)")
_NO_MATCH = re.compile(r"No matching distribution found for ([A-Za-z0-9._-]+)(?:\[[^\]]*\])?==([^\s;,]+)")


def _needs_other_python(text: str) -> str | None:
    """When pip found no version of a pin because that version requires another Python
    (``django==6.0``: Requires-Python >=3.12, on a stack with 3.11): what it requires."""
    missing, ignored = _NO_MATCH.search(text), _OTHER_PYTHON.search(text)
    if not missing or not ignored:
        return None
    name, version = missing.groups()
    for entry in ignored.group(1).split("; "):
        got, _, spec = entry.partition(" Requires-Python ")
        if got.strip() == version and spec:
            minor = ".".join(stack_python().split(".")[:2])
            return (f"{name}=={version} requires Python {spec.strip()} (its Requires-Python), and the stack "
                    f"{_stack_name()} has Python {stack_python()}: require a version of {name} that supports Python "
                    f"{minor}, or build on a stack with a Python it supports (a .python-version file names the Python "
                    "and pallet picks the stack)")
    return None


def python_headers() -> bool:
    """Whether the build image has the stack Python's C headers (Debian's python3-dev)."""
    import sysconfig

    return Path(sysconfig.get_paths()["include"], "Python.h").is_file()


#: Packages that publish no wheels at all, and what the same thing is called with wheels (or in
#: pure Python): what to require instead, named, since no version of them has a wheel.
PREBUILT = {"uwsgi": "pyuwsgi (the same server, published as wheels)",
            "psycopg2": "psycopg2-binary (the same driver, published as wheels) or psycopg[binary]",
            "mysqlclient": "PyMySQL (pure Python; pymysql.install_as_MySQLdb() where MySQLdb is imported)"}


def cmd_diagnose(log: str) -> int:
    """After a failed install: what the build could not reach, a pin whose version requires
    another Python, or, when a package was built from its source and that failed for
    lack of headers or tools (a stack's build image may lack Python's headers, pg_config, Rust),
    one line saying which package and what to do, after the installer's own output."""
    try:
        text = Path(log).read_text(errors="replace")
    except OSError:
        return 0
    said = _unreachable(text) or _needs_other_python(text)
    if said:
        print(f"error: {said}", file=sys.stderr)
        return 0
    headers = python_headers()
    needs = [] if headers or "Python.h: No such file or directory" not in text and not any(
        re.search(pattern, text) for pattern, _ in _BUILD_FAILURES) else ["Python's C headers (Python.h)"]
    needs += [what for pattern, what in _BUILD_FAILURES if re.search(pattern, text)]
    if not needs:
        return 0
    sdists = _SDIST.findall(text)
    package = next((m.group(1) for rx in _FAILED_PACKAGE for m in [rx.search(text)] if m), None)
    if package is None:
        package = sdists[-1][0] if sdists else "a dependency"
    version = next((v for name, v in reversed(sdists) if norm(name) == norm(package)), None)
    uv_pin = _UV_PIN.search(text)
    version = version or (uv_pin.group(1) if uv_pin else None)
    minor = ".".join(stack_python().split(".")[:2])
    alternative = PREBUILT.get(norm(package), "a pure-Python or prebuilt alternative")
    others = wheel_pythons(package, version, _index_of(text)) if version else None
    if others:
        has = f"; {package} {version} has wheels for Python {_span(others)}"
        stack = ("or ask for a Python it has wheels for in .python-version (pallet then builds on a stack that has "
                 "that Python, or says which it has)")
    else:
        has, stack = "", "or build on a stack whose Python it has wheels for"
    print(f"error: {package} was built from its source (no wheel of that version for Python {minor} on this "
          f"platform{has}) and that needs {' and '.join(needs)}, which the build image does not have: require a "
          f"version of {package} with a wheel for Python {minor} (cp{minor.replace('.', '')}, manylinux), or "
          f"{alternative}, {stack}", file=sys.stderr)
    return 0


def _index_of(text: str) -> str:
    """The package index the installer used: the first one it names (--index-url), else PyPI."""
    indexes = _INDEXES.search(text)
    return indexes.group(1).split(",")[0].strip() if indexes else "https://pypi.org/simple"


def _span(minors: list[int]) -> str:
    """3.7 to 3.12 for a run of Python 3 minors; each named when there are gaps."""
    if minors == list(range(minors[0], minors[-1] + 1)) and len(minors) > 2:
        return f"3.{minors[0]} to 3.{minors[-1]}"
    return ", ".join(f"3.{m}" for m in minors)


def wheel_pythons(package: str, version: str, index: str) -> list[int] | None:
    """The Python 3 minors that ``package`` ``version`` publishes CPython wheels for on this
    machine's platform (manylinux, its architecture), read from the index's Simple API (PEP 691
    JSON, else its HTML page): so the error can say which Pythons would install it without a
    compiler. None when the index cannot be asked (credentials in its URL are not sent again;
    no network: the error stays as it was without this)."""
    import platform
    import urllib.request

    if "@" in index.split("//", 1)[-1].split("/", 1)[0]:
        return None
    url = f"{index.rstrip('/')}/{re.sub(r'[-_.]+', '-', package).lower()}/"
    request = urllib.request.Request(url, headers={
        "Accept": "application/vnd.pypi.simple.v1+json, text/html;q=0.1", "User-Agent": "pallet/python"})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            body = response.read(64 << 20).decode(errors="replace")
            kind = response.headers.get("Content-Type", "")
    except (OSError, ValueError):
        return None
    try:
        names = ([f.get("filename", "") for f in json.loads(body).get("files", [])] if "json" in kind
                 else re.findall(r">\s*([^<>\s]+\.whl)\s*<", body))
    except (ValueError, AttributeError):
        return None
    arch, minors = platform.machine(), set()
    for name in names:
        wheel = _WHEEL.match(str(name))
        if (not wheel or norm(wheel["name"]) != norm(package) or wheel["version"] != version
                or not any(p.startswith("manylinux") and p.endswith(arch) for p in wheel["plat"].split("."))):
            continue
        minors.update(int(py[3:]) for py in wheel["py"].split(".") if py.startswith("cp3") and py[3:].isdigit())
    return sorted(minors) or None


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    try:
        if cmd == "detect":
            return cmd_detect()
        if cmd == "plan":
            return cmd_plan(*args)
        if cmd == "requirements":
            return cmd_requirements(*args)
        if cmd == "launch":
            return cmd_launch(*args)
        if cmd == "startcheck":
            return cmd_startcheck(*args)
        if cmd == "diagnose":
            return cmd_diagnose(*args)
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, AttributeError, KeyError, OSError, RecursionError) as exc:
        # A file of the app shaped as nothing above expects (hostile input): one line, not a traceback.
        print(f"error: the app's files could not be read: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"pyapp.py: unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
