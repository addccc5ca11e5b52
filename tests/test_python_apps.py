"""Python apps as people write them, built without ``--stack`` (pallet chooses by the Python
they ask for, trixie by default), run with ``pallet run`` and asked over HTTP: a bot script
with no manifest, a Procfile ``python server.py`` with no dependencies, a Poetry scripts
package, Poetry, uv and PDM projects that only list dependencies, a Pipfile without its lock,
``.python-version`` 3.13 / 3.11 / 3.11.11 / 3.8; and the shapes strangers' apps come in
(tests/apps/python-*): an ASGI app in a package with included requirements files, a src/ layout
run as ``python -m``, a setuptools-scm package built without .git (its Flask app named ``server``), a uv workspace
whose app is a member's package, a Flask app factory (and a Procfile's gunicorn 26), a conda environment.yml
alone, a Django project without a WSGI server, a Pipfile.lock asking for Python 3.11 (and locking
a Windows-only package and one of its own by path), a uv project whose ``default-groups`` add a lint group."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import pallet
from tests.samplekit import ROOT, SAMPLES, Home, free_port, pallet_run, wait_http

pytestmark = [pytest.mark.slow]

APPS = ROOT / "tests" / "apps"


def build(home: Home, src: Path, tag: str, cache: Path, *extra: str, check: bool = True
          ) -> subprocess.CompletedProcess[str]:
    """``pallet build`` without --stack: the stack is pallet's choice."""
    return pallet("build", str(src), "-t", tag, "--cache-dir", str(cache), "--json", *extra, env=home.env,
                  check=check, timeout=900)


def ask(home: Home, ref: str, path: str = "/") -> dict:
    port = free_port()
    with pallet_run(home, ref, port) as proc:
        resp = wait_http(port, path, alive=lambda: proc.poll() is None)
        assert resp.status == 200, resp.body
        return json.loads(resp.body)


def stack_of(home: Home, ref: str) -> str:
    return home.inspect(ref)["config"]["labels"]["io.pallet.stack.name"]


def copy_app(src: Path, dest: Path, files: dict[str, str] | None = None) -> Path:
    shutil.copytree(src, dest)
    for name, text in (files or {}).items():
        (dest / name).write_text(text)
    return dest


def test_python_313_lands_on_trixie(trixie, tmp_path):
    done = build(trixie, SAMPLES / "python-313", "py313:1", tmp_path / "c")
    assert "stack trixie (the default): .python-version asks for Python 3.13; it has Python 3.13." in done.stderr
    out = json.loads(done.stdout)
    assert out["stack"] == "trixie" and stack_of(trixie, "py313:1") == "trixie"
    assert ask(trixie, "py313:1")["python"].startswith("3.13.")


def test_python_311_lands_on_bookworm_and_a_patch_level_builds_with_a_notice(trixie, tmp_path):
    app = copy_app(SAMPLES / "python-313", tmp_path / "app311", {".python-version": "3.11\n"})
    done = build(trixie, app, "py311:1", tmp_path / "c")
    reason = [ln for ln in done.stderr.splitlines() if ln.startswith("stack ")]
    assert reason == ["stack bookworm: .python-version asks for Python 3.11; the default stack trixie has Python "
                      "3.13.5, bookworm has Python 3.11.2"]
    assert stack_of(trixie, "py311:1") == "bookworm"
    assert ask(trixie, "py311:1")["python"] == "3.11.2"

    (app / ".python-version").write_text("3.11.11\n")
    done = build(trixie, app, "py31111:1", tmp_path / "c2")
    notices = [ln for ln in done.stderr.splitlines() if ln.startswith("notice: ")]
    assert notices and "3.11.11" in notices[0] and "3.11.2" in notices[0]
    assert json.loads(done.stdout)["stackChoice"]["notices"] == notices
    assert ask(trixie, "py31111:1")["python"] == "3.11.2"


