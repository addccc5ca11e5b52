"""Which shipped stack an app builds on when ``--stack`` is not given: the runtime versions the
app asks for, against the runtime versions each stack provides.

The runtimes come from the stacks' Debian packages (so that rebase patches them), so a version
request cannot be met by installing another interpreter; it is met by choosing the stack whose
Debian release has it. ``choose_stack`` is pure: (requests, offers, default) -> (stack, reason),
tested without building anything. The readers around it do the I/O:

- ``python_requests(app)``: ``.python-version``, ``runtime.txt``, ``[project] requires-python``;
- ``shipped_offers(stacks_dir)``: each stack file's lock, through ``lockfile.provided`` (the run
  image's ``provides``) plus the build image's toolchains (``BUILD_TOOLCHAINS``: Go).

Other languages add a reader that returns ``Request``s (``app_requests`` calls every reader in
``READERS``) and, when their version syntax is new, a matcher in ``MATCHERS``.

A request fits a stack's version exactly, at the same major.minor only (a patch level the
stacks do not have: 3.11.11 against 3.11.2 builds, with a notice), or not at all. The default
stack wins when it fits; then the other stacks in order (newest Debian release first).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import Callable, Sequence

from builder.errors import PalletError

#: Runtime names (the keys of a stack's ``provides``) as people write them.
DISPLAY = {"python": "Python", "node": "Node.js", "go": "Go"}
#: Toolchains only the build image carries (the run image needs no Go), runtime -> package.
BUILD_TOOLCHAINS = {"go": "golang-go"}


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
        return f"{self.source} asks for {DISPLAY.get(self.runtime, self.runtime)} {self.spec}"


@dataclass(frozen=True)
class Offer:
    """What a stack provides: runtime -> upstream version (``3.13.5``, ``20.19.2``, ``1.24``)."""

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


# -- matching: pure -------------------------------------------------------------------------------


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", version))


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


def fit_minimum(spec: str, have: str) -> Fit:
    """A minimum release (the ``go`` directive of go.mod): the stack's must be at least it. A
    stack version without the patch level (Debian's golang-go is ``1.24``) at the same
    major.minor fits with a notice."""
    want, got = _numbers(spec), _numbers(have)
    if not want:
        return Fit.NONE
    if len(got) < len(want) and got == want[: len(got)] and len(got) >= 2:
        return Fit.MINOR
    return Fit.EXACT if got >= want else Fit.NONE


MATCHERS: dict[str, Callable[[str, str], Fit]] = {
    "release": fit_release,
    "pep440": fit_pep440,
    "minimum": fit_minimum,
}


def check_spec(request: Request) -> None:
    """PalletError when a request cannot be read (before any stack is compared)."""
    if request.kind not in MATCHERS:
        raise PalletError(f"{request.source}: no matcher for {request.kind!r} versions")
    if request.kind == "pep440":
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            SpecifierSet(request.spec)
        except InvalidSpecifier:
            raise PalletError(f"{request.source}: {request.spec!r} is not a valid version specifier") from None
    elif not _numbers(request.spec):
        raise PalletError(f"{request.source}: {request.spec!r} is not a version")


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def fit(request: Request, offer: Offer) -> Fit:
    have = offer.runtimes.get(request.runtime)
    if have is None:
        return Fit.NONE
    return MATCHERS[request.kind](request.spec, have)


def choose_stack(requests: Sequence[Request], offers: Sequence[Offer], default: str) -> Choice:
    """The stack to build on, and one line saying why; NoStackError listing what each stack
    offers when none has what the app asks for.

    The default stack wins when it fits every request exactly; then the first other offer that
    does; then the first that fits with only patch levels differing (a notice each).
    """
    for request in requests:
        check_spec(request)
    ordered = sorted(offers, key=lambda o: o.stack != default)  # stable: the default first
    if not requests:
        return Choice(default, f"stack {default} (the default)")
    asked = "; ".join(r.describe() for r in requests)
    runtimes = list(dict.fromkeys(r.runtime for r in requests))

    def has(offer: Offer) -> str:
        return ", ".join(f"{DISPLAY.get(rt, rt)} {offer.runtimes.get(rt, 'none')}" for rt in runtimes)

    default_offer = next((o for o in offers if o.stack == default), Offer(default))
    for wanted in (Fit.EXACT, Fit.MINOR):
        for offer in ordered:
            fits = [fit(r, offer) for r in requests]
            if min(fits) < wanted:
                continue
            notices = tuple(
                f"notice: {r.describe()}; stack {offer.stack} has {offer.runtimes[r.runtime]}: the same "
                f"{_minor(offer.runtimes[r.runtime])}, another patch level"
                for r, f in zip(requests, fits) if f == Fit.MINOR)
            if offer.stack == default:
                return Choice(default, f"stack {default} (the default): {asked}; it has {has(offer)}", notices)
            return Choice(offer.stack, f"stack {offer.stack}: {asked}; the default stack {default} has "
                                       f"{has(default_offer)}, {offer.stack} has {has(offer)}", notices)
    offered = "; ".join(o.describe() for o in ordered) or "no stacks found"
    raise NoStackError(f"no stack has what the app asks for ({asked}): {offered}. Change the request, or "
                       "build on a stack of your own with --stack FILE")


# -- what apps ask for: reading their files ----------------------------------------------------


def _first_line(path: Path) -> str:
    for line in path.read_text(errors="replace").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            return line
    return ""


def python_requests(app: Path) -> list[Request]:
    """``.python-version`` and ``runtime.txt`` (``3.13``, ``python-3.11.9``, ``cpython3.12``) and
    ``[project] requires-python``. Unreadable values are left to the buildpack, which says what
    is wrong with them; here they ask for nothing."""
    out: list[Request] = []
    for name in (".python-version", "runtime.txt"):
        path = app / name
        if not path.is_file():
            continue
        version = re.sub(r"^(c?python)-?", "", _first_line(path))
        if re.fullmatch(r"3(\.\d+){0,2}", version):
            out.append(Request("python", version, name))
    try:
        project = tomllib.loads((app / "pyproject.toml").read_text()).get("project", {})
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        project = {}
    spec = project.get("requires-python") if isinstance(project, dict) else None
    if isinstance(spec, str) and spec.strip():
        from packaging.specifiers import InvalidSpecifier, SpecifierSet

        try:
            SpecifierSet(spec)
            out.append(Request("python", spec.strip(), "pyproject.toml requires-python", "pep440"))
        except InvalidSpecifier:
            pass
    return out


#: Readers of runtime requests, one per language: app directory -> requests.
READERS: list[Callable[[Path], list[Request]]] = [python_requests]


def app_requests(app: Path) -> list[Request]:
    return [r for reader in READERS for r in reader(app)]


# -- what stacks provide: reading their locks -------------------------------------------------------


def offer_of(stack_file: Path) -> Offer | None:
    """The runtimes a stack file's lock provides (None when it has no current lock)."""
    from builder.stacks import lockfile, spec
    from builder.stacks.errors import StackError

    try:
        stack = spec.load(stack_file)
        lock = lockfile.parse(stack.lock_path.read_bytes(), str(stack.lock_path))
        arch_lock = lock.arch(stack.architectures[0])
    except (OSError, KeyError, StackError):
        return None
    runtimes = {k: v["upstream"] for k, v in lockfile.provided(stack, arch_lock, "run").items()}
    build = {p.name: p for p in arch_lock.build}
    for runtime, package in BUILD_TOOLCHAINS.items():
        if runtime not in runtimes and package in build:
            runtimes[runtime] = lockfile.upstream_version(build[package].version)
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
