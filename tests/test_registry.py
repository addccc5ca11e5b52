"""The registry backend against real registries (Debian's docker-registry, distribution 2.8).

Nothing here mocks HTTP: the fixtures in ``fixtures_registry`` start the registry binary, and
a token server for the bearer flow. Requests are counted with a ``requests`` session hook to
tell what went over the wire (no re-upload, no bytes on a mount, chunks used).
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from builder.errors import AuthError, DigestMismatchError, NotFoundError, RegistryError, UsageError
from builder.oci import mediatypes as mt
from builder.oci.digest import sha256
from builder.oci.model import Descriptor, ImageConfig, Manifest
from builder.oci.stores import registry as registry_mod
from builder.oci.stores.auth import (
    Credentials,
    credentials_from_docker_config,
    docker_config_path,
    load_credentials,
    merge_scopes,
    parse_creds,
    parse_www_authenticate,
)
from builder.oci.stores.registry import RegistryStore, referrers_tag
from builder.oci.stores.registry_client import candidate_endpoints, is_loopback, retry_delay
from tests.fixtures_registry import RunningRegistry, free_port, unique_repo

pytestmark = pytest.mark.registry


# -- helpers ------------------------------------------------------------------------


@contextmanager
def wire(store: RegistryStore) -> Iterator[list[tuple[str, str]]]:
    """(method, path) of every request this store's repository gets while inside the block."""
    seen: list[tuple[str, str]] = []
    marker = f"/v2/{store.repository}/"

    def hook(resp, *args, **kwargs):  # type: ignore[no-untyped-def]
        url = resp.request.url
        if marker in url:
            seen.append((resp.request.method, url.split(marker, 1)[1]))

    hooks = store.client.session.hooks["response"]
    hooks.append(hook)
    try:
        yield seen
    finally:
        hooks.remove(hook)


def push_image(store: RegistryStore, tag: str | None = None, layer: bytes | None = None) -> tuple[Descriptor, bytes]:
    """A small real image (config + one layer) pushed to ``store``."""
    layer = layer if layer is not None else os.urandom(1024)
    layer_desc = store.put_blob_bytes(layer, mt.OCI_LAYER)
    config = ImageConfig(diff_ids=(layer_desc.digest,)).to_bytes()
    config_desc = store.put_blob_bytes(config, mt.OCI_CONFIG)
    manifest = Manifest(config=config_desc, layers=(layer_desc,)).to_bytes()
    return store.put_manifest(manifest, mt.OCI_MANIFEST, tag=tag), manifest


def push_artifact(store: RegistryStore, subject: Descriptor, artifact_type: str, payload: bytes) -> Descriptor:
    empty = store.put_blob_bytes(b"{}", mt.OCI_EMPTY)
    blob = store.put_blob_bytes(payload, "application/octet-stream")
    manifest = Manifest(config=empty, layers=(blob,), subject=subject, artifact_type=artifact_type,
                        annotations={"org.example.kind": artifact_type.rsplit(".", 1)[-1]})
    return store.put_manifest(manifest.to_bytes(), mt.OCI_MANIFEST)


def uploads(seen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(m, p) for m, p in seen if p.startswith("blobs/uploads")]


# -- anonymous registry: blobs, manifests, tags ------------------------------------------


def test_round_trip_blob_manifest_and_tag(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo())
    assert store.description == f"{registry.host}/{store.repository}"
    desc, manifest = push_image(store, tag="v1")

    assert store.resolve("v1") == desc
    got_desc, got = store.get_manifest("v1")
    assert got == manifest and got_desc == desc
    parsed = Manifest.from_bytes(got)
    for blob in (parsed.config, *parsed.layers):
        assert store.has_blob(blob.digest)
        with store.open_blob(blob) as stream:
            assert sha256(stream.read()) == blob.digest
    assert store.list_tags() == ["v1"]


def test_put_manifest_pushes_by_digest_before_the_tag(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo())
    with wire(store) as seen:
        desc, _ = push_image(store, tag="latest")
    puts = [p for m, p in seen if m == "PUT" and p.startswith("manifests/")]
    assert puts == [f"manifests/{desc.digest}", "manifests/latest"]


