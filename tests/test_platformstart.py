"""Start commands of Railway's and Render's files, which pallet names but does not obey: pure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builder.lifecycle.platformstart import declared_start, misnamed_procfile, note


@pytest.mark.parametrize("files,found", [
    ({"railway.json": json.dumps({"build": {"builder": "NIXPACKS"},
                                  "deploy": {"startCommand": 'hypercorn main:app --bind "[::]:$PORT"'}})},
     ("railway.json deploy.startCommand", 'hypercorn main:app --bind "[::]:$PORT"')),
    ({"railway.toml": '[deploy]\nstartCommand = "gunicorn app:app"\n'},
     ("railway.toml [deploy] startCommand", "gunicorn app:app")),
    ({"nixpacks.toml": '[start]\ncmd = "./bin/server"\n'}, ("nixpacks.toml [start] cmd", "./bin/server")),
    ({"render.yaml": 'services:\n  - type: web\n    buildCommand: "./build.sh"\n'
                     '    startCommand: "python -m gunicorn mysite.asgi:application -k uvicorn.workers.UvicornWorker"\n'},
     ("render.yaml startCommand", "python -m gunicorn mysite.asgi:application -k uvicorn.workers.UvicornWorker")),
    ({"render.yaml": "services:\n- startCommand: gunicorn a:app\n- startCommand: python worker.py\n"}, None),
    ({"railway.json": '{"deploy": {"startCommand": 5}}', "render.yaml": "x: [\n"}, None),  # no command: nothing
    ({"railway.json": "{not json", "Procfile": "web: x\n"}, None),
    ({"railway.json": json.dumps({"deploy": {"startCommand": "gunicorn a:app"}}), "Procfile": "web: x\n"}, None),
])
def test_a_platforms_start_command_is_named(tmp_path: Path, files, found):
    """An app from a Railway or Render template says how it starts in railway.json or render.yaml,
    which pallet does not read: its buildpacks guessed the web process and nothing said the author
    wrote another (`python manage.py migrate && gunicorn mysite.wsgi`). pallet detect and build now
    name it and the Procfile line that runs it; with a Procfile (what pallet reads) nothing is said."""
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    assert declared_start(tmp_path) == found
    said = note(tmp_path)
    assert (said is None) == (found is None)
    assert said is None or said.startswith(f"note: {found[0]} ({found[1]}) is not read: ") and "Procfile" in said


@pytest.mark.parametrize("name", ["Procfile.txt", "procfile", "PROCFILE"])
def test_a_procfile_under_another_name_is_named(tmp_path: Path, name):
    """Notepad saves Procfile.txt; a case-insensitive file system commits procfile: read by nothing,
    the buildpacks guessed the web process and nothing said why the Procfile's was not it."""
    (tmp_path / name).write_text("web: gunicorn app:app\n")
    (tmp_path / "railway.json").write_text('{"deploy": {"startCommand": "x"}}')
    assert misnamed_procfile(tmp_path) == name
    assert note(tmp_path).startswith(f"note: {name} is not read: the file's name is Procfile, exactly")
    (tmp_path / "Procfile").write_text("web: gunicorn app:app\n")
    assert misnamed_procfile(tmp_path) is None and note(tmp_path) is None
