"""Order resolution: an order (groups of buildpack references, possibly composite and
optional) expanded into the flat groups detection tries, as the CNB spec describes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from builder.lifecycle import tomlio
from builder.lifecycle.buildpack import Buildpack, GroupRef, Registry
from builder.lifecycle.tomlio import TomlError


@dataclass(frozen=True)
class Member:
    buildpack: Buildpack
    optional: bool


Group = tuple[Member, ...]


def read_order(path: Path) -> list[tuple[GroupRef, ...]]:
    data = tomlio.read(path)
    order = []
    for i, o in enumerate(data.get("order") or []):
        group = o.get("group") if isinstance(o, dict) else None
        if not isinstance(group, list) or not group:
            raise TomlError(f"{path}: order[{i}] needs a non-empty [[order.group]] list")
        refs = []
        for g in group:
            if not isinstance(g, dict) or not isinstance(g.get("id"), str):
                raise TomlError(f"{path}: order[{i}]: each group entry needs an 'id'")
            refs.append(GroupRef(g["id"], g.get("version"), bool(g.get("optional", False))))
        order.append(tuple(refs))
    if not order:
        raise TomlError(f"{path}: no [[order]] groups")
    return order


def expand(order: list[tuple[GroupRef, ...]], registry: Registry, _depth: int = 0) -> list[Group]:
    """Flatten composite buildpacks depth-first, left to right; an optional composite entry
    yields the group with its expansion and then the group without it."""
    if _depth > 16:
        raise TomlError("buildpack order nests composite buildpacks more than 16 deep (a cycle?)")
    groups: list[Group] = []
    for refs in order:
        partial: list[Group] = [()]
        for ref in refs:
            bp = registry.get(ref.id, ref.version)
            if bp.is_composite:
                inner = expand(list(bp.order), registry, _depth + 1)
                options = [tuple(Member(m.buildpack, m.optional or ref.optional) for m in g) for g in inner]
                if ref.optional:
                    options.append(())
            else:
                options = [(Member(bp, ref.optional),)]
            partial = [p + o for p in partial for o in options]
        groups.extend(g for g in partial if g)
    return groups
