"""Daily orders pull: a paginated, SigV4-signed API call landed in S3, one object per day.

Every day at midnight UTC this DAG signs in to the Cognito user pool, exchanges the ID token for
identity pool credentials, and pulls ``GET /orders?date={{ ds }}`` page by page (``next_token``)
from the IAM-protected API in the ``cognito_iam_default`` connection. The records are streamed to
``s3://<bucket>/orders/dt=<ds>/orders.jsonl`` as JSON lines (one record per line), written with the
``aws_default`` connection.

Backfill-safe: the key depends only on the logical date, and the object is published only when
complete, so re-running or backfilling a day replaces exactly that day's object. The task emits an
event on the ``cognito_iam_orders`` asset alias naming the object written, with the same statistics
as its OpenLineage facets (``uri``, ``records``, ``bytes``, ``pages``, ``format``, ``compression``),
so downstream DAGs can schedule on it and read what arrived::

    from airflow.sdk import DAG, AssetAlias, task

    with DAG("orders_report", schedule=[AssetAlias("cognito_iam_orders")]):

        @task(inlets=[AssetAlias("cognito_iam_orders")])
        def report(*, inlet_events):
            event = inlet_events[AssetAlias("cognito_iam_orders")][-1]
            print(event.asset.uri, event.extra["records"], "records", event.extra["bytes"], "bytes")

        report()

Settings (no secrets here; they live in the connections):
* bucket: the ``bucket`` param when triggering, else the Airflow Variable ``cognito_iam_bucket``,
  else ``cognito-iam-example``;
* page size: the ``limit`` param;
* connections: ``cognito_iam_default`` (API + user pool) and ``aws_default`` (S3).

Try it offline: ``make demo`` runs this DAG against the devstack with ``airflow dags test``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pendulum
import requests
from airflow.sdk import DAG, AssetAlias, Param

from airflow_cognito_iam.operators.api import CognitoIamApiOperator

BUCKET = "{{ params.bucket or var.value.get('cognito_iam_bucket', 'cognito-iam-example') }}"


def next_orders_page(response: requests.Response) -> dict[str, Any] | None:
    """Ask for the page after this one, or stop when the API returns no ``next_token``."""
    token = response.json().get("next_token")
    if not token:
        return None
    # Rebuilt from the request just made, so the date and page size carry over unchanged.
    query = dict(parse_qsl(urlsplit(response.request.url or "").query))
    return {"query": {**query, "next_token": token}}


def orders_of_page(response: requests.Response) -> list[dict[str, Any]]:
    """Keep the records of a page; each becomes one line of the JSON-lines object."""
    records: list[dict[str, Any]] = response.json()["records"]
    return records


with DAG(
    dag_id="cognito_iam_orders_daily",
    description="Paginated orders pull from an IAM-protected API to S3, one object per day",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=4,
    params={
        "bucket": Param(None, type=["null", "string"], description="Target bucket; blank: Variable cognito_iam_bucket"),
        "limit": Param(100, type="integer", minimum=1, maximum=1000, description="Records per page"),
    },
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=15),
    },
    tags=["cognito_iam", "example"],
    doc_md=__doc__,
) as dag:
    CognitoIamApiOperator(
        task_id="pull_orders",
        cognito_iam_conn_id="cognito_iam_default",
        endpoint="/orders",
        query={"date": "{{ ds }}", "limit": "{{ params.limit }}"},
        pagination=next_orders_page,
        response_filter=orders_of_page,
        destination=f"s3://{BUCKET}/orders/dt={{{{ ds }}}}/orders.jsonl",
        aws_conn_id="aws_default",
        outlets=[AssetAlias("cognito_iam_orders")],
        execution_timeout=timedelta(minutes=30),
    )
