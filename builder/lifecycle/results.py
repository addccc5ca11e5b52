"""What a build hands back (kept apart from export so a memo hit need not import export)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from builder.lifecycle.process import Process
from builder.oci.model import Descriptor

if TYPE_CHECKING:
    from builder.oci.copy import CopyStats


@dataclass
class ExportResult:
    descriptor: Descriptor
    processes: list[Process]
    default_process: str | None
    layers_reused: list[str] = field(default_factory=list)
    layers_written: list[str] = field(default_factory=list)
    stats: "CopyStats | None" = None
