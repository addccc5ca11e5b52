"""Semantic Versioning 2.0.0 ordering (npm, Go modules), as semver.org section 11 states it. Pure.

``MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``: the three numbers compare as numbers; a
pre-release sorts before its release; pre-release identifiers compare one by one (numeric ones
as numbers and below alphanumeric ones, which compare in ASCII order; a shorter list first);
build metadata never counts. Go writes a ``v`` in front (``v1.8.0``, pseudo-versions
``v0.0.0-20240101120000-abcdef123456`` are pre-releases) and OSV's Go records leave it out, so a
leading ``v`` is dropped. Versions with fewer than three numbers (``1.2``) get zeros, so that
near-semver strings found in the wild still order sensibly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import total_ordering

_CORE = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")


class InvalidVersion(ValueError):
    """Not a semantic version."""


@total_ordering
@dataclass(frozen=True)
class Version:
    major: int
    minor: int
    patch: int
    prerelease: tuple[int | str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "Version":
        t = text.strip()
        if t[:1] in ("v", "V"):
            t = t[1:]
        m = _CORE.match(t)
        if not m:
            raise InvalidVersion(f"not a semantic version: {text!r}")
        pre = tuple(int(p) if p.isdigit() else p for p in m.group(4).split(".")) if m.group(4) else ()
        return cls(int(m.group(1)), int(m.group(2) or 0), int(m.group(3) or 0), pre)

    def _key(self) -> tuple:
        # A release (no pre-release) sorts after every pre-release of the same numbers.
        pre = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: "Version") -> bool:
        return self._key() < other._key()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, with, or after ``b``; raises InvalidVersion."""
    va, vb = Version.parse(a), Version.parse(b)
    return (va > vb) - (va < vb)
