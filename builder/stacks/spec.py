"""Stack files (``stacks/<name>.toml``) -> validated dataclasses. Pure: text in, objects out.

A stack file declares the two images of a stack: a **build** image (what buildpacks need) and a
**run** image (what apps need at run time), each either from a list of Debian packages (resolved
to exact versions by ``pallet stack lock``) or from an existing image pinned by digest::

    id = "io.pallet.stacks.bookworm"       # io.buildpacks.base.id
    version = "0.1.0"                       # image version and default tag
    architectures = ["amd64"]

    [distro]
    name = "debian"
    version = "12"
    suite = "bookworm"
    # mirror = "http://deb.debian.org/debian"   (default: the host's apt sources)

    [user]
    uid = 1000
    gid = 1000
    home = "/home/cnb"

    [build]
    packages = ["python3", "build-essential"]

    [run]
    packages = ["python3"]
    provides = { python = "python3" }

Every mistake is a ``StackFileError`` that names the file and the field (``build.packages[2]``),
and says what was expected. Unknown fields are errors too: a typo must not be silently ignored.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from builder.inputfile import read_input
from builder.stacks.errors import StackFileError

BUILD = "build"
RUN = "run"
KINDS = (BUILD, RUN)

#: Debian architecture -> OCI (architecture, variant).
ARCHITECTURES: dict[str, tuple[str, str | None]] = {
    "amd64": ("amd64", None),
    "arm64": ("arm64", "v8"),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v5"),
    "i386": ("386", None),
    "ppc64el": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
    "mips64el": ("mips64le", None),
}

#: What ``[files] exclude`` / ``keep`` default to: documentation, manuals and translations go
#: (as in Debian's slim images), the copyright files stay (they carry the licences).
DEFAULT_EXCLUDE = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*",
                   "/usr/share/lintian/*", "/usr/share/linda/*")
DEFAULT_KEEP = ("/usr/share/doc/*/copyright",)

_NAME_RE = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SUITE_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_DIGEST_REF_RE = re.compile(r"@sha256:[a-f0-9]{64}$")
_URL_RE = re.compile(r"^(https?|file|copy)://\S+$")


@dataclass(frozen=True)
class Distro:
    name: str
    version: str
    suite: str
    components: tuple[str, ...] = ("main",)
    mirror: str | None = None
    security_mirror: str | None = None
    #: a point in time of an archive laid out like snapshot.debian.org ("20261204T035428Z"): the
    #: packages as they were then, so a lock resolves forever where such an archive is reachable
    snapshot: str | None = None
    snapshot_mirror: str = "https://snapshot.debian.org"
    #: the keyring that signs the mirror's Release files (relative to the stack file), when the
    #: host's trusted keys do not
    keyring: str | None = None

    def resolution_inputs(self) -> dict[str, Any]:
        """What package resolution depends on (the keys of a snapshot only when there is one, so
        locks of stacks without them keep their digest)."""
        out: dict[str, Any] = {"suite": self.suite, "components": list(self.components), "mirror": self.mirror,
                               "security-mirror": self.security_mirror}
        if self.snapshot:
            out.update({"snapshot": self.snapshot, "snapshot-mirror": self.snapshot_mirror})
        return out


@dataclass(frozen=True)
class User:
    uid: int = 1000
    gid: int = 1000
    name: str = "cnb"
    group: str = "cnb"
    home: str = "/home/cnb"
    shell: str = "/bin/bash"


@dataclass(frozen=True)
class Files:
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    keep: tuple[str, ...] = DEFAULT_KEEP


@dataclass(frozen=True)
class ImageSpec:
    """One of the two images: from ``packages`` (assembled) or an existing ``image`` (by digest)."""

    kind: str
    packages: tuple[str, ...] | None = None
    image: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    #: runtime name -> the Debian package whose version it is, e.g. {"python": "python3"}
    provides: dict[str, str] = field(default_factory=dict)

    @property
    def from_packages(self) -> bool:
        return self.packages is not None


@dataclass(frozen=True)
class Stack:
    path: Path
    id: str
    name: str
    version: str
    architectures: tuple[str, ...]
    distro: Distro
    user: User
    build: ImageSpec
    run: ImageSpec
    description: str | None = None
    source: str | None = None
    maintainer: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    files: Files = field(default_factory=Files)

    @property
    def lock_path(self) -> Path:
        return self.path.with_suffix(".lock")

    def image(self, kind: str) -> ImageSpec:
        return self.build if kind == BUILD else self.run

    @property
    def from_packages(self) -> bool:
        return self.build.from_packages or self.run.from_packages

    def to_json(self) -> dict[str, Any]:
        """Everything that defines the images (not where the file is), for digests and caches."""
        def image(spec: ImageSpec) -> dict[str, Any]:
            return {"packages": list(spec.packages) if spec.packages is not None else None,
                    "image": spec.image, "env": spec.env, "labels": spec.labels, "provides": spec.provides}
        d = self.distro
        return {
            "id": self.id, "name": self.name, "version": self.version, "description": self.description,
            "source": self.source, "maintainer": self.maintainer, "architectures": list(self.architectures),
            "distro": {"name": d.name, "version": d.version, **d.resolution_inputs(),
                       **({"keyring": d.keyring} if d.keyring else {})},
            "user": {"uid": self.user.uid, "gid": self.user.gid, "name": self.user.name, "group": self.user.group,
                     "home": self.user.home, "shell": self.user.shell},
            "env": self.env, "labels": self.labels,
            "files": {"exclude": list(self.files.exclude), "keep": list(self.files.keep)},
            "build": image(self.build), "run": image(self.run),
        }

    def resolution_digest(self) -> str:
        """sha256 of what package resolution depends on: a lock made from other inputs is stale.

        Env, labels, user and file filters are not in it: changing them needs a new build, not a
        new lock.
        """
        d = self.distro
        inputs = {
            "architectures": list(self.architectures),
            "distro": d.resolution_inputs(),
            "build": list(self.build.packages) if self.build.packages is not None else self.build.image,
            "run": list(self.run.packages) if self.run.packages is not None else self.run.image,
        }
        data = json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(data).hexdigest()


# -- parsing --------------------------------------------------------------------------------


class _Table:
    """A TOML table being read: typed getters whose errors name the file and dotted field."""

    def __init__(self, data: dict[str, Any], where: str, path: str) -> None:
        self.data = data
        self.where = where
        self.path = path
        self.seen: set[str] = set()

    def field(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, message: str) -> StackFileError:
        return StackFileError(f"{self.path}: field '{self.field(key)}' {message}")

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str, required: bool, example: str) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise self.fail(key, f"is missing (for example: {example})")
            return None
        return self.data[key]

    def string(self, key: str, *, required: bool = False, example: str = '"..."', pattern: re.Pattern[str] | None = None,
               what: str = "") -> str | None:
        value = self.raw(key, required, f"{key} = {example}")
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, f"must be a string, not {_kind(value)} (for example: {key} = {example})")
        if not value.strip():
            raise self.fail(key, "is empty")
        if pattern is not None and not pattern.match(value):
            raise self.fail(key, f"has an invalid value {value!r}; expected {what}")
        return value

    def integer(self, key: str, *, default: int, low: int, high: int) -> int:
        value = self.raw(key, False, f"{key} = {default}")
        if value is None:
            return default
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(key, f"must be a whole number, not {_kind(value)} (for example: {key} = {default})")
        if not low <= value <= high:
            raise self.fail(key, f"is {value}; expected a number from {low} to {high}")
        return value

    def strings(self, key: str, *, required: bool = False, example: str = '["..."]',
                pattern: re.Pattern[str] | None = None, what: str = "", allow_empty: bool = True) -> tuple[str, ...] | None:
        value = self.raw(key, required, f"{key} = {example}")
        if value is None:
            return None
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list of strings, not {_kind(value)} (for example: {key} = {example})")
        if not value and not allow_empty:
            raise self.fail(key, f"is empty; list at least one (for example: {key} = {example})")
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise StackFileError(f"{self.path}: field '{self.field(key)}[{i}]' must be a string, not {_kind(item)}")
            if pattern is not None and not pattern.match(item):
                raise StackFileError(f"{self.path}: field '{self.field(key)}[{i}]' has an invalid value {item!r}; "
                                     f"expected {what}")
            if item in out:
                raise StackFileError(f"{self.path}: field '{self.field(key)}' lists {item!r} twice")
            out.append(item)
        return tuple(out)

    def mapping(self, key: str, *, key_pattern: re.Pattern[str] | None = None, key_what: str = "",
                value_pattern: re.Pattern[str] | None = None, value_what: str = "") -> dict[str, str]:
        value = self.raw(key, False, "")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table of strings, not {_kind(value)} "
                                 f"(for example: [{self.field(key)}] NAME = \"value\")")
        out: dict[str, str] = {}
        for k, v in value.items():
            if key_pattern is not None and not key_pattern.match(k):
                raise StackFileError(f"{self.path}: field '{self.field(key)}.{k}' has an invalid name; expected {key_what}")
            if not isinstance(v, str):
                raise StackFileError(f"{self.path}: field '{self.field(key)}.{k}' must be a string, not {_kind(v)}")
            if value_pattern is not None and not value_pattern.match(v):
                raise StackFileError(f"{self.path}: field '{self.field(key)}.{k}' has an invalid value {v!r}; "
                                     f"expected {value_what}")
            out[k] = v
        return out

    def table(self, key: str, *, required: bool = False, example: str = "") -> "_Table | None":
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise StackFileError(f"{self.path}: table [{self.field(key)}] is missing{example}")
            return None
        value = self.data[key]
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table ([{self.field(key)}]), not {_kind(value)}")
        return _Table(value, self.field(key), self.path)

    def only(self, *known: str) -> None:
        """Reject fields other than ``known`` first: a misspelt field is named as such, not as missing."""
        unknown = sorted(set(self.data) - set(known))
        if unknown:
            where = f"[{self.where}]" if self.where else "the top level"
            raise StackFileError(f"{self.path}: unknown field '{self.field(unknown[0])}' in {where}; "
                                 f"check the spelling (known: {', '.join(sorted(known))})")

    def done(self) -> None:
        self.only(*self.seen)


def _kind(value: Any) -> str:
    return {bool: "true/false", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def parse(text: str, path: str | Path) -> Stack:
    """Parse and validate a stack file's text; ``path`` is used for messages and defaults."""
    path = Path(path)
    shown = str(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StackFileError(f"{shown}: not valid TOML: {exc}") from None
    except RecursionError:
        raise StackFileError(f"{shown}: not valid TOML: nested too deeply") from None
    top = _Table(data, "", shown)
    top.only("id", "name", "version", "description", "source", "maintainer", "architectures", "distro", "user",
             "env", "labels", "files", "build", "run")

    stack_id = top.string("id", required=True, example='"io.example.stacks.bookworm"',
                          pattern=re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$"),
                          what="letters, digits and . _ / - (e.g. io.example.stacks.bookworm)")
    name = top.string("name", pattern=_NAME_RE, what="lowercase letters, digits and . _ - (an image name)")
    if name is None:
        name = path.stem
        if not _NAME_RE.match(name):
            raise StackFileError(f"{shown}: the file name {path.stem!r} is not a valid image name; "
                                 "add name = \"...\" (lowercase letters, digits and . _ -)")
    version = top.string("version", required=True, example='"0.1.0"', pattern=_TAG_RE,
                         what="a tag: letters, digits and _ . - (e.g. 0.1.0)")
    description = top.string("description")
    source = top.string("source")
    maintainer = top.string("maintainer")
    arches = top.strings("architectures", required=True, example='["amd64"]', allow_empty=False,
                         pattern=re.compile("^(" + "|".join(ARCHITECTURES) + ")$"),
                         what="a Debian architecture: " + ", ".join(ARCHITECTURES))

    dt = top.table("distro", required=True, example=' (name, version and suite, e.g. suite = "bookworm")')
    assert dt is not None
    dt.only("name", "version", "suite", "components", "mirror", "security-mirror", "snapshot", "snapshot-mirror",
            "keyring")
    components = dt.strings("components", allow_empty=False, example='["main"]',
                            pattern=re.compile(r"^[a-z0-9-]+$"), what="an archive component such as main")
    mirror = dt.string("mirror", pattern=_URL_RE, what="a URL such as http://deb.debian.org/debian")
    security = dt.string("security-mirror", pattern=_URL_RE,
                         what="a URL such as http://deb.debian.org/debian-security")
    if security and not mirror:
        raise dt.fail("security-mirror", "needs distro.mirror as well (or neither, to use the host's apt sources)")
    snapshot = dt.string("snapshot", pattern=re.compile(r"^\d{8}T\d{6}Z$"),
                         what="a snapshot time such as 20261204T035428Z")
    snapshot_mirror = dt.string("snapshot-mirror", pattern=_URL_RE,
                                what="a URL such as https://snapshot.debian.org")
    if snapshot_mirror and not snapshot:
        raise dt.fail("snapshot-mirror", "needs distro.snapshot as well")
    if snapshot and mirror:
        raise dt.fail("snapshot", "takes the place of distro.mirror: give one or the other")
    keyring = dt.string("keyring", pattern=re.compile(r"^[^\s\]]+$"), what="a path to an apt keyring file")
    distro = Distro(
        name=dt.string("name", required=True, example='"debian"') or "",
        version=dt.string("version", required=True, example='"12"') or "",
        suite=dt.string("suite", required=True, example='"bookworm"', pattern=_SUITE_RE,
                        what="a Debian suite or codename, e.g. bookworm") or "",
        components=components or ("main",),
        mirror=mirror.rstrip("/") if mirror else None,
        security_mirror=security.rstrip("/") if security else None,
        snapshot=snapshot,
        snapshot_mirror=(snapshot_mirror or Distro.snapshot_mirror).rstrip("/"),
        keyring=keyring,
    )
    dt.done()

    ut = top.table("user", required=True, example=" (the CNB user: uid = 1000, gid = 1000, home = \"/home/cnb\")")
    assert ut is not None
    ut.only("uid", "gid", "name", "group", "home", "shell")
    user_name = ut.string("name", pattern=re.compile(r"^[a-z_][a-z0-9_-]{0,31}$"), what="a user name") or "cnb"
    user = User(
        uid=ut.integer("uid", default=1000, low=1, high=65533),
        gid=ut.integer("gid", default=1000, low=1, high=65533),
        name=user_name,
        group=ut.string("group", pattern=re.compile(r"^[a-z_][a-z0-9_-]{0,31}$"), what="a group name") or user_name,
        home=ut.string("home", required=True, example='"/home/cnb"', pattern=re.compile(r"^/[^\s:]*[^/\s:]$"),
                       what="an absolute path") or "",
        shell=ut.string("shell", pattern=re.compile(r"^/\S+$"), what="an absolute path") or "/bin/bash",
    )
    ut.done()

    env = top.mapping("env", key_pattern=_ENV_RE, key_what="a variable name")
    labels = top.mapping("labels")

    ft = top.table("files")
    files = Files()
    if ft is not None:
        ft.only("exclude", "keep")
        pattern = re.compile(r"^/\S+$")
        files = Files(exclude=ft.strings("exclude", pattern=pattern, what="an absolute path pattern") or (),
                      keep=ft.strings("keep", pattern=pattern, what="an absolute path pattern") or ())
        ft.done()

    images = {kind: _image(top, kind, shown) for kind in KINDS}
    top.done()
    return Stack(path=path, id=stack_id or "", name=name, version=version or "", architectures=arches or (),
                 distro=distro, user=user, build=images[BUILD], run=images[RUN], description=description,
                 source=source, maintainer=maintainer, env=env, labels=labels, files=files)


def _image(top: _Table, kind: str, shown: str) -> ImageSpec:
    example = (f" (packages = [...] to assemble the {kind} image from Debian packages, "
               f"or image = \"REF@sha256:...\" to use an existing one)")
    t = top.table(kind, required=True, example=example)
    assert t is not None
    t.only("packages", "image", "env", "labels", "provides")
    if t.has("packages") and t.has("image"):
        raise t.fail("image", "cannot be given together with packages; choose one")
    if not t.has("packages") and not t.has("image"):
        raise StackFileError(f"{shown}: field '{kind}.packages' is missing{example}")
    packages = t.strings("packages", pattern=_PACKAGE_RE,
                         what="a Debian package name (lowercase letters, digits and + . -)")
    image = t.string("image")
    if image is not None and not _DIGEST_REF_RE.search(image):
        raise t.fail("image", f"{image!r} is not pinned by digest; write REF@sha256:<64 hex digits>")
    provides = t.mapping("provides", key_pattern=re.compile(r"^[a-z0-9][a-z0-9_.-]*$"), key_what="a runtime name",
                         value_pattern=_PACKAGE_RE, value_what="a Debian package name")
    if provides and packages is None:
        raise t.fail("provides", "needs packages: the versions come from the lock")
    spec = ImageSpec(kind=kind, packages=packages, image=image,
                     env=t.mapping("env", key_pattern=_ENV_RE, key_what="a variable name"),
                     labels=t.mapping("labels"), provides=provides)
    t.done()
    return spec


MAX_STACK_FILE = 4 << 20


def load(path: str | Path) -> Stack:
    """Read and validate a stack file; StackFileError if it cannot be read or is invalid."""
    path = Path(path)
    try:
        text = read_input(path, "stack file", MAX_STACK_FILE).decode("utf-8")
    except FileNotFoundError:
        raise StackFileError(f"{path}: no such stack file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StackFileError(f"{path}: cannot read it: {exc}") from None
    return parse(text, path)
