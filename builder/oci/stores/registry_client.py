"""HTTP to one registry host: scheme, connection pool, authentication and retries.

One ``RegistryClient`` per (host, insecure, credentials) is shared by every store of that
host (``RegistryClient.shared``), so a copy of many repositories to one registry reuses its
connections and tokens. It is safe to use from several threads at once: ``requests.Session``
is, for the plain requests made here (no cookies, no mutation of the session), and the auth
state has its own lock.

Everything a request can meet on the way is turned into our errors here: connection
failures, 429 and 5xx are retried with exponential backoff and end as one ``RegistryError``
line; a refused 401/403 ends as ``AuthError`` naming the registry and repository.
"""

from __future__ import annotations

import json
import email.utils
import io
import ipaddress
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence
from urllib.parse import urlencode, urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from builder.errors import AuthError, RegistryError, for_terminal
from builder.oci.stores.auth import Authenticator, Credentials
from builder.oci.stores.http1 import BrokenResponse, Http1Pool, ResponseTooLarge

#: (connect, read) seconds. A read timeout is between two packets, not for a whole layer.
TIMEOUT = (10.0, 120.0)
#: Connections kept per host: enough for the copy code's parallel layer transfers.
POOL_SIZE = 32
#: No single wait between attempts is longer than this, whatever Retry-After says.
MAX_RETRY_DELAY = 30.0
USER_AGENT = "pallet/0.1"


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; the n-th wait is ``backoff * 2**n`` seconds (capped)."""

    attempts: int = 5
    backoff: float = 0.5

    def delay(self, failed: int, retry_after: str | None = None) -> float:
        return retry_delay(failed, self.backoff, retry_after)


def retry_delay(failed: int, backoff: float, retry_after: str | None = None,
                cap: float = MAX_RETRY_DELAY, now: float | None = None) -> float:
    """Seconds to wait after the ``failed``-th (0-based) failed attempt.

    A ``Retry-After`` (seconds or an HTTP date) wins over the backoff, but is capped too: a
    registry asking for an hour should not hang a build for an hour.
    """
    if retry_after:
        value = retry_after.strip()
        seconds: float | None
        try:
            seconds = float(value)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                seconds = when.timestamp() - (time.time() if now is None else now)
            except (TypeError, ValueError):
                seconds = None
        if seconds is not None:
            return min(cap, max(0.0, seconds))
    return min(cap, backoff * (2 ** failed))


def is_loopback(host: str) -> bool:
    """Whether ``host[:port]`` names this machine (Docker talks plain HTTP to those)."""
    name = host
    if name.startswith("["):
        name = name[1:].split("]", 1)[0]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def ca_bundle() -> bool | str:
    """What to verify TLS with: requests' own variables, then ``SSL_CERT_FILE``, then certifi."""
    for var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        if os.environ.get(var):
            return os.environ[var]
    return True


def candidate_endpoints(host: str, insecure: bool) -> list[tuple[str, bool | str]]:
    """(base URL, TLS verify) pairs to try in order.

    Loopback registries speak plain HTTP (as Docker assumes); ``insecure`` registries are tried
    with unverified HTTPS, then HTTP; every other registry gets verified HTTPS only.
    """
    if insecure:
        return [(f"https://{host}", False), (f"http://{host}", False)]
    if is_loopback(host):
        return [(f"http://{host}", False)]
    return [(f"https://{host}", ca_bundle())]


def _same_host(url: str, base: str) -> bool:
    """Whether ``url`` is on the host (and port) of the registry's ``base`` URL."""
    try:
        return urlsplit(url).netloc.lower() == urlsplit(base).netloc.lower()   # requests lowercases
    except ValueError:
        return False


def api_host(host: str) -> str:
    """Docker Hub's API lives on another name than the one in image references."""
    return "registry-1.docker.io" if host in ("docker.io", "index.docker.io") else host


#: The most of an error answer's body we read: real ones are a few hundred bytes of JSON; a
#: hostile registry could send an endless one, which ``resp.json()`` would hold whole.
MAX_ERROR_BODY = 64 * 1024

#: How much of a registry's error body goes into our message: its first errors, each cut short
#: (a registry, or whatever answers in its place, may send megabytes of them).
MAX_ERRORS_SHOWN = 3
MAX_ERROR_TEXT = 300


def _error_body(resp: requests.Response) -> object:
    """The JSON of an error answer's first ``MAX_ERROR_BODY`` bytes (None if that is not JSON).
    What is read is kept as the response's content, so a second look reads no more."""
    if not resp._content_consumed:  # noqa: SLF001 - requests' own marker of a body not yet read
        data = bytearray()
        try:
            for chunk in resp.iter_content(16 * 1024):
                data += chunk
                if len(data) >= MAX_ERROR_BODY:
                    break
        except (requests.RequestException, OSError):
            pass  # a broken error body: the status line says enough
        resp._content = bytes(data[:MAX_ERROR_BODY])  # noqa: SLF001
        resp._content_consumed = True  # noqa: SLF001
        resp.close()
    try:
        return json.loads(resp.content)
    except (ValueError, RecursionError):
        return None


