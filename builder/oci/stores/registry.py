"""The OCI distribution registry backend (``docker://HOST/REPO``).

A ``RegistryStore`` is one repository of one registry; the HTTP machinery (scheme, pool,
auth, retries) is a ``RegistryClient`` shared by all stores of the host. What this module
adds is the distribution protocol:

- blobs: HEAD before upload; monolithic upload (POST, then PUT ``?digest=`` with the body)
  for blobs up to ``CHUNKED_UPLOAD_THRESHOLD``, chunked (POST, PATCH ranges, PUT) above;
  cross-repository mounts; downloads streamed through ``VerifyingReader``;
- manifests: GET/HEAD/PUT with the media types we speak, verified against the digest they
  were asked by (or the ``Docker-Content-Digest`` a tag resolved to);
- tags (with ``Link`` pagination) and referrers: the OCI 1.1 API when the registry has it,
  else the ``sha256-<hex>`` tag schema, which this store also keeps up to date on push.

Uploads and downloads stream: memory per transfer is one buffer, not one layer.
"""

from __future__ import annotations

import io
import json
import threading
import time
from dataclasses import replace
from typing import Any, BinaryIO, Iterator, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
import urllib3.exceptions

from builder.errors import DigestMismatchError, NotFoundError, RegistryError, shown
from builder.oci import mediatypes as mt
from builder.oci.digest import VerifyingReader, hasher, is_digest, sha256, split, verify_bytes
from builder.oci.reference import is_tag
from builder.oci.model import Descriptor, Index, ModelError, media_type_of
from builder.oci.stores.auth import load_credentials, repository_scope
from builder.oci.stores import http1
from builder.oci.stores.base import ProgressFn, Store, check_document_size
from builder.oci.stores.registry_client import RegistryClient, RetryPolicy, error_codes, error_detail

MiB = 1024 * 1024
#: Blobs larger than this are uploaded in chunks (read from the module at call time, so tests
#: can lower it); smaller ones in one PUT.
CHUNKED_UPLOAD_THRESHOLD = 32 * MiB
#: Size of one PATCH of a chunked upload. Streamed, never held in memory whole.
CHUNK_SIZE = 16 * MiB
#: Size of the reads that feed an upload body or progress reports.
BUFFER_SIZE = 1 * MiB
#: Blobs up to this size (configs, signatures) are read and sent whole, not streamed.
SMALL_BLOB = 1 * MiB
#: Tags asked for per page of ``tags/list``.
TAGS_PAGE_SIZE = 1000
#: Largest manifest or index we accept (containerd's limit): a registry cannot make us
#: hold an arbitrary amount of JSON in memory.
MAX_MANIFEST_SIZE = 4 * MiB
#: The most pages of a paginated list (tags, referrers) we follow: a registry whose ``Link``
#: header names the same page again, or pages without end, would otherwise keep us reading for ever.
MAX_PAGES = 1000
#: The most entries a paginated list may hold in all: a thousand pages of 4 MiB each (a million
#: short tags, thousands of descriptors apiece) would fill gigabytes of memory within MAX_PAGES.
MAX_LISTED = {"tags": 1_000_000, "referrers": 100_000}

_OCTET = "application/octet-stream"
#: The digest of zero bytes.
_EMPTY_BLOB = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def referrers_tag(digest: str) -> str:
    """The tag the OCI 1.1 fallback keeps a subject's referrers index under (``sha256-<hex>``)."""
    algo, hexpart = split(digest)
    return f"{algo}-{hexpart}"[:128]


