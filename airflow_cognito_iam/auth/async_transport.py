"""The triggerer's request path: ``ApiTransport``'s rules on aiohttp, for waits that hold no worker.

Nothing about a request is decided twice. Each attempt is prepared by requests with the hook's own
auth object (``CognitoSigV4Auth`` → ``SigV4Signer.sign``, or the bearer token), so the canonical
URL, the signature and the origin pin are the sync path's; aiohttp only moves the bytes. The
classification is the sync path's too: aiohttp failures are translated into the requests
exceptions ``is_transient_api`` already knows, and 4xx answers become ``ApiTransport.refusal``.

Preparing runs in a worker thread (``asyncio.to_thread``): it may sign in, refresh tokens or
exchange credentials, which are blocking boto3 calls and must never stall the event loop that
every other trigger of the triggerer shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import requests
import urllib3.exceptions
from requests.structures import CaseInsensitiveDict
from yarl import URL

from airflow_cognito_iam.auth.bodies import ERROR_BODY_BYTES, BodyTooLargeError
from airflow_cognito_iam.auth.errors import ApiRefusalError, TransientError
from airflow_cognito_iam.auth.retry import (
    TRANSIENT_HTTP_STATUSES,
    RetryPolicy,
    describe_exception,
    is_permanent_request_error,
    is_transient_api,
    retry_after_of,
)
from airflow_cognito_iam.auth.transport import (
    IDEMPOTENT_METHODS,
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    ApiTransport,
    AuthMode,
    _deadline_seconds,
    _expired,
    _not_ours,
    _permanent_hint,
    _safe_to_repeat,
    check_headers,
    check_method,
    loggable,
    redirect_target,
)

log = logging.getLogger(__name__)

#: A status document is read whole (for response_check); more than this is not a status.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
_READ_CHUNK = 64 * 1024


class AsyncApiTransport:
    """Signed requests from a coroutine, under the rules of ``rules`` (pin, deadlines, retries).

    :param rules: the connection's sync transport: its pin, timeout, retry policy, credential
        refresh and secret scrubbing are used as they are.
    :param auth_for: the requests auth for a mode (the hook's ``get_auth``); called in a thread.
    :param verify: TLS verification as in requests (True, False or a CA bundle path).
    """

    def __init__(
        self,
        rules: ApiTransport,
        auth_for: Callable[[AuthMode], requests.auth.AuthBase],
        *,
        verify: bool | str = True,
    ) -> None:
        self.rules = rules
        self._auth_for = auth_for
        self._verify = verify
        self._auths: dict[str, requests.auth.AuthBase] = {}
        self._auth_lock = threading.Lock()
        self._sessions: dict[int, aiohttp.ClientSession] = {}
        self._users: dict[int, int] = {}

    async def send(
        self,
        method: str,
        url: str,
        *,
        mode: AuthMode = "iam",
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        retry_policy: RetryPolicy | None = None,
        retry_non_idempotent: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> requests.Response:
        """One logical request; the body is read (at most ``max_body_bytes``) into ``.content``.

        Raises what ``ApiTransport.send`` raises: TransientError, ApiRefusalError, ClockSkewError,
        ConfigurationError; a body over the limit raises BodyTooLargeError.
        """
        method = check_method(method)
        check_headers(headers)
        self.rules.pin.check(url)
        policy = retry_policy or self.rules.policy
        repeatable = is_transient_api if method in IDEMPOTENT_METHODS or retry_non_idempotent else _safe_to_repeat
        where = loggable(url)
        deadline = _deadline_seconds(None, self.rules.timeout)
        refreshed = False

        async def attempt() -> requests.Response:
            nonlocal refreshed
            while True:
                response = await self._follow(method, url, mode, params, headers, json, deadline, max_body_bytes)
                if response.status_code in TRANSIENT_HTTP_STATUSES:
                    raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
                if not refreshed and _expired(response, mode):
                    refreshed = True
                    log.info("%s %s: credentials expired; refreshing once and retrying", method, where)
                    await asyncio.to_thread(self.rules._refresh, mode, response)
                    self._forget_auth(mode)
                    continue
                return response

        try:
            response: requests.Response = await policy.aretrying(_not_ours(repeatable), what=f"{method} {where}")(
                attempt
            )
        except requests.RequestException as exc:
            if is_permanent_request_error(exc):
                raise ApiRefusalError(f"{method} {where} failed: {_permanent_hint(exc)}") from None
            raise TransientError(
                f"{method} {where} failed: {describe_exception(exc)}", retry_after=retry_after_of(exc)
            ) from None
        if response.status_code >= 500:
            raise TransientError(f"{method} {where} failed: HTTP {response.status_code} {response.reason or ''}")
        if response.status_code >= 400:
            raise self.rules.refusal(method, where, response)
        return response

    @contextlib.asynccontextmanager
    async def in_use(self) -> AsyncIterator[AsyncApiTransport]:
        """Hold the keep-alive pool of this loop open; the last user on a loop closes it.

        Waits on one triggerer share one pool; ``airflow dags test`` runs each trigger on a loop of
        its own, which must not end with the session still open.
        """
        loop = id(asyncio.get_running_loop())
        self._users[loop] = self._users.get(loop, 0) + 1
        try:
            yield self
        finally:
            self._users[loop] -= 1
            if not self._users[loop]:
                del self._users[loop]
                session = self._sessions.pop(loop, None)
                if session is not None and not session.closed:
                    await session.close()

    async def close(self) -> None:
        """Close the aiohttp sessions this transport opened (on their own loops)."""
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            if not session.closed:
                await session.close()

    # -- one attempt ------------------------------------------------------------------------------

    async def _follow(
        self,
        method: str,
        url: str,
        mode: AuthMode,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        json: Any,
        deadline: float,
        max_body: int,
    ) -> requests.Response:
        """Send, following same-origin GET/HEAD redirects (each hop signed for its own URL)."""
        where = loggable(url)
        current, hop_method, hop_params, hop_json = url, method, params, json
        for _ in range(MAX_REDIRECTS + 1):
            prepared = await asyncio.to_thread(self._prepare, hop_method, current, mode, hop_params, headers, hop_json)
            response = await self._fetch(prepared, deadline, max_body)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            current, next_method = redirect_target(method, where, current, hop_method, response.status_code, location)
            if next_method != hop_method:
                hop_method, hop_json = next_method, None
            hop_params = None  # the Location holds the query
        raise ApiRefusalError(f"{method} {where}: more than {MAX_REDIRECTS} redirects; not followed further")

    def _prepare(
        self,
        method: str,
        url: str,
        mode: AuthMode,
        params: Mapping[str, Any] | None,
        headers: Mapping[str, str] | None,
        json: Any,
    ) -> requests.PreparedRequest:
        """The request exactly as the sync path would sign it (runs in a thread: may sign in)."""
        request = requests.Request(method, url, params=dict(params or {}), headers=dict(headers or {}), json=json)
        prepared = request.prepare()
        self._auth(mode)(prepared)
        return prepared

    def _auth(self, mode: AuthMode) -> requests.auth.AuthBase:
        with self._auth_lock:
            if mode not in self._auths:
                self._auths[mode] = self._auth_for(mode)
            return self._auths[mode]

    def _forget_auth(self, mode: AuthMode) -> None:
        with self._auth_lock:
            self._auths.pop(mode, None)

    def _session(self) -> aiohttp.ClientSession:
        """One keep-alive session per event loop (``airflow dags test`` runs each trigger on a new one)."""
        loop = asyncio.get_running_loop()
        session = self._sessions.get(id(loop))
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(ssl=_ssl_context(self._verify), limit=100)
            # trust_env: HTTP(S)_PROXY / NO_PROXY apply as they do for requests.
            session = aiohttp.ClientSession(connector=connector, trust_env=True, auto_decompress=True)
            self._sessions[id(loop)] = session
        return session

    async def _fetch(self, prepared: requests.PreparedRequest, deadline: float, max_body: int) -> requests.Response:
        method, url = str(prepared.method), str(prepared.url)
        started = time.monotonic()
        try:
            async with self._session().request(
                method,
                URL(url, encoded=True),  # sent byte for byte as signed
                headers=dict(prepared.headers),
                data=prepared.body,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=deadline),
            ) as answer:
                limit = ERROR_BODY_BYTES if answer.status >= 300 else max_body
                body = await _read_capped(answer, limit, error=answer.status >= 300)
                response = _as_requests_response(answer, body, prepared)
        except aiohttp.ClientError as exc:
            raise _as_requests_error(exc) from None
        except TimeoutError:
            raise requests.exceptions.ReadTimeout(f"no complete answer within {deadline:g}s (total deadline)") from None
        log.debug(
            "%s %s -> %d, %d bytes, %.0f ms",
            method,
            loggable(url),
            response.status_code,
            len(body),
            (time.monotonic() - started) * 1000,
        )
        return response


async def _read_capped(answer: aiohttp.ClientResponse, limit: int, *, error: bool) -> bytes:
    """The decoded body, at most ``limit`` bytes (an error body is cut; a success body is refused)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await answer.content.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            if error:
                chunks.append(chunk)
                return b"".join(chunks)[:limit]
            answer.close()
            raise BodyTooLargeError(limit)
        chunks.append(chunk)


def _as_requests_response(
    answer: aiohttp.ClientResponse, body: bytes, prepared: requests.PreparedRequest
) -> requests.Response:
    """A complete ``requests.Response``: response_check callables see the same object in both modes."""
    response = requests.Response()
    response.status_code = answer.status
    response.reason = answer.reason or ""
    response.headers = CaseInsensitiveDict(answer.headers)
    response.url = str(prepared.url)
    response.request = prepared
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    response._content = body
    response._content_consumed = True  # type: ignore[attr-defined]
    return response


def _as_requests_error(exc: aiohttp.ClientError) -> requests.RequestException:
    """The requests exception the sync path would have raised, so one classifier decides."""
    text = type(exc).__name__
    if isinstance(exc, aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
        return requests.exceptions.SSLError(f"{text}: TLS failed")
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return requests.exceptions.ConnectTimeout(f"{text}: connect timed out")
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return requests.exceptions.ReadTimeout(f"{text}: read timed out")
    if isinstance(exc, aiohttp.ClientConnectorError):
        # Never connected: the sync path's NewConnectionError, safe to repeat even a POST.
        reason = urllib3.exceptions.NewConnectionError(None, f"{text}: {exc.os_error or 'connect failed'}")  # type: ignore[arg-type]
        return requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "", reason))  # type: ignore[arg-type]
    if isinstance(exc, aiohttp.InvalidURL):
        return requests.exceptions.InvalidURL(f"{text}: invalid URL")
    if isinstance(exc, aiohttp.ClientPayloadError) and "encoding" in str(exc).lower():
        return requests.exceptions.ContentDecodingError(f"{text}: the body does not decode")
    if isinstance(exc, aiohttp.ClientResponseError):  # malformed status line or headers
        return requests.exceptions.ConnectionError(f"{text}: malformed response ({exc.status})")
    return requests.exceptions.ConnectionError(f"{text}: connection broke off")


def _ssl_context(verify: bool | str) -> ssl.SSLContext | bool:
    if verify is False:
        return False
    import certifi

    return ssl.create_default_context(cafile=verify if isinstance(verify, str) else certifi.where())
