"""Image references in the transport syntax skopeo, podman and buildah use.

    oci:PATH[:TAG|@DIGEST]                       an OCI image layout directory
    docker://HOST[:PORT]/REPO[:TAG|@DIGEST]      an OCI distribution registry
    docker-daemon:NAME[:TAG]                     the Docker engine
    docker-archive:PATH[:NAME:TAG]               a ``docker save``-style tar file
    NAME[:TAG|@DIGEST]                           the local store ($PALLET_HOME)

Parsing is pure: opening the store a reference names is ``builder.oci.stores.open_store``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from builder.errors import InvalidReferenceError
from builder.oci.digest import is_digest

OCI = "oci"
REGISTRY = "docker"
DAEMON = "docker-daemon"
ARCHIVE = "docker-archive"
LOCAL = "local"
SCRATCH = "scratch"

DEFAULT_TAG = "latest"
DOCKER_HUB = "docker.io"

_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPO_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$")

_FORMS = (
    "expected one of: oci:PATH[:TAG], docker://HOST[:PORT]/REPO[:TAG|@sha256:...], "
    "docker-daemon:NAME[:TAG], docker-archive:PATH[:NAME:TAG], or NAME[:TAG] for the local store"
)


@dataclass(frozen=True)
class Reference:
    transport: str
    #: oci: and docker-archive: — the filesystem path.
    path: str | None = None
    #: docker:// — registry host[:port].
    host: str | None = None
    #: docker://, docker-daemon:, docker-archive:, local — the repository / image name.
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None

    @property
    def ref(self) -> str:
        """What to ask the store for: the digest if there is one, else the tag (default latest)."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_tag(self, tag: str | None) -> "Reference":
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> "Reference":
        return replace(self, digest=digest)

    def __str__(self) -> str:
        suffix = ""
        if self.tag:
            suffix += f":{self.tag}"
        if self.digest:
            suffix += f"@{self.digest}"
        if self.transport == OCI:
            return f"oci:{self.path}{suffix}"
        if self.transport == REGISTRY:
            return f"docker://{self.host}/{self.repository}{suffix}"
        if self.transport == DAEMON:
            return f"docker-daemon:{self.repository}{suffix}"
        if self.transport == ARCHIVE:
            name = f":{self.repository}:{self.tag or DEFAULT_TAG}" if self.repository else ""
            return f"docker-archive:{self.path}{name}"
        if self.transport == SCRATCH:
            return SCRATCH
        return f"{self.repository}{suffix}"

    def at_digest(self, digest: str) -> str:
        """``REF@sha256:...`` as the commands print it (the tag kept, for humans)."""
        if self.transport == ARCHIVE:
            return f"{self}@{digest}"
        return str(replace(self, digest=digest))


def is_tag(value: str) -> bool:
    """Whether ``value`` is a tag as the distribution spec allows (what may follow ``:``)."""
    return bool(_TAG_RE.match(value))


def _split_name(text: str, what: str) -> tuple[str, str | None, str | None]:
    """``name[:tag][@digest]`` -> (name, tag, digest)."""
    digest = None
    if "@" in text:
        text, digest = text.rsplit("@", 1)
        if not is_digest(digest):
            raise InvalidReferenceError(f"{what}: {digest!r} is not a sha256 digest (sha256:<64 hex>)")
    tag = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _TAG_RE.match(tag):
            raise InvalidReferenceError(f"{what}: invalid tag {tag!r} (letters, digits, _ . -, at most 128)")
    return text, tag, digest


#: The distribution spec's bound on a repository name (registries refuse longer ones).
MAX_REPO = 255


def _check_repo(repo: str, what: str) -> None:
    if len(repo) > MAX_REPO:
        raise InvalidReferenceError(f"{what}: the repository name is {len(repo)} characters long (at most {MAX_REPO})")
    if not _REPO_RE.match(repo):
        raise InvalidReferenceError(
            f"{what}: invalid repository name {repo!r} (lowercase letters, digits and separators . _ - /)"
        )


