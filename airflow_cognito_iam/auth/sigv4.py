"""SigV4 as one pure step: (method, URL, headers, payload hash, credentials) -> headers to send.

The same ``SigV4Signer.sign`` serves the requests session, the fan-out thread pool and the
triggerer's aiohttp client, so there is one canonical request, not one per transport.

It is requests-aws4auth's key derivation, scope and canonical path with the cases that library gets
wrong fixed here and checked against botocore's ``SigV4Auth`` (the reference) in tests:

* the URL is first rewritten into canonical form (every byte outside RFC 3986 unreserved
  percent-encoded, ``+`` in a query read as a space as requests' ``params=`` means it), so what is
  sent is exactly what is signed and every server-side implementation re-derives the same string;
* ``;`` in a path is kept (requests-aws4auth's ``urlparse`` drops it as "path parameters");
* the query is not re-parsed with ``parse_qs`` (which turns ``+`` into a space and cuts at a space);
* one signing at a time per signer (requests-aws4auth keeps the current key on the instance, so two
  threads refreshing at once could sign with one key id and another secret).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Iterable
from typing import IO, Any, Protocol
from urllib.parse import SplitResult, quote, unquote, unquote_to_bytes, urlsplit, urlunsplit

from requests_aws4auth import AWS4Auth

_UNRESERVED = "-_.~"
_DEFAULT_PORTS = {"http": 80, "https": 443}
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_HASH_CHUNK = 1024 * 1024


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
    return canonicalize_split(url, urlsplit(url))


def canonicalize_split(url: str, parts: SplitResult) -> str:
    """:func:`canonicalize_url` for a URL already split (the per-request path splits once)."""
    path, query = _encode_path(parts.path), _encode_query(parts.query)
    if path == parts.path and query == parts.query and not parts.fragment:
        return url  # already canonical: the common case
    return urlunsplit((parts.scheme, parts.netloc, path, query, ""))


def sha256_of_body(body: Any) -> str:
    """Hex SHA-256 of a request body: bytes, str, or a seekable file (read in chunks, then rewound)."""
    if body is None:
        return EMPTY_SHA256
    if isinstance(body, str):
        body = body.encode()
    if isinstance(body, bytes | bytearray | memoryview):
        return hashlib.sha256(body).hexdigest()
    if hasattr(body, "read"):
        return _sha256_of_file(body)
    raise TypeError(
        f"cannot sign a {type(body).__name__} request body: SigV4 needs its SHA-256 before sending. "
        "Pass bytes or a seekable file, or send it with CognitoIamHook.request(), which spools "
        "generators and pipes to a temporary file"
    )


def _sha256_of_file(body: IO[bytes]) -> str:
    try:
        start = body.tell()
    except (OSError, AttributeError, ValueError):
        start = None
    if start is None or not getattr(body, "seekable", lambda: False)():
        raise TypeError(
            "cannot sign a non-seekable file body (a pipe or socket): its SHA-256 would consume it. Send it "
            "with CognitoIamHook.request(), which spools it to a temporary file and replays it per attempt"
        )
    digest = hashlib.sha256()
    while chunk := body.read(_HASH_CHUNK):
        digest.update(chunk.encode() if isinstance(chunk, str) else chunk)
    body.seek(start)
    return digest.hexdigest()


def _signed_headers(headers: Iterable[tuple[str, Any]]) -> tuple[str, str]:
    # The headers requests-aws4auth signs by default (host, content-type, x-amz-* but
    # x-amz-client-context), with botocore's whitespace trimming, in one pass.
    signed: dict[str, str] = {}
    for name, value in headers:
        lower = name.lower()
        if lower in ("host", "content-type") or (lower.startswith("x-amz-") and lower != "x-amz-client-context"):
            text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
            signed[lower] = " ".join(text.split())
    names = sorted(signed)
    return "".join(f"{name}:{signed[name]}\n" for name in names), ";".join(names)


class _KeyAndPath(AWS4Auth):  # type: ignore[misc]
    """requests-aws4auth, used for its signing key (per scope date) and canonical path only."""

    def refresh_credentials(self) -> None:
        # The signing key depends only on secret, date, region and service: derive it again only
        # when one changed instead of four HMACs per request.
        frozen = self.refreshable_credentials.get_frozen_credentials()
        self.access_id = frozen.access_key
        self.session_token = frozen.token
        key = getattr(self, "signing_key", None)
        if key is None or key.secret_key != frozen.secret_key:
            self.regenerate_signing_key(secret_key=frozen.secret_key)

    def amz_cano_path(self, path: str) -> str:
        # Endpoints repeat (every page of a job hits the same path): remember recent answers.
        paths: dict[str, str] = self.__dict__.setdefault("_cano_paths", {})
        if path not in paths:
            if len(paths) >= 1024:
                paths.clear()
            paths[path] = super().amz_cano_path(path)
        return paths[path]


class SigV4Signer:
    """Signs requests with the current frozen credentials of ``credentials`` (refreshing, shared)."""

    def __init__(self, credentials: FrozenCredentialsSource, region: str, service: str = "execute-api") -> None:
        self.credentials = credentials
        self.region = region
        self.service = service
        self._lib = _KeyAndPath(refreshable_credentials=credentials, region=region, service=service)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(region={self.region!r}, service={self.service!r})"

    def sign(
        self, method: str, url: str, headers: Iterable[tuple[str, Any]], payload_hash: str
    ) -> dict[str, str]:
        """The headers to add: x-amz-date, x-amz-content-sha256, the session token and Authorization.

        ``url`` must already be canonical (:func:`canonicalize_url`) and ``headers`` must hold the
        Host header that will be sent; neither is changed here.
        """
        with self._lock:
            lib = self._lib
            lib.refresh_credentials()
            amz_date = self._amz_date()
            if amz_date[:8] != lib.date:
                lib.regenerate_signing_key(date=amz_date[:8])
            added = {"x-amz-date": amz_date, "x-amz-content-sha256": payload_hash}
            if lib.session_token:
                added["x-amz-security-token"] = lib.session_token
            cano_headers, signed_headers = _signed_headers([*headers, *added.items()])
            parts = urlsplit(url)  # urlsplit, not urlparse: ";" belongs to the path
            path = lib.amz_cano_path(parts.path or "/")
            pairs = sorted(p.partition("=")[::2] for p in parts.query.split("&") if p) if parts.query else []
            query = "&".join(f"{k}={v}" for k, v in pairs)
            canonical = "\n".join([method.upper(), path, query, cano_headers, signed_headers, payload_hash])
            scope = lib.signing_key.scope
            to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
            signature = hmac.new(lib.signing_key.key, to_sign.encode(), hashlib.sha256).hexdigest()
            added["Authorization"] = (
                f"AWS4-HMAC-SHA256 Credential={lib.access_id}/{scope}, "
                f"SignedHeaders={signed_headers}, Signature={signature}"
            )
            return added

    def _amz_date(self) -> str:
        second = int(time.time())
        if second != getattr(self, "_date_second", None):
            self._date_second, self._date_text = second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        text: str = self._date_text
        return text
