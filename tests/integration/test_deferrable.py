"""Deferrable mode against the devstack: the trigger's async path, its kwargs, and the resume step.

The trigger runs here on an asyncio loop as the triggerer would run it (the real triggerer and
``airflow dags test`` are in tests/e2e/test_deferrable_airflow.py); the devstack checks every
signature with botocore's signer, so a poll that succeeds was signed correctly on the async path.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSensorTimeout, TaskDeferred

from airflow_cognito_iam.auth.errors import ApiRefusalError, TransientError
from airflow_cognito_iam.auth.retry import RetryPolicy
from airflow_cognito_iam.devstack import DevStack
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
from airflow_cognito_iam.operators.api import CognitoIamApiOperator
from airflow_cognito_iam.sensors.api import CognitoIamApiSensor
from airflow_cognito_iam.triggers import api as triggers
from airflow_cognito_iam.triggers.api import CognitoIamApiTrigger
from tests.support.misbehaving import MisbehavingServer, gzip_bomb, redirect, reset_mid_body, respond

pytestmark = pytest.mark.integration

CHECK = "airflow_cognito_iam.checks.job_status"


@pytest.fixture(autouse=True)
def fresh_trigger_hooks() -> Any:
    triggers._HOOKS.clear()
    yield
    triggers._HOOKS.clear()


def start_job(**spec: Any) -> str:
    return str(CognitoIamHook().request("POST", "/jobs", json=spec).json()["job_id"])


def job_trigger(job_id: str, **overrides: Any) -> CognitoIamApiTrigger:
    kwargs: dict[str, Any] = {
        "cognito_iam_conn_id": "cognito_iam_default",
        "endpoint": f"/jobs/{job_id}",
        "response_check": CHECK,
        "poke_interval": 0.05,
        "end_at": time.time() + 60,
        "job_id": job_id,
    }
    kwargs.update(overrides)
    return CognitoIamApiTrigger(**kwargs)


async def first_event(trigger: CognitoIamApiTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")


def run(trigger: CognitoIamApiTrigger) -> dict[str, Any]:
    return asyncio.run(first_event(trigger))


def secrets_of(stack: DevStack) -> list[str]:
    hook = CognitoIamHook()
    creds, tokens = hook.get_credentials(), hook.get_tokens()
    return [
        stack.password,
        stack.client_secret,
        creds.access_key,
        creds.secret_key,
        creds.token,
        tokens.id_token,
        tokens.refresh_token or "",
        tokens.access_token,
    ]


# -- the trigger ----------------------------------------------------------------------------------


def test_trigger_polls_until_done_and_returns_the_result_path(cognito_iam_conn: DevStack) -> None:
    job_id = start_job(polls=3)

    event = run(job_trigger(job_id))

    assert event["status"] == "success", event
    assert event["xcom_value"] == "/export?size_mb=1"
    assert event["polls"] == 4
    assert event["job_id"] == job_id
    assert cognito_iam_conn.stats()["api"]["routes"]["GET /jobs/{id}"] == {"200": 4}


def test_trigger_kwargs_hold_no_secret_and_round_trip(cognito_iam_conn: DevStack) -> None:
    trigger = job_trigger(start_job(polls=0), query={"verbose": "1"}, headers={"Accept": "application/json"})
    classpath, kwargs = trigger.serialize()
    assert run(type(trigger)(**kwargs))["status"] == "success"  # what the triggerer rebuilds works
    text = json.dumps([classpath, kwargs])
    for secret in secrets_of(cognito_iam_conn):
        assert secret
        assert secret not in text


def test_end_from_trigger_ends_the_task_in_the_triggerer_with_its_xcom(cognito_iam_conn: DevStack) -> None:
    from airflow.triggers.base import TaskSuccessEvent

    async def events() -> list[Any]:
        return [event async for event in job_trigger(start_job(polls=0), end_from_trigger=True).run()]

    (event,) = asyncio.run(events())
    assert isinstance(event, TaskSuccessEvent)
    assert event.xcoms == {"return_value": "/export?size_mb=1"}


def test_a_failed_job_fires_a_clear_failure(cognito_iam_conn: DevStack) -> None:
    event = run(job_trigger(start_job(polls=1, fail=True)))
    assert event["status"] == "failed"
    assert "response_check raised JobFailedError" in event["message"]
    assert "job failed as requested" in event["message"]


def test_a_503_storm_during_polling_is_ridden_out(cognito_iam_conn: DevStack) -> None:
    job_id = start_job(polls=1)
    CognitoIamHook().get_credentials()  # signed in before the storm
    cognito_iam_conn.set_faults("503", count=8, retry_after=0, path_prefix="/jobs")

    event = run(job_trigger(job_id, max_attempts=2, max_retry_seconds=1))

    assert event["status"] == "success", event
    routes = cognito_iam_conn.stats()["api"]["routes"]["GET /jobs/{id}"]
    assert routes["503"] == 8
    assert routes["200"] == 2


def test_a_refusal_fails_at_once(cognito_iam_conn: DevStack) -> None:
    event = run(job_trigger("x", endpoint="/admin/deny"))
    assert event["status"] == "failed"
    assert event["polls"] == 1
    assert "ApiRefusalError" in event["message"]
    assert "403" in event["message"]


def test_not_ready_statuses_keep_polling_until_the_deadline(cognito_iam_conn: DevStack) -> None:
    event = run(job_trigger("00000000-0000-0000-0000-000000000000", end_at=time.time() + 2))
    assert event["status"] == "timeout"
    assert event["polls"] >= 2


def test_a_bad_connection_fails_the_trigger_naming_the_field(
    cognito_iam_conn: DevStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = cognito_iam_conn.conn_dict(region="nowhere-1")
    monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(conn))
    event = run(job_trigger("x"))
    assert event["status"] == "failed"
    assert "ConfigurationError" in event["message"]


def test_a_hundred_waits_share_one_sign_in_and_do_not_block_each_other(
    cognito_iam_conn: DevStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    jobs = [start_job(polls=2) for _ in range(100)]
    cognito_iam_conn.reset_stats()
    from airflow_cognito_iam.auth.cache import clear_memory_cache

    # As a fresh triggerer on a new host: nothing signed in, in memory or on disk.
    clear_memory_cache()
    monkeypatch.setenv("AIRFLOW_COGNITO_IAM_CACHE_DIR", str(tmp_path / "triggerer-cache"))
    cognito_iam_conn.set_latency(0.2)  # every poll waits 200 ms at the API: long enough to overlap

    async def all_of() -> list[dict[str, Any]]:
        return await asyncio.gather(*(first_event(job_trigger(job, poke_interval=0.2)) for job in jobs))

    events = asyncio.run(all_of())

    assert [e["status"] for e in events] == ["success"] * 100
    stats = cognito_iam_conn.stats()
    assert stats["cognito"]["InitiateAuth"] == 1
    assert stats["cognito"].get("GetCredentialsForIdentity") == 1
    # Not blocking each other, shown without a clock: polls that waited for one another (a
    # blocking call on the event loop, one shared lock) would reach the API one at a time.
    assert stats["api"]["in_flight_peak"] >= 10, stats["api"]


# -- the async client under a server that misbehaves ----------------------------------------------


@pytest.fixture
def bad(cognito_iam_conn: DevStack, monkeypatch: pytest.MonkeyPatch) -> Any:
    with MisbehavingServer() as server:
        conn = cognito_iam_conn.conn_dict(host=server.url, timeout=2, max_attempts=3, max_retry_seconds=20)
        monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(conn))
        yield server


FAST = RetryPolicy(max_attempts=3, max_seconds=5, initial=0.01, cap=0.02)


def send(url_path: str, **kwargs: Any) -> Any:
    hook = CognitoIamHook(retry_policy=FAST)
    return asyncio.run(hook.async_transport.send("GET", hook.url_for(url_path), **kwargs))


def test_async_retries_a_reset_mid_body_and_a_500(bad: MisbehavingServer) -> None:
    bad.script("/status", reset_mid_body(), respond(500), respond(200, {"status": "done"}))
    response = send("/status")
    assert response.json() == {"status": "done"}
    assert len(bad.requests_to("/status")) == 3


def test_async_500_storm_ends_transient(bad: MisbehavingServer) -> None:
    bad.script("/status", respond(500), respond(500), respond(500), respond(200))
    with pytest.raises(TransientError, match="3 attempt"):
        send("/status")


def test_async_does_not_follow_a_cross_host_redirect(bad: MisbehavingServer) -> None:
    bad.script("/status", redirect("http://example.com/steal"))
    with pytest.raises(ApiRefusalError, match="another host"):
        send("/status")


def test_async_follows_a_same_origin_redirect_resigned(bad: MisbehavingServer) -> None:
    bad.script("/status", redirect("/status2"))
    bad.script("/status2", respond(200, {"ok": True}))
    assert send("/status").json() == {"ok": True}
    assert bad.requests_to("/status2")[0].headers["authorization"].startswith("AWS4-HMAC-SHA256")


def test_async_gzip_bomb_costs_only_the_excerpt(bad: MisbehavingServer) -> None:
    bad.script("/status", gzip_bomb(status=403, decoded_mib=256))
    with pytest.raises(ApiRefusalError, match="HTTP 403"):
        send("/status")


def test_async_refuses_a_status_body_over_the_limit(bad: MisbehavingServer) -> None:
    from airflow_cognito_iam.auth.bodies import BodyTooLargeError

    bad.script("/status", respond(200, b"x" * 200_000))
    with pytest.raises(BodyTooLargeError):
        send("/status", max_body_bytes=100_000)


# -- the sensor and the operator around the trigger -----------------------------------------------


def export_ready(response: Any) -> bool:
    return bool(response.json().get("status") == "done")


def test_sensor_defers_with_a_dotted_check_and_finishes_from_the_event(cognito_iam_conn: DevStack) -> None:
    job_id = start_job(polls=1)
    cognito_iam_conn.reset_stats()
    sensor = CognitoIamApiSensor(
        task_id="wait",
        endpoint=f"/jobs/{job_id}",
        response_check=CHECK,
        deferrable=True,
        poke_interval=0.05,
        timeout=60,
    )
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    assert cognito_iam_conn.stats()["cognito"].get("InitiateAuth", 0) == 0  # the worker never signed in
    event = asyncio.run(first_event(deferred.value.trigger))
    assert sensor.execute_complete({}, event) == "/export?size_mb=1"


def test_sensor_refuses_what_the_triggerer_cannot_import_or_must_not_store() -> None:
    with pytest.raises(ValueError, match="cannot run in the triggerer"):
        CognitoIamApiSensor(task_id="a", endpoint="/x", deferrable=True, response_check=lambda r: True)
    with pytest.raises(ValueError, match="stored in clear"):
        CognitoIamApiSensor(task_id="b", endpoint="/x", deferrable=True, headers={"x-api-key": "k"})
    with pytest.raises(ValueError, match="does not import"):
        CognitoIamApiSensor(task_id="c", endpoint="/x", deferrable=True, response_check="nowhere.check")


def test_sensor_timeout_and_failure_events() -> None:
    sensor = CognitoIamApiSensor(task_id="w", endpoint="/jobs/1", deferrable=True)
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute_complete({}, {"status": "timeout", "message": "not done after 3 poll(s)"})
    with pytest.raises(AirflowFailException, match="job failed"):
        sensor.execute_complete({}, {"status": "failed", "message": "job failed"})


def test_operator_submits_once_defers_then_streams_the_result(cognito_iam_conn: DevStack, tmp_path: Any) -> None:
    out = tmp_path / "export.jsonl"
    op = CognitoIamApiOperator(
        task_id="export",
        method="POST",
        endpoint="/jobs",
        json={"polls": 1, "date": "2026-03-17"},
        deferrable=True,
        status_endpoint="/jobs/{job_id}",
        poll_interval=0.05,
        destination=f"file://{out}",
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute({})
    trigger = deferred.value.trigger
    assert deferred.value.kwargs == {"job_id": trigger.job_id}
    event = asyncio.run(first_event(trigger))
    # A triggerer restart re-creates the trigger from its kwargs: it only polls.
    event_again = asyncio.run(first_event(type(trigger)(**trigger.serialize()[1])))
    assert event_again["status"] == "success"

    summary = op.execute_complete({}, event, job_id=trigger.job_id)

    assert summary["uri"] == f"file://{out}"
    assert out.exists()
    assert cognito_iam_conn.stats()["api"]["routes"]["POST /jobs"] == {"202": 1}
    assert summary["records"] == len(out.read_text().splitlines()) > 0


def test_operator_without_a_job_id_fails_naming_the_field(cognito_iam_conn: DevStack) -> None:
    op = CognitoIamApiOperator(
        task_id="export",
        method="POST",
        endpoint="/jobs",
        json={},
        deferrable=True,
        status_endpoint="/jobs/{job_id}",
        job_id_field="id",
    )
    with pytest.raises(AirflowFailException, match="no job id in 'id'"):
        op.execute({})
