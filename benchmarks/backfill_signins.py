"""Sign-ins of a backfill on a real CeleryExecutor cluster, per credential cache mode.

Starts the cluster of tests/e2e/cluster.py once (PostgreSQL, a Redis broker and result backend, an
api-server, a scheduler, a dag-processor, two `airflow celery worker` processes as two hosts with
their own cache directories, the devstack) and backfills `cognito_iam_orders_pipeline` (3 tasks a
day) over 30 days through POST /api/v2/backfills, once per mode: none, memory, shared, redis. Then
twice more with a fresh pod per task, every task process starting with an empty cache directory as
on KubernetesExecutor: with shared (the file cache cannot help there) and with redis. Before each
run every cache is emptied and the devstack's counters reset; a sign-in is one InitiateAuth
(USER_SRP_AUTH), counted by the devstack.

Targets: signins_redis <= 1 and signins_fresh_pod_redis <= 1, where memory signs in once per task.
Prints a line per run and, last: signins_<mode>=<n> ... ratio_memory_over_redis=<x>.

    .venv/bin/python benchmarks/backfill_signins.py [--days 30] [--workers 2] [--concurrency 2]
        [--modes none,memory,shared,redis,fresh_pod_shared,fresh_pod_redis]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from cluster import Cluster  # noqa: E402 - the e2e harness, shared with the CeleryExecutor test

DAG_ID = "cognito_iam_orders_pipeline"
MODES = ("none", "memory", "shared", "redis", "fresh_pod_shared", "fresh_pod_redis")


def machine() -> str:
    """CPU model, cores, memory and versions, for the README's figures."""
    import os

    import airflow
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = psutil.virtual_memory().total / 2**30
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory:.0f} GiB, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, Airflow {airflow.__version__}"
    )


def run(cluster: Cluster, mode: str, first_day: date, days: int) -> int:
    """One backfill in ``mode``; prints its line and returns its sign-ins."""
    cache = mode.removeprefix("fresh_pod_")
    cluster.set_fresh_pod_per_task(mode.startswith("fresh_pod_"))
    cluster.clear_credential_caches()
    cluster.set_connection("cognito_iam_default", cluster.cognito_connection(credential_cache=cache))
    cluster.reset_devstack()
    last_day = first_day + timedelta(days=days - 1)
    started = time.monotonic()
    backfill_id = cluster.backfill(
        DAG_ID, f"{first_day.isoformat()}T00:00:00Z", f"{last_day.isoformat()}T00:00:00Z", max_active_runs=days
    )
    runs = cluster.wait_for_backfill(DAG_ID, backfill_id, timeout=3600)
    elapsed = time.monotonic() - started
    calls = cluster.devstack_stats()["cognito"]
    succeeded = sum(state == "success" for state in runs.values())
    pods = len(list(cluster.pods_dir().glob("pod-*"))) if cluster.pods_dir().exists() else 0
    signins = int(calls.get("InitiateAuth", 0))
    print(
        f"{mode}: {succeeded}/{days} runs succeeded, {days * 3} tasks, {elapsed:.0f} s; sign-ins {signins}; "
        f"Cognito calls {dict(sorted(calls.items()))}" + (f"; pod cache dirs written {pods}" if pods else ""),
        flush=True,
    )
    if succeeded != days:
        raise SystemExit(f"{mode}: not every run succeeded: {runs}")
    return signins


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30, help="logical dates in each backfill (3 tasks each)")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (hosts)")
    parser.add_argument("--concurrency", type=int, default=2, help="task slots per worker")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ", ".join(MODES))
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown modes {unknown}")

    print(f"machine: {machine()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="backfill-signins-"))
    started = time.monotonic()
    results: dict[str, int] = {}
    with Cluster(workdir, workers=args.workers, worker_concurrency=args.concurrency) as cluster:
        cluster.wait_for_dag(DAG_ID)
        cluster.unpause(DAG_ID)
        print(
            f"cluster: {args.workers} Celery workers x {args.concurrency} slots, PostgreSQL, Redis, devstack; "
            f"ready in {time.monotonic() - started:.0f} s (logs: {cluster.logs})",
            flush=True,
        )
        for index, mode in enumerate(modes):
            # Dates of their own per mode (after the DAG's start date): every run is a first run.
            results[mode] = run(cluster, mode, date(2026, 1, 1) + timedelta(days=index * args.days), args.days)
            print(f"signins_{mode}={results[mode]}", flush=True)
    leftovers = cluster.leftovers()
    print(f"cluster stopped; processes left behind: {len(leftovers)}; total {time.monotonic() - started:.0f} s")
    summary = " ".join(f"signins_{mode}={count}" for mode, count in results.items())
    if "memory" in results and "redis" in results:
        summary += f" ratio_memory_over_redis={results['memory'] / max(results['redis'], 1):.1f}"
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
