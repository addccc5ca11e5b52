"""What detection found (kept apart from ``detect`` so that a build answered from the memo need
not import the phase)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from builder.lifecycle.buildpack import Buildpack
    from builder.lifecycle.plan import Alternative, Resolution

PASS, FAIL = 0, 100


@dataclass
class Outcome:
    """What one buildpack's ``bin/detect`` said."""

    buildpack: Buildpack
    code: int
    output: list[str]
    alternatives: tuple[Alternative, ...] = ()

    @property
    def passed(self) -> bool:
        return self.code == PASS

    @property
    def errored(self) -> bool:
        return self.code not in (PASS, FAIL)


@dataclass
class GroupTrial:
    members: list[tuple[Buildpack, bool]]  # (buildpack, optional)
    outcomes: list[Outcome]
    reason: str = ""


@dataclass
class DetectResult:
    group: list[Buildpack] = field(default_factory=list)
    optional: list[bool] = field(default_factory=list)
    resolution: Resolution | None = None
    trials: list[GroupTrial] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.resolution is not None

    def outcome(self, bp_id: str) -> Outcome | None:
        for trial in self.trials:
            for o in trial.outcomes:
                if o.buildpack.id == bp_id:
                    return o
        return None
