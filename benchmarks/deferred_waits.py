"""100 deferrable sensors on one connection, on a real CeleryExecutor cluster with a triggerer.

Starts the cluster of tests/e2e/cluster.py (PostgreSQL, Redis, api-server, scheduler,
dag-processor, one Celery worker, `airflow triggerer`, the devstack) with the DAG
tests/e2e/dag_deferred_waits.py: one task submits N async jobs with signed POSTs, then N mapped
`CognitoIamApiSensor(deferrable=True)` wait on them. When every sensor is deferred, it counts the
worker slots they hold, lets the jobs finish, and reads the devstack's counters and the triggerer's
per-poll timings. The same code is the e2e test's (tests/e2e/deferred_waits.py).

Targets: worker_slots_held=0, signins=1 (the submit task's; the triggerer finds it in Redis).
Last line: sensors=… worker_slots_held=… signins=… poll_p95_ms=…

    .venv/bin/python benchmarks/deferred_waits.py [--sensors 100]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.deferred_waits import deferrable_cluster, prepare, run_deferred_waits  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sensors", type=int, default=100)
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="deferred-waits-") as workdir:
        started = time.monotonic()
        with deferrable_cluster(Path(workdir)) as cluster:
            prepare(cluster)
            print(f"cluster ready in {time.monotonic() - started:.0f} s")
            started = time.monotonic()
            figures = run_deferred_waits(cluster, sensors=args.sensors)
            print(
                f"run: {time.monotonic() - started:.0f} s, {figures['polls']} polls, {figures['exchanges']} exchange(s)"
            )
    print(
        f"sensors={figures['sensors']} completed={figures['completed']} "
        f"worker_slots_held={figures['worker_slots_held']} signins={figures['signins']} "
        f"poll_p95_ms={figures['poll_p95_ms']}"
    )


if __name__ == "__main__":
    main()