def test_list_tags_sorted(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo())
    desc, manifest = push_image(store, tag="b")
    for tag in ("e", "a", "d", "c"):
        store.tag(tag, desc)
    assert store.list_tags() == ["a", "b", "c", "d", "e"]
    assert RegistryStore(registry.host, unique_repo()).list_tags() == []


class _ScriptedRegistry(http.server.BaseHTTPRequestHandler):
    """What distribution 2.8 cannot show: tag pagination (it ignores ``n`` for tags) and the
    OCI 1.1 referrers API, answered the way newer registries do, over real HTTP."""

    tags = [f"t{i}" for i in range(7)]
    referrers = [
        {"mediaType": mt.OCI_MANIFEST, "digest": sha256(b"r1"), "size": 2, "artifactType": "application/a"},
        {"mediaType": mt.OCI_MANIFEST, "digest": sha256(b"r2"), "size": 2, "artifactType": "application/b"},
        {"mediaType": mt.OCI_MANIFEST, "digest": sha256(b"r3"), "size": 2, "artifactType": "application/a"},
    ]

    def do_GET(self) -> None:  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        if url.path == "/v2/":
            return self._send({})
        if url.path == "/v2/app/tags/list":
            n, last = int(query.get("n", "100")), query.get("last")
            rest = [t for t in self.tags if last is None or t > last]
            page = rest[:n]
            link = {"Link": f'</v2/app/tags/list?n={n}&last={page[-1]}>; rel="next"'} if len(rest) > n else {}
            return self._send({"name": "app", "tags": page}, link)
        if url.path.startswith("/v2/app/referrers/"):
            # Two pages, no server-side filtering (no OCI-Filters-Applied): the client filters.
            page = int(query.get("page", "0"))
            items = self.referrers[:2] if page == 0 else self.referrers[2:]
            link = {"Link": '</v2/app/referrers/x?page=1>; rel="next"'} if page == 0 else {}
            index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": items}
            return self._send(index, {"Content-Type": mt.OCI_INDEX, **link})
        self.send_error(404)

    def _send(self, body: dict, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)), **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serve(handler: type) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_list_tags_follows_link_pagination(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_mod, "TAGS_PAGE_SIZE", 3)
    with serve(_ScriptedRegistry) as host:
        store = RegistryStore(host, "app")
        with wire(store) as seen:
            assert store.list_tags() == _ScriptedRegistry.tags
        assert len(seen) == 3  # 3 + 3 + 1, by following Link: rel="next"


def test_referrers_api_when_the_registry_has_one() -> None:
    with serve(_ScriptedRegistry) as host:
        store = RegistryStore(host, "app")
        subject = sha256(b"subject")
        assert [d.digest for d in store.referrers(subject)] == [r["digest"] for r in _ScriptedRegistry.referrers]
        only_a = store.referrers(subject, "application/a")
        assert [d.artifact_type for d in only_a] == ["application/a", "application/a"]


