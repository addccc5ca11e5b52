"""Real registries for the tests: Debian's ``docker-registry`` (distribution 2.8) on free ports.

- ``registry``: anonymous, filesystem storage in a temp dir (``.storage`` lets a test corrupt
  blob files), deletes enabled, log in a file (``.log``);
- ``auth_registry``: the same behind htpasswd basic auth (``.user``/``.password``);
- ``token_registry``: the same behind bearer tokens, issued by a token server this module
  runs in a thread (``TokenServer``): it checks basic credentials and signs a JWT with a
  key whose self-signed certificate is the registry's ``rootcertbundle``;
- ``registry_factory``: start more (say, one per test that wants its own log).

All of them stop when the session (or the test, for the factory) ends. No fixed ports.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

REGISTRY_BIN = os.environ.get("PALLET_TEST_REGISTRY_BIN", "/usr/bin/docker-registry")
STARTUP_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique_repo(prefix: str = "test") -> str:
    """A repository name no other test uses, so session-scoped registries can be shared."""
    return f"{prefix}/{uuid.uuid4().hex[:12]}"


def bcrypt_hash(password: str) -> str:
    """A bcrypt hash for an htpasswd file: the ``bcrypt`` package, else ``htpasswd``, else ``crypt``."""
    try:
        import bcrypt  # type: ignore[import-not-found]

        return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    except ImportError:
        pass
    if shutil.which("htpasswd"):
        out = subprocess.run(["htpasswd", "-nbBC", "4", "x", password], check=True,
                             capture_output=True, text=True).stdout
        return out.strip().split(":", 1)[1]
    try:
        import crypt  # type: ignore[import-not-found]  # Python <= 3.12, with libxcrypt's bcrypt

        return crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16))
    except (ImportError, AttributeError):
        pytest.skip("no bcrypt: pip install bcrypt (or apt-get install apache2-utils)")


@dataclass
class RunningRegistry:
    host: str
    storage: Path
    log: Path
    config: Path
    process: subprocess.Popen = field(repr=False)
    user: str | None = None
    password: str | None = None
    token_server: "TokenServer | None" = None

    @property
    def creds(self) -> str:
        return f"{self.user}:{self.password}"

    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (manifests are blobs too)."""
        algo, hexpart = digest.split(":", 1)
        return self.storage / "docker/registry/v2/blobs" / algo / hexpart[:2] / hexpart / "data"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.token_server is not None:
            self.token_server.stop()


def _config_yaml(port: int, storage: Path, auth: str, quiet: bool = False) -> str:
    """``quiet``: errors only and no access log (a log line costs the registry more CPU than
    the request it records), and blob descriptors (digest -> size, type) cached in memory
    rather than read from disk on every check: for benchmarks (with GOGC=1000, see
    ``start_registry``). The tests keep distribution's
    defaults and read the access log to count requests."""
    cache = ["  cache:", "    blobdescriptor: inmemory"] if quiet else []
    # JSON is YAML: no YAML library needed to write the config.
    return "\n".join([
        "version: 0.1",
        "log:",
        f"  level: {'error' if quiet else 'info'}",
        "  formatter: text",
        "  accesslog:",
        f"    disabled: {'true' if quiet else 'false'}",
        "storage:",
        *cache,
        "  filesystem:",
        f"    rootdirectory: {json.dumps(str(storage))}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        f"  secret: {uuid.uuid4().hex}",
        auth,
        "",
    ])


def _wait_until_up(reg: RunningRegistry) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if reg.process.poll() is not None:
            raise RuntimeError(f"docker-registry exited ({reg.process.returncode}):\n{reg.log_text()[-3000:]}")
        try:
            urllib.request.urlopen(f"http://{reg.host}/v2/", timeout=1).close()
            return
        except urllib.error.HTTPError:
            return  # 401: up, and asking for credentials
        except OSError:
            time.sleep(0.05)
    reg.stop()
    raise RuntimeError(f"docker-registry did not answer within {STARTUP_TIMEOUT}s:\n{reg.log_text()[-3000:]}")


