"""Three tasks per day on one Cognito identity: two signed extracts to S3, then a summary of them.

For every logical date (``{{ ds }}``), with the ``cognito_iam_default`` connection:

* ``extract_orders``: ``GET /orders?date={{ ds }}``, page by page, streamed to
  ``s3://<bucket>/pipeline/dt=<ds>/orders.jsonl`` (one record per line);
* ``extract_cancelled``: the same day's orders, keeping only ``status == "cancelled"``, to
  ``.../cancelled.jsonl`` (a feed of its own, e.g. for refunds);
* ``summarise`` (after ``extract_orders``): reads ``orders.jsonl`` back *as the Cognito identity*
  (``CognitoIamHook.get_boto3_session()``) and writes ``.../summary.json``: the record count and
  the amount per currency.

Each task is its own process that needs the identity's credentials, so a backfill of N days runs
3N of them. With ``credential_cache = "redis"`` the whole deployment signs in once for all of them;
``shared`` signs in once per worker host (``benchmarks/backfill_signins.py`` measures both).
Backfill-safe: every key depends only on the logical date, so re-running a day replaces that day.

Settings: bucket from the ``bucket`` param, else the Airflow Variable ``cognito_iam_bucket``; the S3
endpoint for ``summarise`` from the Variable ``cognito_iam_s3_endpoint_url`` (empty on AWS, set by
the devstack). Connections: ``cognito_iam_default`` and ``aws_default`` (the extracts' S3 writes).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pendulum
import requests
from airflow.sdk import DAG, Param, task

from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
from airflow_cognito_iam.operators.api import CognitoIamApiOperator

BUCKET = "{{ params.bucket or var.value.get('cognito_iam_bucket', 'cognito-iam-example') }}"
PREFIX = "pipeline/dt={{ ds }}"


def next_page(response: requests.Response) -> dict[str, Any] | None:
    """The request for the page after this one, or None when the API returns no ``next_token``."""
    token = response.json().get("next_token")
    if not token:
        return None
    query = dict(parse_qsl(urlsplit(response.request.url or "").query))
    return {"query": {**query, "next_token": token}}


def all_orders(response: requests.Response) -> list[dict[str, Any]]:
    """Every record of the page."""
    records: list[dict[str, Any]] = response.json()["records"]
    return records


def cancelled_orders(response: requests.Response) -> list[dict[str, Any]]:
    """Only the cancelled records of the page."""
    return [record for record in all_orders(response) if record.get("status") == "cancelled"]


with DAG(
    dag_id="cognito_iam_orders_pipeline",
    description="Two signed extracts to S3 and a summary read back as the identity, per day",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    params={
        "bucket": Param(None, type=["null", "string"], description="Target bucket; blank: Variable cognito_iam_bucket"),
        "limit": Param(100, type="integer", minimum=1, maximum=1000, description="Records per page"),
    },
    default_args={"retries": 3, "retry_delay": timedelta(seconds=30), "execution_timeout": timedelta(minutes=30)},
    tags=["cognito_iam", "example"],
    doc_md=__doc__,
) as dag:
    extracts = {
        name: CognitoIamApiOperator(
            task_id=f"extract_{name}",
            cognito_iam_conn_id="cognito_iam_default",
            endpoint="/orders",
            query={"date": "{{ ds }}", "limit": "{{ params.limit }}"},
            pagination=next_page,
            response_filter=keep,
            destination=f"s3://{BUCKET}/{PREFIX}/{name}.jsonl",
            aws_conn_id="aws_default",
        )
        for name, keep in (("orders", all_orders), ("cancelled", cancelled_orders))
    }

    @task
    def summarise(bucket: str, prefix: str, endpoint_url: str) -> dict[str, Any]:
        """Count the day's orders and total them per currency, reading and writing S3 as the identity."""
        s3 = CognitoIamHook("cognito_iam_default").get_boto3_session().client("s3", endpoint_url=endpoint_url or None)
        body = s3.get_object(Bucket=bucket, Key=f"{prefix}/orders.jsonl")["Body"]
        count, amounts = 0, defaultdict(float)
        for line in body.iter_lines():
            if line:
                record = json.loads(line)
                count += 1
                amounts[record["currency"]] += float(record["amount"])
        body.close()
        summary = {"orders": count, "amount_by_currency": {k: round(v, 2) for k, v in sorted(amounts.items())}}
        s3.put_object(Bucket=bucket, Key=f"{prefix}/summary.json", Body=json.dumps(summary).encode())
        return summary

    # Templated when the task runs; nothing is read at parse time.
    extracts["orders"] >> summarise(
        bucket=BUCKET, prefix=PREFIX, endpoint_url="{{ var.value.get('cognito_iam_s3_endpoint_url', '') }}"
    )