def test_a_host_that_is_not_a_registry() -> None:
    class NotARegistry(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    with serve(NotARegistry) as host:
        with pytest.raises(RegistryError, match=f"{host} does not look like a registry"):
            RegistryStore(host, "app").list_tags()


def test_oversized_manifest_is_refused(registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    store = RegistryStore(registry.host, unique_repo())
    desc, _ = push_image(store, tag="v1")
    monkeypatch.setattr(registry_mod, "MAX_MANIFEST_SIZE", 100)
    with pytest.raises(RegistryError, match="larger than 100 bytes"):
        store.get_manifest(desc.digest)


def test_server_errors_are_retried_then_reported(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo(), retries=3, backoff=0.01)
    push_image(store, tag="v1")
    link = registry.storage / "docker/registry/v2/repositories" / store.repository / "_manifests/tags/v1/current/link"
    link.write_text("garbage")  # the registry now answers 500 for this tag
    with wire(store) as seen:
        with pytest.raises(RegistryError) as err:
            store.get_manifest("v1")
    assert seen == [("GET", "manifests/v1")] * 3
    assert str(err.value) == (f"registry {registry.host} answered HTTP 500 UNKNOWN: unknown error "
                              f"for {store.repository} after 3 attempts; try again later")


def test_a_blob_already_there_is_not_uploaded_again(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo())
    data = os.urandom(4096)
    desc = Descriptor.of(data, mt.OCI_LAYER)
    store.put_blob(desc, io.BytesIO(data))
    with wire(store) as seen:
        assert store.put_blob_bytes(data, mt.OCI_LAYER) == desc
    assert seen == [("HEAD", f"blobs/{desc.digest}")]


def test_monolithic_upload_reports_progress(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo())
    data = os.urandom(3 * 1024 * 1024 + 5)
    desc = Descriptor.of(data, mt.OCI_LAYER)
    moved: list[int] = []
    with wire(store) as seen:
        store.put_blob(desc, io.BytesIO(data), progress=moved.append)
    assert [m for m, _ in uploads(seen)] == ["POST", "PUT"]
    assert sum(moved) == len(data) and len(moved) > 1  # reported as it went, not once at the end
    assert store.get_blob(desc) == data


def test_chunked_upload_of_a_large_blob(registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_mod, "CHUNKED_UPLOAD_THRESHOLD", 256 * 1024)
    monkeypatch.setattr(registry_mod, "CHUNK_SIZE", 1024 * 1024)
    monkeypatch.setattr(registry_mod, "BUFFER_SIZE", 64 * 1024)
    store = RegistryStore(registry.host, unique_repo())
    data = os.urandom(3 * 1024 * 1024 + 7)
    desc = Descriptor.of(data, mt.OCI_LAYER)
    moved: list[int] = []
    with wire(store) as seen:
        store.put_blob(desc, io.BytesIO(data), progress=moved.append)
    assert [m for m, _ in uploads(seen)] == ["POST", "PATCH", "PATCH", "PATCH", "PATCH", "PUT"]
    assert sum(moved) == len(data)
    assert store.get_blob(desc) == data


@pytest.mark.parametrize("chunked", [False, True])
def test_upload_of_wrong_bytes_is_refused_and_nothing_stored(
        registry: RunningRegistry, monkeypatch: pytest.MonkeyPatch, chunked: bool) -> None:
    if chunked:
        monkeypatch.setattr(registry_mod, "CHUNKED_UPLOAD_THRESHOLD", 1024)
        monkeypatch.setattr(registry_mod, "CHUNK_SIZE", 4096)
    store = RegistryStore(registry.host, unique_repo())
    data = os.urandom(10_000)
    desc = Descriptor.of(data, mt.OCI_LAYER)
    with pytest.raises(DigestMismatchError, match=desc.digest):
        store.put_blob(desc, io.BytesIO(os.urandom(10_000)))
    with pytest.raises(DigestMismatchError, match="stream ended"):
        store.put_blob(desc, io.BytesIO(data[:5000]))
    assert not store.has_blob(desc.digest)


def test_cross_repository_mount_moves_no_bytes(registry: RunningRegistry) -> None:
    source = RegistryStore(registry.host, unique_repo("src"))
    target = RegistryStore(registry.host, unique_repo("dst"))
    desc = source.put_blob_bytes(os.urandom(50_000), mt.OCI_LAYER)
    with wire(target) as seen:
        assert target.mount_blob(desc, source) is True
    assert [m for m, _ in seen] == ["POST"] and "mount=" in seen[0][1]
    assert target.has_blob(desc.digest)

    # Not mountable: a blob the source does not have, or a store on another host.
    missing = Descriptor.of(os.urandom(10), mt.OCI_LAYER)
    assert target.mount_blob(missing, source) is False
    assert not target.has_blob(missing.digest)
    elsewhere = RegistryStore(f"localhost:{registry.host.split(':')[1]}", source.repository)
    assert target.mount_blob(desc, elsewhere) is False


def test_resolve_by_tag_and_by_digest(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo())
    desc, manifest = push_image(store, tag="stable")
    assert store.resolve("stable") == desc
    assert store.resolve(desc.digest) == desc
    assert desc.size == len(manifest) and desc.media_type == mt.OCI_MANIFEST
    assert store.get_manifest(desc.digest) == (desc, manifest)


def test_missing_tag_and_manifest_are_not_found(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo())
    push_image(store, tag="v1")
    with pytest.raises(NotFoundError, match=f"^tag v9 not found in {registry.host}/{store.repository}$"):
        store.resolve("v9")
    with pytest.raises(NotFoundError, match="tag v9 not found"):
        store.get_manifest("v9")
    absent = sha256(b"absent")
    with pytest.raises(NotFoundError, match=f"manifest {absent} not found"):
        store.get_manifest(absent)
    with pytest.raises(NotFoundError, match=f"blob {absent} not found"):
        store.open_blob(Descriptor(mt.OCI_LAYER, absent, 6))


def test_manifest_with_missing_blobs_is_refused(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo())
    ghost = Descriptor.of(os.urandom(32), mt.OCI_LAYER)
    config = Descriptor.of(b"{}", mt.OCI_CONFIG)
    manifest = Manifest(config=config, layers=(ghost,)).to_bytes()
    with pytest.raises(RegistryError, match="MANIFEST_BLOB_UNKNOWN"):
        store.put_manifest(manifest, mt.OCI_MANIFEST, tag="broken")
    assert store.list_tags() == []


def test_corrupted_blob_on_the_registry_is_detected(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo())
    data = os.urandom(100_000)
    desc = store.put_blob_bytes(data, mt.OCI_LAYER)
    path = registry.blob_path(desc.digest)
    corrupted = bytearray(path.read_bytes())
    corrupted[50_000] ^= 0xFF
    path.write_bytes(bytes(corrupted))
    with pytest.raises(DigestMismatchError, match=desc.digest):
        with store.open_blob(desc) as stream:
            while stream.read(8192):
                pass
    with pytest.raises(DigestMismatchError):
        store.get_blob(desc)


def test_corrupted_manifest_on_the_registry_is_detected(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo())
    config = store.put_blob_bytes(b"{}", mt.OCI_CONFIG)
    manifest = Manifest(config=config, layers=(), annotations={"note": "aaaa"}).to_bytes()
    desc = store.put_manifest(manifest, mt.OCI_MANIFEST, tag="v1")
    path = registry.blob_path(desc.digest)
    path.write_bytes(path.read_bytes().replace(b"aaaa", b"aaab"))
    with pytest.raises(DigestMismatchError, match=desc.digest):
        store.get_manifest(desc.digest)
    with pytest.raises(DigestMismatchError):
        store.get_manifest("v1")  # by tag: checked against the Docker-Content-Digest it resolved to


def test_unreachable_registry_fails_after_bounded_attempts() -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    store = RegistryStore(host, "app", retries=2, backoff=0.01)
    with pytest.raises(RegistryError) as err:
        store.list_tags()
    message = str(err.value)
    assert message == f"registry {host} is not reachable after 2 attempts: connection refused"
    assert "\n" not in message and "Traceback" not in message


def test_insecure_falls_back_to_plain_http(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo(), insecure=True)
    desc, _ = push_image(store, tag="v1")
    assert store.resolve("v1") == desc


# -- concurrency ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["registry", "token_registry"])
def test_parallel_uploads_through_one_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch,
                                            kind: str) -> None:
    reg: RunningRegistry = request.getfixturevalue(kind)
    monkeypatch.setattr(registry_mod, "CHUNKED_UPLOAD_THRESHOLD", 300 * 1024)
    monkeypatch.setattr(registry_mod, "CHUNK_SIZE", 256 * 1024)
    store = RegistryStore(reg.host, unique_repo(), creds=reg.creds if reg.user else None)
    blobs = [os.urandom(100_000 * (i + 1)) for i in range(8)]  # half monolithic, half chunked
    descs = [Descriptor.of(b, mt.OCI_LAYER) for b in blobs]
    before = store.client.auth.token_requests
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda pair: store.put_blob(pair[0], io.BytesIO(pair[1])), zip(descs, blobs)))
    with ThreadPoolExecutor(8) as pool:
        back = list(pool.map(store.get_blob, descs))
    assert back == blobs
    if reg.token_server:
        # one token for pulls and one for pushes, shared by the threads, not one per request
        assert store.client.auth.token_requests - before <= 2


