"""Deferrable mode for the sensor and the operator: hand the wait to the triggerer, resume to finish.

The sensor defers at once; the operator submits its job (one POST, in the worker), then defers on
the job's status endpoint. Either way the task process ends while the triggerer polls, so a
two-hour export costs no worker slot, and a triggerer restart re-creates the trigger from its
kwargs: it only polls, so the job is never submitted twice.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSensorTimeout, AirflowSkipException

from airflow_cognito_iam.triggers.api import CognitoIamApiTrigger, dotted_path, refuse_secret_headers, result_of

__all__ = ["defer_sensor", "finish_wait", "result_of", "resume_job", "submit_and_defer"]

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_cognito_iam.operators.api import CognitoIamApiOperator
    from airflow_cognito_iam.sensors.api import CognitoIamApiSensor

#: Slack on the deferral timeout so the trigger's own, clearer timeout event comes first.
_TIMEOUT_SLACK = timedelta(minutes=5)


def defer_sensor(sensor: CognitoIamApiSensor, context: Context) -> None:
    """Defer the sensor's wait to the triggerer (raises TaskDeferred)."""
    refuse_secret_headers(sensor.headers)
    timeout = float(sensor.timeout) if sensor.timeout is not None else None
    trigger = CognitoIamApiTrigger(
        cognito_iam_conn_id=sensor.cognito_iam_conn_id,
        endpoint=sensor.endpoint,
        method=sensor.method,
        query=sensor.query,
        headers=sensor.headers,
        auth=sensor.auth,
        response_check=dotted_path(sensor.response_check, "response_check"),
        response_check_kwargs=sensor.response_check_kwargs,
        not_ready_status_codes=sorted(sensor.not_ready_status_codes),
        poke_interval=float(sensor.poke_interval),
        end_at=time.time() + timeout if timeout is not None else None,
        max_attempts=sensor.max_attempts,
        max_retry_seconds=float(sensor.max_retry_seconds),
        allowed_hosts=list(sensor.allowed_hosts),
        end_from_trigger=sensor.end_from_trigger,
    )
    sensor.defer(
        trigger=trigger,
        method_name="execute_complete",
        timeout=timedelta(seconds=timeout) + _TIMEOUT_SLACK if timeout is not None else None,
    )


def finish_wait(event: Mapping[str, Any] | str | None, what: str, *, soft_fail: bool = False) -> Mapping[str, Any]:
    """The success event, or the exception its status calls for."""
    if isinstance(event, str):  # a TaskSuccessEvent's payload, where the runner resumes anyway (dags test)
        event = {"status": event}
    if not event:
        raise AirflowException(f"{what}: the trigger ended without an event")
    status = event.get("status")
    if status == "success":
        return event
    if status == "timeout":
        message = f"{what}: {event.get('message', 'timed out')}"
        if soft_fail:
            raise AirflowSkipException(message)
        raise AirflowSensorTimeout(message)
    raise AirflowFailException(f"{what}: {event.get('message', 'failed')}")


# -- the operator's async-job pattern -----------------------------------------------------------


def job_id_of(body: Any, field: str, where: str) -> str:
    """The job id from the submit response; a clear error when the API did not give one."""
    value = body.get(field) if isinstance(body, dict) else None
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value):
        keys = sorted(body) if isinstance(body, dict) else type(body).__name__
        raise AirflowFailException(
            f"{where}: the response has no job id in {field!r} (got {keys}); set job_id_field to the field "
            "that holds it"
        )
    return str(value)


def submit_and_defer(operator: CognitoIamApiOperator, context: Context) -> None:
    """Send the submit request once, then defer on ``status_endpoint`` with the job id."""
    refuse_secret_headers(operator.headers)
    where = operator._described()
    response = operator._fetch_page(operator._initial_request())
    operator._check(response, context)
    try:
        body = response.json()
    except ValueError:
        raise AirflowFailException(f"{where}: the submit response is not JSON, so it names no job id") from None
    job_id = job_id_of(body, operator.job_id_field, where)
    endpoint = str(operator.status_endpoint).replace("{job_id}", quote(job_id, safe=""))
    operator.log.info("%s: submitted job %s; waiting in the triggerer on %s", where, job_id, endpoint)
    timeout = float(operator.job_timeout)
    trigger = CognitoIamApiTrigger(
        cognito_iam_conn_id=operator.cognito_iam_conn_id,
        endpoint=endpoint,
        method="GET",
        headers=operator.headers,
        auth=operator.auth,
        response_check=dotted_path(operator.status_check, "status_check"),
        response_check_kwargs=operator.status_check_kwargs,
        not_ready_status_codes=[404],
        poke_interval=float(operator.poll_interval),
        end_at=time.time() + timeout,
        max_attempts=operator.max_attempts,
        max_retry_seconds=float(operator.max_retry_seconds),
        allowed_hosts=list(operator.allowed_hosts),
        job_id=job_id,
    )
    operator.defer(
        trigger=trigger,
        method_name="execute_complete",
        kwargs={"job_id": job_id},
        timeout=timedelta(seconds=timeout) + _TIMEOUT_SLACK,
    )


def resume_job(
    operator: CognitoIamApiOperator, context: Context, event: Mapping[str, Any] | None, job_id: str | None
) -> Any:
    """After the wait: fetch the result (``xcom_value`` as an endpoint) the way a plain run would."""
    what = f"job {job_id}"
    if event and event.get("status") == "timeout":
        # Retryable: a task retry submits a new job, which is what a stuck job calls for.
        raise AirflowException(f"{what}: not done after {operator.job_timeout:g}s ({event.get('polls')} polls)")
    done = finish_wait(event, what)
    result = done.get("xcom_value")
    if not isinstance(result, str) or not result:
        operator.log.info("%s done after %s poll(s); no result endpoint, returning its status", what, done.get("polls"))
        return result if result is not None else done.get("body")
    operator.log.info("%s done after %s poll(s); fetching %s", what, done.get("polls"), result.split("?")[0])
    operator.endpoint, operator.method = result, "GET"
    operator.query, operator.json, operator.data = {}, None, None
    return operator._execute_now(context)
