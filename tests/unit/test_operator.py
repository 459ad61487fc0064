"""Operator and sensor pure logic: argument validation, templating, pagination merge, error classes.

Network behaviour is covered against the devstack in tests/integration/test_operator*.py.
"""

from __future__ import annotations

import datetime as dt

import pytest
import requests
import urllib3.exceptions
from airflow.sdk import DAG, BaseOperator
from airflow.sdk.definitions.xcom_arg import PlainXComArg
from airflow.sdk.exceptions import AirflowFailException

from airflow_cognito_iam.operators.api import (
    CognitoIamApiOperator,
    XComTooLargeError,
    is_broken_body,
    merge_request,
)
from airflow_cognito_iam.sensors.api import CognitoIamApiSensor


def _render(op: BaseOperator, dag: DAG, logical_date: dt.datetime) -> None:
    """Render template fields as the task runner would for a run at ``logical_date`` (no DB needed)."""
    context = {
        "ds": logical_date.strftime("%Y-%m-%d"),
        "ds_nodash": logical_date.strftime("%Y%m%d"),
        "logical_date": logical_date,
        "params": dag.params.validate(),
        "dag": dag,
        "task": op,
    }
    op.render_template_fields(context)  # type: ignore[arg-type]


def test_templated_fields_render_with_logical_date_and_params() -> None:
    with DAG("orders", schedule="@daily", start_date=dt.datetime(2024, 1, 1), params={"region": "emea"}) as dag:
        op = CognitoIamApiOperator(
            task_id="pull",
            cognito_iam_conn_id="orders_api_{{ params.region }}",
            aws_conn_id="aws_{{ params.region }}",
            endpoint="/orders/{{ params.region }}",
            query={"date": "{{ ds }}", "limit": 50},
            headers={"X-Run": "{{ ds_nodash }}"},
            json={"since": "{{ ds }}"},
            destination="s3://bucket/orders/dt={{ ds }}/orders.jsonl",
        )
    _render(op, dag, dt.datetime(2024, 3, 5, tzinfo=dt.UTC))
    assert op.endpoint == "/orders/emea"
    assert (op.cognito_iam_conn_id, op.aws_conn_id) == ("orders_api_emea", "aws_emea")
    assert op.query == {"date": "2024-03-05", "limit": 50}
    assert op.headers == {"X-Run": "20240305"}
    assert op.json == {"since": "2024-03-05"}
    assert op.destination == "s3://bucket/orders/dt=2024-03-05/orders.jsonl"


def test_template_fields_are_the_documented_ones_and_avoid_reserved_names() -> None:
    assert set(CognitoIamApiOperator.template_fields) == {
        "cognito_iam_conn_id",
        "aws_conn_id",
        "endpoint",
        "query",
        "json",
        "data",
        "headers",
        "destination",
        "destination_conn_id",
        "status_endpoint",
    }
    op = CognitoIamApiOperator(task_id="t", endpoint="/x", query={"a": 1})
    # BaseOperator's own `params` (DAG params) and `output` (XComArg) must keep their meaning.
    assert dict(op.params) == {}
    assert op.query == {"a": 1}
    output = op.output
    assert isinstance(output, PlainXComArg)
    assert output.operator is op


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"auth": "basic"}, "auth='basic'"),
        ({"method": "FETCH"}, "method='FETCH'"),
        ({"json": {"a": 1}, "data": "a=1"}, "either json or data"),
        ({"max_xcom_bytes": 0}, "max_xcom_bytes"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"allowed_hosts": "example.com"}, "allowed_hosts"),
        ({"upload_concurrency": 0}, "upload_concurrency"),
        ({"upload_concurrency": 2.5}, "upload_concurrency"),
    ],
)
def test_bad_arguments_fail_at_dag_parse_naming_the_argument(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        CognitoIamApiOperator(task_id="bad_task", endpoint="/x", **kwargs)  # type: ignore[arg-type]
    assert "bad_task" in str(info.value)


def test_sensor_rejects_unknown_auth_mode() -> None:
    with pytest.raises(ValueError, match="auth='sigv2'"):
        CognitoIamApiSensor(task_id="s", endpoint="/jobs/1", auth="sigv2")  # type: ignore[arg-type]


def test_bad_destination_fails_before_any_network_call() -> None:
    # No connection exists: reaching the hook would fail differently, so this proves the order.
    op = CognitoIamApiOperator(task_id="t", endpoint="/orders", destination="gs://bucket/key")
    with pytest.raises(AirflowFailException, match="no filesystem for scheme 'gs'"):
        op.execute({})


def test_merge_request_merges_dicts_and_replaces_scalars() -> None:
    current = {"endpoint": "/orders", "query": {"date": "2024-01-01", "limit": 2}, "json": None, "data": None}
    merged = merge_request(current, {"query": {"next_token": "abc"}, "endpoint": "/orders/v2"})
    assert merged == {
        "endpoint": "/orders/v2",
        "query": {"date": "2024-01-01", "limit": 2, "next_token": "abc"},
        "json": None,
        "data": None,
    }
    assert current["query"] == {"date": "2024-01-01", "limit": 2}, "the previous request is not mutated"


def test_merge_request_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"unknown keys \['extra_options'\]"):
        merge_request({"endpoint": "/x"}, {"extra_options": {}})


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (requests.exceptions.ChunkedEncodingError("reset"), True),
        (requests.exceptions.ConnectionError("reset"), True),
        (requests.exceptions.ReadTimeout("slow"), True),
        (urllib3.exceptions.ProtocolError("IncompleteRead"), True),
        (requests.exceptions.SSLError("bad cert"), False),
        (ValueError("bad json"), False),
    ],
)
def test_broken_body_classifier(exc: BaseException, expected: bool) -> None:
    assert is_broken_body(exc) is expected


def test_xcom_too_large_is_not_retried_by_airflow() -> None:
    assert issubclass(XComTooLargeError, AirflowFailException)


def test_per_endpoint_caches_stay_bounded_over_many_distinct_endpoints() -> None:
    """A fan-out over 10,000 customers must not keep a retry object per customer for the whole task."""
    from airflow_cognito_iam.operators.api import MAX_CACHED_ENDPOINTS

    op = CognitoIamApiOperator(task_id="details", endpoint="/customers")
    first = op._body_retrying({"endpoint": "/customers/cus-0"})
    assert op._body_retrying({"endpoint": "/customers/cus-0"}) is first, "built once per request, not per page"
    for n in range(10_000):
        op._body_retrying({"endpoint": f"/customers/cus-{n}"})
    assert len(op._body_retryings) <= MAX_CACHED_ENDPOINTS
