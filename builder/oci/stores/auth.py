"""Registry credentials and the ``WWW-Authenticate`` dance.

Where credentials come from, in order: ``--creds USER:PASSWORD``, then the ``auths`` of the
Docker CLI's ``config.json`` (``$DOCKER_CONFIG`` or ``~/.docker``), so that a ``docker login``
the user already did is enough. Credential helpers (``credsStore``/``credHelpers``) and
identity tokens are not used: a registry that needs them must be given ``--creds``.

How they are used is decided by the registry: its ``401`` carries a challenge, either
``Basic`` (send the credentials on every request) or ``Bearer`` (trade them, or nothing for
anonymous access, for a short-lived token at the ``realm``, one per scope). Parsing is pure
(``parse_www_authenticate``, ``credentials_from_docker_config``) so it is tested without a
network; ``Authenticator`` holds the per-host state and is shared by threads.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import requests
import urllib3

from builder.errors import AuthError, RegistryError, UsageError

#: The hosts that mean Docker Hub, and the key ``docker login`` writes for it.
DOCKER_HUB_HOSTS = ("docker.io", "index.docker.io", "registry-1.docker.io")
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"

#: Token lifetime assumed when the token server does not say (the distribution spec's default).
DEFAULT_TOKEN_LIFETIME = 60.0
#: Tokens are dropped this many seconds before they expire, so none expires in flight.
TOKEN_EXPIRY_MARGIN = 10.0
TOKEN_TIMEOUT = (10.0, 30.0)
#: The most of a token server's answer we read: real ones are a few KB (a JWT or two). A
#: hostile one could send an endless body, which ``resp.json()`` would hold whole in memory.
MAX_TOKEN_RESPONSE = 1 << 20
#: The most seconds a token request may take in all, trickled bytes included (the read
#: timeout is between two packets only: one byte a second would never meet it).
TOKEN_DEADLINE = 60.0


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)  # never in a repr, a log line or a traceback

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")


def parse_creds(text: str) -> Credentials:
    """``USER:PASSWORD`` as given to ``--creds`` (the password may itself contain colons)."""
    user, sep, password = text.partition(":")
    if not sep or not user:
        raise UsageError("--creds must be USER:PASSWORD (for a token, any user name and the token as password)")
    return Credentials(user, password)


# -- docker config.json ------------------------------------------------------


def docker_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """Where the Docker CLI keeps ``config.json``: ``$DOCKER_CONFIG``, else ``~/.docker``."""
    env = os.environ if environ is None else environ
    if env.get("DOCKER_CONFIG"):
        return Path(env["DOCKER_CONFIG"]) / "config.json"
    return Path.home() / ".docker" / "config.json"


def _config_key_host(key: str) -> str:
    """``https://host:5000/v1/`` -> ``host:5000``: config keys are written with and without scheme."""
    key = key.strip().lower()
    key = re.sub(r"^[a-z][a-z0-9+.-]*://", "", key)
    return key.split("/", 1)[0]


def _entry_credentials(entry: Any) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"], validate=False).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        user, sep, password = decoded.partition(":")
        if sep and user:
            return Credentials(user, password)
    if entry.get("username") and entry.get("password") is not None:
        return Credentials(str(entry["username"]), str(entry["password"]))
    return None


def credentials_from_docker_config(config: Mapping[str, Any], host: str) -> Credentials | None:
    """The credentials ``config`` (a parsed ``config.json``) holds for registry ``host``, if any.

    An exact key wins over one that only matches once its scheme and path are stripped, so
    ``host:5000`` and ``https://host:5000`` may both be present without surprise.
    """
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return None
    wanted = {host.lower()}
    if host.lower() in DOCKER_HUB_HOSTS:
        wanted |= set(DOCKER_HUB_HOSTS)
        exact = auths.get(DOCKER_HUB_CONFIG_KEY)
        if _entry_credentials(exact):
            return _entry_credentials(exact)
    if _entry_credentials(auths.get(host)):
        return _entry_credentials(auths.get(host))
    for key, entry in auths.items():
        if isinstance(key, str) and _config_key_host(key) in wanted:
            creds = _entry_credentials(entry)
            if creds:
                return creds
    return None


def load_credentials(host: str, creds: str | None = None,
                     environ: Mapping[str, str] | None = None) -> Credentials | None:
    """Credentials for ``host``: ``creds`` if given, else the Docker CLI's config, else None."""
    if creds is not None:
        return parse_creds(creds)
    path = docker_config_path(environ)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuthError(f"cannot read Docker credentials from {path}: {exc.strerror}; "
                        f"fix its permissions or pass --creds") from None
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise AuthError(f"Docker config {path} is not valid JSON ({exc}); fix it, "
                        f"point DOCKER_CONFIG elsewhere or pass --creds") from None
    return credentials_from_docker_config(config if isinstance(config, dict) else {}, host)