def test_python_38_is_an_error_listing_the_stacks(trixie, tmp_path):
    app = copy_app(SAMPLES / "python-313", tmp_path / "app38", {".python-version": "3.8\n"})
    done = build(trixie, app, "py38:1", tmp_path / "c", check=False)
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("pallet: error: no stack has what the app asks for (.python-version asks for Python 3.8)")
    assert "trixie has " in error and "Python 3.13" in error and "bookworm has " in error and "Python 3.11.2" in error
    assert pallet("inspect", "py38:1", env=trixie.env, check=False).returncode == 1


def test_bot_script_without_manifest(trixie, tmp_path):
    detected = pallet("detect", str(SAMPLES / "python-bot"), env=trixie.env).stdout
    assert "found bot.py" in detected and "web: python bot.py (rule: bot.py)" in detected
    first = json.loads(build(trixie, SAMPLES / "python-bot", "bot:a", tmp_path / "a").stdout)
    elsewhere = shutil.copytree(SAMPLES / "python-bot", tmp_path / "elsewhere" / "python-bot")
    assert json.loads(build(trixie, elsewhere, "bot:b", tmp_path / "b").stdout)["digest"] == first["digest"]
    assert first["processes"] == [{"type": "web", "command": ["python", "bot.py"], "args": []}]
    answer = ask(trixie, "bot:a", "/?say=ping")
    assert answer["reply"] == "pong" and answer["python"].startswith("3.13.")


def test_procfile_python_server_without_dependencies(trixie, tmp_path):
    """`python` resolves to the stack's Python (the Procfile runs it as the user wrote it)."""
    app = tmp_path / "pf"
    app.mkdir()
    shutil.copy(SAMPLES / "python-bot" / "bot.py", app / "server.py")
    (app / "Procfile").write_text("web: python server.py\n")
    detected = pallet("detect", str(app), env=trixie.env).stdout
    assert "web: the Procfile's (rule: Procfile)" in detected
    build(trixie, app, "pf:1", tmp_path / "c")
    assert ask(trixie, "pf:1", "/?say=hello")["reply"] == "Hello! I am python-bot."


def test_poetry_scripts_package(trixie, tmp_path):
    src = SAMPLES / "python-poetry-scripts"
    assert "web: quotes-server (rule: the only entry point in [tool.poetry.scripts]" in \
        pallet("detect", str(src), env=trixie.env).stdout
    out = json.loads(build(trixie, src, "quotes:1", tmp_path / "c").stdout)
    assert out["processes"][0]["command"] == ["quotes-server"]
    assert ask(trixie, "quotes:1", "/0") == {"quote": "Real artists ship."}


def test_poetry_project_that_only_lists_dependencies(trixie, tmp_path):
    src = APPS / "python-poetry-deps-only"
    assert "dependencies only (the project is not a package)" in pallet("detect", str(src), env=trixie.env).stdout
    done = build(trixie, src, "deps-only:1", tmp_path / "c")
    assert "--no-root" in done.stderr and "Installing idna" in done.stderr
    assert ask(trixie, "deps-only:1", "/?host=b%C3%BCcher.example")["ascii"] == "xn--bcher-kva.example"


def test_pipfile_without_lock_installs_with_a_warning(trixie, tmp_path):
    app = copy_app(APPS / "python-poetry-deps-only", tmp_path / "pipfile")
    (app / "pyproject.toml").unlink()
    (app / "poetry.lock").unlink()
    (app / "Pipfile").write_text('[packages]\nidna = ">=3.7"\n\n[dev-packages]\npytest = "*"\n')
    done = build(trixie, app, "pipfile:1", tmp_path / "c")
    assert "warning: no Pipfile.lock" in done.stderr and "not reproducible" in done.stderr
    assert "pytest" not in done.stderr
    assert ask(trixie, "pipfile:1")["ascii"] == "xn--bcher-kva.example"


