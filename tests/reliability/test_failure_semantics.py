"""Failure semantics against a server that misbehaves like real backends and networks do.

One test (or parametrised row) per numbered item of the failure-semantics issue. Cognito is the
devstack; the API is ``MisbehavingServer``, which verifies every SigV4 signature it receives with
the devstack's botocore-based verifier, so "re-signed" and "whole body" are checked on the wire.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_cognito_iam.auth.cache import clear_memory_cache
from airflow_cognito_iam.auth.errors import (
    ApiRefusalError,
    ConfigurationError,
    HostNotAllowedError,
    TransientError,
    UnsafeUrlError,
)
from airflow_cognito_iam.auth.retry import RetryPolicy
from airflow_cognito_iam.devstack.sigv4 import ApiGatewayError, IncomingRequest, verify_sigv4
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
from airflow_cognito_iam.operators.api import CognitoIamApiOperator, CognitoIamRetryableError
from airflow_cognito_iam.sensors.api import CognitoIamApiSensor
from tests.support.misbehaving import (
    MisbehavingServer,
    Seen,
    gzip_bomb,
    redirect,
    reset_before_answer,
    reset_mid_body,
    respond,
    trickle,
)

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=3, max_seconds=20, initial=0.01, cap=0.05)


@pytest.fixture(scope="module")
def bad() -> Iterator[MisbehavingServer]:
    with MisbehavingServer() as server:
        yield server


@pytest.fixture(scope="module")
def foreign() -> Iterator[MisbehavingServer]:
    """Another host (same machine, other port): nothing signed may ever reach it."""
    with MisbehavingServer() as server:
        yield server


@pytest.fixture
def api(cognito_iam_conn: Any, bad: MisbehavingServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    bad.reset()
    clear_memory_cache()
    conn = cognito_iam_conn.conn_dict(host=bad.url, timeout=2, max_attempts=3, max_retry_seconds=20)
    monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(conn))
    return cognito_iam_conn


def hook() -> CognitoIamHook:
    return CognitoIamHook(retry_policy=FAST)


def signature_ok(stack: Any, seen: Seen) -> bool:
    """The devstack's own verifier (botocore's signer) over the request as received."""
    path, _, query = seen.path.partition("?")
    try:
        verify_sigv4(
            IncomingRequest(seen.method, seen.headers.get("host", ""), path, query, seen.headers, seen.body),
            lookup=stack.registry.get,
            region=stack.region,
            service="execute-api",
            now=dt.datetime.now(dt.UTC),
        )
    except ApiGatewayError:
        return False
    return seen.body_sha_ok


def no_secret_in(stack: Any, text: str) -> None:
    h = CognitoIamHook()
    creds, tokens = h.get_credentials(), h.get_tokens()
    for secret in (stack.password, stack.client_secret, creds.secret_key, creds.token, tokens.id_token):
        assert secret not in text


# -- 1. server errors are transient, and stay retryable for Airflow -----------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504, 429, 408])
def test_5xx_429_408_are_retried_per_request(api: Any, bad: MisbehavingServer, status: int) -> None:
    bad.script("/x", respond(status, {"message": "hiccup"}), respond(200, {"ok": True}))
    assert hook().request("GET", "/x").json() == {"ok": True}
    assert len(bad.requests_to("/x")) == 2


def test_500_storm_ends_in_a_retryable_task_failure(api: Any, bad: MisbehavingServer) -> None:
    bad.script("/x", *[respond(500, {"message": "boom"})] * 3)
    op = CognitoIamApiOperator(task_id="t", endpoint="/x", max_attempts=3, max_retry_seconds=20)
    op.request_retry_policy = FAST  # type: ignore[misc]
    with pytest.raises(CognitoIamRetryableError) as info:
        op.execute({})
    assert not isinstance(info.value, AirflowFailException)  # Airflow's `retries` still apply
    assert isinstance(info.value, AirflowException)
    assert "HTTP 500" in str(info.value)
    assert len(bad.requests_to("/x")) == 3


def test_501_is_not_repeated_but_still_leaves_task_retries(api: Any, bad: MisbehavingServer) -> None:
    bad.script("/x", respond(501, {"message": "nope"}))
    with pytest.raises(TransientError, match="HTTP 501"):
        hook().request("GET", "/x")
    assert len(bad.requests_to("/x")) == 1


def test_sensor_counts_a_transient_poke_failure_as_not_yet(api: Any, bad: MisbehavingServer) -> None:
    bad.script("/jobs/1", *[respond(503)] * 3)
    sensor = CognitoIamApiSensor(task_id="s", endpoint="/jobs/1", max_attempts=3, max_retry_seconds=5)
    assert sensor.poke({}) is False
    assert len(bad.requests_to("/jobs/1")) == 3


# -- 2. client-side errors are permanent, immediate, and never quote a header value -------------


def test_https_to_a_plain_http_port_fails_at_once(api: Any, bad: MisbehavingServer, monkeypatch: Any) -> None:
    conn = api.conn_dict(host=bad.url.replace("http://", "https://"), timeout=2)
    monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(conn))
    with pytest.raises(ApiRefusalError, match="TLS failed"):
        hook().request("GET", "/x")  # permanent: raised by the first attempt, never retried
    sensor = CognitoIamApiSensor(task_id="s", endpoint="/x")
    with pytest.raises(AirflowFailException, match="TLS"):
        sensor.poke({})


def test_an_invalid_header_value_is_refused_before_sending_and_never_shown(api: Any, bad: MisbehavingServer,
                                                                          caplog: Any) -> None:
    value = "key-\r\nX-Injected: yes"
    with pytest.raises(ConfigurationError, match="X-Api-Key") as info:
        hook().request("GET", "/x", headers={"X-Api-Key": value})
    assert "key-" not in str(info.value)
    assert "key-" not in caplog.text
    assert bad.requests_to("/x") == []
    op = CognitoIamApiOperator(task_id="t", endpoint="/x", headers={"X-Api-Key": " leading-space"})
    with pytest.raises(AirflowFailException, match="X-Api-Key"):
        op.execute({})
    assert bad.requests_to("/x") == []


def test_a_redirect_loop_is_permanent(api: Any, bad: MisbehavingServer) -> None:
    bad.script("/loop", *[redirect("/loop")] * 10)
    with pytest.raises(ApiRefusalError, match="more than 5 redirects"):
        hook().request("GET", "/loop")
    assert len(bad.requests_to("/loop")) == 6


# -- 3. redirects ------------------------------------------------------------------------------


def test_a_cross_host_redirect_is_not_followed_and_names_the_host(
    api: Any, bad: MisbehavingServer, foreign: MisbehavingServer
) -> None:
    foreign.reset()
    bad.script("/x", redirect(f"{foreign.url}/steal"))
    with pytest.raises(ApiRefusalError, match=f"127.0.0.1:{foreign.port}") as info:
        hook().request("GET", "/x", headers={"x-api-key": "k-123"})
    assert "not followed" in str(info.value)
    assert foreign.seen == []


def test_a_redirect_to_http_on_another_port_is_refused(api: Any, bad: MisbehavingServer) -> None:
    bad.script("/x", redirect(f"http://127.0.0.1:{bad.port + 1}/x"))
    with pytest.raises(ApiRefusalError, match="another host"):
        hook().request("GET", "/x")


def test_a_same_host_redirect_is_resigned_for_the_new_url(api: Any, bad: MisbehavingServer) -> None:
    bad.script("/old", redirect("/new?page=2", 307))
    bad.script("/new", respond(200, {"moved": True}))
    assert hook().request("GET", "/old", params={"page": 1}).json() == {"moved": True}
    (old,), (new,) = bad.requests_to("/old"), bad.requests_to("/new")
    assert new.path == "/new?page=2"
    assert signature_ok(api, old)
    assert signature_ok(api, new)
    assert old.headers["authorization"] != new.headers["authorization"]


def test_a_post_redirect_is_not_followed_except_303(api: Any, bad: MisbehavingServer) -> None:
    bad.script("/jobs", redirect("/jobs/9", 307))
    with pytest.raises(ApiRefusalError, match="only GET"):
        hook().request("POST", "/jobs", json={"a": 1})
    assert bad.requests_to("/jobs/9") == []
    bad.script("/jobs", redirect("/jobs/9", 303))
    bad.script("/jobs/9", respond(200, {"id": 9}))
    assert hook().request("POST", "/jobs", json={"a": 1}).json() == {"id": 9}
    (follow,) = bad.requests_to("/jobs/9")
    assert follow.method == "GET"
    assert follow.body == b""
    assert signature_ok(api, follow)


# -- 4. request bodies: every attempt sends the whole body --------------------------------------


def test_a_file_body_retried_after_503_arrives_whole(api: Any, bad: MisbehavingServer, tmp_path: Any) -> None:
    payload = b"x" * 300_000
    path = tmp_path / "upload.bin"
    path.write_bytes(payload)
    bad.script("/upload", respond(503), respond(200, {"ok": True}))
    with path.open("rb") as body:
        hook().request("PUT", "/upload", data=body)
    attempts = bad.requests_to("/upload")
    assert [len(a.body) for a in attempts] == [len(payload), len(payload)]
    assert all(signature_ok(api, a) for a in attempts)


def test_a_generator_body_is_spooled_hashed_and_replayed(api: Any, bad: MisbehavingServer) -> None:
    chunks = [b"line %d\n" % i for i in range(50_000)]
    bad.script("/upload", reset_before_answer(), respond(200, {"ok": True}))
    hook().request("PUT", "/upload", data=(c for c in chunks))
    attempts = bad.requests_to("/upload")
    assert len(attempts) == 2
    assert all(a.body == b"".join(chunks) for a in attempts)
    assert all(signature_ok(api, a) for a in attempts)
    assert all("content-length" in a.headers for a in attempts)


def test_a_pipe_body_is_spooled(api: Any, bad: MisbehavingServer) -> None:
    import os

    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"from a pipe" * 1000)
    os.close(write_fd)
    bad.script("/upload", respond(503), respond(200, {"ok": True}))
    with os.fdopen(read_fd, "rb") as pipe:
        hook().request("PUT", "/upload", data=pipe)
    assert [a.body for a in bad.requests_to("/upload")] == [b"from a pipe" * 1000] * 2


# -- 5, 6, 7. transport safety -------------------------------------------------------------------


def test_credentials_never_go_over_http_to_a_named_https_host(api: Any, monkeypatch: Any) -> None:
    conn = api.conn_dict(host="https://api.example", allowed_hosts=["data.example"])
    monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(conn))
    h = hook()
    for url in ("http://api.example:8080/x", "http://api.example/x", "https://api.example:8443/x",
                "http://data.example/x", "https://data.example:444/x"):
        with pytest.raises(HostNotAllowedError):
            h.url_for(url)
        with pytest.raises(HostNotAllowedError):
            h.get_auth()(requests.Request("GET", url).prepare())
    assert h.url_for("https://api.example:443/x") == "https://api.example:443/x"
    assert h.url_for("https://data.example/x")


def test_idn_hosts_compare_in_idna_form(api: Any, monkeypatch: Any) -> None:
    conn = api.conn_dict(host="https://bücher.example/prod")
    monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(conn))
    h = hook()
    prepared = requests.Request("GET", h.url_for("/orders")).prepare()
    assert "xn--bcher-kva.example" in str(prepared.url)
    signed = h.get_auth()(prepared)
    assert signed.headers["Host"] == "xn--bcher-kva.example"
    assert h.url_for("https://xn--bcher-kva.example/prod/x")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:9\\@127.0.0.1:{port}/x",
        "http://user:pw@127.0.0.1:{port}/x",
        "http://127.0.0.1:{port}/x\r\nHost: evil",
    ],
)
def test_ambiguous_urls_are_refused_by_url_for(api: Any, bad: MisbehavingServer, url: str) -> None:
    with pytest.raises(UnsafeUrlError):
        hook().url_for(url.format(port=bad.port))
    assert bad.seen == []


# -- 10, 11, 12. bounded time and memory ---------------------------------------------------------


@pytest.mark.parametrize("in_headers", [True, False], ids=["headers", "body"])
def test_a_trickling_api_is_cut_at_the_attempt_deadline(api: Any, bad: MisbehavingServer, in_headers: bool) -> None:
    bad.script("/slow", *[trickle(in_headers=in_headers, every=0.4)] * 3)
    started = time.monotonic()
    with pytest.raises(TransientError, match="within 2 s"):
        hook().request("GET", "/slow")
    elapsed = time.monotonic() - started
    assert len(bad.requests_to("/slow")) == 3
    # Without the deadline each attempt takes ~100 s (a byte every 0.4 s); the margin is for a loaded CI.
    assert elapsed < 3 * 2 + 15, f"3 attempts of a 2 s deadline took {elapsed:.1f} s"


def test_a_trickling_cognito_is_cut_at_the_attempt_deadline(
    api: Any, bad: MisbehavingServer, monkeypatch: Any
) -> None:
    conn = api.conn_dict(host=bad.url, cognito_idp_endpoint_url=f"{bad.url}/idp", timeout=1, max_attempts=2,
                         credential_cache="none")
    monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(conn))
    bad.script("/idp", *[trickle(b'{"ChallengeName": "PASSWORD_VERIFIER"}', in_headers=True, every=0.3)] * 2)
    started = time.monotonic()
    with pytest.raises(TransientError):
        CognitoIamHook().get_tokens()
    elapsed = time.monotonic() - started
    assert len(bad.requests_to("/idp")) == 2
    assert elapsed < 2 * 1 + 15, f"2 Cognito attempts of a 1 s deadline took {elapsed:.1f} s"


def test_a_gzip_bomb_error_body_costs_a_few_kib(api: Any, bad: MisbehavingServer) -> None:
    import resource

    bomb = gzip_bomb(403, decoded_mib=256)
    h = hook()
    h.request("GET", "/warm")  # sign-in and imports happen before the measurement
    bad.script("/x", bomb)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ApiRefusalError) as info:
        h.request("GET", "/x")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert len(str(info.value)) < 1000
    assert grown_mib < 64, f"peak RSS grew {grown_mib:.0f} MiB for a {bomb.compressed_bytes} byte body"


def test_a_gzip_bomb_page_hits_the_xcom_cap_with_a_clear_error(api: Any, bad: MisbehavingServer) -> None:
    bad.script("/x", gzip_bomb(200, decoded_mib=256))
    op = CognitoIamApiOperator(task_id="t", endpoint="/x")
    with pytest.raises(AirflowFailException, match="max_xcom_bytes=1048576") as info:
        op.execute({})
    assert "destination" in str(info.value)


def test_a_gzip_bomb_page_with_a_filter_hits_max_page_bytes(api: Any, bad: MisbehavingServer) -> None:
    bad.script("/x", gzip_bomb(200, decoded_mib=256))
    op = CognitoIamApiOperator(task_id="t", endpoint="/x", response_filter=lambda r: [len(r.content)],
                               max_page_bytes=8 * 1024 * 1024)
    with pytest.raises(AirflowFailException, match="max_page_bytes=8388608") as info:
        op.execute({})
    assert "destination" in str(info.value)


def test_a_non_utf8_body_is_refused_for_xcom_not_mangled(api: Any, bad: MisbehavingServer) -> None:
    bad.script("/x", respond(200, "caf\xe9".encode("latin-1"), {"Content-Type": "text/plain; charset=utf-8"}))
    op = CognitoIamApiOperator(task_id="t", endpoint="/x")
    with pytest.raises(AirflowFailException, match="not utf-8 text"):
        op.execute({})


def test_a_declared_latin1_body_is_decoded_as_declared(api: Any, bad: MisbehavingServer) -> None:
    bad.script("/x", respond(200, "caf\xe9".encode("latin-1"), {"Content-Type": "text/plain; charset=latin-1"}))
    assert CognitoIamApiOperator(task_id="t", endpoint="/x").execute({}) == "café"


def test_a_body_reset_mid_way_is_fetched_again_whole(api: Any, bad: MisbehavingServer) -> None:
    bad.script("/x", reset_mid_body(), respond(200, [1, 2, 3]))
    assert CognitoIamApiOperator(task_id="t", endpoint="/x").execute({}) == [1, 2, 3]
    assert len(bad.requests_to("/x")) == 2


def test_refusal_messages_hold_no_secret(api: Any, bad: MisbehavingServer) -> None:
    h = hook()
    h.request("GET", "/x")  # sign in first, so the secrets exist to be echoed
    creds = h.get_credentials()
    echo = {"message": f"denied for {creds.token} {creds.access_key} The Canonical String for this request ..."}
    bad.script("/x", respond(403, echo))
    with pytest.raises(ApiRefusalError) as info:
        h.request("GET", "/x")
    no_secret_in(api, str(info.value))
    assert creds.access_key not in str(info.value)


def test_sensor_validates_its_method() -> None:
    for method in ("FOO", ""):
        with pytest.raises(ValueError, match="method="):
            CognitoIamApiSensor(task_id="s", endpoint="/x", method=method)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_retry_seconds": float("nan")}, "max_retry_seconds"),
        ({"max_attempts": float("nan")}, "max_attempts"),
        ({"max_attempts": 2.5}, "max_attempts"),
        ({"max_attempts": True}, "max_attempts"),
        ({"max_xcom_bytes": float("inf")}, "max_xcom_bytes"),
    ],
)
def test_operator_numbers_are_checked_at_parse(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        CognitoIamApiOperator(task_id="t", endpoint="/x", **kwargs)


def test_bytes_io_body_is_rewound(api: Any, bad: MisbehavingServer) -> None:
    body = io.BytesIO(b"0123456789" * 1000)
    body.seek(10)  # sends from where the caller left it, on every attempt
    bad.script("/upload", respond(429), respond(200))
    hook().request("PUT", "/upload", data=body)
    assert [a.body for a in bad.requests_to("/upload")] == [b"0123456789" * 999] * 2
