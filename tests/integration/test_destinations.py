"""Destinations through Airflow's object storage, and record formats, against the devstack.

``s3://`` and ``file://`` given as an ObjectStoragePath keep their fast sinks; ``memory://`` (an
fsspec filesystem attached to Airflow's object storage) proves the generic path: temporary name,
moved into place when complete, removed on failure.
"""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowException
from fsspec.implementations.memory import MemoryFileSystem

from airflow_cognito_iam.devstack.api_server import orders_for
from airflow_cognito_iam.operators.api import CognitoIamApiOperator

pytestmark = pytest.mark.integration

DATE = "2026-02-03"


def next_page(response: Any) -> dict[str, Any] | None:
    token = response.json().get("next_token")
    return {"query": {"next_token": token}} if token else None


def orders(**kwargs: Any) -> CognitoIamApiOperator:
    args: dict[str, Any] = {
        "endpoint": "/orders",
        "query": {"date": DATE, "limit": 50},
        "pagination": next_page,
        "response_filter": lambda r: r.json()["records"],
    }
    args.update(kwargs)
    return CognitoIamApiOperator(task_id="pull", **args)


@pytest.fixture
def memory_fs() -> MemoryFileSystem:
    from airflow.sdk.io.store import attach

    fs = MemoryFileSystem()
    fs.store.clear()
    attach("memory", fs=fs)
    return fs


def test_an_object_storage_path_on_s3_keeps_the_multipart_sink(cognito_iam_conn: Any) -> None:
    stack = cognito_iam_conn
    path = ObjectStoragePath(f"s3://{stack.bucket}/osp/orders.jsonl", conn_id="aws_default")
    summary = orders(destination=path).execute({})
    body = stack.s3_client().get_object(Bucket=stack.bucket, Key="osp/orders.jsonl")["Body"].read()
    assert [json.loads(line) for line in body.splitlines()] == orders_for(DATE)
    assert summary["uri"] == f"s3://{stack.bucket}/osp/orders.jsonl"


def test_an_object_storage_path_on_file(cognito_iam_conn: Any, tmp_path: Path) -> None:
    target = tmp_path / "out" / "orders.jsonl"
    orders(destination=ObjectStoragePath(f"file://{target}")).execute({})
    assert [json.loads(line) for line in target.read_text().splitlines()] == orders_for(DATE)


def test_the_generic_path_writes_a_temporary_object_and_moves_it(cognito_iam_conn: Any, memory_fs: Any) -> None:
    summary = orders(destination="memory://exports/orders.jsonl").execute({})
    assert memory_fs.ls("/exports", detail=False) == ["/exports/orders.jsonl"]
    body = memory_fs.cat("/exports/orders.jsonl")
    assert [json.loads(line) for line in body.splitlines()] == orders_for(DATE)
    assert summary["records"] == len(orders_for(DATE))


def test_the_generic_path_leaves_nothing_when_a_page_fails(cognito_iam_conn: Any, memory_fs: Any) -> None:
    calls: list[int] = []

    def then_a_bad_token(response: Any) -> dict[str, Any] | None:
        calls.append(1)
        return next_page(response) if len(calls) < 2 else {"query": {"next_token": "not-a-token"}}

    with pytest.raises(AirflowException):
        orders(destination="memory://exports/broken.jsonl", pagination=then_a_bad_token).execute({})
    assert not memory_fs.exists("/exports/broken.jsonl")
    assert memory_fs.find("/exports") == [], "no temporary object left behind"


def test_an_unknown_scheme_is_refused_before_any_call(cognito_iam_conn: Any) -> None:
    stack = cognito_iam_conn
    stack.reset_stats()
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="no filesystem for scheme 'gs'"):
        orders(destination="gs://bucket/x.jsonl").execute({})
    assert stack.stats()["cognito"] == {}


def test_json_format_writes_one_array(cognito_iam_conn: Any, tmp_path: Path) -> None:
    target = tmp_path / "orders.json"
    summary = orders(destination=f"file://{target}", output_format="json").execute({})
    assert json.loads(target.read_text()) == orders_for(DATE)
    assert summary["format"] == "json"


def test_gz_suffix_compresses_jsonl_on_the_fly(cognito_iam_conn: Any) -> None:
    stack = cognito_iam_conn
    summary = orders(destination=f"s3://{stack.bucket}/gz/orders.jsonl.gz").execute({})
    blob = stack.s3_client().get_object(Bucket=stack.bucket, Key="gz/orders.jsonl.gz")["Body"].read()
    lines = gzip.decompress(blob).splitlines()
    assert [json.loads(line) for line in lines] == orders_for(DATE)
    assert summary["compression"] == "gzip"
    assert summary["bytes"] == len(blob)


def test_a_streamed_body_can_be_gzipped(cognito_iam_conn: Any, tmp_path: Path) -> None:
    target = tmp_path / "export.jsonl"
    CognitoIamApiOperator(
        task_id="export", endpoint="/export", query={"size_mb": 3}, destination=f"file://{target}",
        compression="gzip",
    ).execute({})
    plain = gzip.decompress(target.read_bytes())
    assert len(plain) == 3 * 1024 * 1024 - (3 * 1024 * 1024) % len(plain.splitlines()[0] + b"\n")


def test_raw_format_keeps_page_bytes_and_base64_for_xcom(cognito_iam_conn: Any, tmp_path: Path) -> None:
    target = tmp_path / "pages.raw"
    orders(destination=f"file://{target}", output_format="raw", response_filter=None).execute({})
    text = target.read_text()
    assert text.startswith("{")
    assert text.count('"records"') == -(-len(orders_for(DATE)) // 50)
    value = CognitoIamApiOperator(task_id="x", endpoint="/whoami", output_format="raw").execute({})
    assert json.loads(base64.b64decode(value))["identity_id"]


def test_asset_events_carry_the_lineage_statistics(cognito_iam_conn: Any) -> None:
    from airflow.sdk import Asset

    stack = cognito_iam_conn
    uri = f"s3://{stack.bucket}/assets/orders.jsonl"
    asset = Asset(uri=uri)

    class Events(dict):  # type: ignore[type-arg]
        def __missing__(self, key: Any) -> Any:
            class Accessor:
                extra: dict[str, Any] = {}

            self[key] = Accessor()
            return self[key]

    events = Events()
    op = orders(destination=uri, outlets=[asset])
    summary = op.execute({"outlet_events": events})
    extra = events[asset].extra
    assert extra["records"] == summary["records"] == len(orders_for(DATE))
    assert extra["bytes"] == summary["bytes"]
    assert extra["format"] == "jsonl"
    lineage = op.get_openlineage_facets_on_complete(None)
    stats = lineage.outputs[0].outputFacets["outputStatistics"]
    assert (stats.rowCount, stats.size) == (extra["records"], extra["bytes"])
