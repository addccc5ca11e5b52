"""Build plan resolution (CNB Buildpack API, "Phase #1: Detection"): pure functions, no I/O.

Each buildpack that passed detection offers one or more potential plans (its top-level
``provides``/``requires`` pair, then each ``[[or]]`` pair). Trials pick one potential plan per
buildpack, left to right, depth first; the first trial in which every requirement is provided
by the same or an earlier buildpack, and everything provided is required by the same or a
later one, wins. Optional buildpacks that break those rules are dropped from the trial.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator

from builder.lifecycle.tomlio import TomlError


@dataclass(frozen=True)
class Require:
    name: str
    metadata: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Alternative:
    provides: tuple[str, ...] = ()
    requires: tuple[Require, ...] = ()


@dataclass(frozen=True)
class Candidate:
    """A buildpack that passed detection, with the plans it offered."""

    id: str
    version: str
    optional: bool
    alternatives: tuple[Alternative, ...] = (Alternative(),)


@dataclass(frozen=True)
class Chosen:
    id: str
    version: str
    optional: bool
    alternative: Alternative


@dataclass
class PlanEntry:
    """One required dependency: who provides it and what each requirer asked for."""

    name: str
    providers: list[tuple[str, str]]  # (id, version) in group order
    requires: list[Require]


@dataclass
class Resolution:
    group: list[Chosen]
    entries: list[PlanEntry]


def parse_plan(data: dict[str, Any], where: str) -> tuple[Alternative, ...]:
    """The potential plans in a buildpack's detect output (``CNB_BUILD_PLAN_PATH``)."""

    def one(table: dict[str, Any], ctx: str) -> Alternative:
        provides, requires = [], []
        for i, p in enumerate(table.get("provides") or []):
            if not isinstance(p, dict) or not isinstance(p.get("name"), str) or not p["name"]:
                raise TomlError(f"{where}: {ctx}provides[{i}] needs a 'name'")
            provides.append(p["name"])
        for i, r in enumerate(table.get("requires") or []):
            if not isinstance(r, dict) or not isinstance(r.get("name"), str) or not r["name"]:
                raise TomlError(f"{where}: {ctx}requires[{i}] needs a 'name'")
            metadata = dict(r.get("metadata") or {})
            if "version" in r and "version" not in metadata:  # the deprecated top-level version
                metadata["version"] = r["version"]
            requires.append(Require(r["name"], metadata))
        return Alternative(tuple(provides), tuple(requires))

    alternatives = [one(data, "")]
    for i, o in enumerate(data.get("or") or []):
        if not isinstance(o, dict):
            raise TomlError(f"{where}: or[{i}] must be a table")
        alternatives.append(one(o, f"or[{i}]."))
    return tuple(alternatives)


def trials(candidates: list[Candidate]) -> Iterator[list[Chosen]]:
    """Every combination of one potential plan per buildpack, left to right, depth first."""
    options = [[Chosen(c.id, c.version, c.optional, alt) for alt in c.alternatives] for c in candidates]
    for combo in itertools.product(*options):
        yield list(combo)


def _settle(trial: list[Chosen]) -> list[Chosen] | None:
    members = list(trial)
    while True:
        for i, m in enumerate(members):
            later_required = {r.name for x in members[i:] for r in x.alternative.requires}
            earlier_provided = {p for x in members[: i + 1] for p in x.alternative.provides}
            ok = (all(p in later_required for p in m.alternative.provides)
                  and all(r.name in earlier_provided for r in m.alternative.requires))
            if not ok:
                if m.optional:
                    members = members[:i] + members[i + 1:]
                    break
                return None
        else:
            return members


def resolve(candidates: list[Candidate]) -> Resolution | None:
    """The first trial that works, with its plan entries; None if no trial does."""
    for trial in trials(candidates):
        group = _settle(trial)
        if not group:
            continue
        entries: dict[str, PlanEntry] = {}
        for member in group:
            for req in member.alternative.requires:
                entry = entries.setdefault(req.name, PlanEntry(req.name, [], []))
                entry.requires.append(req)
        for member in group:
            for name in member.alternative.provides:
                providers = entries[name].providers
                if (member.id, member.version) not in providers:
                    providers.append((member.id, member.version))
        return Resolution(group=group, entries=list(entries.values()))
    return None


def buildpack_plan(resolution: Resolution, bp_id: str, served: set[str]) -> list[dict[str, Any]]:
    """The Buildpack Plan for ``bp_id``: the entries it provides that no earlier provider met.

    ``served`` holds the names an earlier provider met (did not list as unmet in build.toml);
    those are not passed on.
    """
    out = []
    for entry in resolution.entries:
        if entry.name in served:
            continue
        if any(pid == bp_id for pid, _ in entry.providers):
            for req in entry.requires:
                out.append({"name": entry.name, "metadata": dict(req.metadata)})
    return out


def plan_toml(resolution: Resolution) -> dict[str, Any]:
    """The platform's ``plan.toml``."""
    return {"entries": [
        {"providers": [{"id": i, "version": v} for i, v in e.providers],
         "requires": [{"name": r.name, "metadata": dict(r.metadata)} for r in e.requires]}
        for e in resolution.entries]}