def _with_query(url: str, **params: str) -> str:
    """``url`` with more query parameters (an upload Location already carries its own state)."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # the registry's Location: 'http://[::1'
        raise RegistryError(f"the registry gave {url[:100]!r} as an upload location, which is not a URL ({exc})") from None
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _arriving(resp: requests.Response) -> Iterator[bytes]:
    """A streamed body in the pieces that arrive (``read1``: a trickle cannot keep one read waiting
    for a whole buffer, past a deadline); a body already read (the lean client's) whole."""
    if resp._content_consumed:  # noqa: SLF001 - requests' own marker of a body already read
        yield resp.content
        return
    while chunk := resp.raw.read1(64 * 1024, decode_content=True):
        yield chunk


class _UploadSource:
    """The caller's stream, hashed and counted as it is read, with progress reported.

    It can go back to the start of the current request's data (``mark``/``rewind``) when the
    underlying stream can seek, so a request that failed halfway may be retried; progress is
    only reported for bytes past the furthest point reached, so a retry never counts twice.
    """

    def __init__(self, stream: BinaryIO, desc: Descriptor, progress: ProgressFn | None) -> None:
        self._stream = stream
        self.desc = desc
        self._progress = progress
        # A stream that already verifies itself (every store's open_blob) is not hashed a
        # second time: on a fast link, hashing twice is a real share of a push's CPU.
        self._verifier = stream if isinstance(stream, VerifyingReader) else None
        self._hash = None if self._verifier else hasher(desc.digest)
        self.count = 0
        self._reported = 0
        try:
            self._origin: int | None = stream.tell() if stream.seekable() else None
        except (AttributeError, OSError, ValueError):
            self._origin = None
        self._mark = (0, self._hash.copy() if self._hash is not None else None)

    def read(self, n: int) -> bytes:
        data = self._stream.read(n)
        if data:
            if self._hash is not None:
                self._hash.update(data)
            self.count += len(data)
            if self.count > self._reported:
                fresh = self.count - self._reported
                self._reported = self.count
                if self._progress:
                    self._progress(fresh)
        return data

    def mark(self) -> None:
        self._mark = (self.count, self._hash.copy() if self._hash is not None else None)

    def rewind(self) -> bool:
        count, h = self._mark
        if self.count == count:
            return True
        if self._origin is None:
            return False
        try:
            self._stream.seek(self._origin + count)
        except (AttributeError, OSError, ValueError):
            return False
        self.count, self._hash = count, h.copy() if h is not None else None
        return True

    def check(self) -> None:
        """Raise DigestMismatchError unless exactly the descriptor's bytes went out."""
        if self.count != self.desc.size:
            raise DigestMismatchError(f"blob {self.desc.digest}: expected {self.desc.size} bytes, "
                                      f"the stream gave {self.count}")
        if self._verifier is not None:
            self._verifier.verify()
            return
        assert self._hash is not None
        got = f"{split(self.desc.digest)[0]}:{self._hash.hexdigest()}"
        if got != self.desc.digest:
            raise DigestMismatchError(f"blob {self.desc.digest}: content has digest {got}")


class _UploadBody:
    """``length`` bytes of an ``_UploadSource`` as a request body with a known Content-Length.

    requests sends an iterable with ``__len__`` as a plain (not chunked-encoded) body and
    pulls it one buffer at a time, so a layer is never in memory whole.
    """

    def __init__(self, source: _UploadSource, length: int) -> None:
        self._source = source
        self._length = length
        source.mark()

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        remaining = self._length
        while remaining > 0:
            data = self._source.read(min(BUFFER_SIZE, remaining))
            if not data:
                desc = self._source.desc
                raise DigestMismatchError(f"blob {desc.digest}: the stream ended after "
                                          f"{self._source.count} of {desc.size} bytes")
            remaining -= len(data)
            yield data

    def rewind(self) -> bool:
        return self._source.rewind()


class _ResponseStream(io.RawIOBase):
    """A streamed response body as a file; closing it gives the connection back to the pool."""

    def __init__(self, resp: requests.Response, what: str) -> None:
        self._resp = resp
        self._raw = resp.raw
        self._raw.decode_content = True  # undo a Content-Encoding a proxy may have added
        self._what = what

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        try:
            return self._raw.read(None if n is None or n < 0 else n) or b""
        except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
            raise RegistryError(f"the connection broke while reading {self._what} ({type(exc).__name__}); "
                                f"try again") from None

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._resp.close()
        super().close()


class RegistryStore(Store):
    """One repository of an OCI distribution registry. See the module docstring.

    ``creds`` is ``USER:PASSWORD`` (else the Docker CLI's config is read); ``insecure`` allows
    unverified HTTPS, then plain HTTP, for a non-local host; ``retries`` is the number of
    attempts in all for a request meeting connection errors, 429 or 5xx, ``backoff`` the first
    wait between them (doubling each time).
    """

    def __init__(self, host: str, repository: str, *, insecure: bool = False, creds: str | None = None,
                 retries: int = 5, backoff: float = 0.5) -> None:
        self.host = host
        self.repository = repository
        self.description = f"{host}/{repository}"
        self.policy = RetryPolicy(attempts=max(1, retries), backoff=backoff)
        self.client = RegistryClient.shared(host, insecure=insecure, credentials=load_credentials(host, creds))
        self._referrers_lock = threading.Lock()

    # -- plumbing ------------------------------------------------------------------

    def _pull(self) -> tuple[str, ...]:
        return (repository_scope(self.repository, "pull"),)

    def _push(self) -> tuple[str, ...]:
        return (repository_scope(self.repository, "pull", "push"),)

    def _request(self, method: str, path: str, *, push: bool = False, **kw: Any) -> requests.Response:
        scopes = kw.pop("scopes", None) or (self._push() if push else self._pull())
        return self.client.request(method, path, repo=self.repository, policy=self.policy,
                                   scopes=scopes, **kw)

    def _path(self, kind: str, ref: str = "") -> str:
        """The API path of a manifest (by tag or digest), a blob or referrers (by digest). What
        names one may come from an image (a statement naming the image it was rebased from):
        anything else ('sha256:../../..') would be sent as a path of the registry's: not found."""
        if kind != "tags" and ref != "uploads/" and not (is_digest(ref) or (kind == "manifests" and is_tag(ref))):
            raise NotFoundError(f"{shown(ref, 80)} is not a {'tag or ' if kind == 'manifests' else ''}digest: no "
                                f"registry holds it (nothing was asked of {self.host})")
        return f"/v2/{self.repository}/{kind}/{ref}"

    def _fail(self, resp: requests.Response, action: str) -> RegistryError:
        detail = error_detail(resp)
        resp.close()
        return RegistryError(f"registry {self.host}: {action} in {self.description} failed: {detail}")

    def _read_small(self, resp: requests.Response, what: str, expected: int | None = None) -> bytes:
        """The body of a streamed response, at most ``MAX_MANIFEST_SIZE`` bytes (``expected``:
        exactly that many, so a registry sending an endless body is stopped one byte past it)."""
        chunks, total, start = [], 0, time.monotonic()
        try:
            for chunk in _arriving(resp):
                if time.monotonic() - start > http1.ANSWER_DEADLINE:
                    raise RegistryError(f"registry {self.host}: {what} in {self.description} took more than "
                                        f"{http1.ANSWER_DEADLINE:.0f} seconds to arrive; try again")
                total += len(chunk)
                if expected is not None and total > expected:
                    raise DigestMismatchError(f"{what} from {self.description}: more than the expected "
                                              f"{expected} bytes")
                if total > MAX_MANIFEST_SIZE:
                    raise RegistryError(f"registry {self.host}: {what} in {self.description} is larger "
                                        f"than {MAX_MANIFEST_SIZE} bytes; refusing it")
                chunks.append(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise RegistryError(f"the connection to registry {self.host} broke while reading {what} "
                                f"({type(exc).__name__}); try again") from None
        finally:
            resp.close()
        return b"".join(chunks)

    @staticmethod
    def _release(resp: requests.Response) -> None:
        """Close a streamed response whose body we do not need, reading a small one first: an
        unread body makes urllib3 drop the connection, and the next request opens a new one."""
        try:
            length = int(resp.headers.get("Content-Length") or -1)
            if 0 <= length <= 64 * 1024:
                resp.raw.read(length)
        except (ValueError, OSError, requests.RequestException, urllib3.exceptions.HTTPError):
            pass
        resp.close()

    def _not_found(self, ref: str) -> NotFoundError:
        what = f"manifest {ref}" if is_digest(ref) else f"tag {ref}"
        return NotFoundError(f"{what} not found in {self.description}")

    # -- manifests and tags ----------------------------------------------------------

    def resolve(self, ref: str) -> Descriptor:
        resp = self._request("HEAD", self._path("manifests", ref), headers={"Accept": mt.ACCEPT})
        resp.close()
        if resp.status_code == 404:
            raise self._not_found(ref)
        digest = resp.headers.get("Docker-Content-Digest", "")
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        length = resp.headers.get("Content-Length", "")
        if (resp.status_code == 200 and is_digest(digest) and media_type in mt.ALL_MANIFESTS
                and length.isdigit() and (not is_digest(ref) or ref == digest)):
            return Descriptor(media_type=media_type, digest=digest, size=int(length))
        desc, _ = self.get_manifest(ref)  # the registry would not say: ask for the manifest itself
        return desc

    def get_manifest(self, ref: str) -> tuple[Descriptor, bytes]:
        resp = self._request("GET", self._path("manifests", ref), headers={"Accept": mt.ACCEPT}, stream=True,
                             small=True)
        if resp.status_code == 404:
            self._release(resp)
            raise self._not_found(ref)
        if resp.status_code != 200:
            raise self._fail(resp, f"GET manifest {ref}")
        data = self._read_small(resp, f"manifest {ref}")
        if is_digest(ref):
            digest = ref
        else:
            claimed = resp.headers.get("Docker-Content-Digest", "")
            digest = claimed if is_digest(claimed) else sha256(data)
        verify_bytes(data, digest, what=f"manifest {ref} from {self.description}")
        declared = resp.headers.get("Content-Type", "").split(";")[0].strip() or None
        try:
            media_type = media_type_of(data, declared)
        except ModelError as exc:
            raise RegistryError(f"registry {self.host}: manifest {ref} in {self.description} "
                                f"is unusable: {exc}") from None
        return Descriptor(media_type=media_type, digest=digest, size=len(data)), data

    def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Descriptor:
        desc = Descriptor.of(data, media_type)
        resp = self._put_manifest(data, media_type, desc.digest)
        subject = _subject_of(data)
        if subject is not None and not resp.headers.get("OCI-Subject"):
            self._add_to_referrers_index(subject, _referrer_descriptor(desc, data))
        if tag:
            self._put_manifest(data, media_type, tag)  # tags move last
        return desc

    def tag(self, tag: str, desc: Descriptor, data: bytes | None = None) -> None:
        """Move ``tag`` to a manifest already pushed: one PUT under the tag, nothing else."""
        if data is None:
            desc, data = self.get_manifest(desc.digest)
        self._put_manifest(data, desc.media_type, tag)

    def _put_manifest(self, data: bytes, media_type: str, ref: str) -> requests.Response:
        resp = self._request("PUT", self._path("manifests", ref), push=True, body=data,
                             headers={"Content-Type": media_type})
        if resp.status_code not in (200, 201, 202):
            raise self._fail(resp, f"PUT manifest {ref}")
        resp.close()
        return resp

    def list_tags(self) -> list[str]:
        tags: list[str] = []
        pages = _Pages(self, "the tag list", self._path("tags", "list") + f"?n={TAGS_PAGE_SIZE}", "tags")
        for url in pages:
            resp = self._request("GET", url, stream=True, small=True)
            if resp.status_code == 404:
                self._release(resp)
                return []  # no such repository: like an empty one, as most registries can't tell
            if resp.status_code != 200:
                raise self._fail(resp, "list tags")
            pages.next(resp)
            try:
                page = json.loads(self._read_small(resp, "the tag list"))
            except (ValueError, RecursionError):
                page = None
            listed = page.get("tags") if isinstance(page, dict) else None
            if not isinstance(listed, (list, type(None))):
                raise RegistryError(f"registry {self.host}: the tag list of {self.description} "
                                    f"is not a JSON object with a list of tags") from None
            if page is None:
                raise RegistryError(f"registry {self.host}: the tag list of {self.description} "
                                    f"is not JSON") from None
            pages.took(len(listed or ()))
            tags.extend(t for t in listed or () if isinstance(t, str))
        return sorted(set(tags))

    # -- blobs -----------------------------------------------------------------------

    def has_blob(self, digest: str) -> bool:
        return self.blob_size(digest) is not None

    def blob_size(self, digest: str) -> int | None:
        # A redirect (to a CDN or bucket) already says the blob is there; following it could
        # meet a URL signed for GET only.
        resp = self._request("HEAD", self._path("blobs", digest), allow_redirects=False)
        resp.close()
        if 200 <= resp.status_code < 300:
            length = resp.headers.get("Content-Length", "")
            size = int(length) if length.isdigit() and len(length) < 20 else -1
            # Some fronts answer HEAD with a length of 0 whatever the blob: only the empty blob
            # has that size for sure.
            return -1 if size == 0 and digest != _EMPTY_BLOB else size
        if 300 <= resp.status_code < 400:
            return -1
        if resp.status_code == 404:
            return None
        raise self._fail(resp, f"HEAD blob {digest}")

    def open_blob(self, desc: Descriptor) -> BinaryIO:
        resp = self._request("GET", self._path("blobs", desc.digest), stream=True,
                             headers={"Accept-Encoding": "identity"})
        if resp.status_code == 404:
            resp.close()
            raise NotFoundError(f"blob {desc.digest} not found in {self.description}")
        if resp.status_code != 200:
            raise self._fail(resp, f"GET blob {desc.digest}")
        what = f"blob {desc.digest} from {self.description}"
        body = cast(BinaryIO, _ResponseStream(resp, what))
        return cast(BinaryIO, VerifyingReader(body, desc.digest, desc.size, what=what))

    def get_blob(self, desc: Descriptor) -> bytes:
        """A small blob (a config) in one request read whole; large ones stream as usual."""
        check_document_size(desc)
        if desc.size > SMALL_BLOB:
            return super().get_blob(desc)
        resp = self._request("GET", self._path("blobs", desc.digest), headers={"Accept-Encoding": "identity"},
                             stream=True, small=True)
        if resp.status_code == 404:
            resp.close()
            raise NotFoundError(f"blob {desc.digest} not found in {self.description}")
        if resp.status_code != 200:
            raise self._fail(resp, f"GET blob {desc.digest}")
        data = self._read_small(resp, f"blob {desc.digest}", expected=desc.size)
        return verify_bytes(data, desc.digest, desc.size, what=f"blob {desc.digest} from {self.description}")

    def put_blob(self, desc: Descriptor, stream: BinaryIO, progress: ProgressFn | None = None) -> None:
        # No HEAD here: every caller (copy, put_blob_bytes, append) has asked has_blob already,
        # and uploading a blob that is there is harmless, just not free.
        source = _UploadSource(stream, desc, progress)
        location = self._start_upload()
        if desc.size > CHUNKED_UPLOAD_THRESHOLD:
            self._upload_chunked(location, source)
        else:
            self._upload_monolithic(location, source)

    def _start_upload(self, **params: str) -> str:
        resp = self._request("POST", self._path("blobs", "uploads/"), push=True, params=params or None)
        if resp.status_code != 202 or not resp.headers.get("Location"):
            raise self._fail(resp, "start blob upload")
        resp.close()
        return resp.headers["Location"]

    def _upload_monolithic(self, location: str, source: _UploadSource) -> None:
        desc = source.desc
        body: Any = _UploadBody(source, desc.size) if desc.size else b""
        if 0 < desc.size <= SMALL_BLOB:  # a config: sent from memory, in one write with the head
            body = b"".join(body)
        resp = self._request("PUT", _with_query(location, digest=desc.digest), push=True, body=body,
                             headers={"Content-Type": _OCTET, "Content-Length": str(desc.size)})
        if resp.status_code not in (201, 204):
            if error_codes(resp) & {"DIGEST_INVALID", "SIZE_INVALID", "BLOB_UPLOAD_INVALID"}:
                source.check()  # our own bytes were wrong: say so in our words
            raise self._fail(resp, f"upload of blob {desc.digest}")
        resp.close()
        source.check()

    def _upload_chunked(self, location: str, source: _UploadSource) -> None:
        desc = source.desc
        offset = 0
        while offset < desc.size:
            n = min(CHUNK_SIZE, desc.size - offset)
            resp = self._request("PATCH", location, push=True, body=_UploadBody(source, n), headers={
                "Content-Type": _OCTET, "Content-Range": f"{offset}-{offset + n - 1}", "Content-Length": str(n)})
            if resp.status_code != 202:
                raise self._fail(resp, f"chunk {offset}-{offset + n - 1} of blob {desc.digest}")
            resp.close()
            location = resp.headers.get("Location") or location
            offset += n
        try:
            source.check()
        except DigestMismatchError:
            self._cancel_upload(location)
            raise
        resp = self._request("PUT", _with_query(location, digest=desc.digest), push=True,
                             headers={"Content-Length": "0"})
        if resp.status_code not in (201, 204):
            raise self._fail(resp, f"upload of blob {desc.digest}")
        resp.close()

    def check_writable(self) -> None:
        """Start a blob upload and cancel it, as ko's push-permission check does: the registry
        answers, the credentials (if any) get a push token, and the repository takes uploads."""
        self._cancel_upload(self._start_upload())

    def _cancel_upload(self, location: str) -> None:
        try:
            self._request("DELETE", location, push=True).close()
        except RegistryError:
            pass  # the registry purges abandoned uploads itself

    def mount_blob(self, desc: Descriptor, source: Store) -> bool:
        """Ask the registry to link ``source``'s blob into this repository: no bytes move.

        Only possible within one registry; a 202 means the registry declined (and opened an
        upload instead, which is cancelled) and the caller copies the bytes.
        """
        if (not isinstance(source, RegistryStore) or source.host != self.host
                or source.repository == self.repository):
            return False
        scopes = self._push() + (repository_scope(source.repository, "pull"),)
        resp = self._request("POST", self._path("blobs", "uploads/"), scopes=scopes,
                             params={"mount": desc.digest, "from": source.repository})
        resp.close()
        if resp.status_code == 201:
            return True
        if resp.status_code == 202 and resp.headers.get("Location"):
            self._cancel_upload(resp.headers["Location"])
        return False

    # -- referrers ---------------------------------------------------------------------

    def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        params = {"artifactType": artifact_type} if artifact_type else None
        if self.client.referrers_api is False:  # learnt once per registry: straight to the fallback
            return self._referrers_by_tag(digest, artifact_type)
        resp = self._request("GET", self._path("referrers", digest), params=params,
                             headers={"Accept": mt.OCI_INDEX}, stream=True, small=True)
        if resp.status_code in (400, 404, 405):
            if resp.status_code == 405 or not error_codes(resp):
                # An unknown route, not a registry error about this repository or digest.
                self.client.referrers_api = False
            self._release(resp)  # no referrers API here: read the tag the fallback schema keeps
            try:
                _, data = self.get_manifest(referrers_tag(digest))
            except NotFoundError:
                return []
            found = list(self._parse_index(data, digest).manifests)
        elif resp.status_code == 200:
            found = []
            pages = _Pages(self, f"the referrers of {digest}", resp.url or "", "referrers")
            for url in pages:
                if pages.count > 1:  # the first page is the answer at hand
                    resp = self._request("GET", url, headers={"Accept": mt.OCI_INDEX}, stream=True, small=True)
                    if resp.status_code != 200:
                        raise self._fail(resp, f"list referrers of {digest}")
                pages.next(resp)
                listed = self._parse_index(self._read_small(resp, f"referrers of {digest}"), digest).manifests
                pages.took(len(listed))
                found.extend(listed)
        else:
            raise self._fail(resp, f"list referrers of {digest}")
        if artifact_type:
            found = [d for d in found if d.artifact_type == artifact_type]
        return found

    def _referrers_by_tag(self, digest: str, artifact_type: str | None) -> list[Descriptor]:
        try:
            _, data = self.get_manifest(referrers_tag(digest))
        except NotFoundError:
            return []
        found = list(self._parse_index(data, digest).manifests)
        return [d for d in found if d.artifact_type == artifact_type] if artifact_type else found

    def _parse_index(self, data: bytes, digest: str) -> Index:
        try:
            return Index.from_bytes(data, mt.OCI_INDEX)
        except ModelError as exc:
            raise RegistryError(f"registry {self.host}: the referrers of {digest} in {self.description} "
                                f"are not an OCI index ({exc})") from None

    def _add_to_referrers_index(self, subject: Descriptor, referrer: Descriptor) -> None:
        """Read-modify-write the fallback tag of ``subject`` so it lists ``referrer`` once."""
        tag = referrers_tag(subject.digest)
        with self._referrers_lock:
            try:
                _, data = self.get_manifest(tag)
                index = self._parse_index(data, subject.digest)
            except NotFoundError:
                index = Index(manifests=())
            if any(d.digest == referrer.digest for d in index.manifests):
                return
            index = replace(index, media_type=mt.OCI_INDEX, manifests=index.manifests + (referrer,))
            self._put_manifest(index.to_bytes(), mt.OCI_INDEX, tag)


class _Pages:
    """The URLs of a paginated list, first to last, each once: the next one is what the last
    response's ``Link: <...>; rel="next"`` names. A link back to a page already read, or more
    than ``MAX_PAGES`` pages, is the registry's error, not a reason to read for ever."""

    def __init__(self, store: "RegistryStore", what: str, first: str, kind: str) -> None:
        self._store, self._what, self._kind = store, what, kind
        self._next: str | None = first
        self._seen: set[str] = set()
        self.count = 0
        self._listed = 0

    def __iter__(self) -> Iterator[str]:
        while self._next is not None:
            url, self._next = self._next, None
            key = urlsplit(url)._replace(scheme="", netloc="").geturl()  # absolute or not, one page
            if key in self._seen:
                raise RegistryError(f"registry {self._store.host}: {self._what} in {self._store.description} "
                                    f"links back to a page already read ({url}); refusing to loop")
            if self.count >= MAX_PAGES:
                raise RegistryError(f"registry {self._store.host}: {self._what} in {self._store.description} "
                                    f"goes on for more than {MAX_PAGES} pages; refusing to read on")
            self._seen.add(key)
            self.count += 1
            yield url

    def next(self, resp: requests.Response) -> None:
        """Take the next page's URL from ``resp`` (call before its body is read)."""
        self._next = resp.links.get("next", {}).get("url") or None

    def took(self, entries: int) -> None:
        """Count a page's entries; past MAX_LISTED in all, the registry's error."""
        self._listed += entries
        if self._listed > MAX_LISTED[self._kind]:
            raise RegistryError(f"registry {self._store.host}: {self._what} in {self._store.description} "
                                f"holds more than {MAX_LISTED[self._kind]} {self._kind}; refusing to read on")


def _manifest_json(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _subject_of(data: bytes) -> Descriptor | None:
    subject = _manifest_json(data).get("subject")
    if not subject:
        return None
    try:
        return Descriptor.from_json(subject)
    except ModelError:
        return None


def _referrer_descriptor(desc: Descriptor, data: bytes) -> Descriptor:
    """How a referrer is listed: its artifactType (else its config's media type) and annotations."""
    d = _manifest_json(data)
    config = d.get("config")
    config_type = config.get("mediaType") if isinstance(config, dict) else None
    artifact_type = d.get("artifactType") or config_type or None
    annotations = d.get("annotations") if isinstance(d.get("annotations"), dict) else None
    return replace(desc, artifact_type=artifact_type, annotations=annotations or None)
