"""Named retry policies: the one place that decides what is retried, how often and for how long.

Public names (the hook and credential layers import these):

- ``RetryPolicy``: frozen numbers (attempts, total seconds, backoff window) plus ``.retrying(classifier)``
  which builds a ``tenacity.Retrying`` with full-jitter backoff, Retry-After honoured, a bound on
  attempts *and* total time, and a final ``TransientError`` that says what kept failing.
- ``transient_cognito(policy)``: ``Retrying`` for Cognito calls made through boto3 (``is_transient_cognito``).
- ``transient_api(policy)``: ``Retrying`` for HTTP API calls made with requests (``is_transient_api``).
- ``is_transient_cognito(exc)`` / ``is_transient_api(exc)``: classifiers. Authentication and
  configuration errors are never transient; neither are TLS failures (a bad certificate stays bad).
- ``is_transient_api_before_send(exc)``: only failures where the request surely never reached the
  server (connect errors) — the safe set for non-idempotent methods.
- ``TRANSIENT_HTTP_STATUSES``, ``retry_after_of(exc)``, ``parse_retry_after(value)``,
  ``describe_exception(exc)`` (a secret-free one-line description for logs and messages).

Why one retry layer: boto3 clients are built with botocore's own retries limited to one attempt
(see ``user_pool.build_cognito_client``) so that these policies own the whole budget; stacking
botocore's three attempts inside five of ours would make fifteen and break the time bound.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, NoReturn

import requests
import tenacity
from botocore import exceptions as boto_exc
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from airflow_cognito_iam.auth import metrics
from airflow_cognito_iam.auth.errors import (
    AuthenticationError,
    ConfigurationError,
    TransientError,
)

if TYPE_CHECKING:
    from airflow_cognito_iam.auth.settings import CognitoSettings

log = logging.getLogger(__name__)

Classifier = Callable[[BaseException], bool]

#: HTTP statuses that mean "try again later" (the AWS SDKs' standard retry mode, plus 408).
TRANSIENT_HTTP_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

#: Client-side failures a retry cannot fix: TLS, a malformed header or URL, a redirect loop, a body
#: that does not decode. They fail at once instead of being polled until a sensor's timeout.
PERMANENT_REQUEST_ERRORS: tuple[type[requests.RequestException], ...] = (
    requests.exceptions.SSLError,
    requests.exceptions.InvalidHeader,
    requests.exceptions.InvalidURL,
    requests.exceptions.InvalidSchema,
    requests.exceptions.MissingSchema,
    requests.exceptions.TooManyRedirects,
    requests.exceptions.ContentDecodingError,
    requests.exceptions.InvalidJSONError,
)

#: Cognito (user pool and identity pool) error codes that clear up on their own.
TRANSIENT_COGNITO_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalErrorException",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "RequestTimeout",
        "RequestTimeoutException",
        # cognito-identity: a federated provider it depends on did not answer.
        "ExternalServiceException",
    }
)

_QUERY = re.compile(r"\?[^\s'\"]*")


class RetryCancelled(TransientError):
    """A wait before the next attempt was cut short because the task is stopping (timeout, SIGTERM)."""


def cancellable_sleep(cancel: threading.Event, seconds: float) -> None:
    """Sleep ``seconds`` unless ``cancel`` is set first; then raise, so no further attempt starts.

    For a fan-out's worker threads: Airflow's ``execution_timeout`` and ``on_kill`` reach only the
    main thread, which then waits for the pool; without this every request in flight would first
    spend the rest of its retry budget.
    """
    if cancel.wait(seconds):  # True as soon as the event is set, or at once if it already was
        raise RetryCancelled("stopped before the next attempt: the task is stopping")


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: at most ``max_attempts`` attempts within ``max_seconds``.

    Waits are full jitter: uniform in ``[0, min(cap, initial * 2**(n-1))]``. A server's Retry-After
    raises the wait to at least that many seconds; if that would overrun ``max_seconds`` we stop and
    raise ``TransientError(retry_after=...)`` instead of sleeping past the budget.
    ``sleep`` is injectable so tests observe waits without waiting.
    """

    max_attempts: int = 5
    max_seconds: float = 60.0
    initial: float = 0.5
    cap: float = 20.0
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def __post_init__(self) -> None:
        problems = {}
        if self.max_attempts < 1:
            problems["max_attempts"] = "must be at least 1"
        if self.max_seconds < 0:
            problems["max_seconds"] = "must not be negative"
        if self.initial <= 0 or self.cap <= 0:
            problems["initial/cap"] = "backoff window must be positive"
        if problems:
            raise ConfigurationError(problems)

    @classmethod
    def from_settings(cls, settings: CognitoSettings, **overrides: Any) -> RetryPolicy:
        """The policy a connection asks for (extras ``max_attempts`` and ``max_retry_seconds``)."""
        values: dict[str, Any] = {
            "max_attempts": settings.max_attempts,
            "max_seconds": settings.max_retry_seconds,
        }
        values.update(overrides)
        return cls(**values)

    def retrying(self, classifier: Classifier, *, what: str = "request") -> tenacity.Retrying:
        """A ``tenacity.Retrying`` retrying exceptions ``classifier`` accepts; ``what`` names the call."""
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception(classifier),
            wait=_JitterOrRetryAfter(self.initial, self.cap, self.max_seconds),
            stop=tenacity.stop_after_attempt(self.max_attempts) | _StopBeforeBudget(self.max_seconds),
            sleep=self.sleep,
            before_sleep=_log_retry(what, self.max_attempts),
            retry_error_callback=_give_up(what, self),
            reraise=True,
        )

    def aretrying(self, classifier: Classifier, *, what: str = "request") -> tenacity.AsyncRetrying:
        """The same policy for coroutines (the triggerer): sleeps with ``asyncio.sleep``."""
        return tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception(classifier),
            wait=_JitterOrRetryAfter(self.initial, self.cap, self.max_seconds),
            stop=tenacity.stop_after_attempt(self.max_attempts) | _StopBeforeBudget(self.max_seconds),
            before_sleep=_log_retry(what, self.max_attempts),
            retry_error_callback=_give_up(what, self),
            reraise=True,
        )


