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
ENTRY_ATTRS = ("app", "application")


class AppError(Exception):
    """The app cannot be built as it is; the message says what to change."""


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


#: The tables (and lists of strings) of pyproject.toml this module reads, checked once when it is
#: read, so a hostile or mistyped file is one clear error rather than a crash where it is used.
TABLES = ("project", "project.scripts", "build-system", "tool", "tool.poetry", "tool.poetry.dependencies",
          "tool.poetry.scripts", "tool.uv", "tool.pdm", "tool.setuptools", "tool.hatch", "tool.hatch.build",
          "tool.hatch.build.targets", "tool.hatch.build.targets.wheel")
STRING_LISTS = ("project.dependencies",)
STRINGS = ("project.name", "tool.poetry.name")


def _at(data: dict, dotted: str) -> object:
    for key in dotted.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def check_pyproject(data: dict, name: str) -> dict:
    for dotted in TABLES:
        if _at(data, dotted) is not None and not isinstance(_at(data, dotted), dict):
            raise AppError(f"{name}: [{dotted}] must be a table, not {type(_at(data, dotted)).__name__}")
    for dotted in STRING_LISTS:
        value = _at(data, dotted)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise AppError(f"{name}: {dotted} must be a list of strings")
    for dotted in STRINGS:
        if _at(data, dotted) is not None and not isinstance(_at(data, dotted), str):
            raise AppError(f"{name}: {dotted} must be a string")
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
    if not isinstance(data, dict):
        raise AppError(f"{name} must hold a JSON object, not {type(data).__name__}")
    return data


def read_toml(name: str) -> dict:
    try:
        data = tomllib.loads((APP / name).read_text())
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise AppError(f"{name} is not valid TOML: {exc}") from None
    return check_pyproject(data, name) if name == "pyproject.toml" else data


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
    name = pyproject.get("project", {}).get("name") or poetry.get("name") or ""
    module = re.sub(r"[-.]+", "_", name).lower()
    if not module:
        return False
    return any((APP / d / module).is_dir() or (APP / d / f"{module}.py").is_file() for d in (".", "src"))


# -- Python version -----------------------------------------------------------------------


def stack_python() -> str:
    return ".".join(str(x) for x in sys.version_info[:3])


def _stack_name() -> str:
    return os.environ.get("CNB_STACK_ID") or "this stack"


def check_python() -> list[str]:
    """The app's Python requests, each checked against the stack's; AppError if one fails."""
    have = stack_python()
    notes = []
    for name in (".python-version", "runtime.txt"):
        if not exists(name):
            continue
        lines = [ln.strip() for ln in read_text(name).splitlines()]
        wanted = next((ln for ln in lines if ln and not ln.startswith("#")), "")
        version = re.sub(r"^(c?python)-?", "", wanted)
        if not re.fullmatch(r"3(\.\d+){0,2}", version):
            raise AppError(f"{name} asks for {wanted!r}; only CPython versions like 3.11 are supported "
                           f"(the stack {_stack_name()} has Python {have})")
        want, got = version.split("."), have.split(".")
        if got[: len(want)] == want:
            notes.append(f"{name} asks for Python {version}")
        elif len(want) == 3 and got[:2] == want[:2]:
            # A patch level the stack does not have: the same minor release is compatible (the
            # stack's Debian package gets the security fixes, through rebase).
            notes.append(f"notice: {name} asks for Python {version}; the stack has {have}, the same "
                         f"{'.'.join(want[:2])}")
        else:
            raise AppError(f"{name} asks for Python {version}, but the stack {_stack_name()} has Python {have}: "
                           f"build without --stack (pallet picks the shipped stack with that Python), change "
                           f"{name} to {'.'.join(have.split('.')[:2])}, or build on a stack with Python {version}")
    spec = read_toml("pyproject.toml").get("project", {}).get("requires-python")
    if spec:
        try:
            from pip._vendor.packaging.specifiers import InvalidSpecifier, SpecifierSet
        except ImportError:
            import site  # run with -S (faster start): add the system's site-packages now

            sys.path.extend(p for p in site.getsitepackages() if p not in sys.path)
            try:
                from pip._vendor.packaging.specifiers import InvalidSpecifier, SpecifierSet
            except ImportError:  # a stack without pip: nothing to check with
                return notes
        try:
            ok = SpecifierSet(spec).contains(have, prereleases=True)
        except InvalidSpecifier:
            raise AppError(f"pyproject.toml: requires-python {spec!r} is not a valid version specifier") from None
        if not ok:
            raise AppError(f"pyproject.toml requires-python {spec!r}, but the stack {_stack_name()} has "
                           f"Python {have}: widen requires-python, or build on another stack")
        notes.append(f"requires-python {spec}")
    return notes


