"""Retry policies: what is retried, how long we wait, and when we give up (no real sleeping)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.exceptions import ProtocolError

from airflow_cognito_iam.auth.errors import AuthenticationError, ConfigurationError, TransientError
from airflow_cognito_iam.auth.retry import (
    RetryPolicy,
    describe_exception,
    is_transient_api,
    is_transient_api_before_send,
    is_transient_cognito,
    parse_retry_after,
    retry_after_of,
    transient_api,
    transient_cognito,
)
from airflow_cognito_iam.auth.settings import CognitoSettings


def client_error(
    code: str,
    status: int = 400,
    message: str = "x",
    headers: dict[str, str] | None = None,
    operation: str = "InitiateAuth",
) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers or {}},
        },
        operation,
    )


def http_error(status: int, headers: dict[str, str] | None = None) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    response.reason = "Reason"
    return requests.HTTPError(response=response)


class Recorder:
    """A fake sleep that records the waits tenacity asks for."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def failing(times: int, exc: Callable[[], BaseException], result: str = "ok") -> Callable[[], str]:
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc()
        return result

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def run(retrying: Any, fn: Callable[[], str]) -> str:
    for attempt in retrying:
        with attempt:
            return fn()
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (client_error("TooManyRequestsException"), True),
        (client_error("ThrottlingException"), True),
        (client_error("InternalErrorException", 500), True),
        (client_error("ServiceUnavailable", 503), True),
        (client_error("SomethingNew", 502), True),
        (client_error("NotAuthorizedException"), False),
        (client_error("UserNotFoundException"), False),
        (client_error("InvalidParameterException"), False),
        (client_error("ResourceNotFoundException"), False),
        (client_error("LimitExceededException"), False),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), True),
        (SSLError(endpoint_url="https://x", error="bad cert"), False),
        (TransientError("throttled"), True),
        (AuthenticationError("wrong password"), False),
        (ConfigurationError({"client_id": "required"}), False),
        (ValueError("bug"), False),
    ],
)
def test_cognito_classifier_retries_only_what_can_clear_up(exc: BaseException, expected: bool) -> None:
    assert is_transient_cognito(exc) is expected


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (http_error(429), True),
        (http_error(502), True),
        (http_error(503), True),
        (http_error(504), True),
        (http_error(500), True),
        (http_error(408), True),
        (http_error(501), False),
        (http_error(403), False),
        (http_error(404), False),
        (requests.ConnectionError("reset"), True),
        (requests.ConnectTimeout("slow connect"), True),
        (requests.ReadTimeout("slow read"), True),
        (requests.exceptions.SSLError("bad cert"), False),
        (requests.exceptions.InvalidHeader("bad header"), False),
        (requests.exceptions.InvalidURL("bad url"), False),
        (requests.exceptions.TooManyRedirects("loop"), False),
        (requests.exceptions.ChunkedEncodingError("cut"), True),
        (TransientError("503", retry_after=1), True),
        (AuthenticationError("no"), False),
    ],
)
def test_api_classifier_retries_408_429_5xx_and_connection_errors_only(exc: BaseException, expected: bool) -> None:
    assert is_transient_api(exc) is expected


def test_only_connect_failures_count_as_never_sent() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on: a real "connection refused"
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(requests.ConnectionError) as refused_info:
        requests.post(f"http://127.0.0.1:{port}/jobs", timeout=5)
    refused = refused_info.value
    reset = requests.ConnectionError(ProtocolError("Connection aborted."))
    assert is_transient_api_before_send(refused)
    assert is_transient_api_before_send(requests.ConnectTimeout("connect"))
    assert not is_transient_api_before_send(reset)
    assert not is_transient_api_before_send(requests.ReadTimeout("read"))
    assert not is_transient_api_before_send(http_error(503))


def test_transient_failures_are_retried_until_success() -> None:
    sleep = Recorder()
    fn = failing(3, lambda: client_error("TooManyRequestsException"))
    assert run(transient_cognito(RetryPolicy(sleep=sleep)), fn) == "ok"
    assert fn.calls["n"] == 4  # type: ignore[attr-defined]
    assert len(sleep.waits) == 3


def test_waits_are_full_jitter_within_the_exponential_window() -> None:
    policy = RetryPolicy(max_attempts=6, max_seconds=1000, initial=0.5, cap=3, sleep=Recorder())
    firsts, all_waits = [], []
    for _ in range(200):
        sleep = Recorder()
        fn = failing(5, lambda: TransientError("busy"))
        run(
            RetryPolicy(max_attempts=6, max_seconds=1000, initial=0.5, cap=3, sleep=sleep).retrying(
                is_transient_cognito
            ),
            fn,
        )
        for n, wait in enumerate(sleep.waits, start=1):
            assert 0 <= wait <= min(policy.cap, policy.initial * 2 ** (n - 1))
        firsts.append(sleep.waits[0])
        all_waits.extend(sleep.waits)
    # Full jitter spreads over the whole window [0, 0.5], not around its top.
    assert min(firsts) < 0.05
    assert max(firsts) > 0.45
    assert max(all_waits) <= 3


