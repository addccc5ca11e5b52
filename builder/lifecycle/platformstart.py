"""Start commands written for another platform, which pallet does not read: named, not obeyed.

An app made from a Railway or Render template says how it starts in that platform's file
(``railway.json``'s ``deploy.startCommand``, ``railway.toml``, ``nixpacks.toml``'s ``[start] cmd``,
``render.yaml``'s ``startCommand``), not in a Procfile. pallet's buildpacks guess the web process
instead; when the guess is not what the author wrote (``python manage.py migrate && gunicorn
mysite.wsgi``), nothing said so. ``pallet detect`` and ``pallet build`` now name the command and
the Procfile line that would run it; and a Procfile saved under another name (``Procfile.txt``,
``procfile``), which nothing reads either. Only files at the top of the app are read; nothing is run.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

#: Bigger than any real platform file: not read.
MAX_BYTES = 256 * 1024


def _read(app_dir: Path, name: str) -> str | None:
    path = app_dir / name
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > MAX_BYTES:
            return None
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _at(data: Any, *keys: str) -> str | None:
    """The non-empty string at KEYS in nested tables, else None (any other type is ignored)."""
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data.strip() if isinstance(data, str) and data.strip() else None


def _railway_json(text: str) -> str | None:
    try:
        return _at(json.loads(text), "deploy", "startCommand")
    except ValueError:
        return None


def _toml_at(text: str, *keys: str) -> str | None:
    try:
        return _at(tomllib.loads(text), *keys)
    except (tomllib.TOMLDecodeError, ValueError):
        return None


def _render_yaml(text: str) -> str | None:
    """The one ``startCommand:`` of render.yaml (no YAML parser here: a plain scalar, or one in
    quotes); several services (a web and a worker) are ambiguous and left alone."""
    found = re.findall(r"^\s*(?:-\s+)?startCommand:\s*(.+?)\s*$", text, re.M)
    if len(found) != 1:
        return None
    value = found[0]
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        value = value[1:-1].replace('\\"', '"') if value[0] == '"' else value[1:-1].replace("''", "'")
    return value.strip() or None


#: (file, what holds the command, reader)
SOURCES = (
    ("railway.json", "deploy.startCommand", _railway_json),
    ("railway.toml", "[deploy] startCommand", lambda text: _toml_at(text, "deploy", "startCommand")),
    ("nixpacks.toml", "[start] cmd", lambda text: _toml_at(text, "start", "cmd")),
    ("render.yaml", "startCommand", _render_yaml),
)


def declared_start(app_dir: Path) -> tuple[str, str] | None:
    """(where, command) of the first platform file's start command, when the app has no Procfile
    (a Procfile is what pallet reads: then the platform file says nothing new)."""
    if (app_dir / "Procfile").exists():
        return None
    for name, key, reader in SOURCES:
        text = _read(app_dir, name)
        command = reader(text) if text is not None else None
        if command and "\n" not in command:
            return f"{name} {key}", command
    return None


def misnamed_procfile(app_dir: Path) -> str | None:
    """The name of a Procfile saved under another (``Procfile.txt`` from Notepad, ``procfile``
    from a case-insensitive file system), when the app has no ``Procfile``: read by nothing."""
    if (app_dir / "Procfile").exists():
        return None
    try:
        names = sorted(p.name for p in app_dir.iterdir())
    except OSError:
        return None
    return next((n for n in names if n != "Procfile" and re.fullmatch(r"(?i)procfile(\.txt)?", n)
                 and (app_dir / n).is_file()), None)


def note(app_dir: Path) -> str | None:
    """One line naming the start command pallet does not read (another platform's, or a
    misnamed Procfile's), or None."""
    misnamed = misnamed_procfile(app_dir)
    if misnamed is not None:
        return (f"note: {misnamed} is not read: the file's name is Procfile, exactly (no extension, capital P); "
                f"rename it (git mv {misnamed} Procfile), else the buildpacks choose the web process")
    found = declared_start(app_dir)
    if found is None:
        return None
    where, command = found
    return (f"note: {where} ({command}) is not read: the buildpacks choose the web process; a Procfile "
            f"line 'web: <that command>' makes it the web process")
