"""requests auth for APIs behind API Gateway: SigV4 with refreshing credentials, or a bearer token.

Both are thin adapters: the signature is ``sigv4.SigV4Signer``'s (shared with the async client) and
the origin check is ``origins.OriginPin``'s. A signed request can only go to a pinned origin, so
credentials never travel to a host named by an API response (pagination links, redirects), nor
over plain http to a server that happens to share the API's host name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

import requests

from airflow_cognito_iam.auth.origins import OriginPin, as_pin
from airflow_cognito_iam.auth.sigv4 import (
    FrozenCredentialsSource,
    SigV4Signer,
    canonical_netloc,
    canonicalize_split,
    canonicalize_url,
    sha256_of_body,
)

__all__ = [
    "BearerTokenAuth",
    "CognitoSigV4Auth",
    "FrozenCredentialsSource",
    "canonical_netloc",
    "canonicalize_url",
    "host_allowed",
]

#: Header a caller sets to a body's precomputed SHA-256 (the hook does, for spooled file bodies).
CONTENT_SHA256 = "X-Amz-Content-SHA256"


def host_allowed(url: str, allowed_hosts: Iterable[str]) -> bool:
    """True when the URL's origin is one of ``allowed_hosts`` (see ``origins.entry_origins``)."""
    return OriginPin(None, allowed_hosts).allows(url)


class CognitoSigV4Auth(requests.auth.AuthBase):
    """SigV4-sign each request with the current frozen credentials; refuse origins not pinned.

    ``allowed_hosts`` is an ``OriginPin`` or ``host[:port]`` names / URLs. ``None`` turns pinning
    off (a caller's explicit choice); an empty list allows nothing, so forgetting to configure
    hosts fails closed.
    """

    def __init__(
        self,
        credentials: FrozenCredentialsSource,
        region: str,
        service: str = "execute-api",
        allowed_hosts: OriginPin | Iterable[str] | None = None,
    ) -> None:
        self.credentials = credentials
        self.region = region
        self.service = service
        self.pin = as_pin(allowed_hosts)
        self.signer = SigV4Signer(credentials, region, service)
        # (scheme, netloc) already checked against the pin -> the Host header to send.
        self._host_headers: dict[tuple[str, str], str] = {}

    @property
    def allowed_hosts(self) -> list[str] | None:
        """The pinned origins, as written in messages."""
        return self.pin.described() if self.pin is not None else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(region={self.region!r}, service={self.service!r}, hosts={self.allowed_hosts})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = str(request.url)
        parts = urlsplit(url)
        host_header = self._host_headers.get((parts.scheme, parts.netloc))
        if host_header is None:
            if self.pin is not None:
                self.pin.check(url)
            # Sign the Host we will send: http.client drops a default port and keeps any other.
            host_header = self._host_headers[(parts.scheme, parts.netloc)] = canonical_netloc(url)
        request.url = canonicalize_split(url, parts)
        headers = request.headers
        headers["Host"] = host_header
        body: Any = request.body
        if hasattr(body, "read") and headers.get(CONTENT_SHA256):
            payload_hash = str(headers[CONTENT_SHA256])  # a spooled body, hashed once by the hook
        else:
            payload_hash = sha256_of_body(body)
        # A re-sent PreparedRequest (requests' redirect handling) must not keep the old signature.
        for name in ("Authorization", "X-Amz-Date", "X-Amz-Security-Token", CONTENT_SHA256):
            headers.pop(name, None)
        headers.update(self.signer.sign(str(request.method), str(request.url), headers.lower_items(), payload_hash))
        if _forget_credentials_on_redirect not in request.hooks["response"]:
            request.hooks["response"].append(_forget_credentials_on_redirect)
        return request


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
        allowed_hosts: OriginPin | Iterable[str] | None = None,
    ) -> None:
        self.get_token = get_token
        self.scheme = scheme
        self.header = header
        self.pin = as_pin(allowed_hosts)

    @property
    def allowed_hosts(self) -> list[str] | None:
        """The pinned origins, as written in messages."""
        return self.pin.described() if self.pin is not None else None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(header={self.header!r}, scheme={self.scheme!r}, hosts={self.allowed_hosts})"

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.pin is not None:
            self.pin.check(str(request.url))
        request.headers[self.header] = self.value()
        if _forget_credentials_on_redirect not in request.hooks["response"]:
            request.hooks["response"].append(_forget_credentials_on_redirect)
        return request

    def value(self) -> str:
        """The header value to send now (the async client uses it too)."""
        token = self.get_token()
        return f"{self.scheme} {token}" if self.scheme else token


_SIGNING_HEADERS = ("Authorization", "Host", "X-Amz-Date", "X-Amz-Security-Token", CONTENT_SHA256)


def _forget_credentials_on_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
    """requests copies the sent headers into a redirect without asking the auth again.

    The hook never lets requests follow redirects; a user's own session might. Left alone, the
    session token (and a Host header for the old host) would follow a redirect to any host.
    Stripped, the redirect goes out unsigned and the API answers 403 instead of leaking.
    """
    if response.is_redirect and response.request is not None:
        for name in _SIGNING_HEADERS:
            response.request.headers.pop(name, None)
    return response
