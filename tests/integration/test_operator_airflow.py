"""The operator and sensor under a real ``airflow tasks test`` (task SDK runner, templating, XCom).

One migrated SQLite AIRFLOW_HOME per session; the DAG file lives in a temp dags folder so these
tests do not depend on the example DAGs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from airflow_cognito_iam.devstack import DevStack
from airflow_cognito_iam.devstack.api_server import orders_for
from airflow_cognito_iam.operators.api import CognitoIamApiOperator

pytestmark = pytest.mark.integration

AIRFLOW = str(Path(sys.executable).parent / "airflow")

DAG_FILE = """
from __future__ import annotations

import pendulum
from airflow.sdk import DAG, AssetAlias

from airflow_cognito_iam.operators.api import CognitoIamApiOperator
from airflow_cognito_iam.sensors.api import CognitoIamApiSensor


def next_page(response):
    token = response.json()["next_token"]
    return {"query": {"next_token": token}} if token else None


def job_done(response):
    return response.json()["status"] == "done"


with DAG(
    dag_id="operator_tasks_test",
    schedule="@daily",
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    params={"bucket": "", "job_id": ""},
):
    CognitoIamApiOperator(
        task_id="pull_orders",
        endpoint="/orders",
        query={"date": "{{ ds }}", "limit": 30},
        pagination=next_page,
        response_filter=lambda response: response.json()["records"],
        destination="s3://{{ params.bucket }}/tasks-test/dt={{ ds }}/orders.jsonl",
        outlets=[AssetAlias("operator_tasks_test_orders")],
    )
    CognitoIamApiSensor(
        task_id="wait_job",
        endpoint="/jobs/{{ params.job_id }}",
        response_check=job_done,
        poke_interval=1,
        timeout=60,
    )
"""


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A migrated, isolated Airflow whose dags folder holds only DAG_FILE."""
    home = tmp_path_factory.mktemp("airflow-tasks-test")
    dags = home / "dags"
    dags.mkdir()
    (dags / "operator_tasks_test.py").write_text(DAG_FILE)
    env = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    done = subprocess.run(
        [AIRFLOW, "db", "migrate"], env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return env


def tasks_test(env: dict[str, str], task_id: str, logical_date: str, params: dict[str, str]) -> str:
    done = subprocess.run(
        [AIRFLOW, "tasks", "test", "operator_tasks_test", task_id, logical_date, "-t", json.dumps(params)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    return output


def test_airflow_tasks_test_pulls_the_logical_dates_orders_to_s3(
    airflow_home: dict[str, str], cognito_iam_conn: DevStack
) -> None:
    output = tasks_test(airflow_home, "pull_orders", "2024-01-03", {"bucket": cognito_iam_conn.bucket})

    key = "tasks-test/dt=2024-01-03/orders.jsonl"
    body = cognito_iam_conn.s3_client().get_object(Bucket=cognito_iam_conn.bucket, Key=key)["Body"].read()
    assert [json.loads(line) for line in body.splitlines()] == orders_for("2024-01-03")
    assert "GET /orders?date&limit: " in output, "one summary line, query names but no values"
    # Airflow masks the aws connection's dummy password "devstack", which is part of the bucket name.
    assert f"page(s), {len(orders_for('2024-01-03'))} record(s)" in output
    assert f"-data/{key}" in output
    assert "2024-01-03&" not in output
    for secret in (cognito_iam_conn.password, cognito_iam_conn.client_secret):
        assert secret not in output

    # The AssetAlias outlet became a real asset event in Airflow's database, naming the object.
    uri = f"s3://{cognito_iam_conn.bucket}/{key}"
    db = airflow_home["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with closing(sqlite3.connect(db)) as conn:
        events = conn.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id "
            "WHERE a.uri = ? AND e.source_task_id = 'pull_orders'",
            (uri,),
        ).fetchall()
    assert len(events) == 1
    assert json.loads(events[0][0]) == {
        "uri": uri,
        "bytes": len(body),
        "records": len(orders_for("2024-01-03")),
        "pages": -(-len(orders_for("2024-01-03")) // 30),  # limit=30 per page
        "format": "jsonl",
        "compression": None,
    }


def test_airflow_tasks_test_runs_the_sensor_to_done(airflow_home: dict[str, str], cognito_iam_conn: DevStack) -> None:
    job = CognitoIamApiOperator(task_id="start", endpoint="/jobs", method="POST", json={"polls": 1})
    job_id = job.execute({})["job_id"]

    output = tasks_test(airflow_home, "wait_job", "2024-01-03", {"job_id": job_id})

    assert "Success criteria met" in output
    assert cognito_iam_conn.stats()["api"]["routes"]["GET /jobs/{id}"] == {"200": 2}
