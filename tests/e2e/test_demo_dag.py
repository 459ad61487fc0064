"""The daily example DAG, run by a real `airflow dags test`, lands the day's orders in the stack's S3.

This is what `make demo` shows and what CI runs end to end: sign-in (SRP + SECRET_HASH), identity
pool exchange, SigV4 against a verifying API, pagination, and a multipart upload to S3, all in the
Airflow task runner, with nothing mocked.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from airflow_cognito_iam.devstack import DevStack
from airflow_cognito_iam.devstack.api_server import orders_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DAG_ID = "cognito_iam_orders_daily"


def test_daily_dag_writes_every_order_of_the_logical_date_once(
    cognito_iam_conn: DevStack, airflow_env: dict[str, str], airflow_cli: Any
) -> None:
    stack = cognito_iam_conn
    ds = "2026-03-14"
    env = {
        **airflow_env,
        **stack.env(),
        "AIRFLOW_VAR_COGNITO_IAM_BUCKET": stack.bucket,
        # The fixture's per-test cache: the run starts without cached credentials.
        "AIRFLOW_COGNITO_IAM_CACHE_DIR": os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"],
    }

    result = airflow_cli(["dags", "test", DAG_ID, ds], env)

    key = f"orders/dt={ds}/orders.jsonl"
    s3 = stack.s3_client()
    body = s3.get_object(Bucket=stack.bucket, Key=key)["Body"].read().decode()
    records = [json.loads(line) for line in body.splitlines()]
    expected = orders_for(ds)
    # Every page, in order, each record exactly once: nothing lost or repeated across pages.
    assert records == expected
    listed = s3.list_objects_v2(Bucket=stack.bucket, Prefix=f"orders/dt={ds}/")["Contents"]
    assert [obj["Key"] for obj in listed] == [key]

    stats = stack.stats()
    pages = -(-len(expected) // 100)  # the DAG's default page size is 100
    assert stats["api"]["routes"] == {"GET /orders": {"200": pages}}, stats["api"]
    # One sign-in (SRP: InitiateAuth + RespondToAuthChallenge) and one exchange for the whole run.
    assert stats["cognito"] == {
        "InitiateAuth": 1,
        "RespondToAuthChallenge": 1,
        "GetId": 1,
        "GetCredentialsForIdentity": 1,
    }
    assert stack.password not in result.stdout + result.stderr
    assert stack.client_secret not in result.stdout + result.stderr