def test_python_is_the_stacks_python_without_the_python_buildpack(trixie, tmp_path):
    """A Procfile alone (no Python files: the Python buildpack does not run) still finds
    `python` on the run image: the stack has python-is-python3."""
    app = tmp_path / "plain"
    app.mkdir()
    (app / "hello.txt").write_text("hello from the stack's python\n")
    (app / "Procfile").write_text("web: python -m http.server $PORT\n")
    out = json.loads(build(trixie, app, "plain:1", tmp_path / "c").stdout)
    assert [b["id"] for b in out["buildpacks"]] == ["pallet/procfile"]
    port = free_port()
    with pallet_run(trixie, "plain:1", port) as proc:
        resp = wait_http(port, "/hello.txt", alive=lambda: proc.poll() is None)
        assert resp.status == 200 and resp.body == "hello from the stack's python\n"


def test_uv_project_with_a_build_system_but_no_package(trixie, tmp_path):
    src = APPS / "python-uv-deps-only"
    assert "dependencies only (the project is not a package)" in pallet("detect", str(src), env=trixie.env).stdout
    done = build(trixie, src, "uv-deps:1", tmp_path / "c")
    assert "--no-install-project" in done.stderr
    answer = ask(trixie, "uv-deps:1", "/?host=b%C3%BCcher.example")
    assert answer["ascii"] == "xn--bcher-kva.example"
    assert answer["groups"] == []  # neither dev nor the lint group [tool.uv] default-groups adds
    # a dependency added to pyproject.toml without `uv lock`: --frozen installed the old lock, and
    # the image lacked it (ImportError as it started); the build now fails, saying so
    stale = copy_app(src, tmp_path / "stale")
    pyproject = stale / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('dependencies = ["idna>=3.7"]', 'dependencies = ["idna>=3.7", '
                                                                                          '"six>=1.16"]'))
    done = build(trixie, stale, "uv-stale:1", tmp_path / "c", check=False)
    assert done.returncode == 1 and "The lockfile at `uv.lock` needs to be updated" in done.stderr, done.stderr
    assert pallet("inspect", "uv-stale:1", env=trixie.env, check=False).returncode == 1


def test_pdm_project_that_only_lists_dependencies_lands_on_its_python(trixie, tmp_path):
    """PDM (``distribution = false``): pdm.lock's default group installed with pip, hashes
    checked, no PDM in the build; its ``requires-python = "==3.11.*"`` chooses bookworm."""
    src = APPS / "python-pdm-deps-only"
    assert "dependencies only (the project is not a package)" in pallet("detect", str(src), env=trixie.env).stdout
    done = build(trixie, src, "pdm-deps:1", tmp_path / "c")
    assert [ln for ln in done.stderr.splitlines() if ln.startswith("stack ")] == [
        'stack bookworm: pyproject.toml requires-python asks for Python ==3.11.*; the default stack trixie has Python '
        '3.13.5, bookworm has Python 3.11.2']
    assert "installing from pdm.lock with pip, hashes checked" in done.stderr
    assert stack_of(trixie, "pdm-deps:1") == "bookworm"
    answer = ask(trixie, "pdm-deps:1", "/?host=b%C3%BCcher.example")
    assert answer == {"host": "bücher.example", "ascii": "xn--bcher-kva.example", "idna": "3.21"}  # pdm.lock's


# -- apps as strangers lay them out (tests/apps/python-*, each README names the cause) ----------


def test_an_asgi_app_in_a_package_and_included_requirements(trixie, tmp_path):
    """FastAPI's templates' shape: the app in app/main.py (found there: uvicorn app.main:app), and
    requirements.txt that only includes requirements/base.txt, whose edit alone installs again."""
    app = copy_app(APPS / "python-asgi-package", tmp_path / "asgi")
    detected = pallet("detect", str(app), env=trixie.env).stdout
    assert "web: /bin/sh -c exec uvicorn app.main:app --host 0.0.0.0" in detected
    assert "(rule: ASGI, starlette app app.main:app, uvicorn)" in detected
    build(trixie, app, "asgi:1", tmp_path / "c")
    assert ask(trixie, "asgi:1") == {"hello": "python-asgi-package", "idna": "3.7"}
    base = app / "requirements" / "base.txt"
    base.write_text(base.read_text().replace("idna==3.7", "idna==3.8"))
    done = build(trixie, app, "asgi:2", tmp_path / "c")
    assert "installing from requirements.txt" in done.stderr and " idna-3.8" in done.stderr
    assert ask(trixie, "asgi:2") == {"hello": "python-asgi-package", "idna": "3.8"}