def parse(text: str, allow_scratch: bool = False) -> Reference:
    """Parse a reference; InvalidReferenceError (a usage error) says what was expected."""
    if not text or text != text.strip():
        raise InvalidReferenceError(f"image reference {text!r} is empty or has spaces; {_FORMS}")
    if text == SCRATCH:
        if allow_scratch:
            return Reference(transport=SCRATCH)
        raise InvalidReferenceError("'scratch' is only a base for 'pallet append', not a place to read or write")

    if text.startswith("docker://"):
        rest = text[len("docker://"):]
        name, tag, digest = _split_name(rest, text)
        if "/" in name and (_looks_like_host(name.split("/", 1)[0])):
            host, repo = name.split("/", 1)
        else:
            host, repo = DOCKER_HUB, name if "/" in name else f"library/{name}"
        if not _HOST_RE.match(host) or not _port_ok(host):
            raise InvalidReferenceError(f"{text}: invalid registry host {host!r} (HOST[:PORT], a port 1 to 65535)")
        _check_repo(repo, text)
        return Reference(REGISTRY, host=host, repository=repo, tag=tag, digest=digest)

    if text.startswith("oci:"):
        rest = text[len("oci:"):]
        digest = None
        if "@" in rest:
            rest, digest = rest.rsplit("@", 1)
            if not is_digest(digest):
                raise InvalidReferenceError(f"{text}: {digest!r} is not a sha256 digest")
        path, _, tag = rest.partition(":")
        if not path:
            raise InvalidReferenceError(f"{text}: missing path; expected oci:PATH[:TAG]")
        if tag and not _TAG_RE.match(tag):
            raise InvalidReferenceError(f"{text}: invalid tag {tag!r}")
        return Reference(OCI, path=path, tag=tag or None, digest=digest)

    if text.startswith("docker-daemon:"):
        rest = text[len("docker-daemon:"):]
        name, tag, digest = _split_name(rest, text)
        if not name:
            raise InvalidReferenceError(f"{text}: missing image name; expected docker-daemon:NAME[:TAG]")
        _check_repo(name.split("/", 1)[1] if "/" in name and _looks_like_host(name.split("/", 1)[0]) else name, text)
        return Reference(DAEMON, repository=name, tag=tag, digest=digest)

    if text.startswith("docker-archive:"):
        rest = text[len("docker-archive:"):]
        path, _, name = rest.partition(":")
        if not path:
            raise InvalidReferenceError(f"{text}: missing path; expected docker-archive:PATH[:NAME:TAG]")
        repo = tag = None
        if name:
            repo, tag, digest = _split_name(name, text)
            if digest:
                raise InvalidReferenceError(f"{text}: docker-archive references take NAME:TAG, not a digest")
            _check_repo(repo.split("/", 1)[1] if "/" in repo and _looks_like_host(repo.split("/", 1)[0]) else repo, text)
        return Reference(ARCHIVE, path=path, repository=repo, tag=tag)

    if is_digest(text):  # read as the name "sha256" with the hex as its tag: never what was meant
        raise InvalidReferenceError(f"{text} is a digest alone: name the image too, as NAME@{text} "
                                    "(or oci:PATH@..., docker://HOST/REPO@...)")
    if "://" in text or text.split(":", 1)[0] in ("oci-archive", "dir", "containers-storage"):
        raise InvalidReferenceError(f"unsupported transport in {text!r}; {_FORMS}")

    name, tag, digest = _split_name(text, text)
    if not name:
        raise InvalidReferenceError(f"{text!r}: missing image name; {_FORMS}")
    _check_repo(name, f"{text!r} ({_FORMS})")
    return Reference(LOCAL, repository=name, tag=tag, digest=digest)


def _port_ok(host: str) -> bool:
    """A host's port, if it has one, is 1 to 65535 (urllib cannot even parse a URL with 99999)."""
    after = host.rpartition("]")[2]   # past an IPv6 address's brackets
    return ":" not in after or 1 <= int(after.rpartition(":")[2]) <= 65535


def _looks_like_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost" or component.startswith("[")
