"""One logical API request: attempts, retries, replayed bodies, redirects, deadlines and refusals.

The hook, the operator's fan-out threads and users' own code all send through ``ApiTransport``, so
the failure rules hold everywhere:

* transient (408, 429, 500, 502, 503, 504, resets, timeouts): retried per request with full-jitter
  backoff and Retry-After, bounded by attempts and total seconds, then ``TransientError`` (the task
  layer turns it into a retryable task failure);
* permanent (TLS, malformed header or URL, 4xx refusals, a redirect off the pinned origin): raised
  at once as ``ApiRefusalError`` naming the cause, never a header value or a secret;
* every attempt sends the whole body and has a total deadline (connect + headers + body);
* a redirect is followed only on the same origin and only for GET/HEAD, re-signed each hop.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import requests
import tenacity

from airflow_cognito_iam.auth import metrics
from airflow_cognito_iam.auth.bodies import ReplayableBody, read_error_excerpt
from airflow_cognito_iam.auth.deadline import AttemptDeadline
from airflow_cognito_iam.auth.errors import (
    ApiRefusalError,
    ClockSkewError,
    CognitoIamError,
    ConfigurationError,
    TransientError,
)
from airflow_cognito_iam.auth.origins import OriginPin, describe_origin, origin_of
from airflow_cognito_iam.auth.retry import (
    TRANSIENT_HTTP_STATUSES,
    Classifier,
    RetryPolicy,
    clock_offset_of,
    describe_exception,
    is_permanent_request_error,
    is_transient_api,
    is_transient_api_before_send,
    parse_retry_after,
    retry_after_of,
)
from airflow_cognito_iam.auth.signing import CONTENT_SHA256
from airflow_cognito_iam.auth.throttle import PoolThrottle

log = logging.getLogger(__name__)

AuthMode = Literal["iam", "id_token", "access_token"]
AUTH_MODES: tuple[str, ...] = ("iam", "id_token", "access_token")
METHODS = frozenset({"GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"})
#: RFC 9110 §9.2.2: repeating these cannot change the outcome.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
#: API Gateway refuses signatures more than 5 minutes off; past this the clock is the cause.
CLOCK_SKEW_SECONDS = 240.0

# API Gateway's IAM refusal:
# "User: arn:...:assumed-role/ROLE/SESSION is not authorized to perform: ACTION on resource: ARN"
_NOT_AUTHORIZED = re.compile(
    r"User: (?P<principal>\S+) is not authorized to perform: (?P<action>\S+?)(?: on resource: (?P<resource>\S+?))?"
    r"(?:[\s\"',}]|$)"
)
# "Signature expired" is clock skew, not stale credentials: a refresh would not help.
_EXPIRED = re.compile(r"token\b.*\bexpired|ExpiredToken", re.IGNORECASE)
_SIGNATURE_TIME = re.compile(r"Signature expired|Signature not yet current|RequestTimeTooSkewed", re.IGNORECASE)
# Signature-mismatch answers quote the canonical request, headers (session token) included.
_ECHO = re.compile(r"(The Canonical String|The String-to-Sign|Canonical String for this request).*", re.DOTALL)
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_HEADER_VALUE = re.compile(r"^\S[^\r\n]*$|^$")


def check_method(method: str, field: str = "method") -> str:
    """The upper-cased method, or a ConfigurationError naming the allowed ones."""
    upper = method.upper() if isinstance(method, str) else ""
    if upper not in METHODS:
        raise ConfigurationError({field: f"must be one of {', '.join(sorted(METHODS))}; got {method!r}"})
    return upper


def check_headers(headers: Mapping[str, Any] | None, field: str = "headers") -> None:
    """Refuse headers requests would refuse mid-flight, naming the header but never its value."""
    if not headers:
        return
    if not isinstance(headers, Mapping):
        raise ConfigurationError({field: f"must be a mapping of header names to values, got {type(headers).__name__}"})
    problems = []
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name):
            problems.append(f"{name!r} is not a valid header name")
        elif not isinstance(value, str | bytes):
            problems.append(f"header {name!r} must be a string, got {type(value).__name__}")
        else:
            text = value.decode("latin-1") if isinstance(value, bytes) else value
            if not _HEADER_VALUE.match(text) or "\x00" in text:
                problems.append(
                    f"header {name!r} has an invalid value (leading whitespace, CR/LF or NUL; value not shown)"
                )
    if problems:
        raise ConfigurationError({field: "; ".join(problems)})


def loggable(url: str) -> str:
    """Path plus query *names* only: values can be personal data or tokens."""
    parts = urlsplit(url)
    names = [pair.partition("=")[0] for pair in parts.query.split("&") if pair]
    return parts.path + (f"?{'&'.join(names)}" if names else "")


def api_message(response: requests.Response) -> str:
    """The API's error message from at most a few KiB of the body (a 256 MiB gzip bomb costs 8 KiB)."""
    text = read_error_excerpt(response).strip()
    try:
        import json

        body = json.loads(text)
    except ValueError:
        return text[:500]
    if isinstance(body, dict):
        for key in ("message", "Message", "error", "errorMessage"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return str(body)[:500]


def clock_offset(response: requests.Response | None) -> float | None:
    """Server time minus local time in seconds, from the response's Date header."""
    return clock_offset_of(response.headers.get("Date") if response is not None else None)


class ApiTransport:
    """Sends signed requests for one connection; see the module docstring for the rules."""

    def __init__(
        self,
        session_for: Callable[[AuthMode], requests.Session],
        pin: OriginPin,
        *,
        timeout: float,
        policy: RetryPolicy,
        refresh: Callable[[AuthMode, requests.Response], None],
        secrets: Callable[[], tuple[str, ...]],
    ) -> None:
        self._session_for = session_for
        self.pin = pin
        self.timeout = timeout
        self.policy = policy
        self._refresh = refresh
        self._secrets = secrets
        self._retryings: dict[tuple[int, Classifier, str], tuple[RetryPolicy, tenacity.Retrying]] = {}

    def send(
        self,
        method: str,
        url: str,
        *,
        mode: AuthMode = "iam",
        retry_non_idempotent: bool = False,
        check_response: bool = True,
        retry_policy: RetryPolicy | None = None,
        throttle: PoolThrottle | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One logical request; raises TransientError, ApiRefusalError or ClockSkewError.

        ``throttle`` (a fan-out's shared gate) is waited on before each attempt and told each status.
        """
        method = check_method(method)
        check_headers(kwargs.get("headers"))
        self.pin.check(url)
        session = self._session_for(mode)
        deadline = _deadline_seconds(kwargs.pop("timeout", None), self.timeout)
        kwargs["timeout"] = deadline
        kwargs["allow_redirects"] = False
        # Always streamed underneath: an error body is read only a few KiB deep, and a success body
        # (unless the caller streams it) is read inside the attempt's deadline.
        kwargs["stream"], keep_open = True, bool(kwargs.get("stream", False))
        policy = retry_policy or self.policy
        repeatable = is_transient_api if method in IDEMPOTENT_METHODS or retry_non_idempotent else _safe_to_repeat
        where = loggable(url)
        body = ReplayableBody.wrap(kwargs.get("data"))
        state = {"attempt": 0, "refreshed": False}

        def attempt() -> requests.Response:
            while True:
                state["attempt"] += 1
                if body is not None:
                    kwargs["data"] = body.for_attempt()
                    extra = {"Content-Length": str(body.length)}
                    if mode == "iam":
                        extra[CONTENT_SHA256] = body.sha256
                    kwargs["headers"] = {**(kwargs.get("headers") or {}), **extra}
                if throttle is not None:
                    throttle.wait_turn()
                response = self._follow(
                    _Attempt(session, where, state["attempt"], deadline, keep_open), method, url, kwargs
                )
                if throttle is not None:
                    throttle.observe(response.status_code, parse_retry_after(response.headers.get("Retry-After")))
                if response.status_code in TRANSIENT_HTTP_STATUSES:
                    response.close()
                    raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
                if not state["refreshed"] and _expired(response, mode):
                    state["refreshed"] = True
                    log.info("%s %s: credentials expired; refreshing once and retrying", method, where)
                    self._refresh(mode, response)
                    response.close()
                    continue
                return response

        try:
            response: requests.Response = self._retrying(policy, repeatable, f"{method} {where}")(attempt)
        except requests.RequestException as exc:
            if is_permanent_request_error(exc):
                raise ApiRefusalError(f"{method} {where} failed: {_permanent_hint(exc)}") from None
            # A transient failure the classifier declined to repeat (a POST that may have landed).
            hint = "" if repeatable is is_transient_api else "; not repeated (pass retry_non_idempotent=True if safe)"
            raise TransientError(
                f"{method} {where} failed: {describe_exception(exc)}{hint}", retry_after=retry_after_of(exc)
            ) from None
        finally:
            if body is not None:
                body.close()
        if check_response and response.status_code >= 500:
            response.close()  # 501, 505, ...: a server fault, not worth repeating at once
            raise TransientError(f"{method} {where} failed: HTTP {response.status_code} {response.reason or ''}")
        if check_response and response.status_code >= 400:
            raise self.refusal(method, where, response)
        response.__dict__[_ATTEMPTS] = state["attempt"]
        return response

    def _retrying(self, policy: RetryPolicy, repeatable: Classifier, what: str) -> tenacity.Retrying:
        """One tenacity object per (policy, classifier, request name), built once and reused.

        Building it cost more than signing; tenacity keeps each call's state thread-locally, so one
        object serves every page and every thread of this connection.
        """
        key = (id(policy), repeatable, what)
        cached = self._retryings.get(key)
        if cached is not None and cached[0] is policy:  # the same policy object, not a recycled id
            return cached[1]
        retrying = policy.retrying(_NOT_OURS[repeatable], what=what)
        if len(self._retryings) >= _MAX_RETRYINGS:
            self._retryings.clear()
        self._retryings[key] = (policy, retrying)
        return retrying

    def _follow(self, attempt: _Attempt, method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        """Send, following same-origin redirects for GET/HEAD (each hop signed for its own URL)."""
        where = attempt.where
        current, hop_method, hop_kwargs = url, method, kwargs
        for _ in range(MAX_REDIRECTS + 1):
            response = self._send(attempt, hop_method, current, hop_kwargs)
            location = response.headers.get("Location")
            if response.status_code not in REDIRECT_STATUSES or not location:
                return response
            response.close()
            target, next_method = redirect_target(method, where, current, hop_method, response.status_code, location)
            dropped = {"params"}  # the Location holds the query
            if next_method != hop_method:  # 303 after a POST: fetched with GET, without the body
                hop_method = next_method
                dropped |= {"data", "json", "files"}
            current = target
            hop_kwargs = {k: v for k, v in hop_kwargs.items() if k not in dropped}
            if "data" in dropped and hop_kwargs.get("headers"):
                body_headers = ("content-length", "content-type", CONTENT_SHA256.lower())
                headers = hop_kwargs["headers"].items()
                hop_kwargs["headers"] = {k: v for k, v in headers if k.lower() not in body_headers}
        raise ApiRefusalError(f"{method} {where}: more than {MAX_REDIRECTS} redirects; not followed further")

    @staticmethod
    def _send(attempt: _Attempt, method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        started = time.monotonic()
        where, number = attempt.where, attempt.number
        with AttemptDeadline(attempt.deadline, f"{method} {where}") as watch:
            try:
                response = attempt.session.request(method, url, **kwargs)
                if response.status_code >= 400 or response.is_redirect:
                    read_error_excerpt(response)
                elif not attempt.keep_open:
                    watch.watch(getattr(getattr(response.raw, "connection", None), "sock", None))
                    _ = response.content
            except requests.RequestException as exc:
                elapsed = (time.monotonic() - started) * 1000
                failure: requests.RequestException = watch.error() if watch.fired else exc
                log.info(
                    "%s %s -> %s (%.0f ms, attempt %d)", method, where, describe_exception(failure), elapsed, number
                )
                if failure is not exc:
                    raise failure from None
                raise
        metrics.timing(
            "api_request.duration", (time.monotonic() - started) * 1000, method=method, status=str(response.status_code)
        )
        if log.isEnabledFor(logging.DEBUG):
            elapsed = (time.monotonic() - started) * 1000
            size = response.headers.get("Content-Length", "?")
            status = response.status_code
            if response.request is not None and response.request.url:
                where = loggable(str(response.request.url))  # with the names of params= keys too
            log.debug("%s %s -> %d, %s bytes, %.0f ms, attempt %d", method, where, status, size, elapsed, number)
        return response

    def refusal(self, method: str, where: str, response: requests.Response) -> CognitoIamError:
        """The permanent error for a 4xx answer, naming the API's reason (never a secret)."""
        message = self.scrub(api_message(response))
        status = response.status_code
        metrics.incr("refusal", status=str(status))
        if _SIGNATURE_TIME.search(message):
            offset = clock_offset(response)
            if offset is not None and abs(offset) > CLOCK_SKEW_SECONDS:
                return ClockSkewError(offset, f"{method} {where} refused by the API (HTTP {status}: {message})")
        hint = ""
        if match := _NOT_AUTHORIZED.search(message):
            principal, action = match["principal"], match["action"]
            role = _role_name(principal)
            resource = f" on {match['resource']}" if match["resource"] else ""
            hint = (
                f" Role {role} may not {action}{resource}: an administrator must allow it in the role's "
                "policy (or the API's resource policy), or set custom_role_arn to a role that may."
            )
        text = f"{method} {where} refused by the API (HTTP {status}): {message or response.reason}.{hint}"
        return ApiRefusalError(text, status_code=status)

    def scrub(self, text: str) -> str:
        """``text`` without echoed canonical requests or any secret this connection holds."""
        text = _ECHO.sub("(canonical request omitted)", text)
        for value in self._secrets():
            if len(value) >= 4:
                text = text.replace(value, "***")
        return text[:500]


def redirect_target(
    method: str, where: str, current: str, hop_method: str, status: int, location: str
) -> tuple[str, str]:
    """Where a redirect may be followed, and with which method; ApiRefusalError when it may not.

    Shared by the requests and the aiohttp transports: only the pinned origin, only GET/HEAD (and
    303 See Other, fetched with GET), so a signature or a body never goes anywhere else.
    """
    target = urljoin(current, location)
    here = describe_origin(origin_of(current))
    try:
        there = describe_origin(origin_of(target))
    except CognitoIamError:
        there = "an unparseable location"
    if there != here:
        raise ApiRefusalError(
            f"{method} {where} was redirected (HTTP {status}) to another host, {there}; not "
            f"followed: signed credentials and request headers stay with {here}",
            status_code=status,
        )
    if status == 303 and hop_method not in ("GET", "HEAD"):
        return target, "GET"
    if hop_method not in ("GET", "HEAD"):
        raise ApiRefusalError(
            f"{method} {where} was redirected (HTTP {status}) to {loggable(target)}; only GET "
            "and HEAD redirects (and 303 See Other) are followed: a body is not re-sent to another URL",
            status_code=status,
        )
    return target, hop_method


@dataclass(frozen=True)
class _Attempt:
    """What every hop of one attempt shares."""

    session: requests.Session
    where: str
    number: int
    deadline: float
    keep_open: bool


def _deadline_seconds(requested: Any, default: float) -> float:
    # requests accepts (connect, read); as a total deadline their sum is the honest reading.
    if requested is None:
        return default
    if isinstance(requested, tuple):
        return float(sum(x for x in requested if x is not None)) or default
    return float(requested)


def _expired(response: requests.Response, mode: AuthMode) -> bool:
    # API Gateway: 403 + x-amzn-ErrorType ExpiredTokenException / "security token ... expired";
    # user pool authorizers answer 401 "The incoming token has expired".
    if response.status_code not in (401, 403):
        return False
    if mode == "iam" and response.status_code != 403:
        return False
    kind = response.headers.get("x-amzn-ErrorType", "")
    if "ExpiredToken" in kind:
        return True
    return bool(_EXPIRED.search(api_message(response)))


def _permanent_hint(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.exceptions.SSLError):
        return (
            f"{describe_exception(exc)}. TLS failed: an https URL pointing at a plain-http port, or a certificate "
            "this worker does not trust (check the connection host's scheme and the verify extra)"
        )
    if isinstance(exc, requests.exceptions.TooManyRedirects):
        return f"{describe_exception(exc)} (a redirect loop)"
    return describe_exception(exc)


def _not_ours(classifier: Callable[[BaseException], bool]) -> Callable[[BaseException], bool]:
    """``classifier``, except for our own errors raised while getting credentials or tokens.

    Those come from the sign-in/exchange layer, which already spent its own retry budget;
    repeating the request on top would multiply calls to a throttled Cognito.
    """

    def classify(exc: BaseException) -> bool:
        return not isinstance(exc, CognitoIamError) and classifier(exc)

    return classify


def _safe_to_repeat(exc: BaseException) -> bool:
    """For POST/PATCH: the request never reached the server, or the API said 429 (not processed)."""
    if is_transient_api_before_send(exc):
        return True
    return isinstance(exc, requests.HTTPError) and exc.response is not None and exc.response.status_code == 429


_NOT_OURS: dict[Classifier, Classifier] = {c: _not_ours(c) for c in (is_transient_api, _safe_to_repeat)}
#: Distinct request names (method + path + query names) whose retry objects are kept per transport.
_MAX_RETRYINGS = 256
_ATTEMPTS = "_cognito_iam_attempts"


def attempts_of(response: requests.Response) -> int:
    """How many attempts the transport made for ``response`` (1 when it did not send it)."""
    return int(response.__dict__.get(_ATTEMPTS, 1))


def _role_name(principal: str) -> str:
    # arn:aws:sts::123456789012:assumed-role/Cognito_PoolAuth_Role/CognitoIdentityCredentials
    if ":assumed-role/" in principal:
        return principal.split(":assumed-role/", 1)[1].split("/", 1)[0]
    return principal
