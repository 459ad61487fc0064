"""Deferrable mode in real Airflow: ``airflow dags test`` and a real triggerer on a Celery cluster.

* ``dags test`` of the async-export example: the task defers (the task runner says so and the
  metadata database links it to its trigger), the stored trigger row holds no secret, then the
  export lands in S3 after one POST. (The real triggerer test sees the state ``deferred`` itself.)
* A CeleryExecutor cluster with ``airflow triggerer``: the triggerer is killed mid-wait and started
  again; the wait resumes and the devstack saw exactly one POST. 100 deferred sensors on one
  connection share one sign-in, hold no worker slot while they wait, and all complete
  (``benchmarks/deferred_waits.py`` prints the same figures).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from airflow_cognito_iam.devstack import DevStack
from tests.e2e.cluster import Cluster
from tests.e2e.conftest import BIN, ROOT
from tests.e2e.deferred_waits import deferrable_cluster, prepare, run_deferred_waits, trigger_rows, wait_for_states

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DS = "2026-03-14"


class DatabaseWatch:
    """Samples task states and trigger rows of a SQLite metadata database while a command runs."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.states: set[str] = set()
        self.trigger_linked = False  # task_instance.trigger_id set: the task waits on a trigger
        self.trigger_kwargs: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> DatabaseWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        # The command may write its last state after the final 0.2 s sample: read once more now
        # that it has exited, or a fast finish is seen as {'queued', 'running'}. It has exited, so
        # nothing holds the database for long: retry a read that found it busy.
        for _ in range(10):
            if self._sample():
                break
            time.sleep(0.2)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(0.2)

    def _sample(self) -> bool:
        """One read of the states and trigger rows; False when the database could not be read."""
        try:
            with sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=1) as db:
                rows = db.execute("SELECT state, trigger_id FROM task_instance WHERE task_id = 'export'")
                for state, trigger_id in rows:
                    self.states.add(str(state))
                    self.trigger_linked |= trigger_id is not None
                for (kwargs,) in db.execute("SELECT kwargs FROM trigger"):
                    if kwargs not in self.trigger_kwargs:
                        self.trigger_kwargs.append(str(kwargs))
        except sqlite3.Error:
            return False
        return True