def error_detail(resp: requests.Response) -> str:
    """``CODE: message`` from a registry's JSON error body, else the HTTP status line: cut short
    and its control characters and newlines escaped here, as the error goes on into messages
    printed as they are (a rebase's per-image line, verify's report of a rebase chain)."""
    body = _error_body(resp)
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        parts = []
        for err in body["errors"][:MAX_ERRORS_SHOWN]:
            if isinstance(err, dict):
                code, msg = err.get("code"), err.get("message")
                parts.append(": ".join(for_terminal(str(p), limit=MAX_ERROR_TEXT) for p in (code, msg) if p))
        more = len(body["errors"]) - MAX_ERRORS_SHOWN
        if more > 0:
            parts.append(f"{more} more errors")
        if any(parts):
            return f"HTTP {resp.status_code} " + "; ".join(p for p in parts if p)
    return f"HTTP {resp.status_code} {for_terminal(resp.reason or '', limit=MAX_ERROR_TEXT)}".rstrip()


def error_codes(resp: requests.Response) -> set[str]:
    body = _error_body(resp)
    if not isinstance(body, dict) or not isinstance(body.get("errors"), list):
        return set()
    return {str(e.get("code")) for e in body["errors"] if isinstance(e, dict)}


def describe_connection_error(exc: BaseException) -> str:
    """A few words for why a connection failed ("connection refused"), not urllib3's novel."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        e = stack.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, BrokenResponse):
            return str(e)
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, ConnectionResetError):
            return "connection reset"
        if isinstance(e, TimeoutError) or isinstance(e, requests.Timeout):
            return "timed out"
        text = str(e)
        if "Name or service not known" in text or "nodename nor servname" in text or "NameResolution" in text:
            return "host name not found"
        if "Connection refused" in text:
            return "connection refused"
        stack.extend(a for a in getattr(e, "args", ()) if isinstance(a, BaseException))
        for attr in ("reason", "__cause__", "__context__"):
            inner = getattr(e, attr, None)
            if isinstance(inner, BaseException):
                stack.append(inner)
    return type(exc).__name__


def _rewind(body: Any) -> bool:
    """Whether ``body`` can be sent again (bytes can; a stream only if it can seek back)."""
    if body is None or isinstance(body, (bytes, bytearray)):
        return True
    rewind = getattr(body, "rewind", None)
    return bool(rewind()) if rewind else False


class RegistryClient:
    """The HTTP machinery for one registry host; see the module docstring."""

    _shared: dict[tuple[str, bool, Credentials | None], "RegistryClient"] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls, host: str, *, insecure: bool = False,
               credentials: Credentials | None = None) -> "RegistryClient":
        key = (host, insecure, credentials)
        with cls._shared_lock:
            client = cls._shared.get(key)
            if client is None:
                client = cls._shared[key] = cls(host, insecure=insecure, credentials=credentials)
            return client

    def __init__(self, host: str, *, insecure: bool = False, credentials: Credentials | None = None,
                 pool_size: int = POOL_SIZE) -> None:
        self.host = host
        self.insecure = insecure
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.headers["User-Agent"] = USER_AGENT
        # The environment (proxies) is read once per endpoint, not by requests on every call: with
        # a large environment that cost ~3 ms of CPU a request, the main cost of a mass rebase.
        self.session.trust_env = False
        token_session = requests.Session()  # token servers: other hosts, the environment as usual
        token_session.headers["User-Agent"] = USER_AGENT
        self.auth = Authenticator(host, credentials, token_session)
        self._base: str | None = None
        self._verify: bool | str = True
        self._proxies: dict[str, str] = {}
        #: False once the registry showed it has no referrers API (its stores then read the
        #: fallback tag directly: one request a lookup instead of two).
        self.referrers_api: bool | None = None
        self._base_lock = threading.Lock()
        #: Small requests to a plain-HTTP registry reached without a proxy go through this lean
        #: pool instead of requests (see ``http1``): set once the endpoint is known.
        self._fast: Http1Pool | None = None

    # -- endpoint discovery ----------------------------------------------------

    def _endpoint(self, policy: RetryPolicy) -> tuple[str, bool | str]:
        """The base URL that answers, found by pinging ``/v2/`` once (and the challenge with it)."""
        with self._base_lock:
            if self._base is None:
                self._ping(policy)
            assert self._base is not None
            return self._base, self._verify

    def _ping(self, policy: RetryPolicy) -> None:
        candidates = candidate_endpoints(api_host(self.host), self.insecure)
        last = ""
        for attempt in range(max(1, policy.attempts)):
            if attempt:
                time.sleep(policy.delay(attempt - 1))
            for base, verify in candidates:
                proxies = requests.utils.get_environ_proxies(base)
                try:
                    resp = self.session.get(base + "/v2/", timeout=TIMEOUT, verify=verify, proxies=proxies)
                except requests.exceptions.SSLError as exc:
                    if verify is False:
                        last = "TLS handshake failed"
                        continue  # an insecure registry may well speak plain HTTP: try it next
                    raise RegistryError(
                        f"TLS connection to registry {self.host} failed ({describe_connection_error(exc)}); "
                        f"if it uses a private CA set SSL_CERT_FILE to it, or pass --insecure") from None
                except (requests.ConnectionError, requests.Timeout) as exc:
                    last = describe_connection_error(exc)
                    continue
                with resp:
                    if resp.status_code == 429 or resp.status_code >= 500:
                        last = error_detail(resp)
                        break
                    if resp.status_code == 404:
                        raise RegistryError(f"{self.host} does not look like a registry: GET {base}/v2/ "
                                            f"answered 404; check the host name and port")
                    if resp.status_code == 401:
                        self.auth.learn(resp.headers.get("WWW-Authenticate"), (), None)
                self._base, self._verify, self._proxies = base, verify, proxies
                self.auth.set_verify(verify, tls=base.startswith("https://") and verify is not False)
                parts = urlsplit(base)
                if parts.scheme == "http" and not proxies and parts.hostname and not os.environ.get(
                        "PALLET_HTTP_REQUESTS_ONLY"):
                    self._fast = Http1Pool(parts.hostname, parts.port or 80, connect_timeout=TIMEOUT[0],
                                           read_timeout=TIMEOUT[1])
                return
        raise RegistryError(f"registry {self.host} is not reachable after {max(1, policy.attempts)} "
                            f"attempts: {last}")

    # -- requests ----------------------------------------------------------------

    def request(self, method: str, path: str, *, repo: str, policy: RetryPolicy,
                scopes: Sequence[str] = (), headers: Mapping[str, str] | None = None,
                params: Any = None, body: Any = None, stream: bool = False,
                allow_redirects: bool = True, small: bool = False) -> requests.Response:
        """One API call, authenticated and retried; any status the caller must judge is returned.

        ``path`` is relative to the base URL (``/v2/...``) or absolute (an upload Location).
        ``body`` may be bytes or an object with ``rewind()`` (a stream that may or may not be
        able to go back); a body that cannot be rewound is never sent twice. ``small``: the
        caller streams the response but knows it is small (a manifest, an index): it may be
        read whole, by the lean transport.
        """
        base, verify = self._endpoint(policy)
        # The common case, an API path, without urljoin's parsing (a measurable cost per request).
        try:
            url = base + path if path.startswith("/v2/") else urljoin(base + "/", path)
            # Credentials go to the registry only, never to another host an upload Location names.
            ours = url.startswith(base + "/") or urlsplit(url).netloc == urlsplit(base).netloc
        except ValueError as exc:  # an upload Location the registry sent: 'http://[::1'
            raise RegistryError(f"registry {self.host} gave {path[:100]!r} as the location for {method} for "
                                f"{repo}, which is not a URL ({exc})") from None
        attempts = max(1, policy.attempts)
        failed = 0
        reauthed = False
        auth_scopes: Sequence[str] = tuple(scopes)
        proxies = self._proxies if ours else requests.utils.get_environ_proxies(url)
        fast = self._fast if (ours and (not stream or small)
                              and (body is None or isinstance(body, (bytes, bytearray)))) else None
        while True:
            hdrs = dict(headers or {})
            sent = self.auth.authorization(auth_scopes) if ours else None
            if sent:
                hdrs["Authorization"] = sent
            try:
                if fast is not None:
                    try:
                        resp = self._fast_request(fast, method, url, hdrs, params, body)
                    except ResponseTooLarge:
                        resp = None
                    if resp is None or (allow_redirects and resp.is_redirect):
                        fast = None  # requests reads large bodies as streams and follows redirects
                        continue
                else:
                    resp = self.session.request(method, url, headers=hdrs, params=params, data=body,
                                                stream=stream, allow_redirects=allow_redirects,
                                                timeout=TIMEOUT, verify=verify, proxies=proxies)
            except requests.exceptions.SSLError as exc:
                raise RegistryError(f"TLS connection to registry {self.host} failed "
                                    f"({describe_connection_error(exc)})") from None
            except requests.TooManyRedirects:
                raise RegistryError(f"registry {self.host} redirected {method} {path} for {repo} more than "
                                    f"{self.session.max_redirects} times; a redirect loop") from None
            except (requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL,
                    requests.exceptions.MissingSchema, ValueError) as exc:
                # A Location no HTTP client can follow (file:///etc/passwd, http://[::1): requests
                # raises these, or urllib's bare ValueError, from inside its redirect handling.
                said = (f"redirected {method} {path} for {repo}" if path.startswith("/v2/")
                        else f"gave {path[:100]!r} as the location for {method} for {repo}, or redirected it")
                raise RegistryError(f"registry {self.host} {said} to a location that is not an HTTP(S) URL "
                                    f"({str(exc)[:200]})") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                failed += 1
                reason = describe_connection_error(exc)
                if failed >= attempts:
                    raise RegistryError(f"registry {self.host} is not reachable after {failed} attempts: "
                                        f"{reason}") from None
                if not _rewind(body):
                    raise RegistryError(f"connection to registry {self.host} failed during {method} "
                                        f"for {repo} ({reason}) and the data cannot be sent again") from None
                time.sleep(policy.delay(failed - 1))
                continue

            status = resp.status_code
            # A challenge is the registry's only: a 401 from the storage a redirect led to names a
            # token server of the storage's choosing, which must not get the registry's password.
            if status == 401 and not reauthed and ours and _same_host(resp.url or url, base):
                retry_scopes = self.auth.learn(resp.headers.get("WWW-Authenticate"), auth_scopes, sent)
                if retry_scopes is not None and _rewind(body):
                    reauthed = True
                    auth_scopes = retry_scopes
                    resp.close()
                    continue
            if status in (401, 403):
                detail = error_detail(resp)
                final = resp.url or url
                resp.close()
                if not _same_host(final, base):   # the storage a redirect led to, not the registry
                    raise RegistryError(f"registry {self.host} sent {method} for {repo} to "
                                        f"{urlsplit(final).netloc}, which answered {detail}")
                raise self._auth_error(status, repo, detail)
            if status == 429 or status >= 500:
                failed += 1
                detail = error_detail(resp)
                retry_after = resp.headers.get("Retry-After")
                resp.close()
                if failed >= attempts:
                    raise RegistryError(f"registry {self.host} answered {detail} for {repo} "
                                        f"after {failed} attempts; try again later")
                if not _rewind(body):
                    raise RegistryError(f"registry {self.host} answered {detail} during {method} for {repo} "
                                        f"and the data cannot be sent again")
                time.sleep(policy.delay(failed - 1, retry_after))
                continue
            return resp

    def _fast_request(self, pool: Http1Pool, method: str, url: str, headers: dict[str, str], params: Any,
                      body: bytes | None) -> requests.Response:
        """One request through the lean pool, answered as a ``requests.Response`` (body read
        whole), so callers and the session's response hooks see no difference."""
        parts = urlsplit(url)
        target = parts.path or "/"
        query = parts.query
        if params:
            extra = urlencode(params, doseq=True)
            query = f"{query}&{extra}" if query else extra
        if query:
            target = f"{target}?{query}"
        headers.setdefault("User-Agent", USER_AGENT)
        status, reason, resp_headers, content = pool.request(method, target, headers,
                                                             bytes(body) if body is not None else None)
        url = f"{parts.scheme}://{parts.netloc}{target}"  # with the query, as requests would say it
        resp = requests.Response()
        resp.status_code, resp.reason, resp.headers, resp.url = status, reason, resp_headers, url
        resp._content, resp._content_consumed = content, True
        resp.raw = io.BytesIO(content)
        resp.encoding = requests.utils.get_encoding_from_headers(resp_headers)
        hooks = self.session.hooks.get("response")
        if hooks:
            prepared = requests.PreparedRequest()
            prepared.method, prepared.url, prepared.headers = method, url, CaseInsensitiveDict(headers)
            resp.request = prepared
            for hook in hooks:
                hook(resp)
        return resp

    def _auth_error(self, status: int, repo: str, detail: str) -> AuthError:
        creds = self.auth.credentials
        where = f"{self.host}/{repo}"
        if creds is None:
            if status == 401:
                return AuthError(f"registry {self.host} requires credentials for {where} ({detail}); "
                                 f"pass --creds USER:PASSWORD or run 'docker login {self.host}'")
            return AuthError(f"registry {self.host} denied anonymous access to {where} ({detail}); "
                             f"pass --creds USER:PASSWORD or run 'docker login {self.host}'")
        if status == 401:
            return AuthError(f"registry {self.host} refused the credentials of user {creds.username!r} "
                             f"for {where} ({detail}); check the user name, the password and the "
                             f"user's rights on the repository")
        return AuthError(f"registry {self.host} denied user {creds.username!r} access to {where} ({detail})")

