"""requests auth for APIs behind API Gateway: SigV4 with refreshing credentials, or a bearer token.

SigV4 is requests-aws4auth's, with the cases it gets wrong fixed here and checked against
botocore's ``SigV4Auth`` (the reference) in tests:

* the URL is first rewritten into canonical form (every byte outside RFC 3986 unreserved
  percent-encoded, ``+`` in a query read as a space as requests' ``params=`` means it), so what is
  sent is exactly what is signed and every server-side implementation re-derives the same string;
* ``;`` in a path is kept (requests-aws4auth's ``urlparse`` drops it as "path parameters");
* the query is not re-parsed with ``parse_qs`` (which turns ``+`` into a space and cuts at a space);
* one signing per request under a lock (requests-aws4auth keeps the current key on the instance,
  so two threads refreshing at once could sign with one key id and another secret).

Host pinning: a signed request can only go to the connection's host or an allowed host, so
credentials never travel to a host named by an API response (pagination links, redirects).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol
from urllib.parse import SplitResult, quote, unquote, unquote_to_bytes, urlsplit, urlunsplit

import requests
from requests_aws4auth import AWS4Auth

from airflow_cognito_iam.auth.errors import HostNotAllowedError

_UNRESERVED = "-_.~"
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FrozenCredentialsSource(Protocol):
    """Anything with botocore's ``get_frozen_credentials()`` (e.g. ``RefreshableCredentials``)."""

    def get_frozen_credentials(self) -> Any: ...


def canonical_netloc(url: str) -> str:
    """``host[:port]`` as sent in the Host header: lowercase, default port dropped."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()):
        return host
    return f"{host}:{port}"


# Already canonical: unreserved characters and uppercase %XX only (the common case, kept as is).
_CANONICAL_PATH = re.compile(r"(?:[A-Za-z0-9\-._~/]|%[0-9A-F]{2})*")
_CANONICAL_PAIR = re.compile(r"(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*(?:=(?:[A-Za-z0-9\-._~]|%[0-9A-F]{2})*)?")


def _encode_path(path: str) -> str:
    # Decode each segment and re-encode only what must be: an encoded "/" (%2F) stays inside its segment.
    if not path:
        return "/"
    if _CANONICAL_PATH.fullmatch(path):
        return path
    return "/".join(quote(unquote_to_bytes(segment), safe=_UNRESERVED) for segment in path.split("/"))


def _encode_query(query: str) -> str:
    pairs = []
    for pair in query.split("&"):
        if not pair:
            continue
        if _CANONICAL_PAIR.fullmatch(pair):
            pairs.append(pair)
            continue
        key, sep, value = pair.partition("=")
        key = quote(unquote(key.replace("+", " ")), safe=_UNRESERVED)
        if sep:
            pairs.append(f"{key}={quote(unquote(value.replace('+', ' ')), safe=_UNRESERVED)}")
        else:
            pairs.append(key)
    return "&".join(pairs)


def canonicalize_url(url: str) -> str:
    """The same resource with path and query in SigV4's canonical encoding (what we sign is sent)."""
    return _canonicalize(url, urlsplit(url))


def _canonicalize(url: str, parts: SplitResult) -> str:
    path, query = _encode_path(parts.path), _encode_query(parts.query)
    if path == parts.path and query == parts.query and not parts.fragment:
        return url  # already canonical: the common case
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def _host_and_port(url: str) -> tuple[str, int | None]:
    parts = urlsplit(url)
    return (parts.hostname or "").lower(), parts.port


def host_allowed(url: str, allowed_hosts: Iterable[str]) -> bool:
    """True when the URL's ``host[:port]`` (or its bare host, if listed without a port) is allowed.

    Ports compare as numbers with the scheme's default filled in, so ``api.example.com:443`` (as a
    connection host may spell it) allows ``https://api.example.com/...``.
    """
    parts = urlsplit(url)
    host, port = _host_and_port(url)
    port = port or _DEFAULT_PORTS.get(parts.scheme.lower())
    for entry in allowed_hosts:
        entry = entry.strip()
        try:
            allowed_host, allowed_port = _host_and_port(entry if "://" in entry else f"//{entry}")
        except ValueError:  # not a valid port: allows nothing
            continue
        if allowed_host == host and allowed_port in (None, port):
            return True
    return False


