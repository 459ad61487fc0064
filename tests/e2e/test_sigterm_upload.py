"""SIGTERM to a real `airflow dags test`: mid-upload no multipart upload stays; mid fan-out retries stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.misbehaving import MisbehavingServer, Seen

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
MiB = 1024 * 1024


def open_uploads(stack: Any) -> list[str]:
    return [u["Key"] for u in stack.s3_client().list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])]


def keys(stack: Any, prefix: str) -> list[str]:
    listed = stack.s3_client().list_objects_v2(Bucket=stack.bucket, Prefix=prefix)
    return [obj["Key"] for obj in listed.get("Contents", [])]


SIGTERM_DAG = """
import datetime as dt
from airflow.sdk import DAG
from airflow_cognito_iam.operators.api import CognitoIamApiOperator

with DAG("sigterm_mid_upload", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):
    CognitoIamApiOperator(task_id="pull", endpoint="/big", destination="s3://{bucket}/sigterm/big.bin")
"""


def big_then_stall(total: int) -> Any:
    """20 MiB at once (two 8 MiB parts reach S3), then a stall: the task is mid-upload."""

    def behave(conn: Any, seen: Seen) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {total}\r\n\r\n"
        conn.sendall(head.encode() + b"z" * (20 * MiB))
        time.sleep(120)

    return behave


def sigterm_dags_test(
    dag_id: str, env: dict[str, str], ready: Callable[[], bool], *, what: str, exit_timeout: float
) -> str:
    """Run ``airflow dags test dag_id``, SIGTERM it (as the supervisor would) once ``ready()``; its output."""
    bin_airflow = Path(env["PATH"].split(os.pathsep)[0]) / "airflow"
    process = subprocess.Popen(
        [str(bin_airflow), "dags", "test", dag_id, "2026-01-02"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not ready():
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            assert time.monotonic() < deadline, f"{what} never started"
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=exit_timeout)
    finally:
        if process.poll() is None:
            process.kill()
    return output


def test_sigterm_mid_upload_aborts_the_multipart_upload(
    cognito_iam_conn: Any, airflow_env: dict[str, str], tmp_path: Path
) -> None:
    stack = cognito_iam_conn
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "sigterm_dag.py").write_text(SIGTERM_DAG.format(bucket=stack.bucket))
    with MisbehavingServer() as api:
        api.script("/big", big_then_stall(200 * MiB))
        conn = stack.conn_dict(host=api.url, timeout=300)
        env = {
            **airflow_env,
            **stack.env(),
            "AIRFLOW_CONN_COGNITO_IAM_DEFAULT": json.dumps(conn),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW_COGNITO_IAM_CACHE_DIR": os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"],
        }
        output = sigterm_dags_test(
            "sigterm_mid_upload", env, lambda: bool(open_uploads(stack)), what="the upload", exit_timeout=120
        )
    assert open_uploads(stack) == [], output[-3000:]
    assert keys(stack, "sigterm/") == []
    assert "discarding the partial upload" in output


FANOUT_DAG = """
import datetime as dt
from airflow.sdk import DAG
from airflow_cognito_iam.operators.fanout import CognitoIamFanOutOperator

with DAG("sigterm_mid_fanout", schedule=None, start_date=dt.datetime(2026, 1, 1), catchup=False):
    CognitoIamFanOutOperator(
        task_id="details",
        requests=[f"/customers/cus-{n:04d}" for n in range(1, 41)],
        max_concurrency=4,
        max_attempts=20,
        max_retry_seconds=600,
    )
"""


def test_sigterm_mid_fan_out_stops_the_workers_retrying(
    cognito_iam_conn: Any, airflow_env: dict[str, str], tmp_path: Path
) -> None:
    """SIGTERM reaches the task's main thread only; the fan-out's workers must stop retrying too."""
    stack = cognito_iam_conn
    stack.set_faults("503", rate=1.0, path_prefix="/customers/")
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "fanout_dag.py").write_text(FANOUT_DAG)
    env = {
        **airflow_env,
        **stack.env(),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW_COGNITO_IAM_CACHE_DIR": os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"],
    }

    def attempts() -> int:
        routes = stack.stats()["api"]["routes"]
        return int(routes.get("GET /customers/{id}", {}).get("503", 0))

    # Retrying on, the 4 requests in flight would keep the task alive for minutes (20 attempts each).
    output = sigterm_dags_test(
        "sigterm_mid_fanout", env, lambda: attempts() >= 4, what="the fan-out", exit_timeout=90
    )
    at_exit = attempts()
    time.sleep(1)
    assert "stopped during GET fan-out of 40 request(s)" in output, output[-3000:]
    assert attempts() == at_exit, "no attempt after the task process ended"
    assert at_exit < 40, at_exit
