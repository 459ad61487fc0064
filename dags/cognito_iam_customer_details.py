"""Customer details: one request per customer, fanned out inside one task, landed as one S3 object.

``orders`` pulls the day's orders (``GET /orders?date={{ ds }}``); ``detail_requests`` turns their
distinct customer ids into a list of requests (``{"endpoint": "/customers/<id>"}``) and returns it
to XCom; ``details`` (``CognitoIamFanOutOperator``) receives that list through its templated
``requests`` argument (an XComArg) and runs the requests 8 at a time on one sign-in, each with its
own retries. The details land in ``s3://<bucket>/customers/dt=<ds>/details.jsonl``, one JSON line
per customer: ``{"request": <index in the list>, "record": {...}}``, written in completion order.

Why not dynamic task mapping (``.expand(endpoint=...)``)? Each mapped instance is a task: scheduled,
started as a process, its result stored as an XCom row. For a few hundred small requests that
bookkeeping costs far more than the requests; see README "Fan-out" for the measured difference.

Failure semantics: a customer the API refuses (404, 403) fails the task naming it, and no object is
written; set ``on_error="skip"`` to store the others and list it in the returned summary. A 429
from the API pauses all 8 workers together (``Retry-After`` honoured).

Settings: the ``bucket`` param, else the Airflow Variable ``cognito_iam_bucket``; connections
``cognito_iam_default`` and ``aws_default``. Triggered manually (no schedule).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
import requests
from airflow.sdk import DAG, Param, task

from airflow_cognito_iam.operators.api import CognitoIamApiOperator
from airflow_cognito_iam.operators.fanout import CognitoIamFanOutOperator

BUCKET = "{{ params.bucket or var.value.get('cognito_iam_bucket', 'cognito-iam-example') }}"


def customer_ids(response: requests.Response) -> list[str]:
    """The customer id of each order on the page."""
    return [str(order["customer_id"]) for order in response.json()["records"]]


with DAG(
    dag_id="cognito_iam_customer_details",
    description="Fan-out in one task: the details of each customer of the day's orders, into one S3 object",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "bucket": Param(None, type=["null", "string"], description="Target bucket; blank: Variable cognito_iam_bucket"),
    },
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["cognito_iam", "example"],
    doc_md=__doc__,
) as dag:
    orders = CognitoIamApiOperator(
        task_id="orders",
        cognito_iam_conn_id="cognito_iam_default",
        endpoint="/orders",
        query={"date": "{{ ds }}", "limit": 1000},
        response_filter=customer_ids,
    )

    @task
    def detail_requests(ids: list[str]) -> list[dict[str, Any]]:
        """One request per distinct customer, in first-seen order."""
        return [{"endpoint": f"/customers/{cid}"} for cid in dict.fromkeys(ids)]

    details = CognitoIamFanOutOperator(
        task_id="details",
        cognito_iam_conn_id="cognito_iam_default",
        requests=detail_requests(orders.output),
        max_concurrency=8,
        destination=f"s3://{BUCKET}/customers/dt={{{{ ds }}}}/details.jsonl",
        aws_conn_id="aws_default",
    )
