"""CognitoIamApiSensor against the devstack: an async job reaches done; reschedule mode; refusals."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import requests
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, AirflowSensorTimeout

from airflow_cognito_iam.devstack import DevStack
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
from airflow_cognito_iam.operators.api import CognitoIamApiOperator
from airflow_cognito_iam.sensors.api import CognitoIamApiSensor

pytestmark = pytest.mark.integration


def job_done(response: requests.Response) -> bool:
    status = response.json()["status"]
    if status == "failed":
        raise AirflowFailException(f"export job failed: {response.json().get('error')}")
    return bool(status == "done")


def start_job(**spec: Any) -> str:
    """POST /jobs through the operator, as a DAG's first task would."""
    op = CognitoIamApiOperator(task_id="start", endpoint="/jobs", method="POST", json=spec)
    return str(op.execute({})["job_id"])


class FirstTryTaskInstance:
    """The one thing reschedule mode asks of the task instance: when did the first try start."""

    def get_first_reschedule_date(self, context: Any) -> dt.datetime | None:
        return None


def test_sensor_waits_until_the_job_is_done(cognito_iam_conn: DevStack) -> None:
    job_id = start_job(polls=3)
    sensor = CognitoIamApiSensor(
        task_id="wait", endpoint=f"/jobs/{job_id}", response_check=job_done, poke_interval=0.05, timeout=30
    )

    sensor.execute({})

    assert cognito_iam_conn.stats()["api"]["routes"]["GET /jobs/{id}"] == {"200": 4}


def test_sensor_default_check_is_any_2xx(cognito_iam_conn: DevStack) -> None:
    sensor = CognitoIamApiSensor(task_id="up", endpoint="/whoami", poke_interval=0.05, timeout=10)
    assert sensor.poke({}) is True


def test_reschedule_mode_frees_the_slot_then_finishes(cognito_iam_conn: DevStack) -> None:
    job_id = start_job(polls=1)
    sensor = CognitoIamApiSensor(
        task_id="wait",
        endpoint=f"/jobs/{job_id}",
        response_check=job_done,
        mode="reschedule",
        poke_interval=60,
        timeout=600,
    )
    context: Any = {"ti": FirstTryTaskInstance()}

    with pytest.raises(AirflowRescheduleException) as info:
        sensor.execute(context)
    assert info.value.reschedule_date > dt.datetime.now(dt.UTC)

    # Airflow runs the task again later, in a new process: a fresh operator and hook.
    again = CognitoIamApiSensor(
        task_id="wait", endpoint=f"/jobs/{job_id}", response_check=job_done, mode="reschedule", poke_interval=60
    )
    again.execute(context)
    assert cognito_iam_conn.stats()["api"]["routes"]["GET /jobs/{id}"] == {"200": 2}


def test_credentials_are_refreshed_across_pokes(cognito_iam_conn: DevStack) -> None:
    job_id = start_job(polls=2)
    hook_ids: list[str] = []

    def expire_then_check(response: requests.Response, task: Any) -> bool:
        hook_ids.append(task.hook.get_credentials().identity_id)
        cognito_iam_conn.expire_credentials()  # the next poke's credentials are stale
        return job_done(response)

    sensor = CognitoIamApiSensor(
        task_id="wait", endpoint=f"/jobs/{job_id}", response_check=expire_then_check, poke_interval=0.05, timeout=30
    )
    sensor.execute({"task": sensor})

    routes = cognito_iam_conn.stats()["api"]["routes"]["GET /jobs/{id}"]
    assert routes["200"] == 3
    assert routes["403"] == 2, "each stale poke was refused once, then refreshed and retried"
    assert len(set(hook_ids)) == 1, "same identity throughout"


def test_not_ready_404_keeps_poking_until_timeout(cognito_iam_conn: DevStack) -> None:
    sensor = CognitoIamApiSensor(
        task_id="wait", endpoint="/jobs/00000000-0000-0000-0000-000000000000", poke_interval=0.05, timeout=0.3
    )
    with pytest.raises(AirflowSensorTimeout):
        sensor.execute({})
    # 404 meant "not yet" (no failure); the sensor ended by its timeout, not by the refusal.
    assert cognito_iam_conn.stats()["api"]["routes"]["GET /jobs/{id}"]["404"] >= 1


def test_refusal_fails_the_sensor_at_once_naming_the_role(cognito_iam_conn: DevStack) -> None:
    sensor = CognitoIamApiSensor(task_id="wait", endpoint="/admin/status", poke_interval=0.05, timeout=30)
    with pytest.raises(AirflowFailException, match=r"HTTP 403.*execute-api:Invoke"):
        sensor.execute({})
    assert cognito_iam_conn.stats()["api"]["routes"]["GET /admin/*"] == {"403": 1}


def test_failed_job_fails_the_sensor(cognito_iam_conn: DevStack) -> None:
    job_id = start_job(polls=0, fail=True)
    sensor = CognitoIamApiSensor(
        task_id="wait", endpoint=f"/jobs/{job_id}", response_check=job_done, poke_interval=0.05, timeout=30
    )
    with pytest.raises(AirflowFailException, match="export job failed"):
        sensor.execute({})


def test_outage_counts_as_not_yet(cognito_iam_conn: DevStack) -> None:
    job_id = start_job(polls=0)
    cognito_iam_conn.set_faults("503", count=2, path_prefix="/jobs/")
    sensor = CognitoIamApiSensor(
        task_id="wait",
        endpoint=f"/jobs/{job_id}",
        response_check=job_done,
        poke_interval=0.05,
        timeout=30,
        max_attempts=1,
    )
    sensor.execute({})
    assert cognito_iam_conn.stats()["api"]["routes"]["GET /jobs/{id}"] == {"503": 2, "200": 1}


def test_hook_is_one_per_sensor_instance(cognito_iam_conn: DevStack) -> None:
    sensor = CognitoIamApiSensor(task_id="wait", endpoint="/whoami")
    assert isinstance(sensor.hook, CognitoIamHook)
    assert sensor.hook is sensor.hook
