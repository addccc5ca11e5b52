"""Process types: what an image can run, as buildpacks declare them in ``launch.toml``."""

from __future__ import annotations

from dataclasses import dataclass

#: Where the app lives in build sandboxes and in the exported image.
WORKSPACE = "/workspace"
#: Where buildpack layers live, likewise.
LAYERS = "/layers"
#: The launcher binary and the ``/cnb/process/<type>`` entrypoints.
LAUNCHER = "/cnb/lifecycle/launcher"
PROCESS_DIR = "/cnb/process"
#: One file per process type, read by the launcher (format: ``builder.lifecycle.launch``).
PROCESS_CONFIG_DIR = "/layers/config/processes"


@dataclass(frozen=True)
class Process:
    """A process type (Buildpack API 0.9+: always direct; a shell only if the command is one).

    ``args`` are defaults that arguments given at run time replace.
    """

    type: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    default: bool = False
    working_dir: str | None = None
    buildpack_id: str = ""
