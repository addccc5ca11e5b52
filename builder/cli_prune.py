"""``pallet prune``: parsing and printing only (the work is in ``builder.gc.prune``)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Callable

from builder.errors import UsageError


def cmd_prune(args: argparse.Namespace) -> int:
    from builder.cachedir import cache_root
    from builder.gc.prune import prune
    from builder.gc.units import human_size, parse_duration, parse_size

    keep = _parsed(parse_size, args.keep_storage, "--keep-storage")
    older = _parsed(parse_duration, args.older_than, "--older-than")
    names = [name for name, on in (("debs", args.debs), ("stacks", args.stacks)) if on]
    root = Path(args.cache_dir) if args.cache_dir else cache_root()
    report = prune(root, names=names, everything=args.all, keep_bytes=keep, unused_for=older, dry_run=args.dry_run)
    if args.json:
        print(json.dumps({"cache": str(root), **report.to_json()}, indent=2, sort_keys=True))
        return 0
    verb = "would remove" if args.dry_run else "removed"
    for e in report.removed:
        used = time.strftime("%Y-%m-%d %H:%M", time.gmtime(e.last_used))
        print(f"{verb} {e.area} {e.name} ({human_size(e.size)}, last used {used} UTC)")
    by_area: dict[str, int] = {}
    for e in report.removed:
        by_area[e.area] = by_area.get(e.area, 0) + e.size
    parts = ", ".join(f"{a} {human_size(n)}" for a, n in sorted(by_area.items()))
    summary = f"{'would free' if args.dry_run else 'freed'} {human_size(report.freed)}" + (f" ({parts})" if parts else "")
    if report.in_use:
        summary += f"; kept {len(report.in_use)} in use"
    if report.pinned:
        summary += f"; kept {len(report.pinned)} that committed stack locks name (--all removes them)"
    print(summary + f"; cache {root}")
    return 0


def _parsed(parse: Callable[[str], Any], text: str | None, flag: str) -> Any:
    if text is None:
        return None
    try:
        return parse(text)
    except ValueError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def register(sub: Any, common: Callable[..., argparse.ArgumentParser]) -> None:
    p = sub.add_parser("prune", parents=[common(remote=False)], help="remove cached data, least recently used first",
                       description="Remove what pallet's cache holds (unpacked images in rootfs/, build caches "
                                   "in builds/ and memo/, layer blobs in layers/, pulled builders, abandoned "
                                   "scratch directories), least recently used first, never what a running build "
                                   "or pallet run uses. Without a bound, everything not in use goes. Downloaded "
                                   "Debian packages and stack images only with --debs / --stacks, and never those "
                                   "a committed stack lock names unless --all.")
    p.add_argument("--dry-run", action="store_true", help="list what would be removed; remove nothing")
    p.add_argument("--keep-storage", metavar="SIZE",
                   help="remove least recently used entries only until the cache takes at most SIZE (e.g. 10G)")
    p.add_argument("--older-than", metavar="DURATION",
                   help="remove only entries not used for DURATION (e.g. 72h, 7d)")
    p.add_argument("--debs", action="store_true", help="also downloaded .deb files no committed stack lock names")
    p.add_argument("--stacks", action="store_true", help="also stack images no committed stack lock names")
    p.add_argument("--all", action="store_true",
                   help="every area, also the packages and stack images committed stack locks name")
    p.add_argument("--cache-dir", metavar="DIR", help="the cache (default $PALLET_CACHE or ~/.cache/pallet)")
    p.set_defaults(func=cmd_prune)
