"""Byte-code for a virtual environment, reproducibly, on several cores at once.

    python -S bytecode.py DIR

Why not ``compileall -j``: it hands files to workers as they come free, so which files share a
process changes from run to run, and a .pyc's bytes depend on what its process compiled before
(marshal flags objects by their reference counts, bpo-34093): the layer would differ build
after build. Why not one process (what this replaced): on a cold build of a Flask app it is a
third of the install.

Here the files are split into a fixed number of lists by a rule that depends on the files alone
(paths and sizes: the largest first, each to the lightest list, ties to the first), and each list
is compiled in sorted order by a process of its own. The split never depends on the machine's
core count, so the bytes are the same on every machine; the time is about 1/PARTS of one
process's where that many cores are free. Hash-based .pyc (no timestamps), a fixed hash seed
(frozenset constants). Files that do not compile (a package's Python 2 test data) are skipped,
as ``compileall -qq`` skips them. Runs with the venv's own interpreter and ``-S`` (no site: an
editable install's finder would be imported and leave a timestamped .pyc).
"""

from __future__ import annotations

import os
import subprocess
import sys

#: How many processes compile. A constant on purpose: it shapes the output (see above).
PARTS = 4

#: What each process runs: compile the NUL-separated paths on stdin, in order, as
#: ``compileall -f -qq --invalidation-mode unchecked-hash`` would.
_CHILD = """\
import compileall, py_compile, sys
mode = py_compile.PycInvalidationMode.UNCHECKED_HASH
for path in sys.stdin.buffer.read().split(b"\\0"):
    if path:
        compileall.compile_file(path.decode("utf-8", "surrogateescape"), force=True, quiet=2,
                                invalidation_mode=mode)
"""


def sources(root: str) -> list[tuple[str, int]]:
    """Every .py file under ``root`` with its size, as compileall would find them (no symlinked
    directories, no __pycache__)."""
    found = []
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(top, name)
                try:
                    found.append((path, os.stat(path).st_size))
                except OSError:
                    continue
    return found


def split(files: list[tuple[str, int]], parts: int = PARTS) -> list[list[str]]:
    """Largest first, each to the lightest list (ties to the first); each list sorted."""
    loads = [0] * parts
    lists: list[list[str]] = [[] for _ in range(parts)]
    for path, size in sorted(files, key=lambda f: (-f[1], f[0])):
        i = min(range(parts), key=lambda k: (loads[k], k))
        loads[i] += size + 1
        lists[i].append(path)
    return [sorted(paths) for paths in lists if paths]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    env = dict(os.environ, PYTHONHASHSEED="0")
    procs = []
    for paths in split(sources(argv[0])):
        proc = subprocess.Popen([sys.executable, "-S", "-c", _CHILD], stdin=subprocess.PIPE, env=env)
        procs.append((proc, b"\0".join(os.fsencode(p) for p in paths)))
    for proc, data in procs:
        proc.stdin.write(data)
        proc.stdin.close()
    return max((proc.wait() for proc, _ in procs), default=0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