class _AWS4Auth(AWS4Auth):  # type: ignore[misc]
    """requests-aws4auth with a canonical request that matches botocore for any (canonical) URL."""

    @staticmethod
    def amz_norm_whitespace(text: str) -> str:
        # SigV4 "Trimall" as botocore does it. requests-aws4auth keeps runs of spaces inside quotes
        # (shlex), which botocore and AWS collapse, and shlex costs more than the rest of signing.
        return " ".join(text.split())

    @classmethod
    def get_canonical_headers(cls, req: requests.PreparedRequest, include: Any = None) -> tuple[str, str]:
        # The headers requests-aws4auth signs by default (host, content-type, x-amz-* but
        # x-amz-client-context), without its generic per-header include-list matching: this runs on
        # every request and was the largest part of signing.
        signed: dict[str, str] = {}
        for lower, value in req.headers.lower_items():
            if lower in ("host", "content-type") or (lower.startswith("x-amz-") and lower != "x-amz-client-context"):
                text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                signed[lower] = " ".join(text.split())
        names = sorted(signed)
        return "".join(f"{name}:{signed[name]}\n" for name in names), ";".join(names)

    def refresh_credentials(self) -> None:
        # The signing key depends only on secret, date, region and service: derive it again only
        # when one changed instead of four HMACs per request.
        frozen = self.refreshable_credentials.get_frozen_credentials()
        self.access_id = frozen.access_key
        self.session_token = frozen.token
        key = getattr(self, "signing_key", None)
        if key is None or key.secret_key != frozen.secret_key:
            self.regenerate_signing_key(secret_key=frozen.secret_key)

    def __call__(self, req: requests.PreparedRequest) -> requests.PreparedRequest:
        # requests-aws4auth's own __call__ re-parses date headers and rebuilds every string on each
        # request; this is the same steps in one pass (it ran on every API call and decided the
        # signed/unsigned throughput target). Key derivation, scope and canonical path stay the
        # library's; tests check the result against botocore's signer.
        self.refresh_credentials()
        amz_date = self._amz_date()
        if amz_date[:8] != self.date:
            self.regenerate_signing_key(date=amz_date[:8])
        body: Any = req.body
        if hasattr(body, "read"):
            req.body = body.read()
        if isinstance(req.body, str):
            self.encode_body(req)
        headers = req.headers
        headers["x-amz-date"] = amz_date
        headers["x-amz-content-sha256"] = hashlib.sha256(req.body or b"").hexdigest()  # type: ignore[arg-type]
        if self.session_token:
            headers["x-amz-security-token"] = self.session_token
        cano_headers, signed_headers = self.get_canonical_headers(req)
        canonical = self.get_canonical_request(req, cano_headers, signed_headers)
        scope = self.signing_key.scope
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self.signing_key.key, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_id}/{scope}, "
            f"SignedHeaders={signed_headers}, Signature={signature}"
        )
        return req

    def _amz_date(self) -> str:
        second = int(time.time())
        if second != getattr(self, "_date_second", None):
            self._date_second, self._date_text = second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        text: str = self._date_text
        return text

    def amz_cano_path(self, path: str) -> str:
        # Endpoints repeat (every page of a job hits the same path): remember recent answers.
        paths: dict[str, str] = self.__dict__.setdefault("_cano_paths", {})
        if path not in paths:
            if len(paths) >= 1024:
                paths.clear()
            paths[path] = super().amz_cano_path(path)
        return paths[path]

    def get_canonical_request(self, req: requests.PreparedRequest, cano_headers: str, signed_headers: str) -> str:
        url = urlsplit(str(req.url))  # urlsplit, not urlparse: ";" belongs to the path
        path = self.amz_cano_path(url.path or "/")
        pairs = sorted(pair.partition("=")[::2] for pair in url.query.split("&") if pair) if url.query else []
        query = "&".join(f"{k}={v}" for k, v in pairs)
        payload_hash = req.headers["x-amz-content-sha256"]
        return "\n".join([str(req.method).upper(), path, query, cano_headers, signed_headers, payload_hash])