# -- WWW-Authenticate ----------------------------------------------------------


@dataclass
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: a scheme and its parameters."""

    scheme: str  # lower case: "basic", "bearer", ...
    params: dict[str, str] = field(default_factory=dict)  # keys lower case
    token68: str | None = None

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")

    @property
    def service(self) -> str | None:
        return self.params.get("service")

    @property
    def scopes(self) -> list[str]:
        return self.params.get("scope", "").split()


_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))")
_BARE_VALUE_RE = re.compile(r"[^,\s]*")


def _skip(text: str, i: int, chars: str) -> int:
    while i < len(text) and text[i] in chars:
        i += 1
    return i


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The quoted string starting at ``text[i] == '"'``, unescaped, and the index after it."""
    out = []
    i += 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), i  # unterminated: take what there is, as browsers do


def parse_www_authenticate(value: str | None) -> list[Challenge]:
    """Parse a ``WWW-Authenticate`` value (RFC 9110 §11.6.1), tolerant of what registries send.

    Handles several challenges in one header, quoted values with commas and escapes inside,
    unquoted values, and ``token68`` credentials; anything unparsable is skipped.
    """
    challenges: list[Challenge] = []
    if not value:
        return challenges
    current: Challenge | None = None
    i, n = 0, len(value)
    while i < n:
        i = _skip(value, i, " \t,")
        m = _TOKEN_RE.match(value, i)
        if not m:
            i += 1
            continue
        word = m.group()
        j = _skip(value, m.end(), " \t")
        if current is not None and j < n and value[j] == "=":
            j = _skip(value, j + 1, " \t")
            if j < n and value[j] == '"':
                val, i = _quoted(value, j)
            else:
                bare = _BARE_VALUE_RE.match(value, j)
                val, i = bare.group(), bare.end()  # type: ignore[union-attr]
            current.params[word.lower()] = val
            continue
        current = Challenge(scheme=word.lower())
        challenges.append(current)
        i = j
        t68 = _TOKEN68_RE.match(value, i)
        if t68 and not value[t68.end():].lstrip(" \t").startswith("="):
            current.token68 = t68.group()
            i = t68.end()
    return challenges


# -- scopes --------------------------------------------------------------------


def repository_scope(repository: str, *actions: str) -> str:
    return f"repository:{repository}:{','.join(actions)}"


def _parse_scope(scope: str) -> tuple[str, set[str]]:
    """``repository:a/b:pull,push`` -> (``repository:a/b``, {pull, push})."""
    resource, _, actions = scope.rpartition(":")
    return resource, {a for a in actions.split(",") if a}


def _covers(granted: Sequence[str], wanted: Sequence[str]) -> bool:
    have: dict[str, set[str]] = {}
    for s in granted:
        res, acts = _parse_scope(s)
        have.setdefault(res, set()).update(acts)
    for s in wanted:
        res, acts = _parse_scope(s)
        if not acts <= have.get(res, set()) and "*" not in have.get(res, set()):
            return False
    return True


def merge_scopes(*groups: Sequence[str]) -> tuple[str, ...]:
    """One scope per resource with the union of the actions, in a stable order."""
    merged: dict[str, set[str]] = {}
    for group in groups:
        for s in group:
            res, acts = _parse_scope(s)
            merged.setdefault(res, set()).update(acts)
    order = ("pull", "push", "delete", "*")
    out = []
    for res in sorted(merged):
        ranked = sorted(merged[res], key=lambda a: (order.index(a) if a in order else len(order), a))
        out.append(f"{res}:{','.join(ranked)}")
    return tuple(out)


# -- the per-host state ----------------------------------------------------------


