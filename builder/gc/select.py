"""Which cache entries to remove: a pure function of what is there, its sizes and last uses,
and the bounds asked for (testable without a cache)."""

from __future__ import annotations

from typing import Collection, Protocol, Sequence, TypeVar


class Sized(Protocol):
    @property
    def size(self) -> int: ...

    @property
    def last_used(self) -> float: ...


E = TypeVar("E", bound=Sized)


def least_recently_used(entries: Sequence[E], *, keep_bytes: int | None = None, unused_for: float | None = None,
                        now: float = 0.0, stays: Collection[int] = ()) -> list[E]:
    """The entries to remove, least recently used first.

    ``unused_for`` (seconds): only entries not used for that long are candidates. ``keep_bytes``:
    stop once what remains (every entry not removed counts) takes at most that much; without it,
    every candidate goes. ``stays``: indexes of entries that cannot be removed (in use): never
    chosen, but their size still counts, so the next least recently used goes instead.
    """
    candidates = [i for i, e in enumerate(entries)
                  if i not in stays and (unused_for is None or now - e.last_used >= unused_for)]
    candidates.sort(key=lambda i: (entries[i].last_used, i))
    if keep_bytes is None:
        return [entries[i] for i in candidates]
    total = sum(e.size for e in entries)
    chosen: list[E] = []
    for i in candidates:
        if total <= keep_bytes:
            break
        chosen.append(entries[i])
        total -= entries[i].size
    return chosen
