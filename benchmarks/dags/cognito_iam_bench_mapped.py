"""Benchmark only (benchmarks/fanout.py): one mapped task instance per customer request.

The same GETs the fan-out task makes, as dynamic task mapping would make them: each
``/customers/<id>`` is its own task instance of ``CognitoIamApiOperator``. The count comes from
``COGNITO_IAM_BENCH_MAPPED`` (read at parse time: this DAG is not an example to copy).
"""

from __future__ import annotations

import os

import pendulum
from airflow.sdk import DAG

from airflow_cognito_iam.operators.api import CognitoIamApiOperator

COUNT = int(os.environ.get("COGNITO_IAM_BENCH_MAPPED", "50"))

with DAG(
    dag_id="cognito_iam_bench_mapped",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["cognito_iam", "benchmark"],
) as dag:
    CognitoIamApiOperator.partial(task_id="pull", cognito_iam_conn_id="cognito_iam_default").expand(
        endpoint=[f"/customers/cus-{n:04d}" for n in range(1, COUNT + 1)]
    )
