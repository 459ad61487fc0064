"""Benchmark only (benchmarks/mapped_cluster.py): the mapped DAG with the count from the run's conf.

On a cluster the DAG is parsed by the dag-processor and every worker, so the count cannot come from
an environment variable as in ``cognito_iam_bench_mapped``: one upstream task reads
``dag_run.conf["count"]`` and the requests are mapped over its result. That task is one instance
in every run, so it cancels out of the per-instance figure.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, task

from airflow_cognito_iam.operators.api import CognitoIamApiOperator

with DAG(
    dag_id="cognito_iam_bench_mapped_conf",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=64,
    tags=["cognito_iam", "benchmark"],
) as dag:

    @task
    def endpoints(**context: Any) -> list[str]:
        count = int(context["dag_run"].conf.get("count", 1))
        return [f"/customers/cus-{n:04d}" for n in range(1, count + 1)]

    CognitoIamApiOperator.partial(task_id="pull", cognito_iam_conn_id="cognito_iam_default").expand(
        endpoint=endpoints()
    )
