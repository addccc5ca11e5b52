"""The wheels of a fully pinned requirements file, fetched in parallel before pip runs.

    PYTHONPATH=<the stack's pip> VENV/bin/python prefetch.py REQUIREMENTS DIR

pip fetches one package at a time: the index page, then the file, for each. For a requirements
file that pins every package with ``==`` (pip-compile's and uv's output, Pipfile.lock's and
pdm.lock's), this fetches every index page and then every wheel at once, choosing for each the
wheel pip would choose (the best of the interpreter's tags, pip's own ``sys_tags``; only files
whose sha256 the file's ``--hash`` options allow, when it has them), checks each against the
index's sha256, and checks that every package's requirements are in the set. pip then installs
from DIR with ``--no-index``: the same wheels, installed by pip as always.

Files the requirements include (``-r``, ``-c``) are read as pip reads them, relative to the
including file; a package pinned in two of them is fetched once.

Exit 0: DIR holds every wheel. Exit 3: pip must fetch (the reason on stderr): a requirement that
is no exact pin (or outside a constraint), an option line, an sdist only, pip settings of the user's (an index, a
find-links), a package's requirement missing from the file, a download that failed.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import re
import sys
import urllib.request
import zipfile
from pathlib import Path

from pip._vendor.packaging import tags
from pip._vendor.packaging.markers import default_environment
from pip._vendor.packaging.requirements import InvalidRequirement, Requirement
from pip._vendor.packaging.specifiers import SpecifierSet
from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename
from pip._vendor.packaging.version import InvalidVersion, Version

INDEX = "https://pypi.org/simple/"
PIP = 3
CHUNK = 1 << 20
#: An index page bigger than this is not read (PyPI's biggest, of packages with thousands of files, are a few MiB).
INDEX_LIMIT = 64 << 20
#: What PEP 691 requires of each file of a project page.
REQUIRED_FIELDS = ("filename", "url", "hashes")
#: pip settings that change nothing pip fetches, or how (pallet's CA and timeouts).
HARMLESS_ENV = {"PIP_CERT", "PIP_DISABLE_PIP_VERSION_CHECK", "PIP_NO_INPUT", "PIP_DEFAULT_TIMEOUT",
                "PIP_PROGRESS_BAR", "PIP_NO_WARN_SCRIPT_LOCATION", "PIP_ROOT_USER_ACTION"}
PIP_CONFIGS = ("/etc/pip.conf", "/etc/xdg/pip/pip.conf", "~/.config/pip/pip.conf", "~/.pip/pip.conf")


class ToPip(Exception):
    pass


#: Option lines that change nothing of what pip takes for pinned wheels (only wheels are taken).
HARMLESS_OPTIONS = ("--prefer-binary", "--only-binary", "--pre", "--require-hashes")
#: ``-r FILE``, ``--requirement=FILE``, ``-rFILE``; ``-c``/``--constraint`` likewise.
_INCLUDE = re.compile(r"^(?:(-r|--requirement)|(-c|--constraint))(?:\s*=\s*|\s+|(?<=^-r)|(?<=^-c))(\S+)$")


def _logical_lines(path: Path) -> list[str]:
    """The file's lines as pip reads them: continuations joined, comments dropped."""
    try:
        text = re.sub(r"\\\r?\n", " ", path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ToPip(f"{path.name} cannot be read ({type(exc).__name__})") from None
    lines = (re.sub(r"(^|\s)#.*$", "", raw).strip() for raw in text.splitlines())
    return [line for line in lines if line]


def _read(path: Path, reqs: list, constraints: list, seen: set[Path], constraint: bool = False) -> None:
    """Requirements (or constraints) of ``path`` and of the files it includes, relative to it as
    pip resolves them; (requirement, allowed sha256s) for each line whose marker holds here."""
    resolved = path.resolve()
    if resolved in seen:
        return
    seen.add(resolved)
    for line in _logical_lines(path):
        include = _INCLUDE.match(line)
        if include:
            if "://" in include.group(3):
                raise ToPip(f"the requirements include {include.group(3)}")
            _read(path.parent / include.group(3), reqs, constraints, seen, constraint or bool(include.group(2)))
            continue
        parts = line.split()
        hashes = {p.split(":", 1)[1] for p in parts if p.startswith("--hash=sha256:")}
        rest = " ".join(p for p in parts if not p.startswith("--hash="))
        if rest.split()[0].split("=")[0] in HARMLESS_OPTIONS:
            continue
        if rest.startswith("-") or not rest:
            raise ToPip(f"the requirements have an option line ({rest.split()[0] if rest else '--hash'})")
        try:
            req = Requirement(rest)
        except InvalidRequirement as exc:
            raise ToPip(f"{rest}: {exc}") from None
        except RecursionError:   # packaging's parser recurses into a marker's parentheses
            raise ToPip(f"{rest[:60]}...: its marker is nested too deeply") from None
        if req.marker is not None and not req.marker.evaluate():
            continue
        if constraint:
            constraints.append(req)
            continue
        specs = list(req.specifier)
        if req.url or len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            raise ToPip(f"{rest} is not pinned to one version")
        reqs.append((req, hashes))


def pins(path: Path) -> list[tuple[Requirement, set[str]]]:
    """(requirement, allowed sha256s) for each package the file (and what it includes: ``-r``,
    ``-c``) asks for here; a package named twice (``base.txt`` and ``prod.txt``, with extras
    or without) once, its extras merged. A constraint the pin breaks is pip's to report."""
    reqs: list[tuple[Requirement, set[str]]] = []
    constraints: list[Requirement] = []
    _read(path, reqs, constraints, set())
    merged: dict[str, tuple[Requirement, set[str]]] = {}
    for req, hashes in reqs:
        name = canonicalize_name(req.name)
        if name not in merged:
            merged[name] = (req, hashes)
            continue
        first, first_hashes = merged[name]
        if Version(next(iter(first.specifier)).version) != Version(next(iter(req.specifier)).version):
            raise ToPip(f"{req.name} is pinned to two versions")
        first.extras |= req.extras
        if first_hashes and hashes:
            first_hashes &= hashes
        else:
            first_hashes |= hashes
    for constraint in constraints:
        pinned = merged.get(canonicalize_name(constraint.name))
        if pinned and (constraint.url or not constraint.specifier.contains(next(iter(pinned[0].specifier)).version,
                                                                          prereleases=True)):
            raise ToPip(f"{pinned[0]} is not within the constraint {constraint}")
    return list(merged.values())


def _open(url: str, accept: str = "*/*"):  # noqa: ANN202 - an http.client.HTTPResponse
    request = urllib.request.Request(url, headers={"Accept": accept, "User-Agent": "pallet-prefetch"})
    return urllib.request.urlopen(request, timeout=60)  # noqa: S310 - https only, above


def get(url: str, accept: str = "*/*", limit: int = INDEX_LIMIT) -> bytes:
    """The answer, read to at most ``limit`` bytes: an index page that never ends must not fill memory."""
    with _open(url, accept) as response:
        body = response.read(limit + 1)
    if len(body) > limit:
        raise ToPip(f"{url} answers more than {limit >> 20} MiB")
    return body


def _index_page(name: str) -> list[dict]:
    """The files of a package's index page (PEP 691 JSON), each checked for the types read of it,
    so that an answer of another shape is said field by field."""
    where = f"the index's page for {name}"
    try:
        page = json.loads(get(f"{INDEX}{name}/", "application/vnd.pypi.simple.v1+json"))
    except (ValueError, RecursionError) as exc:
        raise ToPip(f"{where} is not JSON") from exc
    if not isinstance(page, dict):
        raise ToPip(f"{where} must be an object")
    files = page.get("files", [])
    if not isinstance(files, list):
        raise ToPip(f"{where}: files must be an array")
    for i, f in enumerate(files):
        _check_file(f, f"{where}: files[{i}]")
    return files


def _check_file(f: object, where: str) -> None:
    """One entry of an index page's files: the fields ``choose`` reads, of PEP 691's types."""
    if not isinstance(f, dict):
        raise ToPip(f"{where} must be an object")
    for key, types, shown in (("filename", str, "a string"), ("url", str, "a string"),
                              ("hashes", dict, "an object"), ("requires-python", (str, type(None)), "a string"),
                              ("yanked", (bool, str), "a boolean or a string")):
        if key in REQUIRED_FIELDS and key not in f:
            raise ToPip(f"{where} has no {key}")
        if key in f and not isinstance(f[key], types):
            raise ToPip(f"{where}.{key} must be {shown}")
    if not isinstance(f["hashes"].get("sha256", ""), str):
        raise ToPip(f"{where}.hashes.sha256 must be a string")


def choose(req: Requirement, hashes: set[str], supported: list[tags.Tag]) -> dict:
    """The file pip would take: a wheel of the pinned version, best tag first."""
    name = canonicalize_name(req.name)
    files = _index_page(name)
    want = Version(next(iter(req.specifier)).version)
    rank = {tag: i for i, tag in enumerate(supported)}
    here = Version(".".join(map(str, sys.version_info[:3])))
    best = None   # (not yanked first, then the best tag) as pip ranks them
    unhashed = 0  # wheels of the version that the --hash options leave out
    other_python = ""  # the Requires-Python of wheels of the version that leave this Python out
    for f in files:
        filename = f["filename"]
        if not filename.endswith(".whl") or "/" in filename or "\\" in filename or filename.startswith("."):
            continue
        try:
            wname, wversion, _build, wtags = parse_wheel_filename(filename)
        except (ValueError, InvalidVersion):
            continue
        sha = f["hashes"].get("sha256")
        if wname != name or wversion != want or not sha:
            continue
        if hashes and sha not in hashes:
            unhashed += 1
            continue
        rp = f.get("requires-python")
        if rp:
            try:
                if not SpecifierSet(rp).contains(here, prereleases=True):
                    other_python = rp
                    continue
            except Exception:  # noqa: BLE001 - pip skips a file it cannot read the range of
                continue
        tag_rank = min((rank[t] for t in wtags if t in rank), default=None)
        if tag_rank is None:
            continue
        score = (bool(f.get("yanked")), tag_rank)
        if best is None or score < best[0]:
            best = (score, f)
    if best is None:
        raise ToPip(f"{req.name}=={want} has no wheel for this Python"
                    + (f" among those its --hash options allow ({unhashed} other wheels)" if unhashed else "")
                    + (f" (its wheels require Python {other_python})" if other_python else ""))
    url = best[1]["url"]
    if url.startswith("/"):
        url = "https://pypi.org" + url
    if not url.startswith("https://"):
        raise ToPip(f"{req.name}: its file is not on https")
    return {"name": name, "url": url.split("#", 1)[0], "sha256": best[1]["hashes"]["sha256"],
            "filename": best[1]["filename"], "extras": set(req.extras)}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(chosen: dict, into: Path) -> Path:
    """The wheel, streamed to disk as it is hashed: sixteen at once, a machine-learning app's
    wheels (torch, the nvidia-* libraries: gigabytes) were all held in memory together."""
    target = into / chosen["filename"]
    if target.is_file() and sha256_of(target) == chosen["sha256"]:
        return target  # kept from an earlier build
    tmp = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with _open(chosen["url"]) as response, tmp.open("wb") as out:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != chosen["sha256"]:
            raise ToPip(f"{chosen['filename']} does not match the index's sha256")
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def missing_requirements(wheels: dict[str, tuple[Path, set[str]]]) -> list[str]:
    """Requirements of the wheels that no wheel in the set provides."""
    env = default_environment()
    missing = []
    for name, (wheel, extras) in wheels.items():
        with zipfile.ZipFile(wheel) as z:
            meta = next((i for i in z.infolist() if i.filename.endswith(".dist-info/METADATA")
                         and i.filename.count("/") == 1), None)
            if meta is not None and meta.file_size > 16 << 20:
                raise ToPip(f"{wheel.name}: its METADATA is over 16 MiB")
            text = z.read(meta).decode("utf-8", "replace") if meta else ""
        for line in text.split("\n\n", 1)[0].splitlines():
            if not line.startswith("Requires-Dist:"):
                continue
            try:
                dep = Requirement(line.split(":", 1)[1].strip())
            except InvalidRequirement:
                continue
            if dep.marker is not None and not any(dep.marker.evaluate({**env, "extra": e})
                                                  for e in (extras or {""})):
                continue
            if canonicalize_name(dep.name) not in wheels:
                missing.append(f"{dep.name} (for {name})")
    return missing


def main(argv: list[str]) -> int:
    requirements, into = Path(argv[0]), Path(argv[1])
    try:
        user = [k for k in os.environ if k.upper().startswith("PIP_") and k.upper() not in HARMLESS_ENV]
        if user:
            raise ToPip(f"pip settings in the environment ({user[0]})")
        for conf in (*PIP_CONFIGS, os.path.join(sys.prefix, "pip.conf")):
            if os.path.exists(os.path.expanduser(conf)):
                raise ToPip(f"pip settings in {conf}")
        wanted = pins(requirements)
        if not wanted:
            raise ToPip("nothing pinned")
        supported = list(tags.sys_tags())
        into.mkdir(parents=True, exist_ok=True)
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(16, len(wanted))) as pool:
            chosen = list(pool.map(lambda rh: choose(rh[0], rh[1], supported), wanted))
            files = list(pool.map(lambda c: fetch(c, into), chosen))
        wheels = {c["name"]: (f, c["extras"]) for c, f in zip(chosen, files)}
        for old in into.iterdir():   # the cache keeps this set only
            if old not in files:
                old.unlink()
        missing = missing_requirements(wheels)
        if missing:
            raise ToPip(f"the requirements do not pin {missing[0]}")
    except ToPip as exc:
        print(f"pip fetches: {exc}", file=sys.stderr)
        return PIP
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError, zipfile.BadZipFile) as exc:
        # a download that failed, a wheel or an index answer of a shape nothing here expects
        print(f"pip fetches: {type(exc).__name__}: {exc}", file=sys.stderr)
        return PIP
    print(f"fetched {len(wanted)} wheels at once (every requirement pinned): pip installs them without an index")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