# -- dependencies and the start command ------------------------------------------------------


def declared_dependencies(installer: str) -> set[str]:
    """Names the manifests declare (direct and, from lock files, locked); for detect's guess."""
    names: set[str] = set()
    pyproject = read_toml("pyproject.toml")
    for spec in pyproject.get("project", {}).get("dependencies", []) or []:
        m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
        if m:
            names.add(norm(m.group(1)))
    names |= {norm(n) for n in pyproject.get("tool", {}).get("poetry", {}).get("dependencies", {}) or {}}
    if installer == "pip":
        for line in (APP / "requirements.txt").read_text(errors="replace").splitlines():
            m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line)
            if m and not line.lstrip().startswith("-"):
                names.add(norm(m.group(1)))
    if installer == "pipenv":
        data = read_json("Pipfile.lock")
        names |= {norm(n) for n in data.get("default", {})}
    if installer in ("uv", "poetry", "pdm"):
        lock = read_toml(f"{installer}.lock")
        group = {"uv": None, "poetry": "main", "pdm": "default"}[installer]
        names |= {norm(p.get("name", "")) for p in lock.get("package", [])
                  if group is None or group in (p.get("groups") or [group])}
    if installer == "pipfile":
        names |= {norm(n) for n in read_toml("Pipfile").get("packages", {})}
    return names


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


def _defines_app(path: Path) -> str | None:
    """The module-level WSGI/ASGI callable a file defines (``app`` or ``application``)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    for attr in ENTRY_ATTRS:
        if re.search(rf"^{attr}\s*(:[^=\n]*)?=", text, re.M):
            return attr
    return None


def _module(candidates: tuple[str, ...]) -> str | None:
    for name in candidates:
        attr = _defines_app(APP / name)
        if attr:
            return f"{name[:-3]}:{attr}"
    return None


def _django_wsgi() -> str | None:
    if not exists("manage.py"):
        return None
    found = sorted(p.parent.name for p in APP.glob("*/wsgi.py"))
    return f"{found[0]}.wsgi:application" if len(found) == 1 else None


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
    script entry point; a WSGI/ASGI app with gunicorn/uvicorn; main.py, app.py, bot.py,
    server.py; the only top-level *.py."""
    versions = deps if isinstance(deps, dict) else {}
    deps = set(deps)
    entry = script_entry()
    if entry:
        name, target, table = entry
        if bin_dir is None and is_package() or bin_dir is not None and (bin_dir / name).is_file():
            return [name], f"rule: the only entry point in {table}, {name} = {target!r}"
        # Not installed as a package (dependencies only): call the function from the source.
        module, func = target.split(":", 1)
        code = f"import sys; from {module} import {func.split('.')[0]} as f; sys.exit(f{func[len(func.split('.')[0]):]}())"
        return ["python", "-c", code], f"rule: the only entry point in {table}, {name} = {target!r}, from the source"
    asgi = sorted(deps & set(ASGI_FRAMEWORKS))
    wsgi = sorted(deps & set(WSGI_FRAMEWORKS))
    if asgi:
        module = _module(("asgi.py", "main.py", "app.py"))
        if module and "uvicorn" in deps:
            return (["/bin/sh", "-c", f'exec uvicorn {module} --host 0.0.0.0 --port "${{PORT:-8080}}"'],
                    f"rule: ASGI, {asgi[0]} app {module}, uvicorn")
    if "gunicorn" in deps:
        module = _module(("wsgi.py", "app.py", "main.py")) or _django_wsgi()
        if module:
            command = ["gunicorn", module]
            if _version_tuple(versions.get("gunicorn", "0")) >= (25, 1):
                # gunicorn >= 25.1 opens a control socket under $HOME, which is read-only in the image
                command[1:1] = ["--control-socket", "/tmp/gunicorn.ctl"]
            return command, f"rule: WSGI, {wsgi[0] if wsgi else 'WSGI'} app {module}, gunicorn"
    for name in ENTRY_SCRIPTS:
        if exists(name):
            return ["python", name], f"rule: {name}"
    scripts = top_level_scripts()
    if len(scripts) == 1:
        return ["python", scripts[0]], f"rule: {scripts[0]}, the only top-level *.py"
    return None, ("no entry point in [project.scripts], no WSGI/ASGI app with gunicorn or uvicorn, no "
                  f"{', '.join(ENTRY_SCRIPTS)}, and {len(scripts)} top-level *.py files to choose from")