def start_registry(workdir: Path, auth: str = "", quiet: bool = False, **extra: object) -> RunningRegistry:
    """Start ``docker-registry serve`` in ``workdir`` and wait until ``/v2/`` answers (``quiet``:
    see ``_config_yaml``). The storage survives a stop: a registry started again on the same
    ``workdir`` (say, with another config) serves the same repositories."""
    if not os.access(REGISTRY_BIN, os.X_OK):
        pytest.skip(f"{REGISTRY_BIN} not installed (apt-get install docker-registry)")
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    log = workdir / "registry.log"
    config = workdir / "config.yml"
    token_server = extra.pop("token_server", None)
    last_error: Exception | None = None
    for _ in range(3):  # a free port can be taken between finding and binding it: try another
        port = free_port()
        config.write_text(_config_yaml(port, storage, auth, quiet))
        # quiet: Go's collector runs a tenth as often (heap up to 10x the live data, ~150 MB here):
        # a third of the registry's CPU in a mass rebase was garbage collection.
        env = {**os.environ, "GOGC": os.environ.get("GOGC", "1000")} if quiet else None
        with open(log, "ab") as logf:
            proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=logf, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=env)
        reg = RunningRegistry(host=f"127.0.0.1:{port}", storage=storage, log=log, config=config,
                              process=proc, **extra)  # type: ignore[arg-type]
        try:
            _wait_until_up(reg)
            reg.token_server = token_server  # type: ignore[assignment]
            return reg
        except RuntimeError as exc:
            last_error = exc
            reg.stop()
    raise RuntimeError(f"could not start docker-registry: {last_error}")


# -- token server ----------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenServer:
    """A minimal Docker token service: basic credentials in, a signed JWT out.

    Grants the requested actions on every requested repository to its one user; anonymous
    callers get a token with no access (as Docker Hub does for private repositories); wrong
    credentials get 401.
    """

    def __init__(self, workdir: Path, user: str, password: str, service: str, issuer: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.user, self.password, self.service, self.issuer = user, password, service, issuer
        self.requests: list[dict] = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pallet test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_path = workdir / "token-root.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self._x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")]

        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                server._handle(self)

            def log_message(self, *args: object) -> None:
                pass

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.realm = f"http://127.0.0.1:{self._httpd.server_address[1]}/token"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def sign(self, claims: dict) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header = {"typ": "JWT", "alg": "RS256", "x5c": self._x5c}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = self._key.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(sig)}"

    def _handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(req.path).query)
        scopes = query.get("scope", [])
        auth = req.headers.get("Authorization", "")
        user = None
        if auth.startswith("Basic "):
            try:
                given = base64.b64decode(auth[6:]).decode()
            except ValueError:
                given = ""
            if given != f"{self.user}:{self.password}":
                self.requests.append({"scopes": scopes, "user": "<refused>"})
                return self._reply(req, 401, {"details": "incorrect username or password"})
            user = self.user
        self.requests.append({"scopes": scopes, "user": user})
        access = []
        if user is not None:
            for scope in scopes:
                typ, _, rest = scope.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": typ, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": user or "", "aud": query.get("service", [""])[0],
                  "exp": now + 300, "nbf": now - 5, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        token = self.sign(claims)
        self._reply(req, 200, {"token": token, "access_token": token, "expires_in": 300,
                               "issued_at": datetime.datetime.now(datetime.timezone.utc).isoformat()})

    @staticmethod
    def _reply(req: http.server.BaseHTTPRequestHandler, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# -- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    yield reg
    reg.stop()


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., RunningRegistry]]:
    """``registry_factory()`` starts another anonymous registry, stopped after the test."""
    started: list[RunningRegistry] = []

    def make(auth: str = "") -> RunningRegistry:
        reg = start_registry(tmp_path / f"registry-{len(started)}", auth=auth)
        started.append(reg)
        return reg

    yield make
    for reg in started:
        reg.stop()


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    workdir = tmp_path_factory.mktemp("auth-registry")
    user, password = "pallet", "s3cret:with-colon"
    htpasswd = workdir / "htpasswd"
    htpasswd.write_text(f"{user}:{bcrypt_hash(password)}\n")
    auth = "\n".join(["auth:", "  htpasswd:", "    realm: pallet-test", f"    path: {json.dumps(str(htpasswd))}"])
    reg = start_registry(workdir, auth=auth, user=user, password=password)
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    workdir = tmp_path_factory.mktemp("token-registry")
    user, password = "robot", "t0ken-pass"
    tokens = TokenServer(workdir, user, password, service="pallet-test-registry", issuer="pallet-test-issuer")
    auth = "\n".join([
        "auth:",
        "  token:",
        f"    realm: {json.dumps(tokens.realm)}",
        f"    service: {tokens.service}",
        f"    issuer: {tokens.issuer}",
        f"    rootcertbundle: {json.dumps(str(tokens.cert_path))}",
    ])
    try:
        reg = start_registry(workdir, auth=auth, user=user, password=password, token_server=tokens)
    except BaseException:
        tokens.stop()
        raise
    yield reg
    reg.stop()