def transient_cognito(policy: RetryPolicy | None = None, *, what: str = "Cognito call") -> tenacity.Retrying:
    """Retrying for boto3 Cognito calls: throttling, 5xx, connection resets and timeouts."""
    return (policy or RetryPolicy()).retrying(is_transient_cognito, what=what)


def transient_api(policy: RetryPolicy | None = None, *, what: str = "API request") -> tenacity.Retrying:
    """Retrying for HTTP API calls: 408/429/500/502/503/504, connection errors and timeouts."""
    return (policy or RetryPolicy()).retrying(is_transient_api, what=what)


def _never_transient(exc: BaseException) -> bool:
    # Our own verdicts first: a wrong password or a bad field must never turn into a retry storm.
    return isinstance(exc, AuthenticationError | ConfigurationError)


def is_transient_cognito(exc: BaseException) -> bool:
    """True when a boto3 Cognito call failed in a way that may succeed if repeated later."""
    if _never_transient(exc):
        return False
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, boto_exc.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return error.get("Code") in TRANSIENT_COGNITO_CODES or status >= 500 or status == 429
    if isinstance(exc, boto_exc.SSLError):
        return False
    return isinstance(exc, boto_exc.ConnectionError | boto_exc.HTTPClientError)


def is_transient_api(exc: BaseException) -> bool:
    """True for API failures worth repeating: 408/429/5xx responses, connection errors, timeouts."""
    if _never_transient(exc):
        return False
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, requests.HTTPError):
        response = exc.response
        return response is not None and response.status_code in TRANSIENT_HTTP_STATUSES
    if is_permanent_request_error(exc):
        return False
    return isinstance(exc, requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError)


def is_permanent_request_error(exc: BaseException) -> bool:
    """True for requests errors a retry cannot fix (see ``PERMANENT_REQUEST_ERRORS``)."""
    return isinstance(exc, PERMANENT_REQUEST_ERRORS)


def is_transient_api_before_send(exc: BaseException) -> bool:
    """True only when the request cannot have reached the server: safe to repeat a POST."""
    if isinstance(exc, requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.ReadTimeout):
        # requests wraps "connection refused" / DNS failures as a ConnectionError whose reason is a
        # urllib3 NewConnectionError; a reset after sending is a ProtocolError and may have landed.
        cause = exc.args[0] if exc.args else None
        reason = getattr(cause, "reason", cause)  # urllib3's MaxRetryError carries the real reason
        return type(reason).__name__ in {"NewConnectionError", "NameResolutionError", "ConnectTimeoutError"}
    return False


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent/bad."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def clock_offset_of(date_header: str | None) -> float | None:
    """Server time minus local time, in seconds, from an HTTP ``Date`` header (None when absent/bad)."""
    if not date_header:
        return None
    try:
        return parsedate_to_datetime(date_header).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


