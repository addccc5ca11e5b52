"""What the launcher reads, written from Python; and the launcher itself, as bytes.

An app image starts through ``/cnb/process/<type>`` (a symlink to ``/cnb/lifecycle/launcher``),
a small static C program (``launcher/launcher.c``). It reads ``/layers/config/processes/<type>``,
sets up the environment from the launch layers, changes directory and execs the command:
see the comment at the top of ``launcher.c`` for the exact rules (CNB lifecycle semantics).

The process file format is a list of NUL-terminated fields, easy to parse in C and unable to
be misread (no quoting, no escaping; values cannot contain NUL, so a NUL cannot be smuggled in):

    pallet-process-v1 NUL
    TYPE NUL
    WORKING-DIR NUL                  empty: the launcher's default, /workspace
    DEFAULT NUL                      "1" for the default process, else "0"
    BUILDPACK-ID NUL                 for people; the launcher ignores it
    N NUL LAYER-DIR NUL ...          the launch layer directories, in order (N of them)
    N NUL COMMAND NUL ...            the command and its fixed elements
    N NUL ARG NUL ...                default arguments, replaced by any given at run time

Counts are decimal. Layer directories are in buildpack order, then layer order, e.g.
``/layers/example_bp/runtime``: consecutive ones with the same parent are one buildpack's.

The launcher binary is committed (``launcher/launcher-<arch>``, built by ``launcher/build.sh``)
so that every machine puts the same bytes in every image: app-image digests must not depend on
the compiler of whoever built pallet.
"""

from __future__ import annotations

import re
from importlib import resources

from builder.errors import PalletError
from builder.oci.layer import Entry
from builder.lifecycle.process import LAUNCHER, PROCESS_CONFIG_DIR, PROCESS_DIR, Process

FORMAT_MAGIC = "pallet-process-v1"
DEFAULT_WORKING_DIR = "/workspace"
ARCHES = ("amd64", "arm64")

#: The CNB process type syntax; also keeps a type usable as a file and symlink name
#: (/cnb/process/TYPE: at most 255 bytes, a file name's bound, or no runtime can unpack the image).
_TYPE_RE = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")


class ProcessFileError(PalletError):
    """A process cannot be written for the launcher, or a process file cannot be read."""


def check_type(process_type: str) -> str:
    if not _TYPE_RE.match(process_type) or process_type in (".", "..", "launcher"):
        raise ProcessFileError(f"process type {process_type[:80]!r} is not valid: use letters, digits, "
                               "'.', '_' and '-', at most 255 (and not 'launcher')")
    return process_type


def _field(value: str, what: str) -> bytes:
    data = value.encode("utf-8", "surrogateescape")
    if b"\0" in data:
        raise ProcessFileError(f"{what} {value!r} contains a NUL character, which a process cannot have")
    return data + b"\0"


def encode_process(process: Process, layer_dirs: list[str]) -> bytes:
    """The process file for ``process``: what the launcher reads at ``PROCESS_CONFIG_DIR/<type>``."""
    check_type(process.type)
    if not process.command or not process.command[0]:
        raise ProcessFileError(f"process {process.type!r} has no command")
    for path in [*layer_dirs, *([process.working_dir] if process.working_dir else [])]:
        if not path.startswith("/"):
            raise ProcessFileError(f"process {process.type!r}: {path!r} is not an absolute path")
    out = [_field(FORMAT_MAGIC, "magic"), _field(process.type, "process type"),
           _field(process.working_dir or "", "working directory"),
           _field("1" if process.default else "0", "default"),
           _field(process.buildpack_id, "buildpack id")]
    for what, items in (("layer directory", layer_dirs), ("command element", process.command),
                        ("argument", process.args)):
        out.append(_field(str(len(items)), "count"))
        out += [_field(item, what) for item in items]
    return b"".join(out)


def decode_process(data: bytes) -> tuple[Process, list[str]]:
    """The inverse of ``encode_process`` (for tests and inspection)."""
    if not data.endswith(b"\0"):
        raise ProcessFileError("not a process file: it does not end with a NUL byte")
    fields = [f.decode("utf-8", "surrogateescape") for f in data[:-1].split(b"\0")]
    if not fields or fields[0] != FORMAT_MAGIC:
        raise ProcessFileError(f"not a process file (expected it to start with {FORMAT_MAGIC!r})")
    pos = 5
    if len(fields) < pos:
        raise ProcessFileError("process file is truncated")

    def take_list() -> list[str]:
        nonlocal pos
        try:
            count = int(fields[pos])
        except (IndexError, ValueError):
            raise ProcessFileError("process file is truncated or has a bad count") from None
        items = fields[pos + 1:pos + 1 + count]
        if len(items) != count:
            raise ProcessFileError("process file is truncated")
        pos += 1 + count
        return items

    layers, command, args = take_list(), take_list(), take_list()
    if pos != len(fields):
        raise ProcessFileError("process file has trailing data")
    process = Process(type=fields[1], command=tuple(command), args=tuple(args), default=fields[3] == "1",
                      working_dir=fields[2] or None, buildpack_id=fields[4])
    return process, layers


def launcher_binary(arch: str = "amd64") -> bytes:
    """The committed static launcher for ``arch`` (same bytes everywhere)."""
    if arch not in ARCHES:
        raise PalletError(f"no launcher for architecture {arch!r} (there is one for: {', '.join(ARCHES)})")
    return resources.files("builder.lifecycle").joinpath("launcher", f"launcher-{arch}").read_bytes()


def launch_entries(processes: list[Process], layer_dirs: list[str], arch: str = "amd64") -> list[Entry]:
    """Everything the launcher needs in an image, as entries for the layer writer: the
    launcher, a ``/cnb/process/<type>`` symlink to it and ``/layers/config/processes/<type>``
    for each process, and their directories. Sorted, so the layer is reproducible."""
    seen: set[str] = set()
    for process in processes:
        if process.type in seen:
            raise ProcessFileError(f"process type {process.type!r} is declared twice")
        seen.add(check_type(process.type))
    defaults = [p.type for p in processes if p.default]
    if len(defaults) > 1:
        raise ProcessFileError(f"more than one default process: {', '.join(defaults)}")
    dirs = {"/cnb", "/cnb/lifecycle", PROCESS_DIR, "/layers", "/layers/config", PROCESS_CONFIG_DIR}
    entries = [Entry.directory(d, 0o755) for d in sorted(dirs)]
    entries.append(Entry.file(LAUNCHER, launcher_binary(arch), mode=0o755))
    for process in sorted(processes, key=lambda p: p.type):
        entries.append(Entry.symlink(f"{PROCESS_DIR}/{process.type}", LAUNCHER))
        entries.append(Entry.file(f"{PROCESS_CONFIG_DIR}/{process.type}", encode_process(process, layer_dirs)))
    return entries
