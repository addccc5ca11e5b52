"""``pallet prune``: remove cache entries, least recently used first, within the bounds asked
for; never one in use, never (without ``all``) what a committed stack lock names.

The choice is ``select.least_recently_used`` over the entries of every area asked for together
(``--keep-storage`` bounds them all, as BuildKit's keep-storage does); the removal is each
area's (``areas``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from builder.errors import UsageError
from builder.gc import areas as areamod
from builder.gc.areas import Area, Entry
from builder.gc.select import least_recently_used


@dataclass
class Report:
    removed: list[Entry] = field(default_factory=list)
    in_use: list[Entry] = field(default_factory=list)
    pinned: list[Entry] = field(default_factory=list)
    before: dict[str, int] = field(default_factory=dict)   # area -> bytes
    dry_run: bool = False

    @property
    def freed(self) -> int:
        return sum(e.size for e in self.removed)

    def to_json(self) -> dict:
        return {"dryRun": self.dry_run, "freed": self.freed, "before": self.before,
                "after": {a: size - sum(e.size for e in self.removed if e.area == a) for a, size in self.before.items()},
                "removed": [e.to_json() for e in self.removed], "inUse": [e.to_json() for e in self.in_use],
                "pinned": len(self.pinned)}


def choose_areas(names: list[str], everything: bool) -> list[str]:
    """The areas to clean: the default ones, plus those named; every one with ``everything``."""
    known = (*areamod.DEFAULT_AREAS, *areamod.EXPLICIT_AREAS)
    for name in names:
        if name not in known:
            raise UsageError(f"unknown cache area {name!r}: choose among {', '.join(known)}")
    if everything:
        return list(known)
    return [*areamod.DEFAULT_AREAS, *(n for n in areamod.EXPLICIT_AREAS if n in names)]


def make_areas(root: Path, names: list[str], everything: bool) -> list[Area]:
    committed_debs: frozenset[str] = frozenset()
    committed_keys: frozenset[str] = frozenset()
    if not everything and ("debs" in names or "stacks" in names):
        committed_debs, committed_keys = committed(root)
    table = {"rootfs": areamod.RootfsArea, "builds": areamod.BuildsArea, "layers": areamod.LayersArea,
             "builders": areamod.BuildersArea, "work": areamod.WorkArea}
    out: list[Area] = []
    for name in names:
        if name == "debs":
            out.append(areamod.DebsArea(root, committed_debs))
        elif name == "stacks":
            out.append(areamod.StacksArea(root, committed_keys))
        else:
            out.append(table[name](root))
    return out


def committed(root: Path) -> tuple[frozenset[str], frozenset[str]]:
    """(.deb file names, stack cache keys) that the committed stack locks name: pallet's own
    stacks and the ``stacks/`` of the current directory (and a refresh of them this machine
    remembers, which ``pallet build`` uses while the lock is stale)."""
    from builder.errors import PalletError
    from builder.resources import stacks_dir
    from builder.stacks import lockfile, spec
    from builder.stacks.build import cache_key

    debs: set[str] = set()
    keys: set[str] = set()
    files = sorted(Path(stacks_dir()).glob("*.toml")) + sorted((Path.cwd() / "stacks").glob("*.toml"))
    for path in files:
        with contextlib.suppress(PalletError, OSError, ValueError):
            stack = spec.load(path)
            lock, data = lockfile.load(stack)
            key = cache_key(stack, data)
            locks = [(lock, data)]
            refreshed = root / "stacks" / "refreshed" / f"{key}.lock"
            with contextlib.suppress(OSError, PalletError):
                new = refreshed.read_bytes()
                locks.append((lockfile.parse(new, str(refreshed)), new))
            for one, raw in locks:
                keys.add(cache_key(stack, raw))
                for arch_lock in one.arches.values():
                    for p in (*arch_lock.base, *arch_lock.build, *arch_lock.run):
                        debs.add(p.deb_filename)
    return frozenset(debs), frozenset(keys)


def prune(root: Path, *, names: list[str] = (), everything: bool = False, keep_bytes: int | None = None,  # type: ignore[assignment]
          unused_for: float | None = None, dry_run: bool = False) -> Report:
    """Remove (or with ``dry_run``, list) what the bounds allow; see the module docstring.

    An area that builds lease whole (layers, debs, stacks) is held only while its own entries
    are removed, so a build that starts meanwhile waits seconds, not the whole prune."""
    chosen = choose_areas(list(names), everything)
    report = Report(dry_run=dry_run)
    made = make_areas(root, chosen, everything)
    found: list[tuple[Area, Entry]] = []
    stays: set[int] = set()
    for area in made:
        with area.locked() as free:
            entries = area.entries()
            report.before[area.name] = sum(e.size for e in entries)
            for entry in entries:
                if entry.pinned and not everything:
                    report.pinned.append(entry)
                    stays.add(len(found))
                elif not free or area.busy(entry):
                    report.in_use.append(entry)
                    stays.add(len(found))
                found.append((area, entry))
    entries = [e for _, e in found]
    now = time.time()
    if dry_run:
        report.removed = least_recently_used(entries, keep_bytes=keep_bytes, unused_for=unused_for, now=now,
                                             stays=stays)
        return report
    done: set[int] = set()
    while True:  # each round removes what it planned or finds some of it in use: it ends
        left = [i for i in range(len(found)) if i not in done]
        plan = least_recently_used([entries[i] for i in left], keep_bytes=keep_bytes, unused_for=unused_for,
                                   now=now, stays={j for j, i in enumerate(left) if i in stays})
        if not plan:
            break
        planned = {id(e) for e in plan}
        complete = True
        for area in made:
            mine = [i for i in left if found[i][0] is area and id(entries[i]) in planned]
            if not mine:
                continue
            with area.locked() as free:
                for i in mine:
                    if free and area.remove(entries[i]):
                        report.removed.append(entries[i])
                        done.add(i)
                    else:
                        report.in_use.append(entries[i])
                        stays.add(i)
                        complete = False
        if complete:
            break
    for area in made:
        with area.locked() as free:
            if free:
                area.tidy()
    report.removed.sort(key=lambda e: e.last_used)
    return report
