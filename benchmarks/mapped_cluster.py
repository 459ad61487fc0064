"""The cost of one mapped task instance on a real CeleryExecutor cluster (for benchmarks/fanout.py).

``airflow dags test`` runs every mapped instance in one process, so it gives a lower bound of
mapping's cost. Here the same requests run as a data engineer's deployment runs them: the cluster
of tests/e2e/cluster.py (PostgreSQL, Redis, api-server, scheduler, dag-processor, ``workers``
Celery workers of ``concurrency`` slots), one task process per instance. Two manual runs of
``cognito_iam_bench_mapped_conf`` (1 instance, then ``count``), each timed from the run's
``start_date`` to its ``end_date`` as the API reports them; the difference over ``count - 1`` is
the wall time one more instance adds, with the cluster's slots working in parallel.
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.e2e.cluster import Cluster, ClusterError  # noqa: E402

DAG_ID = "cognito_iam_bench_mapped_conf"


def _run_seconds(cluster: Cluster, count: int, timeout: float) -> float:
    run_id = cluster.trigger_run(DAG_ID, {"count": count})
    deadline = time.monotonic() + timeout
    while True:
        run: dict[str, Any] = cluster.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}").json()
        if run["state"] == "success":
            started = dt.datetime.fromisoformat(run["start_date"])
            ended = dt.datetime.fromisoformat(run["end_date"])
            return (ended - started).total_seconds()
        if run["state"] == "failed" or time.monotonic() > deadline:
            raise ClusterError(f"{DAG_ID} run of {count}: {run['state']}; see {cluster.logs}")
        time.sleep(1)


def mapped_seconds_on_cluster(
    count: int, *, latency: float, workers: int = 2, concurrency: int = 2, timeout: float = 1800
) -> tuple[float, float, float, float]:
    """(seconds per instance, seconds for ``count``, seconds for 1, cluster start seconds)."""
    if count < 2:
        raise ValueError(f"--celery needs at least 2 instances (the cost is the difference to 1), got {count}")
    with tempfile.TemporaryDirectory(prefix="cognito-iam-bench-mapped-cluster-") as workdir:
        root = Path(workdir)
        dags = root / "dags"
        dags.mkdir()
        source = ROOT / "benchmarks" / "dags" / f"{DAG_ID}.py"
        (dags / source.name).write_text(source.read_text())
        env = {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__PARALLELISM": "64",
            "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64",
        }
        started = time.monotonic()
        with Cluster(root, workers=workers, worker_concurrency=concurrency, env=env) as cluster:
            requests.post(
                f"{cluster.devstack['api_url']}/_control/latency",
                json={"seconds": latency, "path_prefix": "/customers/"},
                timeout=30,
            ).raise_for_status()
            cluster.set_connection("cognito_iam_default", cluster.cognito_connection(credential_cache="redis"))
            cluster.wait_for_dag(DAG_ID)
            cluster.unpause(DAG_ID)
            ready = time.monotonic() - started
            _run_seconds(cluster, 1, timeout)  # warm-up: first parse on the workers, the sign-in
            one = _run_seconds(cluster, 1, timeout)
            many = _run_seconds(cluster, count, timeout)
            answered = cluster.devstack_stats()["api"]["routes"].get("GET /customers/{id}", {}).get("200", 0)
            if answered != count + 2:
                raise ClusterError(f"the API answered {answered} customer requests, expected {count + 2}")
    return (many - one) / (count - 1), many, one, ready
