"""What git leaves out of an app: untracked files its own ``.gitignore`` files ignore.

A developer's checkout holds what a commit does not: a virtualenv, node_modules, ``.env`` with
secrets, build output, byte-code. ``git push heroku`` never sends them; a Dockerfile user writes
a .dockerignore for them. pallet leaves out what the repository's ``.gitignore`` files ignore
and git does not track, so the image is what the commit holds (plus untracked, unignored files)
and the same commit gives the same digest whatever lies around the checkout.

Only the repository's own ``.gitignore`` files count: not ``.git/info/exclude`` nor the user's
global excludes, which differ between machines. A tracked file is kept even when a pattern
matches it (``git add -f``: the way to keep an ignored file). git runs with the repository's
config stripped of what could run a command (``core.fsmonitor``): the source may be a stranger's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from builder.errors import PalletError


def ignored(src: Path) -> list[str]:
    """Paths below ``src`` (relative, ``/``-separated; a directory wholly ignored is one entry)
    that git ignores and does not track; none when ``src`` is not in a git work tree or there
    is no git."""
    git = shutil.which("git")
    if git is None or not _in_repository(src):
        return []
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "HOME": "/nonexistent",
           "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_OPTIONAL_LOCKS": "0",
           "GIT_TERMINAL_PROMPT": "0"}
    base = [git, "-c", "core.fsmonitor=false", "-c", "core.untrackedCache=false", "-c", "safe.directory=*",
            "-C", str(src), "ls-files", "-z"]

    def run(*args: str) -> subprocess.CompletedProcess[bytes]:
        try:
            return subprocess.run([*base, *args], env=env, capture_output=True, timeout=300, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise PalletError(f"{src}: git took over 5 minutes to list the files .gitignore leaves out") from None

    # Only an app git tracks: a directory that a repository around it merely holds (a home
    # directory kept in git with "*" ignored, a scratch dir the repository ignores) is not its
    # commit, and its ignore rules are not the app's.
    tracked = run("--cached", "--", ".")
    if tracked.returncode != 0 or not tracked.stdout:
        return []
    proc = run("--others", "--ignored", "--exclude-per-directory=.gitignore", "--directory")
    if proc.returncode != 0:
        return []  # not a work tree after all (a bare repository, a damaged .git): nothing left out
    out = []
    for raw in proc.stdout.split(b"\0"):
        if not raw:
            continue
        rel = os.fsdecode(raw).rstrip("/")
        if rel and not rel.startswith("../") and rel != ".":
            out.append(rel)
    return sorted(out)


def harmless_config(git: str, src: Path, env: dict[str, str]) -> list[str]:
    """``-c`` options that keep a stranger's repository config from running commands in git
    commands that look at the work tree: ``core.fsmonitor`` (git status runs it), and each
    filter driver's ``clean``/``smudge``/``process`` (git status runs a clean filter on a file
    whose times changed; its ``.gitattributes`` chooses the driver), emptied: no filter. Reading
    the config with ``git config`` runs nothing."""
    try:
        listed = subprocess.run([git, "-C", str(src), "config", "--name-only", "--get-regexp", r"^filter\."],
                                env=env, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        listed = None
    drivers = {name.rsplit(".", 1)[0][len("filter."):]
               for name in os.fsdecode(listed.stdout if listed else b"").splitlines() if name.count(".") >= 2}
    out = ["-c", "core.fsmonitor=false"]
    for driver in sorted(drivers):
        for key in ("clean", "smudge", "process"):
            out += ["-c", f"filter.{driver}.{key}="]
    return out


def _in_repository(src: Path) -> bool:
    """A ``.git`` in ``src`` or a directory above it (what git would find), without running git."""
    src = src.resolve()
    for d in (src, *src.parents):
        if (d / ".git").exists():
            return True
    return False