def test_a_src_layout_package_not_named_after_the_project_runs_as_python_m(trixie, tmp_path):
    src = APPS / "python-src-layout"
    detected = pallet("detect", str(src), env=trixie.env).stdout
    assert "pip install -e . (pyproject.toml)" in detected
    assert "web: python -m greeter (rule: python -m greeter, the one package with a __main__.py)" in detected
    out = json.loads(build(trixie, src, "srclayout:1", tmp_path / "c").stdout)
    assert out["processes"][0]["command"] == ["python", "-m", "greeter"]
    answer = ask(trixie, "srclayout:1")
    assert answer["installed"] == "1.2.0" and answer["module"] == "greeter.__main__"
    assert not (src / "src" / "greeting_service.egg-info").exists()


def test_a_git_versioned_package_builds_without_git_and_its_app_under_another_name_is_served(trixie, tmp_path):
    """setuptools-scm with no .git (pallet leaves it out): built as 0.0.0, saying how to give
    the version, which --env then gives (and installs again); ``server = Flask(__name__)`` in
    the package's app.py is what gunicorn serves."""
    src = APPS / "python-setuptools-scm"
    notice = ("notice: the project's version comes from git (setuptools-scm), and the build has no .git (pallet leaves "
              "it out of the app): built as version 0.0.0; give the real one with --env "
              "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_CHANGELOG_API=VERSION")
    assert notice in pallet("detect", str(src), env=trixie.env).stdout
    done = build(trixie, src, "scm:1", tmp_path / "c")
    assert notice in done.stderr, done.stderr
    assert json.loads(done.stdout)["processes"][0]["command"][-1] == "changelog_api.app:server"
    assert ask(trixie, "scm:1") == {"service": "changelog-api", "version": "0.0.0"}
    done = build(trixie, src, "scm:2", tmp_path / "c", "--env", "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_CHANGELOG_API=2.4.1")
    assert "notice: the project's version" not in done.stderr
    assert ask(trixie, "scm:2") == {"service": "changelog-api", "version": "2.4.1"}
    assert not (src / "src" / "changelog_api.egg-info").exists()


def test_a_uv_workspace_whose_app_is_a_members_package(trixie, tmp_path):
    """A virtual workspace root (members only): uv sync installs apps/api and packages/greet;
    the app is found in apps/api/src/api/main.py and served as api.main:app."""
    src = APPS / "python-uv-workspace"
    detected = pallet("detect", str(src), env=trixie.env).stdout
    assert "workspace members packages/greet, apps/api (installed by uv sync)" in detected, detected
    assert "web: /bin/sh -c exec uvicorn api.main:app --host 0.0.0.0" in detected, detected
    build(trixie, src, "uvws:1", tmp_path / "c")
    assert ask(trixie, "uvws:1") == {"hello": "from packages/greet", "app": "python-uv-workspace"}


def test_a_flask_app_factory_and_gunicorns_control_socket_under_a_procfile(trixie, tmp_path):
    """Flask's tutorial shape: gunicorn 'flaskr:create_app()'. The same app started by a
    Procfile's gunicorn (26: a control socket) starts without a read-only $HOME error."""
    app = copy_app(APPS / "python-flask-factory", tmp_path / "factory")
    out = json.loads(build(trixie, app, "factory:1", tmp_path / "c").stdout)
    assert out["processes"][0]["command"] == ["gunicorn", "--control-socket", "/tmp/gunicorn.ctl",
                                              "flaskr:create_app()"]
    assert ask(trixie, "factory:1") == {"greeting": "Hello from python-flask-factory", "factory": True}

    (app / "Procfile").write_text("web: gunicorn --workers 2 'flaskr:create_app()'\n")
    build(trixie, app, "factory:2", tmp_path / "c")
    port = free_port()
    with pallet_run(trixie, "factory:2", port) as proc:
        resp = wait_http(port, alive=lambda: proc.poll() is None)
        assert json.loads(resp.body)["factory"] is True
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "Booting worker" in err and "Control server error" not in err and "Read-only file system" not in err, err


