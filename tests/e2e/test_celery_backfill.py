"""A real CeleryExecutor deployment backfills the 3-task example DAG: one sign-in with Redis.

The harness (tests/e2e/cluster.py) starts PostgreSQL-backed Airflow with Redis as the Celery broker
and result backend, an api-server, a scheduler, a dag-processor and two `airflow celery worker`
processes with their own credential cache directories (two "hosts"), plus the devstack. A backfill
is created through POST /api/v2/backfills, as the UI's backfill dialog does, once with
credential_cache = "redis" and once with "shared" (the connection is switched between the two and
every cache emptied). The devstack's /_stats counts the sign-ins; S3 holds what the tasks wrote.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from cluster import Cluster, ClusterError

from airflow_cognito_iam.devstack.api_server import orders_for

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DAG_ID = "cognito_iam_orders_pipeline"
DAYS = 10


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("celery-cluster"), workers=2, worker_concurrency=2)
    try:
        started.start()
        started.wait_for_dag(DAG_ID)
        started.unpause(DAG_ID)
    except ClusterError as exc:
        started.stop()
        pytest.fail(str(exc))
    yield started
    started.stop()


def dates(first: str) -> list[str]:
    start = date.fromisoformat(first)
    return [(start + timedelta(days=n)).isoformat() for n in range(DAYS)]


def backfill(cluster: Cluster, mode: str, days: list[str]) -> dict[str, Any]:
    """Empty every cache, switch the connection to ``mode``, backfill ``days``; the stack's stats."""
    cluster.clear_credential_caches()
    cluster.set_connection("cognito_iam_default", cluster.cognito_connection(credential_cache=mode))
    cluster.reset_devstack()
    backfill_id = cluster.backfill(DAG_ID, f"{days[0]}T00:00:00Z", f"{days[-1]}T00:00:00Z", max_active_runs=DAYS)
    try:
        runs = cluster.wait_for_backfill(DAG_ID, backfill_id)
    except ClusterError as exc:
        pytest.fail(f"{exc}\n{cluster.logs_text(['scheduler', 'worker1', 'worker2'])[-4000:]}")
    assert runs == dict.fromkeys(days, "success"), runs
    return cluster.devstack_stats()


def assert_outputs_landed(cluster: Cluster, days: list[str]) -> None:
    s3 = cluster.s3()
    bucket = cluster.devstack["bucket"]

    def lines(key: str) -> list[dict[str, Any]]:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        return [json.loads(line) for line in body.splitlines() if line]

    for day in days:
        expected = orders_for(day)
        prefix = f"pipeline/dt={day}"
        assert lines(f"{prefix}/orders.jsonl") == expected
        assert lines(f"{prefix}/cancelled.jsonl") == [r for r in expected if r["status"] == "cancelled"]
        amounts: defaultdict[str, float] = defaultdict(float)
        for record in expected:
            amounts[record["currency"]] += record["amount"]
        summary = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}/summary.json")["Body"].read())
        assert summary == {
            "orders": len(expected),
            "amount_by_currency": {k: round(v, 2) for k, v in sorted(amounts.items())},
        }


def tasks_per_worker(cluster: Cluster) -> list[int]:
    return [
        (cluster.logs / f"worker{n}.log").read_text(errors="replace").count("execute_workload")
        for n in range(1, cluster.worker_count + 1)
    ]


def test_backfill_with_the_redis_cache_signs_in_once_for_both_worker_hosts(cluster: Cluster) -> None:
    days = dates("2026-02-01")
    before = tasks_per_worker(cluster)
    stats = backfill(cluster, "redis", days)

    assert_outputs_landed(cluster, days)
    after = tasks_per_worker(cluster)
    assert all(a > b for a, b in zip(after, before, strict=True)), f"both hosts ran tasks: {before} -> {after}"
    calls = stats["cognito"]
    assert calls.get("InitiateAuth", 0) <= 1, calls
    assert calls.get("GetCredentialsForIdentity", 0) <= 1, calls
    assert stats["api"]["routes"]["GET /orders"]["200"] >= 2 * DAYS * 2, "two extracts, two pages a day"


def test_backfill_with_the_shared_file_cache_signs_in_once_per_worker_host(cluster: Cluster) -> None:
    days = dates("2026-03-01")
    stats = backfill(cluster, "shared", days)

    assert_outputs_landed(cluster, days)
    calls = stats["cognito"]
    assert 1 <= calls.get("InitiateAuth", 0) <= cluster.worker_count, calls
    # Each host's file holds its own sign-in; nothing went to Redis.
    assert not list(cluster.redis(2).scan_iter(match=b"airflow-cognito-iam:*"))


def test_no_secret_reaches_a_process_or_task_log(cluster: Cluster) -> None:
    logs = cluster.logs_text()
    conn = cluster.cognito_connection()
    for secret in (conn["password"], conn["extra"]["client_secret"]):
        assert secret not in logs


def test_teardown_leaves_no_process_behind(cluster: Cluster) -> None:
    cluster.stop()
    assert cluster.leftovers() == []
    assert not cluster.redis_alive()
    assert not cluster.database_exists(), "the run's database is dropped"