class Authenticator:
    """What one registry host asked for, and the tokens we hold for it.

    Shared by every thread talking to the host: the challenge and the token cache are
    guarded by a lock, and one thread at a time fetches a token, so eight parallel layer
    uploads start with one token request, not eight.
    """

    def __init__(self, host: str, credentials: Credentials | None, session: requests.Session) -> None:
        self.host = host
        self.credentials = credentials
        self._session = session
        self._challenge: Challenge | None = None
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}
        self._lock = threading.RLock()
        self._verify: bool | str = True
        #: Whether the registry is reached over HTTPS: then its token server must be too.
        self.tls = False
        #: How many tokens were fetched (tests check that they are cached).
        self.token_requests = 0

    def set_verify(self, verify: bool | str, tls: bool = False) -> None:
        """TLS verification for the token realm follows the registry's (``--insecure`` covers both);
        ``tls``: the registry is verified HTTPS, so credentials go to no plain-HTTP realm."""
        self._verify = verify
        self.tls = tls

    def authorization(self, scopes: Sequence[str]) -> str | None:
        """The ``Authorization`` value to send for a request needing ``scopes``, if we know one.

        Sent before the registry asks, once a first challenge told us the scheme: a streamed
        upload body cannot be sent twice, so it must not meet a 401.
        """
        with self._lock:
            challenge = self._challenge
            if challenge is None:
                return None
            if challenge.scheme == "basic":
                return self.credentials.basic_header() if self.credentials else None
            if challenge.scheme == "bearer":
                return "Bearer " + self._token(challenge, tuple(scopes))
        return None

    def learn(self, header: str | None, scopes: Sequence[str], sent: str | None) -> tuple[str, ...] | None:
        """Take in a 401's challenge; the scopes to retry with, or None if retrying cannot help."""
        challenges = parse_www_authenticate(header)
        by_scheme = {c.scheme: c for c in challenges}
        challenge = by_scheme.get("bearer") or by_scheme.get("basic")
        if challenge is None:
            return None
        with self._lock:
            self._challenge = challenge
            if challenge.scheme == "basic":
                if self.credentials is None or (sent or "").startswith("Basic "):
                    return None  # no credentials to offer, or they were just refused
                return tuple(scopes)
            if sent and sent.startswith("Bearer "):
                token = sent[len("Bearer "):]
                self._tokens = {k: v for k, v in self._tokens.items() if v[0] != token}
            return merge_scopes(scopes, challenge.scopes)

    def _token(self, challenge: Challenge, scopes: tuple[str, ...]) -> str:
        now = time.monotonic()
        for granted, (token, expires) in list(self._tokens.items()):
            if expires <= now:
                del self._tokens[granted]
            elif _covers(granted, scopes):
                return token
        token, lifetime = self._fetch_token(challenge, scopes)
        self._tokens[scopes] = (token, now + max(lifetime - TOKEN_EXPIRY_MARGIN, lifetime / 2))
        return token

    def _fetch_token(self, challenge: Challenge, scopes: tuple[str, ...]) -> tuple[str, float]:
        realm = challenge.realm
        what = ", ".join(scopes) or "the registry"
        if not realm:
            raise RegistryError(f"registry {self.host} asked for a bearer token but named no realm to get it from")
        params: list[tuple[str, str]] = []
        if challenge.service:
            params.append(("service", challenge.service))
        params.extend(("scope", s) for s in scopes)
        if self.credentials and self.tls and not realm.lower().startswith("https://"):
            # the password would cross the network in clear text, though the registry is HTTPS
            raise AuthError(f"registry {self.host}: its token server {realm} is not HTTPS: pallet sends it no "
                            "credentials in clear text")
        headers = {"Authorization": self.credentials.basic_header()} if self.credentials else {}
        self.token_requests += 1
        try:
            resp = self._session.get(realm, params=params, headers=headers, timeout=TOKEN_TIMEOUT,
                                     verify=self._verify, stream=True)
        except requests.RequestException as exc:
            raise RegistryError(f"the token server {realm} of registry {self.host} is not reachable: "
                                f"{type(exc).__name__}") from None
        with resp:
            if resp.status_code in (401, 403):
                who = f"user {self.credentials.username!r}" if self.credentials else "anonymous access"
                raise AuthError(f"registry {self.host}: its token server {realm} refused {who} for {what} "
                                f"(HTTP {resp.status_code}); check --creds or run 'docker login {self.host}'")
            if resp.status_code != 200:
                raise RegistryError(f"registry {self.host}: its token server {realm} answered "
                                    f"HTTP {resp.status_code} for {what}")
            try:
                body = json.loads(self._read_token_body(resp, realm))
            except (ValueError, RecursionError):
                body = None
        token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"registry {self.host}: its token server {realm} sent no token for {what}")
        try:
            lifetime = float(body.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (TypeError, ValueError):
            lifetime = DEFAULT_TOKEN_LIFETIME
        return token, lifetime

    def _read_token_body(self, resp: requests.Response, realm: str) -> bytes:
        """The token server's answer, at most ``MAX_TOKEN_RESPONSE`` bytes within ``TOKEN_DEADLINE``."""
        chunks, total, start = [], 0, time.monotonic()
        try:
            # read1: whatever has arrived, so a trickle cannot keep one read waiting past the deadline
            while chunk := resp.raw.read1(64 * 1024, decode_content=True):
                total += len(chunk)
                if total > MAX_TOKEN_RESPONSE:
                    raise RegistryError(f"registry {self.host}: its token server {realm} sent more than "
                                        f"{MAX_TOKEN_RESPONSE} bytes; refusing it")
                if time.monotonic() - start > TOKEN_DEADLINE:
                    raise RegistryError(f"registry {self.host}: its token server {realm} took more than "
                                        f"{TOKEN_DEADLINE:.0f} seconds to answer; try again")
                chunks.append(chunk)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise RegistryError(f"the token server {realm} of registry {self.host} broke the connection "
                                f"({type(exc).__name__}); try again") from None
        return b"".join(chunks)
