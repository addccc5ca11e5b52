"""Whether a Go app may need cgo: read from its source before a foreign platform's build
decides to cross-compile (``buildway``).

A Go build cross-compiles with CGO off and gives the same binary as one compiled on the
target machine -- unless C code is involved, which needs the target's C compiler and
libraries. So anything that hints at cgo counts, and anything this cannot read counts too
(when in doubt, the build is emulated; emulation is only slower):

- a non-test ``.go`` file (vendor/ and every module of a go.work included: they are all in the
  source) whose imports include ``"C"``, whatever build constraints it carries (they are not
  evaluated: a file left out by ``!cgo`` tags today is still code written for cgo);
- C, C++, Objective-C, preprocessed assembly or SWIG files beside Go files (only cgo builds them);
- ``CGO_ENABLED`` set to anything but 0 in the build's environment;
- a go.work ``use`` or a go.mod/go.work ``replace`` that points outside the app (code not read);
- a .go file that cannot be read, or whose import section does not parse.

Skipped as the go command skips them: directories and files whose names start with ``.`` or
``_``, ``testdata`` directories, ``_test.go`` files; symbolic links to directories (a link
that leaves the app does not reach the sandbox's copy of it either). Modules the build would
download (not vendored) are not on disk to read; the Go buildpack finds their cgo itself (``go
list``): emulated, it builds them with cgo; cross-compiled, it fails naming them and --emulate
(CGO off would build a stub in place of their C code, go-sqlite3's).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Mapping

from builder.errors import InputFileError
from builder.inputfile import check_in_app, open_input, read_input

#: How much of a .go file is read for its imports (the package clause and imports come first).
HEAD_BYTES = 256 * 1024
#: The most of a go.mod or go.work read (real ones are kilobytes).
MAX_MANIFEST = 16 << 20
#: Files only a cgo (or SWIG) build compiles, in a directory of Go files.
C_SUFFIXES = (".c", ".cc", ".cpp", ".cxx", ".m", ".S", ".sx", ".F", ".f", ".for", ".f90", ".swig", ".swigcxx")

_TOKEN = re.compile(r"""
      (?P<space>\s+)
    | (?P<comment>//[^\n]*|/\*.*?\*/)
    | (?P<string>"(?:[^"\\\n]|\\.)*"|`[^`]*`)
    | (?P<ident>[^\W\d]\w*)
    | (?P<punct>[();.])
