"""The Docker engine as a store, through the ``docker`` SDK: ``docker save`` out, ``docker load`` in.

The classic engine (20.10 here) keeps no manifests: it stores configs and unpacked layers and
rebuilds a manifest whenever an image leaves it. So this store does not preserve digests
(``preserves_digests = False``): what ``resolve`` gives is the manifest synthesised from
``docker save`` output (stable while the image stays the same in the engine), and the configs
survive byte for byte, so image IDs do.

Reading streams ``docker save NAME:TAG`` to a temporary file (never all in memory) and reads it
with ``ArchiveStore``. Writing stages blobs the same way ``ArchiveStore`` does and, when the
manifest is put with a tag, streams the archive ``ArchiveStore`` would write straight into
``docker load``; the tag is confirmed to exist afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, Iterator

from builder.errors import DaemonError, NotFoundError, PalletError, StoreError
from builder.oci import mediatypes as mt
from builder.oci.digest import is_digest
from builder.oci.model import Descriptor, media_type_of
from builder.oci.stores.archive import ArchiveStore, familiar_name
from builder.oci.stores.base import ProgressFn, Store

if TYPE_CHECKING:
    import docker

DEFAULT_HOST = "unix:///var/run/docker.sock"


def engine_host() -> str:
    """The engine address the SDK and the CLI use: DOCKER_HOST, else the default socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def _reason(exc: BaseException) -> str:
    """The most telling one-line cause of a connection failure (``Connection refused``...)."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        err = stack.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, OSError) and err.strerror:
            return err.strerror
        stack.extend(e for e in (err.__cause__, err.__context__) if e is not None)
        stack.extend(a for a in err.args if isinstance(a, BaseException))
    return " ".join(str(exc).split()) or type(exc).__name__


def unreachable(exc: BaseException) -> DaemonError:
    return DaemonError(f"cannot reach the Docker engine at {engine_host()}: {_reason(exc)}. Is dockerd running?")


@contextmanager
def _engine_call(what: str, missing: NotFoundError | None = None) -> Iterator[None]:
    """Turn SDK errors into ours: ``missing`` for a 404, DaemonError for a refusal or no answer."""
    import docker
    import requests

    try:
        yield
    except docker.errors.NotFound as exc:
        if missing is not None:
            raise missing from None
        raise DaemonError(f"the Docker engine refused to {what}: {_explanation(exc)}") from None
    except docker.errors.APIError as exc:
        raise DaemonError(f"the Docker engine refused to {what}: {_explanation(exc)}") from None
    except (docker.errors.DockerException, requests.RequestException) as exc:
        raise unreachable(exc) from None


def connect() -> "docker.DockerClient":
    """A client for the engine DOCKER_HOST names; DaemonError (one line) when none answers."""
    import docker
    import requests

    try:
        client = docker.from_env()
        client.ping()
    except (docker.errors.DockerException, requests.RequestException, OSError) as exc:
        raise unreachable(exc) from None
    return client


class DaemonStore(Store):
    """Images called ``name`` in the Docker engine; tags come per call."""

    preserves_digests = False
    #: One platform's image: a copy of an index takes this machine's platform from it.
    accepts_index = False

    def __init__(self, name: str, *, client: "docker.DockerClient | None" = None) -> None:
        self.name = name
        self.description = f"docker-daemon:{name}"
        self._client = client
        self._own_client = client is None
        self._workdir: str | None = None
        self._saved: dict[str, ArchiveStore] = {}  # tag -> its docker save output
        self._outbox: ArchiveStore | None = None  # stages blobs; builds the archive to load
        self._lock = threading.Lock()
        self._put_manifests: dict[str, tuple[Descriptor, bytes]] = {}
        self._cleanup: weakref.finalize | None = None

    # -- manifests and tags ----------------------------------------------------

    def resolve(self, ref: str) -> Descriptor:
        return self.get_manifest(ref)[0]

    def get_manifest(self, ref: str) -> tuple[Descriptor, bytes]:
        if is_digest(ref):
            if ref in self._put_manifests:
                return self._put_manifests[ref]
            for archive in self._saved.values():
                try:
                    return archive.get_manifest(ref)
                except NotFoundError:
                    continue
            raise NotFoundError(
                f"{self.description}: the Docker engine keeps images by tag, not by manifest digest; "
                f"ask for {self.name}:TAG"
            )
        return self._saved_image(ref).get_manifest(ref)

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Descriptor:
        mtype = media_type_of(data, media_type)
        if mt.is_index(mtype):
            raise StoreError(
                f"{self.description}: the Docker engine takes single-platform images, not an index; "
                "pick one platform of the image first"
            )
        desc = Descriptor.of(data, mtype)
        outbox = self._staging()
        if tag is None:
            # The engine has no untagged manifests to put one under; keep it for ``tag``.
            self._put_manifests[desc.digest] = (desc, data)
            return desc
        ref = f"{self.name}:{tag}"
        stream = outbox.archive_stream(data, mtype, tag)  # NotFoundError for a missing blob, first
        self._load(ref, stream)
        self._put_manifests[desc.digest] = (desc, data)
        saved = self._saved.pop(tag, None)
        if saved is not None:
            os.unlink(saved.path)
        return desc

    def tag(self, tag: str, desc: Descriptor, data: bytes | None = None) -> None:
        """Tag in the engine when the manifest came from an image it holds; else load it tagged."""
        for saved_tag, archive in self._saved.items():
            if archive.resolve(saved_tag).digest == desc.digest:
                with _engine_call(f"tag {self.name}:{saved_tag} as {self.name}:{tag}"):
                    self.client.api.tag(f"{self.name}:{saved_tag}", self.name, tag)
                self._saved.pop(tag, None)
                return
        super().tag(tag, desc, data)

    def list_tags(self) -> list[str]:
        want = familiar_name(self.name)
        with _engine_call(f"list the images called {self.name}"):
            images = self.client.images.list(name=self.name)
        tags = set()
        for image in images:
            for repo_tag in image.tags:
                repo, _, tag = repo_tag.rpartition(":")
                if familiar_name(repo) == want:
                    tags.add(tag)
        return sorted(tags)

    # -- blobs -----------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        """Only blobs staged for a load count: the engine cannot be asked for one blob."""
        return self._outbox is not None and self._outbox.is_staged(digest)

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        if self.has_blob(desc.digest):
            assert self._outbox is not None
            return self._outbox.open_blob(desc)
        for archive in self._saved.values():
            if archive.has_blob(desc.digest):
                return archive.open_blob(desc)
        raise NotFoundError(
            f"{self.description} has no blob {desc.digest} at hand; read the image's manifest by tag first"
        )

    def put_blob(self, desc: Descriptor, stream: BinaryIO, progress: ProgressFn | None = None) -> None:
        self._staging().put_blob(desc, stream, progress)

    # -- lifecycle -------------------------------------------------------------

    @property
    def client(self) -> "docker.DockerClient":
        if self._client is None:
            self._client = connect()
        return self._client

    def check_writable(self) -> None:
        """The engine answers (``connect`` pings it)."""
        self.client  # noqa: B018 (the property connects)

    def close(self) -> None:
        """Drop staged blobs and saved archives (a manifest put without a tag is not loaded)."""
        if self._outbox is not None:
            self._outbox.close()
            self._outbox = None
        self._saved.clear()
        if self._cleanup is not None:
            self._cleanup()
            self._cleanup, self._workdir = None, None
        if self._own_client and self._client is not None:
            self._client.close()
            self._client = None

    # -- internals -------------------------------------------------------------

    def _work(self) -> str:
        with self._lock:  # copies put blobs from several threads at once
            return self._work_locked()

    def _work_locked(self) -> str:
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="pallet-daemon-")
            self._cleanup = weakref.finalize(self, shutil.rmtree, self._workdir, True)
        return self._workdir

    def _staging(self) -> ArchiveStore:
        work = self._work()
        with self._lock:
            if self._outbox is None:
                self._outbox = ArchiveStore(os.path.join(work, "load.tar"), self.name)
            return self._outbox

    def _saved_image(self, tag: str) -> ArchiveStore:
        """``docker save NAME:TAG``, streamed to a temporary file once per tag."""
        if tag in self._saved:
            return self._saved[tag]
        ref = f"{self.name}:{tag}"
        missing = NotFoundError(f"no image {ref} in the Docker engine (docker images {self.name} lists its tags)")
        fd, path = tempfile.mkstemp(prefix="save-", suffix=".tar", dir=self._work())
        try:
            with os.fdopen(fd, "wb") as out, _engine_call(f"save {ref}", missing):
                self.client.api.inspect_image(ref)  # a clear NotFound before any streaming
                for chunk in self.client.api.get_image(ref):
                    out.write(chunk)
        except BaseException:
            os.unlink(path)
            raise
        # docker save of one reference holds exactly that image, so no name is needed to pick it.
        archive = ArchiveStore(path)
        self._saved[tag] = archive
        return archive

    def _load(self, ref: str, stream: Iterator[bytes]) -> None:
        """``docker load`` the archive ``stream`` and confirm ``ref`` exists afterwards."""
        failure: list[BaseException] = []

        def body() -> Iterator[bytes]:
            # An error while streaming (a blob that no longer matches its digest) would reach
            # us wrapped by requests, or as an engine-side error; keep the original to raise.
            try:
                yield from stream
            except BaseException as exc:
                failure.append(exc)
                raise

        try:
            with _engine_call(f"load {ref}"):
                for message in self.client.api.load_image(body()):
                    error = _message_error(message)
                    if error:
                        raise DaemonError(f"docker load of {ref} failed: {error}")
        except PalletError:
            if failure:  # the engine only saw the stream break; say what broke it
                raise failure[0] from None
            raise
        if failure:
            raise failure[0]
        gone = DaemonError(f"docker load finished but the Docker engine has no {ref} afterwards")
        with _engine_call(f"inspect {ref}", gone):
            self.client.api.inspect_image(ref)


def _message_error(message: Any) -> str | None:
    if not isinstance(message, dict):
        return None
    detail = message.get("errorDetail")
    if isinstance(detail, dict) and detail.get("message"):
        return " ".join(str(detail["message"]).split())
    if message.get("error"):
        return " ".join(str(message["error"]).split())
    return None


def _explanation(exc: Any) -> str:
    text = getattr(exc, "explanation", None) or str(exc)
    return " ".join(str(text).split())

