"""Test DAG (copied into the cluster's dags folder): N async jobs, one deferrable sensor per job.

``submit`` creates the jobs with signed POSTs (one task, one sign-in, stored in the Redis cache);
``wait`` is mapped over them in deferrable mode, so every wait sits in the triggerer, and ends
there (``end_from_trigger``) with its result in XCom.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
from airflow_cognito_iam.sensors.api import CognitoIamApiSensor

with DAG(
    dag_id="cognito_iam_deferred_waits",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"jobs": Param(100, type="integer", minimum=1)},
    max_active_tasks=200,
    tags=["cognito_iam", "test"],
) as dag:

    @task
    def submit(**context: Any) -> list[str]:
        hook = CognitoIamHook()
        count = int(context["params"]["jobs"])
        # Not done until the test says so (POST /_control/jobs-done): every sensor defers first.
        return [f"/jobs/{hook.request('POST', '/jobs', json={'polls': 100000}).json()['job_id']}" for _ in range(count)]

    CognitoIamApiSensor.partial(
        task_id="wait",
        response_check="airflow_cognito_iam.checks.job_status",
        deferrable=True,
        end_from_trigger=True,  # done is done: the triggerer ends each task, no worker resumes it
        poke_interval=2,
        timeout=1800,
    ).expand(endpoint=submit())