""", re.S | re.X)


class _Unreadable(Exception):
    """The header ended, or held something an import section cannot."""


def _tokens(text: str, complete: bool) -> Iterator[tuple[str, str]]:
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:  # an unterminated comment or string, or a character no header has
            raise _Unreadable
        pos = m.end()
        if m.lastgroup not in ("space", "comment"):
            yield m.lastgroup or "", m.group()
    if not complete:  # the head was cut before the import section ended
        raise _Unreadable


def imports_c(text: str, complete: bool = True) -> bool | None:
    """Whether a Go file's import declarations import "C" (grouped or not, named or not);
    None when its package clause and imports cannot be read. ``complete``: ``text`` is the
    whole file (else only its head: reaching its end before the imports end is a doubt)."""
    tokens = _tokens(text.lstrip("\ufeff"), complete)
    try:
        if next(tokens, None) != ("ident", "package") or next(tokens, ("", ""))[0] != "ident":
            return None
        tok = next(tokens, None)
        while tok is not None:
            if tok == ("punct", ";"):
                tok = next(tokens, None)
                continue
            if tok != ("ident", "import"):
                return False  # the first declaration that is not an import: imports are over
            tok = next(tokens, None)
            if tok == ("punct", "("):
                tok = next(tokens, None)
                while tok != ("punct", ")"):
                    if tok is None:
                        return None
                    if tok != ("punct", ";"):
                        found, tok = _spec(tok, tokens)
                        if found is None:
                            return None
                        if found:
                            return True
                        continue
                    tok = next(tokens, None)
                tok = next(tokens, None)
            else:
                found, tok = _spec(tok, tokens)
                if found is None:
                    return None
                if found:
                    return True
        return False
    except _Unreadable:
        return None


def _spec(tok: tuple[str, str] | None, tokens: Iterator[tuple[str, str]]):
    """One import spec (``[name] "path"``) from ``tok`` on: (imports "C"?, the next token);
    None for the first when it is not a spec."""
    if tok is not None and (tok[0] == "ident" or tok == ("punct", ".")):
        tok = next(tokens, None)  # the package name it is imported as
    if tok is None or tok[0] != "string":
        return None, tok
    path = tok[1][1:-1]
    if "\\" in path and tok[1][0] == '"':
        return None, tok  # an escaped import path: not worth decoding, so a doubt
    return path == "C", next(tokens, None)


def _go_imports_c(path: Path, app: Path) -> bool | None:
    try:
        check_in_app(app, path, path.name)  # not even a bit of a host file: the source may be anyone's
        # a regular file only: a .go symlink to a FIFO (or /proc/self/fd/0) blocked pallet for ever
        with open_input(path, "Go file") as f:
            head = f.read(HEAD_BYTES + 1)
    except (OSError, InputFileError):
        return None
    complete = len(head) <= HEAD_BYTES
    return imports_c(head[:HEAD_BYTES].decode("utf-8", errors="replace"), complete)


def _outside_paths(manifest: Path, app: Path) -> list[str]:
    """go.work ``use`` and go.mod/go.work ``replace`` directory paths that leave ``app``."""
    try:  # bounded, a regular file: go.mod -> /dev/zero filled memory; the app's own
        check_in_app(app, manifest, manifest.name)
        text = read_input(manifest, manifest.name, MAX_MANIFEST).decode("utf-8", "replace")
    except (OSError, InputFileError):
        return [f"{manifest.relative_to(app)} cannot be read"]
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("//") or line in (")", "use (", "replace ("):
            continue
        if "=>" in line:
            target = line.split("=>", 1)[1].split("//", 1)[0].split()
        elif manifest.name == "go.work" and not line.startswith(("go ", "toolchain ", "godebug")):
            target = line.removeprefix("use").split("//", 1)[0].split()
        else:
            continue
        if not target or not target[0].strip('"').startswith((".", "/")):
            continue  # a module path (and version): downloaded, not a directory
        where = target[0].strip('"')
        resolved = os.path.normpath(os.path.join(str(manifest.parent), where))
        if not (resolved == str(app) or resolved.startswith(str(app) + os.sep)):
            out.append(f"{manifest.relative_to(app)} points outside the app ({where})")
    return out


def cgo_reasons(app: Path, env: Mapping[str, str], limit: int = 3) -> list[str]:
    """Why the Go app at ``app`` may need cgo (empty: it needs none); at most ``limit`` reasons."""
    reasons: list[str] = []
    cgo = env.get("CGO_ENABLED", "")
    if cgo not in ("", "0"):
        reasons.append(f"CGO_ENABLED={cgo} in the build environment")
    app = Path(os.path.normpath(app.absolute()))

    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename).relative_to(app) if exc.filename and str(exc.filename).startswith(str(app)) \
            else exc.filename
        reasons.append(f"{where or app}: cannot be read ({exc.strerror})")

    for root, dirs, files in os.walk(app, onerror=unreadable):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")) and d != "testdata")
        here = Path(root)
        go_files = sorted(f for f in files if f.endswith(".go") and not f.endswith("_test.go")
                          and not f.startswith((".", "_")))
        for name in sorted(f for f in files if f in ("go.mod", "go.work")):
            reasons += _outside_paths(here / name, app)
        for name in go_files:
            found = _go_imports_c(here / name, app)
            rel = (here / name).relative_to(app)
            if found is None:
                reasons.append(f"{rel}: its imports could not be read")
            elif found:
                reasons.append(f'{rel} imports "C"')
            if len(reasons) >= limit:
                return reasons
        if go_files:
            reasons += [f"{(here / f).relative_to(app)} is C/C++/SWIG code beside Go files"
                        for f in sorted(files) if f.endswith(C_SUFFIXES) and not f.startswith((".", "_"))]
        if len(reasons) >= limit:
            return reasons[:limit]
    return reasons[:limit]