class CognitoSigV4Auth(requests.auth.AuthBase):
    """SigV4-sign each request with the current frozen credentials; refuse hosts not allowed.

    ``allowed_hosts`` are ``host[:port]`` names (or URLs). ``None`` turns pinning off (a caller's
    explicit choice); an empty list allows nothing, so forgetting to configure hosts fails closed.
    """

    def __init__(
        self,
        credentials: FrozenCredentialsSource,
        region: str,
        service: str = "execute-api",
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        self.credentials = credentials
        self.region = region
        self.service = service
        self.allowed_hosts = tuple(allowed_hosts) if allowed_hosts is not None else None
        self._signer = _AWS4Auth(refreshable_credentials=credentials, region=region, service=service)
        self._lock = threading.Lock()
        # (scheme, netloc) already checked against allowed_hosts -> the Host header to send.
        self._host_headers: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(region={self.region!r}, service={self.service!r}, hosts={self.allowed_hosts})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = str(request.url)
        parts = urlsplit(url)
        host_header = self._host_headers.get((parts.scheme, parts.netloc))
        if host_header is None:
            _check_host(url, self.allowed_hosts)
            # Sign the Host we will send: http.client drops a default port and keeps any other.
            host_header = self._host_headers[(parts.scheme, parts.netloc)] = canonical_netloc(url)
        request.url = _canonicalize(url, parts)
        request.headers["Host"] = host_header
        # A retry re-sends the same PreparedRequest: drop the previous attempt's signature and date.
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-SHA256"):
            request.headers.pop(name, None)
        with self._lock:
            signed: requests.PreparedRequest = self._signer(request)
        if _forget_credentials_on_redirect not in signed.hooks["response"]:
            signed.hooks["response"].append(_forget_credentials_on_redirect)
        return signed


class BearerTokenAuth(requests.auth.AuthBase):
    """``Authorization: <token>`` for a Cognito user pool authorizer (API Gateway REST APIs).

    REST API Cognito authorizers read the raw JWT from the configured header; HTTP API JWT
    authorizers also accept ``Bearer <token>``, so ``scheme="Bearer"`` is available for those.
    """

    def __init__(
        self,
        get_token: Callable[[], str],
        *,
        scheme: str | None = None,
        header: str = "Authorization",
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        self.get_token = get_token
        self.scheme = scheme
        self.header = header
        self.allowed_hosts = tuple(allowed_hosts) if allowed_hosts is not None else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(header={self.header!r}, scheme={self.scheme!r}, hosts={self.allowed_hosts})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = str(request.url)
        _check_host(url, self.allowed_hosts)
        token = self.get_token()
        request.headers[self.header] = f"{self.scheme} {token}" if self.scheme else token
        if _forget_credentials_on_redirect not in request.hooks["response"]:
            request.hooks["response"].append(_forget_credentials_on_redirect)
        return request


def _check_host(url: str, allowed_hosts: tuple[str, ...] | None) -> None:
    if allowed_hosts is not None and not host_allowed(url, allowed_hosts):
        raise HostNotAllowedError(canonical_netloc(url), list(allowed_hosts))


_SIGNING_HEADERS = ("Authorization", "Host", "X-Amz-Date", "X-Amz-Security-Token", "X-Amz-Content-SHA256")


def _forget_credentials_on_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    """requests copies the sent headers into a redirect without asking the auth again.

    Left alone, the session token (and a Host header for the old host) would follow a redirect to
    any host. Stripped, the redirect goes out unsigned and the API answers 403 instead of leaking.
    """
    if response.is_redirect and response.request is not None:
        for name in _SIGNING_HEADERS:
            response.request.headers.pop(name, None)
    return response
