"""A private apt on the host: the stack's sources, their package index, resolution and downloads.

Nothing here touches the host's apt state: lists, caches and the dpkg status apt resolves
against live in a directory of ours (``Dir::State``, ``Dir::Cache``, ``Dir::State::status``).
The host's apt configuration (``/etc/apt/apt.conf.d``) is still read, so proxies set there, or
in ``http_proxy``/``https_proxy``, are used as apt itself would; its hooks are cleared.

Parsing apt's sources and its answers are pure functions, tested without apt.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Iterable

from builder.stacks.errors import LockError, MirrorError, StackError, UnknownPackageError
from builder.stacks.inventory import parse_paragraphs as parse_stanzas
from builder.stacks.lockfile import Package
from builder.stacks.spec import Distro

APT_GET = "apt-get"
APT_CACHE = "apt-cache"


@dataclass(frozen=True)
class Source:
    """One ``deb`` line: where packages of one suite come from."""

    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str | None = None
    #: apt's ``trusted=yes``: only for the repository pallet writes itself from verified .debs
    trusted: bool = False
    #: False for snapshot archives, whose Release files are past their Valid-Until by design
    check_valid_until: bool = True

    def line(self) -> str:
        options = [f"signed-by={self.signed_by}"] if self.signed_by else []
        if self.trusted:
            options.append("trusted=yes")
        if not self.check_valid_until:
            options.append("check-valid-until=no")
        opts = f"[{' '.join(options)}] " if options else ""
        return f"deb {opts}{self.uri} {self.suite} {' '.join(self.components)}"


def wanted_suites(suite: str) -> tuple[str, ...]:
    return (suite, f"{suite}-updates", f"{suite}-security", f"{suite}/updates")


def mirror_sources(distro: Distro) -> list[Source]:
    """The sources a stack file's ``mirror`` (and ``security-mirror``) name."""
    assert distro.mirror
    out = [Source(distro.mirror, distro.suite, distro.components),
           Source(distro.mirror, f"{distro.suite}-updates", distro.components)]
    if distro.security_mirror:
        out.append(Source(distro.security_mirror, f"{distro.suite}-security", distro.components))
    return out