# -- basic auth ------------------------------------------------------------------------------


def test_basic_auth_with_good_credentials(auth_registry: RunningRegistry) -> None:
    store = RegistryStore(auth_registry.host, unique_repo(), creds=auth_registry.creds)
    desc, _ = push_image(store, tag="v1")
    assert store.resolve("v1") == desc and store.list_tags() == ["v1"]


def test_basic_auth_with_wrong_or_no_credentials(auth_registry: RunningRegistry,
                                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))  # no config.json: no credentials at all
    repo = unique_repo()
    with pytest.raises(AuthError) as err:
        RegistryStore(auth_registry.host, repo, creds="pallet:wrong").list_tags()
    assert f"{auth_registry.host}/{repo}" in str(err.value) and "'pallet'" in str(err.value)
    assert "wrong" not in str(err.value)  # never echo a password
    with pytest.raises(AuthError, match=f"requires credentials for {auth_registry.host}/{repo}.*--creds"):
        RegistryStore(auth_registry.host, repo).list_tags()


def test_credentials_from_docker_config_dir(auth_registry: RunningRegistry,
                                            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    auth = base64.b64encode(auth_registry.creds.encode()).decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {f"http://{auth_registry.host}": {"auth": auth}}}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    store = RegistryStore(auth_registry.host, unique_repo())
    desc, _ = push_image(store, tag="from-config")
    assert store.resolve("from-config") == desc


