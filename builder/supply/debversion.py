"""Debian version ordering, as dpkg implements it (lib/dpkg/version.c). Pure.

``[epoch:]upstream[-revision]``: epochs compare as numbers; upstream and revision with
``verrevcmp``, which alternates non-digit runs (letters sort before other characters, ``~``
before everything, even the end of the string) and digit runs (compared as numbers). So
``1.0~rc1 < 1.0 < 1.0a < 1.0+b1`` and ``1:0.1 > 2.0``. Tested against ``dpkg --compare-versions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import total_ordering


def _isdigit(c: str) -> bool:
    return "0" <= c <= "9"


def _isalpha(c: str) -> bool:
    return "a" <= c <= "z" or "A" <= c <= "Z"


def _order(c: str) -> int:
    if not c or _isdigit(c):
        return 0
    if _isalpha(c):
        return ord(c)
    if c == "~":
        return -1
    return ord(c) + 256


def verrevcmp(a: str, b: str) -> int:
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        first_diff = 0
        while (i < la and not _isdigit(a[i])) or (j < lb and not _isdigit(b[j])):
            ac = _order(a[i] if i < la else "")
            bc = _order(b[j] if j < lb else "")
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < la and a[i] == "0":
            i += 1
        while j < lb and b[j] == "0":
            j += 1
        while i < la and j < lb and _isdigit(a[i]) and _isdigit(b[j]):
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < la and _isdigit(a[i]):
            return 1
        if j < lb and _isdigit(b[j]):
            return -1
        if first_diff:
            return first_diff
    return 0


@total_ordering
@dataclass(frozen=True)
class Version:
    epoch: int
    upstream: str
    revision: str

    @classmethod
    def parse(cls, text: str) -> "Version":
        text = text.strip()
        epoch = 0
        head, sep, rest = text.partition(":")
        if sep and head.isdigit():
            epoch, text = int(head), rest
        upstream, sep, revision = text.rpartition("-")
        if not sep:
            upstream, revision = text, ""
        return cls(epoch, upstream, revision)

    def _cmp(self, other: "Version") -> int:
        if self.epoch != other.epoch:
            return -1 if self.epoch < other.epoch else 1
        r = verrevcmp(self.upstream, other.upstream) or verrevcmp(self.revision, other.revision)
        return (r > 0) - (r < 0)

    def __lt__(self, other: "Version") -> bool:
        return self._cmp(other) < 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Version) and self._cmp(other) == 0

    def __hash__(self) -> int:  # equal versions ("1.0" and "1.00") must hash alike
        return hash(self.epoch)


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, with, or after ``b`` in dpkg's order."""
    return Version.parse(a)._cmp(Version.parse(b))
