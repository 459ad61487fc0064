"""Async export: start a job with a signed POST, wait for it in reschedule mode, stream the result.

Many data APIs export asynchronously: ``POST /jobs`` answers at once with a job id, ``GET
/jobs/{id}`` reports ``pending`` until the export is ready and then names where to fetch it. This
DAG maps that onto three tasks:

1. ``start_export`` - ``CognitoIamApiOperator`` POSTs the job (not retried by the hook unless the
   request surely never reached the server, so a retry cannot start a second job);
2. ``wait_for_export`` - ``CognitoIamApiSensor`` in ``mode="reschedule"``: between pokes the task
   frees its worker slot, and each poke signs with cached (refreshed when needed) credentials;
   it returns the result path through XCom;
3. ``download_export`` - streams the result body to ``s3://<bucket>/exports/dt=<ds>/export.jsonl``
   (multipart upload; the object appears only when complete, a re-run replaces it).

Settings: bucket from the ``bucket`` param, else the Airflow Variable ``cognito_iam_bucket``;
connections ``cognito_iam_default`` and ``aws_default``. Triggered manually (no schedule).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
import requests
from airflow.sdk import DAG, Param, PokeReturnValue

from airflow_cognito_iam.operators.api import CognitoIamApiOperator
from airflow_cognito_iam.sensors.api import CognitoIamApiSensor

BUCKET = "{{ params.bucket or var.value.get('cognito_iam_bucket', 'cognito-iam-example') }}"


def export_ready(response: requests.Response) -> PokeReturnValue:
    """Done when the job is; a failed job fails the task instead of waiting for the timeout."""
    job: dict[str, Any] = response.json()
    if job.get("status") == "failed":
        raise RuntimeError(f"export job {job.get('job_id')} failed: {job.get('error', 'no reason given')}")
    return PokeReturnValue(is_done=job.get("status") == "done", xcom_value=job.get("result_path"))


with DAG(
    dag_id="cognito_iam_async_export",
    description="POST a job, wait with a reschedule-mode sensor, stream the result to S3",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "bucket": Param(None, type=["null", "string"], description="Target bucket; blank: Variable cognito_iam_bucket"),
        "polls": Param(2, type="integer", minimum=0, description="Devstack only: polls before the job is done"),
    },
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["cognito_iam", "example"],
    doc_md=__doc__,
) as dag:
    start = CognitoIamApiOperator(
        task_id="start_export",
        cognito_iam_conn_id="cognito_iam_default",
        method="POST",
        endpoint="/jobs",
        json={"polls": "{{ params.polls }}"},
    )

    wait = CognitoIamApiSensor(
        task_id="wait_for_export",
        cognito_iam_conn_id="cognito_iam_default",
        endpoint="/jobs/{{ ti.xcom_pull(task_ids='start_export')['job_id'] }}",
        response_check=export_ready,
        mode="reschedule",
        poke_interval=timedelta(seconds=30),
        timeout=timedelta(hours=2),
    )

    download = CognitoIamApiOperator(
        task_id="download_export",
        cognito_iam_conn_id="cognito_iam_default",
        endpoint="{{ ti.xcom_pull(task_ids='wait_for_export') }}",
        destination=f"s3://{BUCKET}/exports/dt={{{{ ds }}}}/export.jsonl",
        aws_conn_id="aws_default",
        execution_timeout=timedelta(hours=1),
    )

    start >> wait >> download