# -- bearer tokens ------------------------------------------------------------------------------


def test_token_auth_end_to_end(token_registry: RunningRegistry) -> None:
    tokens = token_registry.token_server
    assert tokens is not None
    store = RegistryStore(token_registry.host, unique_repo(), creds=token_registry.creds)
    desc, manifest = push_image(store, tag="v1")
    assert store.get_manifest("v1") == (desc, manifest)
    assert store.list_tags() == ["v1"]
    mine = [r for r in tokens.requests if any(store.repository in s for s in r["scopes"])]
    assert mine and all(r["user"] == token_registry.user for r in mine)
    assert len(mine) <= 2  # cached per scope: one pull token, one pull+push token


def test_token_auth_refuses_wrong_password_and_anonymous_push(token_registry: RunningRegistry,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    repo = unique_repo()
    with pytest.raises(AuthError, match=f"registry {token_registry.host}.*refused user 'robot'.*{repo}"):
        RegistryStore(token_registry.host, repo, creds="robot:nope").list_tags()
    with pytest.raises(AuthError, match=f"{token_registry.host}/{repo}"):
        RegistryStore(token_registry.host, repo).put_blob_bytes(b"anonymous")


def test_token_auth_mount_asks_for_both_repositories(token_registry: RunningRegistry) -> None:
    source = RegistryStore(token_registry.host, unique_repo("src"), creds=token_registry.creds)
    target = RegistryStore(token_registry.host, unique_repo("dst"), creds=token_registry.creds)
    desc = source.put_blob_bytes(os.urandom(2048), mt.OCI_LAYER)
    assert target.mount_blob(desc, source) is True
    assert target.has_blob(desc.digest)


# -- referrers ---------------------------------------------------------------------------------


def test_referrers_through_the_fallback_tag(registry: RunningRegistry) -> None:
    store = RegistryStore(registry.host, unique_repo())
    image, _ = push_image(store, tag="v1")
    assert store.referrers(image.digest) == []

    sbom = push_artifact(store, image, "application/vnd.example.sbom.v1", b'{"spdx": true}')
    sig = push_artifact(store, image, "application/vnd.example.sig.v1", b"signature")
    push_artifact(store, image, "application/vnd.example.sbom.v1", b'{"spdx": true}')  # again: no duplicate

    found = store.referrers(image.digest)
    assert [d.digest for d in found] == [sbom.digest, sig.digest]
    assert found[0].artifact_type == "application/vnd.example.sbom.v1"
    assert found[0].annotations == {"org.example.kind": "v1"}
    assert [d.digest for d in store.referrers(image.digest, "application/vnd.example.sig.v1")] == [sig.digest]
    assert store.referrers(image.digest, "application/vnd.example.none") == []
    assert referrers_tag(image.digest) in store.list_tags()
    assert store.resolve(referrers_tag(image.digest)).media_type == mt.OCI_INDEX


# -- pure units: no registry needed -------------------------------------------------------------


@pytest.mark.parametrize("header, expected", [
    ('Basic realm="Registry Realm"', [("basic", {"realm": "Registry Realm"})]),
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
     'scope="repository:samalba/my-app:pull,push"',
     [("bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                  "scope": "repository:samalba/my-app:pull,push"})]),
    ('Bearer realm="https://a/token", error="insufficient_scope", Basic realm="b, c"',
     [("bearer", {"realm": "https://a/token", "error": "insufficient_scope"}), ("basic", {"realm": "b, c"})]),
    ('bearer REALM=https://x/t , service = reg', [("bearer", {"realm": "https://x/t", "service": "reg"})]),
    (r'Basic realm="say \"hi\""', [("basic", {"realm": 'say "hi"'})]),
    ("", []),
])
def test_parse_www_authenticate(header: str, expected: list) -> None:
    got = [(c.scheme, c.params) for c in parse_www_authenticate(header)]
    assert got == expected


def test_parse_www_authenticate_token68_and_scopes() -> None:
    (neg, basic) = parse_www_authenticate('Negotiate abc123==, Basic realm="r"')
    assert (neg.scheme, neg.token68, basic.realm) == ("negotiate", "abc123==", "r")
    (bearer,) = parse_www_authenticate('Bearer realm="r",scope="repository:a:pull repository:b:pull,push"')
    assert bearer.scopes == ["repository:a:pull", "repository:b:pull,push"]
    assert merge_scopes(["repository:a:push"], ["repository:a:pull", "repository:b:pull"]) == (
        "repository:a:pull,push", "repository:b:pull")


def test_docker_config_lookup() -> None:
    def b64(s: str) -> str:
        return base64.b64encode(s.encode()).decode()

    config = {"auths": {
        "https://index.docker.io/v1/": {"auth": b64("hub:hubpw")},
        "https://reg.example.com": {"auth": b64("u1:p:w")},
        "plain.example.com:5000": {"username": "u2", "password": "p2"},
        "broken.example.com": {"auth": "!!!"},
        "empty.example.com": {},
    }}
    assert credentials_from_docker_config(config, "docker.io") == Credentials("hub", "hubpw")
    assert credentials_from_docker_config(config, "reg.example.com") == Credentials("u1", "p:w")
    assert credentials_from_docker_config(config, "plain.example.com:5000") == Credentials("u2", "p2")
    assert credentials_from_docker_config(config, "plain.example.com") is None
    assert credentials_from_docker_config(config, "broken.example.com") is None
    assert credentials_from_docker_config(config, "empty.example.com") is None
    assert credentials_from_docker_config({}, "reg.example.com") is None
    assert "p:w" not in repr(Credentials("u1", "p:w"))


def test_load_credentials_honours_docker_config_and_creds(tmp_path: Path) -> None:
    env = {"DOCKER_CONFIG": str(tmp_path)}
    assert docker_config_path(env) == tmp_path / "config.json"
    assert docker_config_path({}) == Path.home() / ".docker" / "config.json"
    assert load_credentials("r.example", environ=env) is None
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"r.example": {"username": "a", "password": "b"}}}))
    assert load_credentials("r.example", environ=env) == Credentials("a", "b")
    assert load_credentials("r.example", "x:y", environ=env) == Credentials("x", "y")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(AuthError, match="config.json is not valid JSON"):
        load_credentials("r.example", environ=env)
    with pytest.raises(UsageError, match="USER:PASSWORD"):
        parse_creds("no-colon")


def test_retry_delay_backoff_and_retry_after() -> None:
    assert [retry_delay(n, 0.5) for n in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert retry_delay(20, 0.5) == 30.0  # capped
    assert retry_delay(0, 0.5, "3") == 3.0
    assert retry_delay(0, 0.5, "86400") == 30.0  # a registry asking for a day gets the cap
    assert retry_delay(0, 0.5, "Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_delay(1, 0.5, "soon") == 1.0  # unparsable: plain backoff


def test_endpoints_by_host_kind() -> None:
    assert is_loopback("localhost:5000") and is_loopback("127.0.0.1") and is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.com:5000") and not is_loopback("10.0.0.1:5000")
    assert candidate_endpoints("127.0.0.1:5000", False) == [("http://127.0.0.1:5000", False)]
    assert [u for u, _ in candidate_endpoints("reg.example.com", True)] == [
        "https://reg.example.com", "http://reg.example.com"]
    (only,) = candidate_endpoints("reg.example.com", False)
    assert only[0] == "https://reg.example.com" and only[1] is not False


def test_referrers_tag_schema() -> None:
    digest = sha256(b"x")
    assert referrers_tag(digest) == "sha256-" + digest.split(":", 1)[1]