def test_an_app_without_a_manifest_that_imports_packages_fails_the_build_saying_why(trixie, tmp_path):
    src = APPS / "python-conda-env"
    assert "the build will fail: app.py imports flask, which no manifest installs" in \
        pallet("detect", str(src), env=trixie.env).stdout
    done = build(trixie, src, "conda:1", tmp_path / "c", check=False)
    assert done.returncode == 1
    assert ("app.py imports flask, which no manifest installs (no requirements.txt, pyproject.toml, Pipfile, uv.lock, "
            "poetry.lock, pdm.lock or setup.py at the top of the app); found environment.yml, which pallet does not "
            "install from: list the packages in requirements.txt") in done.stderr
    assert pallet("inspect", "conda:1", env=trixie.env, check=False).returncode == 1


def test_a_django_project_without_a_server_fails_the_build_saying_why(trixie, tmp_path):
    """Not `python manage.py` (its help, then exit 0): an error naming the project's WSGI module."""
    src = APPS / "python-django-no-server"
    assert "found a Django project (mysite.wsgi:application) without gunicorn" in \
        pallet("detect", str(src), env=trixie.env).stdout
    done = build(trixie, src, "django-bare:1", tmp_path / "c", check=False)
    assert done.returncode == 1
    assert ("error: no web process: " in done.stderr and "found a Django project (mysite.wsgi:application) without "
            "gunicorn (add gunicorn to the dependencies). Add a Procfile (web: <command>)" in done.stderr)
    assert pallet("inspect", "django-bare:1", env=trixie.env, check=False).returncode == 1


def test_procfile_lines_only_a_shell_runs(trixie, tmp_path):
    """`GREETING=... python server.py` and `cd jobs && exec ...` run as Heroku runs them (a shell)."""
    out = json.loads(build(trixie, APPS / "python-procfile-env", "pfenv:1", tmp_path / "c").stdout)
    commands = {p["type"]: p["command"] for p in out["processes"]}
    assert commands["web"] == ["/bin/bash", "-c", "GREETING=Hello-from-python-procfile-env python server.py"]
    assert ask(trixie, "pfenv:1") == {"greeting": "Hello-from-python-procfile-env"}
    assert pallet("run", "pfenv:1", "worker", env=trixie.env, timeout=120).stdout == "tick from jobs\n"


def test_pipenvs_python_version_chooses_the_stack(trixie, tmp_path):
    """Pipfile.lock's _meta.requires python_version 3.11: bookworm, said in one line; the same
    request against a stack without it is the buildpack's error naming both. Its Windows-only
    colorama, locked as ``"version": "*"`` without hashes, is skipped by its marker; its own
    package in libs/units (``"path"``, editable) is installed from there."""
    src = APPS / "python-pipenv-version"
    done = build(trixie, src, "pipenv311:1", tmp_path / "c")
    assert [ln for ln in done.stderr.splitlines() if ln.startswith("stack ")] == [
        "stack bookworm: Pipfile.lock _meta.requires python_version asks for Python 3.11; the default stack trixie "
        "has Python 3.13.5, bookworm has Python 3.11.2"]
    assert ask(trixie, "pipenv311:1") == {"python": "3.11.2", "itsdangerous": "2.2.0",
                                          "units": "/workspace/libs/units/units/__init__.py", "day": 86400}
    assert "removed libs/units/units.egg-info, the project build's leftover" in done.stderr, done.stderr
    forced = pallet("build", str(src), "-t", "pipenv311:2", "--stack", "trixie", "--cache-dir", str(tmp_path / "c2"),
                    env=trixie.env, check=False, timeout=900)
    assert forced.returncode == 1
    assert ("Pipfile.lock _meta.requires python_version asks for Python 3.11, but the stack io.pallet.stacks.trixie "
            "has Python 3.13.5") in forced.stderr
