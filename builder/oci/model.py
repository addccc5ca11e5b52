"""The image model: descriptors, manifests, indexes and configs as pure data.

Nothing here does I/O. Each type parses from JSON (keeping fields it does not know, so a
round trip never loses what another tool wrote) and serialises to canonical JSON bytes:
sorted keys, no insignificant white space, UTF-8. Equal models give equal bytes, hence
equal digests, which is what reproducible images rest on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

from builder import jsonsafe
from builder.errors import PalletError
from builder.oci import mediatypes as mt
from builder.oci.digest import is_digest, sha256

#: The largest image config parsed: real ones are KBs (a long history, buildpacks' labels: a few
#: MB). JSON of empty objects takes 25 times its size as Python's: a 256 MiB "history" of {}s
#: (what a blob may be) took gigabytes to parse.
MAX_CONFIG = 16 << 20


class ModelError(PalletError):
    """JSON that is not a valid manifest, index or config."""


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{what} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ModelError(f"{what} is nested too deeply to be a manifest, index or config") from None
    obj = jsonsafe.scrub_if_needed(obj, data)  # lone surrogates ("\udc80") read as U+FFFD, as Go does
    if not isinstance(obj, dict):
        raise ModelError(f"{what} is not a JSON object")
    return obj


# -- typed access to untrusted JSON: every field a document gives is checked before use ----------


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModelError(f"{what} is not a JSON object")
    return value


def _opt_obj(d: dict[str, Any], key: str, what: str) -> dict[str, Any] | None:
    value = d.get(key)
    return None if value in (None, {}) else _obj(value, f"{what} {key!r}")


def _opt_str(d: dict[str, Any], key: str, what: str) -> str | None:
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ModelError(f"{what} {key!r} is not a string: {_short(value)}")
    return value


def _str_list(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ModelError(f"{what} is not a list of strings: {_short(value)}")
    return tuple(value)


def _str_map(d: dict[str, Any], key: str, what: str) -> dict[str, str] | None:
    value = _opt_obj(d, key, what)
    if value is None:
        return None
    if not all(isinstance(v, str) for v in value.values()):
        raise ModelError(f"{what} {key!r} has values that are not strings")
    return dict(value)


def _list(d: dict[str, Any], key: str, what: str) -> list[Any]:
    value = d.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ModelError(f"{what} {key!r} is not a list: {_short(value)}")
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None
    os_version: str | None = None

    @classmethod
    def from_json(cls, d: Any) -> "Platform":
        d = _obj(d, "platform")
        return cls(
            os=_opt_str(d, "os", "platform") or "",
            architecture=_opt_str(d, "architecture", "platform") or "",
            variant=_opt_str(d, "variant", "platform") or None,
            os_version=_opt_str(d, "os.version", "platform") or None,
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        return out

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    @classmethod
    def parse(cls, text: str) -> "Platform":
        parts = text.split("/")
        if len(parts) < 2 or len(parts) > 3 or not all(parts):
            raise ModelError(f"platform {text!r}: expected OS/ARCH[/VARIANT], e.g. linux/amd64")
        return cls(os=parts[0], architecture=parts[1], variant=parts[2] if len(parts) == 3 else None)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    artifact_type: str | None = None
    urls: tuple[str, ...] | None = None

    @classmethod
    def from_json(cls, d: Any) -> "Descriptor":
        if not isinstance(d, dict):
            raise ModelError("descriptor is not a JSON object")
        digest, size = d.get("digest"), d.get("size")
        if not isinstance(digest, str) or not is_digest(digest):
            raise ModelError(f"descriptor has an invalid digest: {digest!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ModelError(f"descriptor {digest} has an invalid size: {_short(size)}")
        what = f"descriptor {digest}"
        return cls(
            media_type=_opt_str(d, "mediaType", what) or "",
            digest=digest,
            size=size,
            annotations=_str_map(d, "annotations", what) or None,
            platform=Platform.from_json(d["platform"]) if d.get("platform") else None,
            artifact_type=_opt_str(d, "artifactType", what) or None,
            urls=_str_list(d["urls"], f"{what} 'urls'") or None if d.get("urls") else None,
        )

    @classmethod
    def of(cls, data: bytes, media_type: str, **kw: Any) -> "Descriptor":
        return cls(media_type=media_type, digest=sha256(data), size=len(data), **kw)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = self.platform.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.urls:
            out["urls"] = list(self.urls)
        return out

    def with_annotations(self, annotations: dict[str, str] | None) -> "Descriptor":
        return replace(self, annotations=annotations or None)


@dataclass(frozen=True)
class Manifest:
    """An image manifest: OCI (written by default) or Docker schema 2 (read, and kept as read)."""

    config: Descriptor
    layers: tuple[Descriptor, ...]
    media_type: str = mt.OCI_MANIFEST
    annotations: dict[str, str] | None = None
    subject: Descriptor | None = None
    artifact_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str | None = None) -> "Manifest":
        d = _load(data, "manifest")
        mtype = _opt_str(d, "mediaType", "manifest") or media_type or mt.OCI_MANIFEST
        if mtype not in mt.MANIFESTS:
            raise ModelError(f"not an image manifest (media type {mtype})")
        if d.get("schemaVersion") != 2:
            raise ModelError(f"unsupported manifest schemaVersion {d.get('schemaVersion')!r}")
        if "config" not in d:
            raise ModelError("manifest has no config descriptor")
        known = {"schemaVersion", "mediaType", "config", "layers", "annotations", "subject", "artifactType"}
        return cls(
            config=Descriptor.from_json(d["config"]),
            layers=tuple(Descriptor.from_json(x) for x in _list(d, "layers", "manifest")),
            media_type=mtype,
            annotations=_str_map(d, "annotations", "manifest") or None,
            subject=Descriptor.from_json(d["subject"]) if d.get("subject") else None,
            artifact_type=_opt_str(d, "artifactType", "manifest") or None,
            extra={k: v for k, v in d.items() if k not in known},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(schemaVersion=2, mediaType=self.media_type, config=self.config.to_json(),
                   layers=[x.to_json() for x in self.layers])
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.subject:
            out["subject"] = self.subject.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


@dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list."""

    manifests: tuple[Descriptor, ...]
    media_type: str = mt.OCI_INDEX
    annotations: dict[str, str] | None = None
    subject: Descriptor | None = None
    artifact_type: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_bytes(cls, data: bytes, media_type: str | None = None) -> "Index":
        d = _load(data, "index")
        mtype = _opt_str(d, "mediaType", "index") or media_type or mt.OCI_INDEX
        if mtype not in mt.INDEXES:
            raise ModelError(f"not an image index (media type {mtype})")
        known = {"schemaVersion", "mediaType", "manifests", "annotations", "subject", "artifactType"}
        return cls(
            manifests=tuple(Descriptor.from_json(x) for x in _list(d, "manifests", "index")),
            media_type=mtype,
            annotations=_str_map(d, "annotations", "index") or None,
            subject=Descriptor.from_json(d["subject"]) if d.get("subject") else None,
            artifact_type=_opt_str(d, "artifactType", "index") or None,
            extra={k: v for k, v in d.items() if k not in known},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(schemaVersion=2, mediaType=self.media_type, manifests=[x.to_json() for x in self.manifests])
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.subject:
            out["subject"] = self.subject.to_json()
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())