def test_dags_test_defers_the_export_then_lands_it(
    cognito_iam_conn: DevStack, airflow_env: dict[str, str], airflow_cli: Any
) -> None:
    stack = cognito_iam_conn
    env = {
        **airflow_env,
        **stack.env(),
        "AIRFLOW_VAR_COGNITO_IAM_BUCKET": stack.bucket,
        "AIRFLOW_VAR_COGNITO_IAM_S3_ENDPOINT_URL": stack.moto_endpoint_url,
        "AIRFLOW_COGNITO_IAM_CACHE_DIR": os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"],
    }
    database = Path(airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///"))
    conf = json.dumps({"polls": 1, "seconds": 3})
    with DatabaseWatch(database) as watch:
        result = airflow_cli(["dags", "test", "cognito_iam_async_export", DS, "--conf", conf], env)
    output = result.stdout + result.stderr

    # `dags test` marks the task deferred, then at once queued while it runs the trigger inline:
    # the task runner's line and the trigger link in the database are what stay visible.
    assert "Pausing task as DEFERRED" in output
    assert watch.trigger_linked or "deferred" in watch.states, watch.states
    assert "success" in watch.states
    assert "running trigger in line" in output
    assert watch.trigger_kwargs, "the trigger was stored in the metadata database"
    stored = "\n".join(watch.trigger_kwargs)
    assert "cognito_iam_default" in stored  # readable: what is there is what anyone with DB access sees
    for secret in secrets_of(stack):
        assert secret not in stored
        assert secret not in output

    routes = stack.stats()["api"]["routes"]
    assert routes["POST /jobs"] == {"202": 1}
    assert routes["GET /jobs/{id}"]["200"] >= 2
    assert routes["GET /export"] == {"200": 1}
    body = stack.s3_client().get_object(Bucket=stack.bucket, Key=f"exports/dt={DS}/export.jsonl")["Body"].read()
    assert len(body) == 1024 * 1024


def test_dags_test_of_a_failing_job_fails_with_the_reason(
    cognito_iam_conn: DevStack, airflow_env: dict[str, str]
) -> None:
    stack = cognito_iam_conn
    env = {
        **airflow_env,
        **stack.env(),
        "AIRFLOW_VAR_COGNITO_IAM_BUCKET": stack.bucket,
        "AIRFLOW_COGNITO_IAM_CACHE_DIR": os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"],
    }
    conf = json.dumps({"polls": 0, "fail": True})
    result = subprocess.run(
        [str(BIN / "airflow"), "dags", "test", "cognito_iam_async_export", DS, "--conf", conf],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = result.stdout + result.stderr
    assert "JobFailedError" in output
    assert "job failed as requested" in output
    assert stack.stats()["api"]["routes"]["POST /jobs"] == {"202": 1}
    assert "GET /export" not in stack.stats()["api"]["routes"]


def secrets_of(stack: DevStack) -> list[str]:
    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

    hook = CognitoIamHook()  # the run's credentials, from the shared cache it left
    creds, tokens = hook.get_credentials(), hook.get_tokens()
    return [stack.password, stack.client_secret, creds.secret_key, creds.token, tokens.id_token]


# -- a real triggerer ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Outside pytest's rotating temporary folders: a failure's logs stay until the next run.
    workdir = ROOT / ".local" / "e2e-deferrable"
    shutil.rmtree(workdir, ignore_errors=True)
    with deferrable_cluster(workdir) as running:
        prepare(running)
        yield running
    assert not running.leftovers()


def test_a_restarted_triggerer_resumes_without_a_second_post_and_rides_out_503s(cluster: Cluster) -> None:
    cluster.reset_devstack()
    run_id = cluster.trigger_run("cognito_iam_async_export", {"polls": 1000, "seconds": 0})
    wait_for_states(cluster, "cognito_iam_async_export", run_id, {"deferred": 1}, timeout=300)
    rows = trigger_rows(cluster)
    assert len(rows) == 1
    assert "job_id" in rows[0]
    for secret in (cluster.devstack["password"], cluster.devstack["client_secret"]):
        assert secret not in rows[0]

    cluster.kill("triggerer")  # SIGKILL: no goodbye, its triggers are orphaned
    polls_before = _polls(cluster)
    time.sleep(3)
    assert _polls(cluster) == polls_before, "nothing polls while the triggerer is down"
    cluster.respawn("triggerer")
    deadline = time.monotonic() + 120
    while _polls(cluster) <= polls_before:  # the new triggerer picked the trigger up
        assert time.monotonic() < deadline, "the restarted triggerer never polled"
        time.sleep(1)
    requests_post = cluster.devstack_stats()["api"]["routes"]["POST /jobs"]
    # A 503 storm longer than one poll's retries (5 attempts): the wait rides it out.
    storm = {"kind": "503", "count": 8, "retry_after": 0, "path_prefix": "/jobs/"}
    requests.post(f"{cluster.devstack['api_url']}/_control/faults", json=storm, timeout=30).raise_for_status()
    while _statuses(cluster).get("503", 0) < 8:
        assert time.monotonic() < deadline + 120, "the polls stopped during the storm (or it never reached them)"
        time.sleep(1)
    cluster.finish_jobs()

    states = wait_for_states(cluster, "cognito_iam_async_export", run_id, {"success": 1}, timeout=300)
    assert states == {"success": 1}
    routes = cluster.devstack_stats()["api"]["routes"]
    assert requests_post == {"202": 1}
    assert routes["POST /jobs"] == {"202": 1}, "the job was submitted exactly once"
    assert routes["GET /export"] == {"200": 1}


@pytest.mark.timeout(1800)  # 100 task starts to defer and 100 to resume, on 2 cores
def test_a_hundred_deferred_sensors_share_one_sign_in(cluster: Cluster) -> None:
    figures = run_deferred_waits(cluster, sensors=100)
    assert figures["completed"] == 100
    assert figures["worker_slots_held"] == 0
    assert figures["signins"] == 1


def _statuses(cluster: Cluster) -> dict[str, int]:
    statuses: dict[str, int] = cluster.devstack_stats()["api"]["routes"].get("GET /jobs/{id}", {})
    return statuses


def _polls(cluster: Cluster) -> int:
    return sum(_statuses(cluster).values())