def test_attempts_are_bounded_and_the_final_error_is_transient_and_explains() -> None:
    sleep = Recorder()
    fn = failing(100, lambda: client_error("TooManyRequestsException", message="tok-eyJsecret.value.sig"))
    with pytest.raises(TransientError) as info:
        run(RetryPolicy(max_attempts=3, sleep=sleep).retrying(is_transient_cognito, what="Cognito InitiateAuth"), fn)
    assert fn.calls["n"] == 3  # type: ignore[attr-defined]
    message = str(info.value)
    assert "Cognito InitiateAuth still failing after 3 attempt(s)" in message
    assert "TooManyRequestsException" in message
    assert "eyJ" not in message  # the service message is not repeated
    assert isinstance(info.value.__cause__, ClientError)


def test_total_time_is_bounded_even_when_each_wait_is_allowed() -> None:
    sleep = Recorder()
    fn = failing(100, lambda: TransientError("busy", retry_after=2))
    with pytest.raises(TransientError):
        run(RetryPolicy(max_attempts=50, max_seconds=7, sleep=sleep).retrying(is_transient_api), fn)
    assert sum(sleep.waits) <= 7
    assert len(sleep.waits) == 3  # 2+2+2 fits, a fourth 2 s wait would end past 7 s


def test_retry_after_is_honoured_over_a_shorter_jitter() -> None:
    sleep = Recorder()
    fn = failing(2, lambda: http_error(429, {"Retry-After": "4"}))
    assert run(transient_api(RetryPolicy(initial=0.1, cap=0.2, sleep=sleep)), fn) == "ok"
    assert sleep.waits == [4.0, 4.0]


def test_retry_after_on_a_cognito_error_header_is_honoured() -> None:
    sleep = Recorder()
    fn = failing(1, lambda: client_error("TooManyRequestsException", 400, headers={"retry-after": "3"}))
    run(transient_cognito(RetryPolicy(initial=0.1, cap=0.2, sleep=sleep)), fn)
    assert sleep.waits == [3.0]


def test_retry_after_beyond_the_budget_stops_at_once_and_is_passed_on() -> None:
    sleep = Recorder()
    fn = failing(100, lambda: TransientError("slow down", retry_after=120))
    with pytest.raises(TransientError) as info:
        run(RetryPolicy(max_seconds=30, sleep=sleep).retrying(is_transient_api, what="GET /orders"), fn)
    assert sleep.waits == []
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]
    assert info.value.retry_after == 120
    assert "asked to wait 120s" in str(info.value)


@pytest.mark.parametrize(
    "exc",
    [
        client_error("NotAuthorizedException", message="Incorrect username or password."),
        AuthenticationError("wrong password"),
        ConfigurationError({"client_id": "required"}),
    ],
)
def test_authentication_and_configuration_errors_are_never_retried(exc: BaseException) -> None:
    sleep = Recorder()
    fn = failing(100, lambda: exc)
    with pytest.raises(type(exc)):
        run(transient_cognito(RetryPolicy(sleep=sleep)), fn)
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]
    assert sleep.waits == []


def test_parse_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("5", now) == 5.0
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-3", now) == 0.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=9), usegmt=True), now) == 9.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=9), usegmt=True), now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert retry_after_of(http_error(503, {"Retry-After": "2"})) == 2.0
    assert retry_after_of(ValueError()) is None


def test_descriptions_leave_out_service_messages_and_query_strings() -> None:
    err = client_error("NotAuthorizedException", message="bad hash Zm9vYmFyYmF6cXV4cXV1eA==")
    assert describe_exception(err) == "NotAuthorizedException (HTTP 400) from InitiateAuth"
    conn = requests.ConnectionError("GET http://127.0.0.1:9/orders?token=abc123 failed")
    described = describe_exception(conn)
    assert "abc123" not in described
    assert "/orders?" in described


def test_policy_from_settings_uses_the_connection_limits() -> None:
    settings = CognitoSettings.from_connection(
        host=None,
        login="u",
        password="p",
        extra={"user_pool_id": "eu-west-1_Ab1", "client_id": "c", "max_attempts": 2, "max_retry_seconds": 9},
    )
    policy = RetryPolicy.from_settings(settings)
    assert (policy.max_attempts, policy.max_seconds) == (2, 9)


def test_nonsense_policies_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
