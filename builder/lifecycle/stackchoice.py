"""Which shipped stack an app builds on when ``--stack`` is not given: the runtime versions the
app asks for, against the runtime versions each stack provides.

The runtimes come from the stacks' Debian packages (so that rebase patches them), so a Python
or Go request is met by choosing the stack whose Debian release has it, not by installing
another interpreter. ``choose_stack`` is pure: (requests, offers, default) -> (stack, reason),
tested without building anything. The I/O is around it:

- ``apprequests``: what the app asks for (``.python-version``, ``runtime.txt``,
  ``requires-python``, Poetry's ``python``; ``engines.node``, ``.nvmrc``, ``.node-version``;
  the ``go`` directive of go.mod and go.work);
- ``shipped_offers(stacks_dir)``: each stack file's lock, through ``lockfile.provided`` (the run
  image's ``provides``) plus the build image's toolchains (``BUILD_TOOLCHAINS``: Go, at the
  version of the ``golang-X.Y-go`` package the ``golang-go`` of the lock depends on).

Versions are read as each ecosystem reads them (``MATCHERS``): a Python release or its prefix,
PEP 440 specifiers, Poetry constraints (poetry-core's own parser), npm ranges (node-semver's
rules, through the ``node-semver`` port, as the Node.js buildpack's ``semver`` reads them), and
Go's minimums (the go directive: ``go 1.21`` means 1.21 or newer, ``go 1.22.3`` that patch or
newer; Go orders ``1.21`` < ``1.21rc1`` < ``1.21.0``).

A request fits a stack's version exactly, at the same major.minor only (a Python patch level
the stacks do not have: 3.11.11 against 3.11.2 builds, with a notice), or not at all. The
default stack wins when it fits every request; then the other stacks in order (newest Debian
release first). Node.js requests are the exception to "no stack, no build" (``INSTALLABLE``):
the Node.js buildpack installs an official Node.js build when the stack's does not satisfy the
range, so when no stack fits them all, the choice is made by the other requests (on the default
stack when there are none) and the reason says that Node.js will be installed. ``lts/*`` and
``lts/-N`` do not choose at all: which line they are depends on the releases the npm registry
lists when the buildpack runs (``lts/<codename>`` is a fixed line: ``lts/hydrogen`` is 18.x).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from enum import IntEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from builder.errors import PalletError, shown

#: Runtime names (the keys of a stack's ``provides``) as people write them.
DISPLAY = {"python": "Python", "node": "Node.js", "go": "Go"}
#: Toolchains only the build image carries (the run image needs no Go), runtime -> package.
BUILD_TOOLCHAINS = {"go": "golang-go"}
#: Runtimes whose buildpack installs an official build when no stack has the version asked for.
INSTALLABLE = {"node": "the Node.js buildpack installs an official Node.js build matching"}
#: Said of an ``lts/*`` or ``lts/-N`` request, which does not choose the stack.
LTS_LATER = ("which LTS line that is, the Node.js buildpack reads from the npm registry's releases when it builds "
             "(the stack's Node.js if it is on that line, else an official build)")
#: Said when a request no stack fits is for a runtime the buildpack cannot install.
WHY_NOT_INSTALLED = {"go": "Go comes from the stack: pallet builds with GOTOOLCHAIN=local, which downloads no "
                           "newer toolchain"}


class NoStackError(PalletError):
    """No shipped stack has the runtime version the app asks for."""


class Fit(IntEnum):
    NONE = 0
    MINOR = 1  # same major.minor, another patch level
    EXACT = 2


@dataclass(frozen=True)
class Request:
    """One runtime version an app asks for, and where it asks."""

    runtime: str  # a key of a stack's provides: python, node, go
    spec: str  # as written: "3.11", ">=3.12,<3.14", "^20", "1.22"
    source: str  # where: ".python-version", "pyproject.toml requires-python"
    kind: str = "release"  # how to read spec: a key of MATCHERS

    def describe(self) -> str:
        newer = " or newer" if self.kind == "minimum" else ""
        return f"{self.source} asks for {DISPLAY.get(self.runtime, self.runtime)} {self.spec}{newer}"


@dataclass(frozen=True)
class Offer:
    """What a stack provides: runtime -> upstream version (``3.13.5``, ``20.19.2``, ``1.24.4``)."""

    stack: str
    runtimes: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        if not self.runtimes:
            return f"{self.stack} has no language runtime"
        return f"{self.stack} has " + ", ".join(f"{DISPLAY.get(k, k)} {v}" for k, v in sorted(self.runtimes.items()))


@dataclass(frozen=True)
class Choice:
    stack: str
    reason: str  # one line: which stack, and why
    notices: tuple[str, ...] = ()  # patch levels the stack does not have exactly


# -- reading versions: pure -----------------------------------------------------------------------


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version))


#: Go's version syntax (golang.org/x/mod/modfile's GoVersionRE): major.minor, an optional patch
#: or pre-release (``1.21rc1``, ``1.22beta2``).
_GO_VERSION = re.compile(r"^([1-9][0-9]*)\.(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?(?:(beta|rc)([0-9]+))?$")


def valid_go_version(text: str) -> bool:
    return bool(_GO_VERSION.match(text))


def _go_key(version: str) -> tuple[int, int, int, int, int] | None:
    """Go's order (go/version): ``1.21`` (the language) < ``1.21beta1`` < ``1.21rc1`` <
    ``1.21.0`` < ``1.21.1``."""
    m = _GO_VERSION.match(version)
    if not m:
        return None
    major, minor, patch, pre, n = m.groups()
    if patch is not None:
        return (int(major), int(minor), 3, int(patch), 0)
    if pre is not None:
        return (int(major), int(minor), 1 if pre == "beta" else 2, int(n), 0)
    return (int(major), int(minor), 0, 0, 0)


#: What .nvmrc and .node-version say for "the newest release" (nodeapp.js takes them as any).
_NODE_NEWEST = re.compile(r"^(node|stable|latest)$", re.I)
#: nvm's LTS codenames and their lines, as buildpacks/nodejs/lib/nodelts.js has them (a test
#: keeps the two the same): ``lts/iron`` is ``20.x`` wherever it is written.
LTS_CODENAMES = {"argon": 4, "boron": 6, "carbon": 8, "dubnium": 10, "erbium": 12, "fermium": 14, "gallium": 16,
                 "hydrogen": 18, "iron": 20, "jod": 22, "krypton": 24}
#: ``lts/*`` and ``lts/-N``: which line they are depends on the Node.js releases there are,
#: which the Node.js buildpack reads from the npm registry when it builds (nodelts.js).
_LTS_BY_RELEASES = re.compile(r"^lts/(\*|-\d+)$", re.I)


def lts_by_releases(spec: str) -> bool:
    return bool(_LTS_BY_RELEASES.match(spec.strip()))


def npm_range(spec: str, nvm: bool = False) -> str | None:
    """The node-semver range a Node.js request means (None when it is not one), as the Node.js
    buildpack reads it: ``lts/<codename>`` as its line; ``engines.node`` otherwise as written;
    an ``nvm`` file's line (.nvmrc, .node-version) with a leading ``v`` dropped and ``node``,
    ``stable``, ``latest`` as ``*``. (``lts/*`` and ``lts/-N`` are no range here: see
    ``lts_by_releases``.)"""
    text = spec.strip()
    if text[:4].lower() == "lts/":
        major = LTS_CODENAMES.get(text[4:].lower())
        return f"{major}.x" if major is not None else None
    if nvm:
        if _NODE_NEWEST.match(text):
            return "*"
        text = re.sub(r"^v(?=\d)", "", text)
    import nodesemver

    try:
        return text if nodesemver.valid_range(text, loose=False) is not None else None
    except (ValueError, TypeError, RecursionError):
        return None


@lru_cache(maxsize=64)
def poetry_constraint(spec: str) -> Any:
    """Poetry's reading of a ``python = "..."`` constraint (``^3.11``, ``~3.11``, ``3.11.*``,
    ``>=3.9,<3.13``, ``^3.10 || ^3.12``), by poetry-core, the library Poetry itself uses; None
    when it cannot be read. A bare ``3.11`` means exactly 3.11.0 to Poetry (``poetry install``
    on 3.11.2 says the version "is not allowed by the project"), so it does here."""
    from poetry.core.constraints.version import parse_constraint
    from poetry.core.constraints.version.exceptions import ParseConstraintError

    try:
        return parse_constraint(spec.strip())
    except (ParseConstraintError, ValueError, RecursionError):
        return None


# -- matching: pure -------------------------------------------------------------------------------


def fit_release(spec: str, have: str) -> Fit:
    """A release or its prefix (``3``, ``3.11``, ``3.11.11``): exact when every part given
    matches; MINOR when major.minor match and only the patch differs."""
    want, got = _numbers(spec), _numbers(have)
    if not want:
        return Fit.NONE
    if got[: len(want)] == want:
        return Fit.EXACT
    if len(want) >= 3 and got[:2] == want[:2]:
        return Fit.MINOR
    return Fit.NONE


def fit_pep440(spec: str, have: str) -> Fit:
    """A PEP 440 specifier set (``requires-python``)."""
    from packaging.specifiers import SpecifierSet

    return Fit.EXACT if SpecifierSet(spec).contains(have, prereleases=True) else Fit.NONE


def fit_poetry(spec: str, have: str) -> Fit:
    """A Poetry constraint (``[tool.poetry.dependencies] python``)."""
    from poetry.core.constraints.version import Version

    constraint = poetry_constraint(spec)
    return Fit.EXACT if constraint is not None and constraint.allows(Version.parse(have)) else Fit.NONE


def fit_npm(spec: str, have: str, nvm: bool = False) -> Fit:
    """A node-semver range (``engines.node``): ``>=20``, ``22.x``, ``^18.17``, ``18 || 20``; no
    patch-level notice (the buildpack installs the exact release asked for)."""
    import nodesemver

    wanted = npm_range(spec, nvm)
    return Fit.EXACT if wanted is not None and nodesemver.satisfies(have, wanted, loose=False) else Fit.NONE


def fit_nvm(spec: str, have: str) -> Fit:
    """The line of an .nvmrc or .node-version: a range, ``v20``, or ``lts/*`` (any release)."""
    return fit_npm(spec, have, nvm=True)


def fit_minimum(spec: str, have: str) -> Fit:
    """A minimum Go version (the ``go`` directive): the stack's must be at least it. A stack
    version without the patch level (``1.24``, when only a metapackage's version is known) at
    the same major.minor as a patch asked for fits with a notice."""
    want, got = _go_key(spec), _go_key(have)
    if want is None or got is None:
        return Fit.NONE
    if got >= want:
        return Fit.EXACT
    if got[2] == 0 and got[:2] == want[:2]:
        return Fit.MINOR
    return Fit.NONE


def fit_lts_by_releases(spec: str, have: str) -> Fit:
    """``lts/*``, ``lts/-N``: never a reason to choose a stack (``choose_stack`` sets them aside:
    the buildpack finds the line when it builds)."""
    return Fit.NONE


MATCHERS: dict[str, Callable[[str, str], Fit]] = {
    "release": fit_release,
    "pep440": fit_pep440,
    "poetry": fit_poetry,
    "npm": fit_npm,
    "nvm": fit_nvm,
    "lts": fit_lts_by_releases,
    "minimum": fit_minimum,
}


#: Bounds on a version an app asks for: far above any real one.
MAX_SPEC, MAX_DIGITS = 256, 18


def check_spec(request: Request) -> None:
    """PalletError when a request cannot be read (before any stack is compared)."""
    if request.kind not in MATCHERS:
        raise PalletError(f"{request.source}: no matcher for {request.kind!r} versions")
    if len(request.spec) > MAX_SPEC or re.search(r"\d{%d}" % (MAX_DIGITS + 1), request.spec):
        # no real version is this long; Python refuses to read such numbers (int's digit limit)
        raise PalletError(f"{request.source}: {shown(request.spec, 40)} is not a version "
                          f"(over {MAX_SPEC} characters or a number over {MAX_DIGITS} digits)")
    if request.kind == "pep440":
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            SpecifierSet(request.spec)
        except InvalidSpecifier:
            raise PalletError(f"{request.source}: {request.spec!r} is not a valid version specifier") from None
    elif request.kind == "poetry":
        if poetry_constraint(request.spec) is None:
            raise PalletError(f"{request.source}: {request.spec!r} is not a valid Poetry version constraint")
    elif request.kind in ("npm", "nvm"):
        if npm_range(request.spec, request.kind == "nvm") is None:
            raise PalletError(f"{request.source}: {request.spec!r} is not a valid version range")
    elif request.kind == "lts":
        if not lts_by_releases(request.spec):
            raise PalletError(f"{request.source}: {request.spec!r} is not lts/* or lts/-N")
    elif request.kind == "minimum":
        if _go_key(request.spec) is None:
            raise PalletError(f"{request.source}: {request.spec!r} is not a Go version (like 1.22 or 1.22.3)")
    elif not _numbers(request.spec):
        raise PalletError(f"{request.source}: {request.spec!r} is not a version")


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def fit(request: Request, offer: Offer) -> Fit:
    have = offer.runtimes.get(request.runtime)
    if have is None:
        return Fit.NONE
    return MATCHERS[request.kind](request.spec, have)


def _first_fit(requests: Sequence[Request], ordered: Sequence[Offer]) -> tuple[Offer, list[Fit]] | None:
    """The first offer fitting every request exactly, else the first fitting them at least at
    the same major.minor."""
    for wanted in (Fit.EXACT, Fit.MINOR):
        for offer in ordered:
            fits = [fit(r, offer) for r in requests]
            if min(fits) >= wanted:
                return offer, fits
    return None


def _notices(requests: Sequence[Request], fits: Sequence[Fit], offer: Offer) -> tuple[str, ...]:
    return tuple(
        f"notice: {r.describe()}; stack {offer.stack} has {offer.runtimes[r.runtime]}: the same "
        f"{_minor(offer.runtimes[r.runtime])}, another patch level"
        for r, f in zip(requests, fits) if f == Fit.MINOR)


def choose_stack(requests: Sequence[Request], offers: Sequence[Offer], default: str) -> Choice:
    """The stack to build on, and one line saying why; NoStackError listing what each stack
    offers when none has what the app asks for.

    The default stack wins when it fits every request exactly; then the first other offer that
    does; then the first that fits with only patch levels differing (a notice each). When none
    fits them all, requests for an ``INSTALLABLE`` runtime step aside: the stack is chosen by
    the others (the default when there are none), and the buildpack installs that runtime.
    """
    for request in requests:
        check_spec(request)
    later = [r for r in requests if r.kind == "lts"]
    if later:
        choice = choose_stack([r for r in requests if r.kind != "lts"], offers, default)
        said = "; ".join(f"{r.describe()}: {LTS_LATER}" for r in later)
        joined = f"{choice.reason}{': ' if choice.reason == f'stack {default} (the default)' else '; '}{said}"
        return Choice(choice.stack, joined, choice.notices)
    ordered = sorted(offers, key=lambda o: o.stack != default)  # stable: the default first
    if not requests:
        return Choice(default, f"stack {default} (the default)")
    asked = "; ".join(r.describe() for r in requests)
    runtimes = list(dict.fromkeys(r.runtime for r in requests))

    def has(offer: Offer, among: Sequence[str] = runtimes) -> str:
        return ", ".join(f"{DISPLAY.get(rt, rt)} {offer.runtimes.get(rt, 'none')}" for rt in among)

    def named(stack: str) -> str:
        return f"stack {stack} (the default)" if stack == default else f"stack {stack}"

    default_offer = next((o for o in offers if o.stack == default), Offer(default))
    found = _first_fit(requests, ordered)
    if found is not None:
        offer, fits = found
        if offer.stack == default:
            return Choice(default, f"{named(default)}: {asked}; it has {has(offer)}", _notices(requests, fits, offer))
        return Choice(offer.stack, f"stack {offer.stack}: {asked}; the default stack {default} has "
                                   f"{has(default_offer)}, {offer.stack} has {has(offer)}",
                      _notices(requests, fits, offer))
    everywhere = "; ".join(f"{o.stack} has {has(o)}" for o in ordered
                           if any(rt in o.runtimes for rt in runtimes)) or "no stacks found"
    installed = [r for r in requests if r.runtime in INSTALLABLE]
    own = [r for r in requests if r.runtime not in INSTALLABLE]
    if installed:
        found = _first_fit(own, ordered) if own else (default_offer, [])
        if found is not None:
            offer, fits = found
            by_others = sorted({r.runtime for r in installed} - {r.runtime for r in own})
            how = "; ".join(f"{INSTALLABLE[r.runtime]} {r.spec}" for r in installed)
            if own:  # another language's request decided: its buildpack may be the one that builds
                how = (f"{offer.stack} has {has(offer, [r.runtime for r in own])}, and when "
                       f"{', '.join(DISPLAY.get(rt, rt) for rt in by_others)} builds the app {how}")
            one = "it" if len(requests) == 1 else "all of it"
            return Choice(offer.stack, f"{named(offer.stack)}: {asked}; no stack has {one} ({everywhere}): {how}",
                          _notices(own, fits, offer))
    offered = "; ".join(o.describe() for o in ordered) or "no stacks found"
    unmet = {r.runtime for r in requests if all(fit(r, o) == Fit.NONE for o in ordered)}
    why = "".join(f"; {WHY_NOT_INSTALLED[rt]}" for rt in runtimes if rt in unmet and rt in WHY_NOT_INSTALLED)
    why += _pin_hint(requests, ordered)
    raise NoStackError(f"no stack has what the app asks for ({asked}): {offered}{why}. Change the request, or "
                       "build on a stack of your own with --stack FILE")


#: Where an app pins a Python release by hand: what the error tells it to write instead.
_PIN_FILES = (".python-version", "runtime.txt", "Pipfile [requires] python_version")


def _pin_hint(requests: Sequence[Request], ordered: Sequence[Offer]) -> str:
    """What to write instead of a Python pin no stack has (``.python-version`` 3.12, which ``uv
    init`` writes from the Python it ran on): the stacks' Python lines that every other request
    of the app accepts, in the pin's own spelling."""
    python = [r for r in requests if r.runtime == "python"]
    pins = [r for r in python if r.kind == "release" and all(fit(r, o) == Fit.NONE for o in ordered)
            and r.source in _PIN_FILES]  # a lock's pin (Pipfile.lock) is remade by its tool, not edited
    if not pins:
        return ""
    others = [r for r in python if r not in pins]
    lines = [(o.stack, ".".join(o.runtimes["python"].split(".")[:2])) for o in ordered
             if "python" in o.runtimes and all(fit(r, o) != Fit.NONE for r in others)]
    if not lines:
        return ""
    spelled = {"runtime.txt": "python-{}"}
    ways = [f"{spelled.get(pins[0].source, '{}').format(minor)} ({stack})" for stack, minor in lines]
    ways = ", ".join(ways[:-1]) + " or " + ways[-1] if len(ways) > 1 else ways[0]
    return f"; {pins[0].source} could ask for {ways}"


# -- what apps ask for: read in ``apprequests`` (the readers' I/O apart from this module) ------


def app_requests(app: Path) -> list[Request]:
    from builder.lifecycle.apprequests import app_requests as read

    return read(app)


# -- what stacks provide: reading their locks -------------------------------------------------------


def offer_of(stack_file: Path) -> Offer | None:
    """The runtimes a stack file's lock provides (None when it has no current lock). Go's
    version is its toolchain package's (``golang-1.24-go`` 1.24.4): a go directive asks for a
    patch level, and the ``golang-go`` metapackage's version (``1.24``) does not say it."""
    from builder.stacks import lockfile, spec
    from builder.stacks.errors import StackError

    try:
        stack = spec.load(stack_file)
        lock = lockfile.parse(lockfile.read_lock_bytes(stack.lock_path), str(stack.lock_path))
        arch_lock = lock.arch(stack.architectures[0])
    except (OSError, KeyError, StackError):
        return None
    runtimes = {k: v["upstream"] for k, v in lockfile.provided(stack, arch_lock, "run").items()}
    build = {p.name: p for p in arch_lock.build}
    for runtime, package in BUILD_TOOLCHAINS.items():
        if runtime not in runtimes and package in build:
            version = lockfile.upstream_version(build[package].version)  # golang-go: 2:1.24~2 -> 1.24
            real = build.get(f"golang-{version}-go")  # the toolchain it depends on: 1.24.4-1 -> 1.24.4
            runtimes[runtime] = lockfile.upstream_version(real.version) if real is not None else version
    return Offer(stack.name, runtimes)


def shipped_offers(stacks_dir: Path) -> list[Offer]:
    """The shipped stacks whose run image provides a runtime, newest Debian release first."""
    found = []
    for path in sorted(stacks_dir.glob("*.toml")):
        offer = offer_of(path)
        if offer is None or not _run_provides(path):
            continue
        found.append((_distro_version(path), offer))
    found.sort(key=lambda x: (-x[0], x[1].stack))
    return [o for _, o in found]


def _run_provides(path: Path) -> bool:
    try:
        return bool(tomllib.loads(path.read_text()).get("run", {}).get("provides"))
    except (OSError, tomllib.TOMLDecodeError):
        return False


def _distro_version(path: Path) -> int:
    try:
        return int(str(tomllib.loads(path.read_text()).get("distro", {}).get("version", "0")).split(".")[0])
    except (OSError, tomllib.TOMLDecodeError, ValueError):
        return 0
