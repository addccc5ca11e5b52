"""What git ignores stays out of the app (builder/lifecycle/gitignored.py, project.copy_source):
a real git repository per test, a real git."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from builder.lifecycle.project import Project, copy_source

pytestmark = pytest.mark.skipif(subprocess.run(["git", "--version"], capture_output=True).returncode != 0,
                                reason="git is installed by scripts/setup.sh")


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                   check=True, capture_output=True)


def write(root: Path, files: dict[str, str]) -> None:
    for name, body in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)


def copied(src: Path, dst: Path) -> tuple[set[str], list[str]]:
    left = copy_source(src, dst, Project())
    return {p.relative_to(dst).as_posix() for p in dst.rglob("*") if not p.is_dir()}, left


def test_untracked_ignored_files_stay_out_and_tracked_or_unignored_ones_go_in(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write(repo, {"app.py": "x", ".gitignore": ".env\n*.log\n!keep.log\nbuild/\n",
                 "web/.gitignore": "cache/\n", "web/page.html": "p"})
    git(repo, "init", "-q")
    write(repo, {"forced.log": "f"})
    git(repo, "add", "-A")
    git(repo, "add", "-f", "forced.log")
    git(repo, "commit", "-qm", "init")
    write(repo, {".env": "SECRET=1", "debug.log": "d", "keep.log": "k", "build/out.js": "o",
                 "web/cache/c.bin": "c", "new.py": "n"})
    files, left = copied(repo, tmp_path / "out")
    assert files == {"app.py", ".gitignore", "web/.gitignore", "web/page.html", "forced.log", "keep.log", "new.py"}
    assert sorted(left) == [".env", "build/", "debug.log", "web/cache/"]


def test_a_source_below_the_top_of_its_repository_follows_the_ignore_files_above_it(tmp_path: Path) -> None:
    repo = tmp_path / "mono"
    write(repo, {".gitignore": "node_modules/\n*.pyc\n", "services/api/main.py": "m"})
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    write(repo, {"services/api/node_modules/x/i.js": "i", "services/api/main.pyc": "c"})
    files, left = copied(repo / "services" / "api", tmp_path / "out")
    assert files == {"main.py"} and sorted(left) == ["main.pyc", "node_modules/"]


def test_outside_a_repository_a_gitignore_is_just_a_file_but_a_virtualenv_stays_out(tmp_path: Path) -> None:
    src = tmp_path / "app"
    write(src, {".gitignore": "*.log\n", "a.log": "a", "app.py": "x", "venv/pyvenv.cfg": "home = /usr/bin\n",
                "venv/lib/site.py": "s", "lib/util.py": "u"})
    files, left = copied(src, tmp_path / "out")
    assert files == {".gitignore", "a.log", "app.py", "lib/util.py"} and left == ["venv/"]


def test_the_repositorys_config_runs_nothing(tmp_path: Path) -> None:
    """A stranger's .git/config may name an fsmonitor command: git must not run it for pallet."""
    repo = tmp_path / "repo"
    write(repo, {"app.py": "x", ".gitignore": "*.tmp\n"})
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    marker = tmp_path / "ran"
    hook = tmp_path / "monitor.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    git(repo, "config", "core.fsmonitor", str(hook))
    git(repo, "config", "core.untrackedCache", "true")
    write(repo, {"x.tmp": "t"})
    files, left = copied(repo, tmp_path / "out")
    assert left == ["x.tmp"] and files == {"app.py", ".gitignore"}
    assert not marker.exists()


def test_the_build_memo_is_blind_to_what_git_ignores_and_sees_the_rest(tmp_path: Path) -> None:
    from builder.lifecycle import memo

    repo = tmp_path / "repo"
    write(repo, {"app.py": "x", ".gitignore": "*.log\ncache/\n"})
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    before = memo.key("base", repo)
    write(repo, {"run.log": "local run", "cache/x/y": "z"})
    assert memo.key("base", repo) == before
    write(repo, {"new.py": "n"})
    assert memo.key("base", repo) != before


@pytest.mark.parametrize("ignore", ["*\n", "scratch/\n"])
def test_an_untracked_app_inside_a_repository_is_copied_whole(tmp_path: Path, ignore: str) -> None:
    """A home directory kept in git ignoring "*", or a scratch directory the repository ignores:
    the app in it is not that repository's commit, and its rules would leave the app empty."""
    repo = tmp_path / "home"
    write(repo, {".gitignore": ignore, "dotfile": "d"})
    git(repo, "init", "-q")
    git(repo, "add", "-f", ".gitignore", "dotfile")
    git(repo, "commit", "-qm", "dotfiles")
    app = repo / "scratch" / "app"
    write(app, {"app.py": "x", "lib/util.py": "u", "debug.log": "l"})
    files, left = copied(app, tmp_path / "out")
    assert files == {"app.py", "lib/util.py", "debug.log"} and left == []
