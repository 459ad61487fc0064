"""OpenLineage events of a real `airflow dags test` run, through the openlineage provider's file transport."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from airflow_cognito_iam.devstack import DevStack
from airflow_cognito_iam.devstack.api_server import orders_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_dags_test_emits_api_input_and_s3_output_with_statistics(
    cognito_iam_conn: DevStack, airflow_env: dict[str, str], airflow_cli: Any, tmp_path: Path
) -> None:
    pytest.importorskip("airflow.providers.openlineage")
    stack = cognito_iam_conn
    events_dir = tmp_path / "ol"
    events_dir.mkdir()
    ds = "2026-03-17"
    env = {
        **airflow_env,
        **stack.env(),
        "AIRFLOW_VAR_COGNITO_IAM_BUCKET": stack.bucket,
        "AIRFLOW_COGNITO_IAM_CACHE_DIR": os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"],
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": f"{events_dir}/event"}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "cognito-iam-e2e",
    }
    result = airflow_cli(["dags", "test", "cognito_iam_orders_daily", ds], env)

    events = [json.loads(p.read_text()) for p in sorted(events_dir.iterdir())]
    task_events = [e for e in events if e.get("job", {}).get("name", "").endswith(".pull_orders")]
    assert {e["eventType"] for e in task_events} >= {"START", "COMPLETE"}, [e.get("eventType") for e in events]
    complete = next(e for e in task_events if e["eventType"] == "COMPLETE")

    api = urlsplit_origin(stack.api_url)
    assert [(d["namespace"], d["name"]) for d in complete["inputs"]] == [(api, "/orders")]
    [output] = complete["outputs"]
    assert (output["namespace"], output["name"]) == (f"s3://{stack.bucket}", f"orders/dt={ds}/orders.jsonl")
    stats = output["outputFacets"]["outputStatistics"]
    assert stats["rowCount"] == len(orders_for(ds))
    assert stats["size"] > 0

    text = "\n".join(p.read_text() for p in events_dir.iterdir())
    for secret in (stack.password, stack.client_secret):
        assert secret not in text
    datasets = json.dumps(complete["inputs"] + complete["outputs"])
    assert "next_token" not in datasets, "query names and values stay out of the datasets"
    assert "?" not in datasets
    assert result.returncode == 0


def urlsplit_origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
