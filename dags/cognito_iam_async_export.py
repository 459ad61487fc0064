"""Async export, deferrable: submit a job with one signed POST, wait in the triggerer, stream the result.

Many data APIs export asynchronously: ``POST /jobs`` answers at once with a job id, ``GET
/jobs/{id}`` reports ``pending`` until the export is ready and then names where to fetch it. One
``CognitoIamApiOperator`` in deferrable mode does all three steps:

1. in the worker, it POSTs the job once (a POST is not retried unless it surely never reached the
   server, so a retry cannot start a second job) and reads ``job_id`` from the answer;
2. it defers: the task leaves its worker slot and the **triggerer** polls ``/jobs/{job_id}`` every
   ``poll_interval`` with SigV4-signed requests (credentials resolved in the triggerer from the
   connection; nothing secret is stored with the trigger). A triggerer restart re-creates the
   trigger, which only polls: the job is never submitted twice. A job that reports ``failed``
   fails the task with the API's reason; a transient outage while polling is waited out;
3. when the job is ``done``, the task resumes on a worker and streams ``result_path`` to
   ``s3://<bucket>/exports/dt=<day>/export.jsonl`` (multipart; the object appears only when
   complete, a re-run replaces it).

The status check is ``airflow_cognito_iam.checks.job_status`` (``status``/``result_path`` fields,
configurable with ``status_check_kwargs``); any function importable in the triggerer can replace it.
For a wait on its own, ``CognitoIamApiSensor(deferrable=True, response_check="pkg.module.check")``.

Settings: bucket from the ``bucket`` param, else the Airflow Variable ``cognito_iam_bucket``;
connections ``cognito_iam_default`` and ``aws_default``. Triggered manually (no schedule). Needs a
running triggerer (``airflow standalone`` and ``make airflow`` start one; so does docker-compose).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Param

from airflow_cognito_iam.operators.api import CognitoIamApiOperator

BUCKET = "{{ params.bucket or var.value.get('cognito_iam_bucket', 'cognito-iam-example') }}"
# A run triggered from the UI or REST may have no logical date (Airflow 3): then the day it ran.
DAY = "{{ (dag_run.logical_date or dag_run.run_after) | ds }}"

with DAG(
    dag_id="cognito_iam_async_export",
    description="POST a job, wait for it in the triggerer (deferrable), stream the result to S3",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    render_template_as_native_obj=True,  # the job spec's numbers and booleans stay numbers and booleans
    params={
        "bucket": Param(None, type=["null", "string"], description="Target bucket; blank: Variable cognito_iam_bucket"),
        "polls": Param(2, type="integer", minimum=0, description="Devstack only: polls before the job is done"),
        "seconds": Param(0, type="number", minimum=0, description="Devstack only: seconds before the job is done"),
        "fail": Param(False, type="boolean", description="Devstack only: the job ends as failed"),
    },
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["cognito_iam", "example"],
    doc_md=__doc__,
) as dag:
    CognitoIamApiOperator(
        task_id="export",
        cognito_iam_conn_id="cognito_iam_default",
        method="POST",
        endpoint="/jobs",
        json={"polls": "{{ params.polls }}", "seconds": "{{ params.seconds }}", "fail": "{{ params.fail }}"},
        deferrable=True,
        status_endpoint="/jobs/{job_id}",
        poll_interval=5,
        job_timeout=2 * 3600,
        destination=f"s3://{BUCKET}/exports/dt={DAY}/export.jsonl",
        aws_conn_id="aws_default",
    )
