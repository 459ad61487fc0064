"""The other example DAGs run end to end with `airflow dags test` against the devstack.

Examples are copied by users, so each one is run for real here (not just parsed), and judged by
what the stack observed: the routes called, the objects written, the Cognito calls made.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from airflow_cognito_iam.devstack import DevStack

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DS = "2026-03-14"


def _run(stack: DevStack, airflow_env: dict[str, str], airflow_cli: Any, dag_id: str, *extra: str) -> str:
    env = {
        **airflow_env,
        **stack.env(),
        "AIRFLOW_VAR_COGNITO_IAM_BUCKET": stack.bucket,
        "AIRFLOW_VAR_COGNITO_IAM_S3_ENDPOINT_URL": stack.moto_endpoint_url,
        # The fixture's per-test cache: every test starts without cached credentials.
        "AIRFLOW_COGNITO_IAM_CACHE_DIR": os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"],
    }
    result = airflow_cli(["dags", "test", dag_id, DS, *extra], env)
    output: str = result.stdout + result.stderr
    assert stack.password not in output
    assert stack.client_secret not in output
    return output


def test_mapped_dag_calls_each_endpoint_once_with_one_sign_in(
    cognito_iam_conn: DevStack, airflow_env: dict[str, str], airflow_cli: Any
) -> None:
    _run(cognito_iam_conn, airflow_env, airflow_cli, "cognito_iam_mapped_endpoints")
    stats = cognito_iam_conn.stats()
    assert stats["api"]["routes"] == {"GET /whoami": {"200": 1}, "GET /orders": {"200": 1}}
    # Two mapped task processes, one sign-in: the second finds the first's credentials in the shared cache.
    assert stats["cognito"]["InitiateAuth"] == 1
    assert stats["cognito"]["GetCredentialsForIdentity"] == 1


def test_bearer_dag_uses_the_id_token_without_the_identity_pool(
    cognito_iam_conn: DevStack, airflow_env: dict[str, str], airflow_cli: Any
) -> None:
    _run(cognito_iam_conn, airflow_env, airflow_cli, "cognito_iam_bearer_token")
    stats = cognito_iam_conn.stats()
    assert stats["api"]["routes"] == {"GET /bearer/whoami": {"200": 1}}
    assert "GetCredentialsForIdentity" not in stats["cognito"]


def test_identity_boto3_dag_reads_the_newest_object_as_the_identity(
    cognito_iam_conn: DevStack, airflow_env: dict[str, str], airflow_cli: Any
) -> None:
    stack = cognito_iam_conn
    s3 = stack.s3_client()
    s3.put_object(Bucket=stack.bucket, Key="orders/dt=2000-01-01/orders.jsonl", Body=b'{"old": 1}\n')
    s3.put_object(Bucket=stack.bucket, Key="orders/dt=2099-12-31/orders.jsonl", Body=b'{"newest": 1}\n')
    stack.reset_stats()

    output = _run(stack, airflow_env, airflow_cli, "cognito_iam_identity_boto3")

    assert "'key': 'orders/dt=2099-12-31/orders.jsonl'" in output
    assert """'lines': ['{"newest": 1}']""" in output
    stats = stack.stats()
    assert stats["cognito"]["GetCredentialsForIdentity"] == 1, "the session is the Cognito identity's"
    assert stats["s3"]["GET"] >= 2  # list + get


def test_customer_details_dag_fans_out_over_the_upstream_xcom(
    cognito_iam_conn: DevStack, airflow_env: dict[str, str], airflow_cli: Any
) -> None:
    from airflow_cognito_iam.devstack.api_server import customer_for, orders_for

    stack = cognito_iam_conn
    stack.set_latency(0.05, "/customers/")  # long enough for the requests to overlap
    _run(stack, airflow_env, airflow_cli, "cognito_iam_customer_details")

    ids = list(dict.fromkeys(order["customer_id"] for order in orders_for(DS)))
    body = stack.s3_client().get_object(Bucket=stack.bucket, Key=f"customers/dt={DS}/details.jsonl")["Body"].read()
    lines = [json.loads(line) for line in body.splitlines()]
    # The upstream task's list, in its order, reached the fan-out task through XCom: one line per request.
    assert sorted(line["request"] for line in lines) == list(range(len(ids)))
    assert all(line["record"] == customer_for(ids[line["request"]]) for line in lines)
    stats = stack.stats()
    assert stats["api"]["routes"]["GET /customers/{id}"] == {"200": len(ids)}
    assert stats["api"]["routes"]["GET /orders"] == {"200": 1}
    assert 2 <= stats["api"]["in_flight_peak"] <= 8, "the requests really ran concurrently"
    assert stats["cognito"]["InitiateAuth"] == 1, "two tasks, one sign-in (shared credential cache)"
