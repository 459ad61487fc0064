"""Many deferred waits on a real cluster: shared by tests/e2e/test_deferrable_airflow.py and
benchmarks/deferred_waits.py, so the benchmark's figures are the test's."""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path
from typing import Any

from tests.e2e.cluster import ROOT, Cluster, ClusterError

_POLL_MS = re.compile(r"HTTP \d+, not done yet \((\d+(?:\.\d+)?) ms\)")


def deferrable_cluster(workdir: Path) -> Cluster:
    """A CeleryExecutor cluster with a triggerer, the async-export and the deferred-waits DAGs.

    ``cognito_iam_default`` uses the Redis cache, as docker-compose does, so the worker that
    submits and the triggerer that waits share one identity. Not started: use it as a context.
    """
    dags = workdir / "dags"
    dags.mkdir(parents=True, exist_ok=True)
    (dags / "cognito_iam_async_export.py").write_text((ROOT / "dags" / "cognito_iam_async_export.py").read_text())
    (dags / "cognito_iam_deferred_waits.py").write_text((ROOT / "tests" / "e2e" / "dag_deferred_waits.py").read_text())
    env = {
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        # A killed triggerer's triggers go to the next one after this long without a heartbeat.
        "AIRFLOW__SCHEDULER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "15",
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        "AIRFLOW__CORE__PARALLELISM": "64",
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "200",
    }
    return Cluster(workdir, workers=1, worker_concurrency=4, triggerer=True, env=env)


def prepare(cluster: Cluster) -> None:
    """Store the connection (Redis cache) and unpause both DAGs."""
    cluster.set_connection("cognito_iam_default", cluster.cognito_connection(credential_cache="redis"))
    for dag_id in ("cognito_iam_async_export", "cognito_iam_deferred_waits"):
        cluster.wait_for_dag(dag_id)
        cluster.unpause(dag_id)


def task_states(cluster: Cluster, dag_id: str, run_id: str, task_id: str | None = None) -> dict[str, int]:
    """``{state: count}`` of one run's task instances (mapped ones each count)."""
    counts: dict[str, int] = {}
    offset = 0
    while True:  # the API caps a page at 100 entries: page through
        params = {"limit": 100, "offset": offset}
        body = cluster.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", params=params).json()
        page = body.get("task_instances", [])
        for ti in page:
            if task_id is None or ti["task_id"] == task_id:
                counts[str(ti["state"])] = counts.get(str(ti["state"]), 0) + 1
        offset += len(page)
        if not page or offset >= int(body.get("total_entries", 0)):
            return counts


def wait_for_states(
    cluster: Cluster,
    dag_id: str,
    run_id: str,
    wanted: dict[str, int],
    *,
    task_id: str | None = None,
    timeout: float = 600,
) -> dict[str, int]:
    """Wait until the run's task instances are in exactly ``wanted`` states; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        states = task_states(cluster, dag_id, run_id, task_id)
        if states == wanted:
            return states
        if "failed" in states or time.monotonic() > deadline:
            raise ClusterError(f"{dag_id} {run_id}: wanted {wanted}, have {states}; see {cluster.logs}")
        time.sleep(2)


def trigger_rows(cluster: Cluster) -> list[str]:
    """The stored kwargs of every trigger row, as the database holds them."""
    return [str(row[0]) for row in cluster.sql("SELECT kwargs FROM trigger")]


def run_deferred_waits(cluster: Cluster, sensors: int = 100) -> dict[str, Any]:
    """Defer ``sensors`` sensors on one connection, release their jobs, measure what it cost."""
    cluster.reset_devstack()
    cluster.clear_credential_caches()
    run_id = cluster.trigger_run("cognito_iam_deferred_waits", {"jobs": sensors})
    wait_for_states(cluster, "cognito_iam_deferred_waits", run_id, {"deferred": sensors}, task_id="wait", timeout=900)
    # Every wait is in the triggerer now: how many worker slots do they hold?
    held = task_states(cluster, "cognito_iam_deferred_waits", run_id, "wait").get("running", 0)
    time.sleep(5)  # a couple of poll rounds while deferred
    cluster.finish_jobs()
    wait_for_states(cluster, "cognito_iam_deferred_waits", run_id, {"success": sensors}, task_id="wait", timeout=900)
    stats = cluster.devstack_stats()
    polls = [float(ms) for ms in _POLL_MS.findall(cluster.logs_text())]
    return {
        "sensors": sensors,
        "completed": task_states(cluster, "cognito_iam_deferred_waits", run_id, "wait").get("success", 0),
        "worker_slots_held": held,
        "signins": stats["cognito"].get("InitiateAuth", 0),
        "exchanges": stats["cognito"].get("GetCredentialsForIdentity", 0),
        "polls": sum(stats["api"]["routes"].get("GET /jobs/{id}", {}).values()),
        "poll_p95_ms": round(statistics.quantiles(polls, n=20)[-1], 1) if len(polls) >= 20 else None,
    }