def media_type_of(data: bytes, declared: str | None = None) -> str:
    """The media type of manifest bytes: the one they declare, else guessed from their shape."""
    d = _load(data, "manifest")
    if _opt_str(d, "mediaType", "manifest"):
        return str(d["mediaType"])
    if declared in mt.ALL_MANIFESTS:
        return declared  # type: ignore[return-value]
    return mt.OCI_INDEX if "manifests" in d else mt.OCI_MANIFEST


@dataclass(frozen=True)
class History:
    created: str | None = None
    created_by: str | None = None
    comment: str | None = None
    empty_layer: bool = False
    author: str | None = None

    @classmethod
    def from_json(cls, d: Any) -> "History":
        d = _obj(d, "image config history entry")
        what = "image config history entry"
        return cls(created=_opt_str(d, "created", what), created_by=_opt_str(d, "created_by", what),
                   comment=_opt_str(d, "comment", what), empty_layer=bool(d.get("empty_layer")),
                   author=_opt_str(d, "author", what))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in (("created", self.created), ("created_by", self.created_by),
                           ("comment", self.comment), ("author", self.author)):
            if value is not None:
                out[key] = value
        if self.empty_layer:
            out["empty_layer"] = True
        return out


def _command(value: Any, what: str) -> tuple[str, ...] | None:
    """``Entrypoint``/``Cmd``: a list of strings; a lone string is one argument, never split
    (as Docker's ``strslice`` reads it: the image spec asks for an array)."""
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return _str_list(value, what)