# -- commands -------------------------------------------------------------------------------


def found_markers() -> list[str]:
    found = [name for name in MARKERS if "*" not in name and exists(name)]
    scripts = top_level_scripts()
    if scripts and (found or not (exists("package.json") or exists("go.mod"))):  # as bin/detect
        found.append(", ".join(scripts[:3]) + (f" (and {len(scripts) - 3} more *.py)" if len(scripts) > 3 else ""))
    return found


def procfile_web() -> bool:
    try:
        return any(re.match(r"^web\s*:", ln) for ln in (APP / "Procfile").read_text(errors="replace").splitlines())
    except OSError:
        return False


def cmd_detect() -> int:
    found = found_markers()
    if not found:
        print("no Python files: looked for " + ", ".join(MARKERS))
        return 100
    print("found " + ", ".join(found))
    try:
        installer, chosen = manager()
        notes = check_python()
    except AppError as exc:
        print(f"the build will fail: {exc}")  # still a Python app: say so at build time
        return 0
    root = "" if is_package() else ", dependencies only (the project is not a package)"
    how = {"uv": f"uv sync --frozen (uv.lock){root}", "poetry": f"poetry install (poetry.lock){root}",
           "pdm": f"pip, from pdm.lock{root}", "pipenv": "pip, from Pipfile.lock",
           "pipfile": "pip, from Pipfile (no Pipfile.lock: not reproducible)", "pip": "pip install -r requirements.txt",
           "pip-project": f"pip install -e . ({chosen})", "pip-deps": "pip, [project].dependencies",
           "none": "nothing to install"}[installer]
    print(f"Python {stack_python()} from the stack" + (f" ({'; '.join(notes)})" if notes else "") + f"; {how}")
    command, why = start_command(declared_dependencies(installer))
    if procfile_web():
        print("web: the Procfile's (rule: Procfile)" + (f"; without it: {' '.join(command)} ({why})" if command else ""))
    elif command:
        print(f"web: {' '.join(command)} ({why})")
    else:
        print("processes from the Procfile" if exists("Procfile") else f"no web process from Python ({why})")
    return 0


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _layer_key(toml_path: Path) -> str | None:
    try:
        return tomllib.loads(toml_path.read_text()).get("metadata", {}).get("key")
    except (OSError, tomllib.TOMLDecodeError):
        return None


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
            cmd_launch(layers, str(venv))
    out = {"INSTALLER": installer, "CHOSEN": chosen, "PY_VERSION": stack_python(),
           "NO_ROOT": "" if is_package() else "1",
           "PY_MINOR": ".".join(stack_python().split(".")[:2]), "KEY": key_hex,
           "NOTES": "; ".join(notes), "REUSE": "1" if reuse else ""}
    for name, value in out.items():
        print(f"{name}={shlex.quote(value)}")
    return 0


def cmd_requirements(mode: str, out: str) -> int:
    lines = []
    if mode == "pipenv":
        data = read_json("Pipfile.lock")
        for name, entry in sorted(data.get("default", {}).items()):
            if "version" not in entry:
                print(f"error: Pipfile.lock: {name} is not a pinned registry package (path, VCS and editable "
                      "dependencies are not supported)", file=sys.stderr)
                return 1
            line = f"{name}{entry['version']}"
            if entry.get("markers"):
                line += f" ; {entry['markers']}"
            lines.append(line + "".join(f" --hash={h}" for h in entry.get("hashes", [])))
    elif mode == "pdm":
        lines = pdm_requirements()
    elif mode == "pipfile":
        lines = pipfile_requirements()
    else:  # pip-deps
        lines = list(read_toml("pyproject.toml").get("project", {}).get("dependencies", []))
    Path(out).write_text("\n".join(lines) + "\n")
    return 0


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
    return json.dumps(s, ensure_ascii=False)


def cmd_launch(layers: str, venv: str) -> int:
    command, why = start_command(installed_distributions(Path(venv)), Path(venv) / "bin")
    if command is None:
        if not exists("Procfile"):
            print(f"no web process: {why}; add a Procfile (web: <command>)")
        return 0
    print(f"web process: {' '.join(command)} ({why})")
    text = ("[[processes]]\ntype = \"web\"\ncommand = [" + ", ".join(toml_str(c) for c in command) + "]\n"
            "default = true\n")
    Path(layers, "launch.toml").write_text(text)
    return 0


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
    except AppError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, AttributeError, KeyError, OSError) as exc:
        # A file of the app shaped as nothing above expects (hostile input): one line, not a traceback.
        print(f"error: the app's files could not be read: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"pyapp.py: unknown command {cmd}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