def retry_after_of(exc: BaseException | None) -> float | None:
    """The server's requested wait carried by ``exc``, if any."""
    if exc is None:
        return None
    if isinstance(exc, TransientError):
        return exc.retry_after
    if isinstance(exc, boto_exc.ClientError):
        headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        return parse_retry_after(headers.get("retry-after"))
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return parse_retry_after(exc.response.headers.get("Retry-After"))
    return None


def retry_cause(exc: BaseException | None) -> str:
    """A short, secret-free label of why a call is retried (a metrics tag): ``http_503``, ``ThrottlingException``."""
    if isinstance(exc, boto_exc.ClientError):
        return str(exc.response.get("Error", {}).get("Code", "ClientError"))
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"http_{exc.response.status_code}"
    return type(exc).__name__ if exc is not None else "none"


def describe_exception(exc: BaseException) -> str:
    """One secret-free line about ``exc`` for logs and error messages.

    Service error *messages* are left out on purpose: moto and some services echo request values
    (tokens, SECRET_HASH, session) back in them. Codes, statuses and our own messages are safe.
    """
    if isinstance(exc, boto_exc.ClientError):
        code = exc.response.get("Error", {}).get("Code", "error")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{code} (HTTP {status}) from {exc.operation_name}" if status else f"{code} from {exc.operation_name}"
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code} {exc.response.reason or ''}".rstrip()
    if isinstance(exc, TransientError):
        return str(exc)
    if isinstance(exc, requests.exceptions.InvalidHeader):
        # requests quotes the offending value, which can be an API key or a token.
        return "InvalidHeader: a header name or value has leading whitespace, reserved characters or CR/LF"
    # Connection errors name the host and path, which helps; query strings could carry anything.
    return f"{type(exc).__name__}: {_QUERY.sub('?…', str(exc))[:300]}"


class _JitterOrRetryAfter(wait_base):
    """Full jitter, but never sooner than the server's Retry-After (itself capped by the budget)."""

    def __init__(self, initial: float, cap: float, budget: float) -> None:
        self.jitter = tenacity.wait_random_exponential(multiplier=initial, max=cap)
        self.budget = budget

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait = self.jitter(retry_state)
        outcome = retry_state.outcome
        retry_after = retry_after_of(outcome.exception() if outcome is not None else None)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.budget))
        return wait


class _StopBeforeBudget(stop_base):
    """Stop rather than start a sleep that would end past the total-time budget.

    Counts both wall time and time slept, so an injected fake sleep still exhausts the budget.
    """

    def __init__(self, max_seconds: float) -> None:
        self.max_seconds = max_seconds

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        spent = max(retry_state.seconds_since_start or 0.0, retry_state.idle_for)
        return spent + retry_state.upcoming_sleep > self.max_seconds


def _log_retry(what: str, max_attempts: int) -> Callable[[tenacity.RetryCallState], None]:
    def before_sleep(retry_state: tenacity.RetryCallState) -> None:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        metrics.incr(
            "retry",
            call="cognito" if isinstance(exc, boto_exc.BotoCoreError | boto_exc.ClientError) else "api",
            cause=retry_cause(exc),
        )
        log.warning(
            "%s failed (attempt %d/%d): %s; retrying in %.2fs",
            what,
            retry_state.attempt_number,
            max_attempts,
            describe_exception(exc) if exc else "no result",
            retry_state.upcoming_sleep,
        )

    return before_sleep


def _give_up(what: str, policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], NoReturn]:
    def callback(retry_state: tenacity.RetryCallState) -> NoReturn:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if exc is None:  # pragma: no cover - classifiers only see exceptions
            raise TransientError(f"{what} did not succeed")
        spent = max(retry_state.seconds_since_start or 0.0, retry_state.idle_for)
        retry_after = retry_after_of(exc)
        hint = f"; the server asked to wait {retry_after:.0f}s" if retry_after else ""
        raise TransientError(
            f"{what} still failing after {retry_state.attempt_number} attempt(s) in {spent:.1f}s "
            f"(limits: {policy.max_attempts} attempts, {policy.max_seconds:g}s): "
            f"{describe_exception(exc)}{hint}",
            retry_after=retry_after,
        ) from exc

    return callback