@dataclass(frozen=True)
class RunConfig:
    """The ``config`` member of an image config: how a container of the image starts."""

    user: str | None = None
    env: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    working_dir: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    exposed_ports: tuple[str, ...] = ()
    stop_signal: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: Any) -> "RunConfig":
        what = "image config 'config'"
        d = _obj(d or {}, what)
        known = {"User", "Env", "Entrypoint", "Cmd", "WorkingDir", "Labels", "ExposedPorts", "StopSignal"}
        ports = d.get("ExposedPorts") or {}
        if not isinstance(ports, (dict, list)) or not all(isinstance(p, str) for p in ports):
            raise ModelError(f"{what} 'ExposedPorts' is not an object of port names: {_short(ports)}")
        return cls(
            user=_opt_str(d, "User", what) or None,
            env=_str_list(d.get("Env") or [], f"{what} 'Env'"),
            entrypoint=_command(d.get("Entrypoint"), f"{what} 'Entrypoint'"),
            cmd=_command(d.get("Cmd"), f"{what} 'Cmd'"),
            working_dir=_opt_str(d, "WorkingDir", what) or None,
            labels=_str_map(d, "Labels", what) or {},
            exposed_ports=tuple(sorted(set(ports))),
            stop_signal=_opt_str(d, "StopSignal", what) or None,
            extra={k: v for k, v in d.items() if k not in known and v not in (None, "", [], {})},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        if self.user:
            out["User"] = self.user
        if self.env:
            out["Env"] = list(self.env)
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.exposed_ports:
            out["ExposedPorts"] = {p: {} for p in self.exposed_ports}
        if self.stop_signal:
            out["StopSignal"] = self.stop_signal
        return out

    def env_dict(self) -> dict[str, str]:
        return dict(e.split("=", 1) if "=" in e else (e, "") for e in self.env)

    def with_env(self, updates: dict[str, str]) -> "RunConfig":
        """Set variables, keeping the order of those already there (later ones appended)."""
        current = self.env_dict()
        order = [e.split("=", 1)[0] for e in self.env]
        for key, value in updates.items():
            if key not in current:
                order.append(key)
            current[key] = value
        return replace(self, env=tuple(f"{k}={current[k]}" for k in order))


@dataclass(frozen=True)
class ImageConfig:
    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    created: str | None = None
    author: str | None = None
    config: RunConfig = field(default_factory=RunConfig)
    diff_ids: tuple[str, ...] = ()
    history: tuple[History, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_bytes(cls, data: bytes) -> "ImageConfig":
        if len(data) > MAX_CONFIG:
            raise ModelError(f"image config of {len(data)} bytes is over {MAX_CONFIG}, more than any image's; "
                             "refusing to parse it")
        d = _load(data, "image config")
        rootfs = _opt_obj(d, "rootfs", "image config") or {}
        if rootfs and rootfs.get("type") not in (None, "layers"):
            raise ModelError(f"image config rootfs type {_short(rootfs.get('type'))} is not 'layers'")
        diff_ids = _str_list(rootfs.get("diff_ids") or [], "image config rootfs 'diff_ids'")
        bad = [x for x in diff_ids if not is_digest(x)]
        if bad:
            raise ModelError(f"image config rootfs 'diff_ids' holds {_short(bad[0])}, which is not a digest")
        known = {"architecture", "os", "variant", "created", "author", "config", "rootfs", "history"}
        what = "image config"
        return cls(
            architecture=_opt_str(d, "architecture", what) or "",
            os=_opt_str(d, "os", what) or "",
            variant=_opt_str(d, "variant", what) or None,
            created=_opt_str(d, "created", what) or None,
            author=_opt_str(d, "author", what) or None,
            config=RunConfig.from_json(d.get("config")),
            diff_ids=diff_ids,
            history=tuple(History.from_json(h) for h in _list(d, "history", what)),
            extra={k: v for k, v in d.items() if k not in known},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out.update(architecture=self.architecture, os=self.os,
                   rootfs={"type": "layers", "diff_ids": list(self.diff_ids)})
        if self.variant:
            out["variant"] = self.variant
        if self.created:
            out["created"] = self.created
        if self.author:
            out["author"] = self.author
        run = self.config.to_json()
        if run:
            out["config"] = run
        if self.history:
            out["history"] = [h.to_json() for h in self.history]
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def platform(self) -> Platform:
        return Platform(os=self.os, architecture=self.architecture, variant=self.variant)


#: The media types of a container image's config (OCI's, Docker's).
IMAGE_CONFIGS = (mt.OCI_CONFIG, mt.DOCKER_CONFIG)


def not_an_image(what: str, manifest: Manifest) -> None:
    """ModelError when ``manifest`` is an artifact's (a Helm chart, a signature, an SBOM: its
    config of another media type), not a container image's. Its layers are no filesystem; it
    was refused as an image with "0 diff_ids in the config", which told nobody what it was."""
    config_type = manifest.config.media_type
    if config_type not in IMAGE_CONFIGS:
        raise ModelError(f"{what} is not a container image but an artifact: its config is {config_type!r}, "
                         f"not an image config ({IMAGE_CONFIGS[0]})")