def _one_line_entries(text: str) -> Iterable[tuple[str, dict[str, str], str, str, list[str]]]:
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.match(r"^(deb|deb-src)\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line)
        if not m:
            continue
        options = dict(o.split("=", 1) for o in (m.group(2) or "").split() if "=" in o)
        yield m.group(1), {k.lower(): v for k, v in options.items()}, m.group(3), m.group(4), m.group(5).split()


def _deb822_entries(text: str) -> Iterable[tuple[str, dict[str, str], str, str, list[str]]]:
    for para in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for raw in para.splitlines():
            if raw.startswith("#"):
                continue
            if raw[:1] in (" ", "\t") and key:
                fields[key] += "\n" + raw.strip()
                continue
            if ":" in raw:
                key, value = raw.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if not fields.get("uris") or not fields.get("suites"):
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        signed = fields.get("signed-by", "")
        options = {"signed-by": signed} if signed and "\n" not in signed and "BEGIN PGP" not in signed else {}
        for typ in fields.get("types", "deb").split():
            for uri in fields["uris"].split():
                for suite in fields["suites"].split():
                    yield typ, options, uri, suite, fields.get("components", "").split()


def host_sources(files: dict[str, str], suite: str, components: tuple[str, ...]) -> list[Source]:
    """The host's ``deb`` sources for ``suite`` (and its -updates / -security), deduplicated.

    ``files`` maps file names (``sources.list``, ``x.list``, ``x.sources``) to their text. Other
    suites (backports, third-party repositories with their own suite names) are left out: a
    stack is Debian's packages only. The stack's components are used, not the host's.
    """
    wanted = wanted_suites(suite)
    out: list[Source] = []
    for name, text in files.items():
        entries = _deb822_entries(text) if name.endswith(".sources") else _one_line_entries(text)
        for typ, options, uri, entry_suite, _ in entries:
            if typ != "deb" or entry_suite not in wanted:
                continue
            source = Source(uri.rstrip("/"), entry_suite, components, options.get("signed-by"))
            if source not in out:
                out.append(source)
    return out


def read_host_source_files(etc_apt: Path = Path("/etc/apt")) -> dict[str, str]:
    files: dict[str, str] = {}
    main = etc_apt / "sources.list"
    if main.is_file():
        files["sources.list"] = main.read_text(errors="replace")
    parts = etc_apt / "sources.list.d"
    if parts.is_dir():
        for p in sorted(parts.iterdir()):
            if p.suffix in (".list", ".sources") and p.is_file():
                files[p.name] = p.read_text(errors="replace")
    return files


def snapshot_sources(distro: Distro, keyring: str | None = None) -> list[Source]:
    """The sources of a snapshot archive (laid out as snapshot.debian.org: ``archive/debian/TIME``
    and ``archive/debian-security/TIME``) at the stack's point in time."""
    assert distro.snapshot
    base, when, comps = distro.snapshot_mirror, distro.snapshot, distro.components
    main = f"{base}/archive/debian/{when}"
    return [Source(main, distro.suite, comps, keyring, check_valid_until=False),
            Source(main, f"{distro.suite}-updates", comps, keyring, check_valid_until=False),
            Source(f"{base}/archive/debian-security/{when}", f"{distro.suite}-security", comps, keyring,
                   check_valid_until=False)]


def _keyring(distro: Distro, stack_file: str) -> str | None:
    if not distro.keyring:
        return None
    path = Path(distro.keyring)
    if not path.is_absolute():
        path = Path(stack_file).resolve().parent / path
    if not path.is_file():
        raise StackError(f"{stack_file}: distro.keyring {distro.keyring!r}: no such file ({path})")
    return str(path)


def sources_for(distro: Distro, stack_file: str, etc_apt: Path = Path("/etc/apt")) -> list[Source]:
    """The stack's snapshot or mirror if it names one, else the host's apt sources for its suite."""
    keyring = _keyring(distro, stack_file)
    if distro.snapshot:
        return snapshot_sources(distro, keyring)
    if distro.mirror:
        return [Source(s.uri, s.suite, s.components, keyring) for s in mirror_sources(distro)]
    found = host_sources(read_host_source_files(etc_apt), distro.suite, distro.components)
    if not any(s.suite == distro.suite for s in found):
        raise MirrorError(f"{stack_file}: no apt source for suite {distro.suite!r} in {etc_apt}/sources.list(.d); "
                          "name one in the stack file: [distro] mirror = \"http://deb.debian.org/debian\"")
    return found


# -- apt's answers: pure --------------------------------------------------------------------

_INST_RE = re.compile(r"^Inst (\S+) (?:\[[^\]]*\] )?\((\S+) .*\[([^\]]+)\]\)")


def parse_simulation(stdout: str) -> list[Package]:
    """The packages an ``apt-get install --simulate`` would install (``Inst`` lines)."""
    out = []
    for line in stdout.splitlines():
        m = _INST_RE.match(line)
        if m:
            out.append(Package(name=m.group(1).split(":", 1)[0], version=m.group(2), arch=m.group(3)))
    return out


@dataclass(frozen=True)
class AptErrors:
    unknown: tuple[str, ...] = ()  # package names apt does not know
    missing: tuple[str, ...] = ()  # "name=version" that the index no longer has
    other: tuple[str, ...] = ()  # every other E: line


def parse_errors(stderr: str) -> AptErrors:
    unknown: list[str] = []
    missing: list[str] = []
    other: list[str] = []
    for line in stderr.splitlines():
        if not line.startswith("E: "):
            continue
        msg = line[3:].strip()
        if m := re.match(r"Unable to locate package (\S+)", msg):
            unknown.append(m.group(1))
        elif m := re.match(r"Package '([^']+)' has no installation candidate", msg):
            unknown.append(m.group(1))
        elif m := re.match(r"Version '([^']+)' for '([^']+)' was not found", msg):
            missing.append(f"{m.group(2)}={m.group(1)}")
        else:
            other.append(msg)
    return AptErrors(tuple(unknown), tuple(missing), tuple(other))


def release_epoch(text: str) -> int | None:
    """The ``Date:`` of a Release/InRelease file as seconds since 1970."""
    m = re.search(r"^Date:\s*(.+)$", text, re.MULTILINE)
    if not m:
        return None
    try:
        return int(parsedate_to_datetime(m.group(1).strip()).timestamp())
    except (TypeError, ValueError):
        return None


def essential_pattern(suite: str, arch: str) -> str:
    """mmdebstrap's selection of the essential set (``--variant=essential``), as an apt pattern."""
    return f"?narrow(?or(?archive(^{suite}$),?codename(^{suite}$)),?architecture({arch}),?essential)"


def host_proxy_options() -> list[str]:
    """Proxy settings of the host's apt configuration, as ``--aptopt`` values for mmdebstrap.

    mmdebstrap runs apt with the chroot's configuration, so the host's ``Acquire::*::Proxy``
    would be lost; the environment (``http_proxy``) is passed on by itself.
    """
    try:
        done = subprocess.run(["apt-config", "dump"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return proxy_lines(done.stdout)


def proxy_lines(dump: str) -> list[str]:
    return [line.rstrip() for line in dump.splitlines()
            if re.match(r'^Acquire::(https?|ftp)::Proxy(::\S+)?(-Auto-Detect)? "', line)]


# -- the private apt: I/O ------------------------------------------------------------------------


class PrivateApt:
    """apt with its own state under ``root``, for one architecture and one set of sources."""

    def __init__(self, root: Path, arch: str, sources: list[Source], where: str) -> None:
        self.root = root
        self.arch = arch
        self.sources = sources
        self.where = where  # the stack file, for messages
        for d in ("state/lists/partial", "cache/archives/partial", "etc/sources.list.d", "etc/preferences.d",
                  "etc/apt.conf.d"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self.status = root / "status"
        self.status.write_text("")
        (root / "etc/sources.list").write_text("".join(s.line() + "\n" for s in sources))
        self.config = root / "apt.conf"
        self.config.write_text(self._config_text())

    @property
    def lists_dir(self) -> Path:
        return self.root / "state" / "lists"

    def _config_text(self) -> str:
        r = self.root
        return "\n".join([
            f'Dir::State "{r}/state";',
            f'Dir::State::status "{self.status}";',
            f'Dir::Cache "{r}/cache";',
            'Dir::Cache::pkgcache "pkgcache.bin";',
            'Dir::Cache::srcpkgcache "srcpkgcache.bin";',
            f'Dir::Etc::SourceList "{r}/etc/sources.list";',
            f'Dir::Etc::SourceParts "{r}/etc/sources.list.d";',
            f'Dir::Etc::Preferences "{r}/etc/preferences";',
            f'Dir::Etc::PreferencesParts "{r}/etc/preferences.d";',
            f'APT::Architecture "{self.arch}";',
            f'APT::Architectures {{ "{self.arch}"; }};',
            'Acquire::Languages "none";',
            'Acquire::Retries "2";',
            'APT::Install-Recommends "false";',
            'APT::Install-Suggests "false";',
            'APT::Sandbox::User "root";',
            'pkgCacheGen::ForceEssential ",";',
            'Debug::NoLocking "true";',
            "#clear APT::Update::Post-Invoke;",
            "#clear APT::Update::Post-Invoke-Success;",
            "#clear APT::Update::Pre-Invoke;",
            "#clear DPkg::Pre-Invoke;",
            "#clear DPkg::Post-Invoke;",
            "#clear DPkg::Pre-Install-Pkgs;",
            "",
        ])

    def _run(self, tool: str, *args: str, cwd: Path | None = None, status: Path | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [tool, "-c", str(self.config), "-q"]
        if status is not None:
            cmd += ["-o", f"Dir::State::status={status}"]
        env = {**os.environ, "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"}
        env.pop("APT_CONFIG", None)
        try:
            return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=3600)
        except FileNotFoundError:
            raise StackError(f"{tool} is not installed; stacks need Debian's apt (apt-get install apt)") from None

    def update(self) -> None:
        """Fetch the package index; MirrorError (naming the mirror) if any source fails."""
        done = self._run(APT_GET, "update", "--error-on=any")
        if done.returncode != 0:
            errors = [line[3:] for line in done.stderr.splitlines() if line.startswith(("E: ", "W: "))]
            detail = errors[0] if errors else (done.stderr.strip().splitlines() or ["apt-get update failed"])[-1]
            mirrors = ", ".join(sorted({s.uri for s in self.sources}))
            raise MirrorError(f"cannot fetch the package index from {mirrors}: {detail} "
                              "(check the network and proxy settings, or set [distro] mirror in "
                              f"{self.where})")

    def newest_release_date(self) -> int | None:
        dates = [release_epoch(p.read_text(errors="replace")) for p in self.lists_dir.glob("*Release")]
        known = [d for d in dates if d is not None]
        return max(known) if known else None

    def known_names(self, names: Iterable[str]) -> set[str]:
        """Which of ``names`` the index has (as real or virtual packages)."""
        done = self._run(APT_CACHE, "pkgnames")
        if done.returncode != 0:
            raise StackError(f"apt-cache pkgnames failed: {done.stderr.strip()}")
        have = set(done.stdout.split())
        return {n for n in names if n in have}

    def check_names(self, names: Iterable[str], field: str) -> None:
        names = list(names)
        known = self.known_names(names)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise UnknownPackageError(
                f"{self.where}: {field} names {'a package' if len(unknown) == 1 else 'packages'} that "
                f"{self.sources[0].suite} ({self.arch}) does not have: {', '.join(unknown)}")

    def simulate(self, specs: list[str], status: Path | None = None) -> list[Package]:
        """What ``apt-get install SPECS`` would install on a system whose dpkg status is ``status``."""
        done = self._run(APT_GET, "install", "--simulate", "--no-install-recommends", *specs, status=status)
        if done.returncode != 0:
            errors = parse_errors(done.stderr)
            if errors.unknown:
                raise UnknownPackageError(f"{self.where}: unknown package(s) for {self.arch}: "
                                          f"{', '.join(errors.unknown)}")
            if errors.missing:
                raise LockError(f"the mirror no longer has {', '.join(errors.missing)}")
            broken = [line.strip() for line in done.stdout.splitlines() if "Depends:" in line or "Conflicts:" in line]
            detail = "; ".join(errors.other + broken[:5]) or done.stderr.strip()
            raise StackError(f"{self.where}: apt cannot install the packages for {self.arch}: {detail}")
        return parse_simulation(done.stdout)

    def stanzas(self, names: Iterable[str]) -> list[dict[str, str]]:
        """Every version the index has of these packages, as control paragraphs."""
        names = sorted(set(names))
        if not names:
            return []
        done = self._run(APT_CACHE, "show", *names)
        if done.returncode != 0 and not done.stdout:
            raise StackError(f"apt-cache show failed: {done.stderr.strip()}")
        return parse_stanzas(done.stdout)

    def missing(self, packages: Iterable[Package]) -> list[Package]:
        """Locked packages whose exact version the index no longer has."""
        packages = list(packages)
        have = {(s.get("Package"), s.get("Version"), s.get("Architecture"))
                for s in self.stanzas(p.name for p in packages)}
        return [p for p in packages if (p.name, p.version, p.arch) not in have]

    def status_of(self, packages: Iterable[Package], dest: Path) -> Path:
        """Write a dpkg status file in which exactly ``packages`` are installed."""
        want = {(p.name, p.version, p.arch) for p in packages}
        paras = []
        for s in self.stanzas(p.name for p in packages):
            key = (s.get("Package"), s.get("Version"), s.get("Architecture"))
            if key in want:
                want.discard(key)
                s = {"Package": s["Package"], "Status": "install ok installed",
                     **{k: v for k, v in s.items() if k != "Package"}}
                paras.append("".join(f"{k}: {v}\n".replace("\n", "\n ").rstrip(" ") for k, v in s.items()))
        if want:
            raise LockError("the mirror no longer has " + ", ".join(sorted(f"{n}={v}" for n, v, _ in want)))
        dest.write_text("\n".join(paras))
        return dest

    def download(self, packages: list[Package], dest: Path) -> None:
        """Download these exact packages into ``dest`` (apt checks each against the index)."""
        if not packages:
            return
        dest.mkdir(parents=True, exist_ok=True)
        done = self._run(APT_GET, "download", *(p.apt_spec for p in packages), cwd=dest)
        if done.returncode != 0:
            errors = parse_errors(done.stderr)
            if errors.missing or errors.unknown:
                gone = ", ".join(errors.missing + errors.unknown)
                raise LockError(f"the mirror no longer has {gone}; run `pallet stack lock {self.where}` to "
                                "lock the versions it has now")
            detail = "; ".join(errors.other) or done.stderr.strip()
            raise MirrorError(f"cannot download packages: {detail}")
