"""Fan-out in one task vs the same GETs one after another vs dynamically mapped task instances.

The devstack runs in its own process (as a real API does) with 20 ms added to every
``/customers/<id>`` request, so the figures model a real API instead of loopback. Measured in one
run, side by side:

* fanout: ``CognitoIamFanOutOperator`` with ``--requests`` (2,000) GETs, ``max_concurrency=8``;
* sequential: the same operator and requests with ``max_concurrency=1`` (one request in flight:
  what a single task walking the endpoints does); both in ``--blocks`` (4) alternating blocks, so
  a change in the machine's load during the run weighs on both;
* mapped: ``CognitoIamApiOperator.partial(...).expand(endpoint=[...])`` under ``airflow dags test``,
  run with ``--mapped`` (50) instances and with 1; the difference over 49 is the cost of one mapped
  instance (fixed costs of the CLI and the DAG parse cancel out). ``dags test`` runs every instance
  in one process, so this is a *lower bound* of mapping's cost: a real worker also starts a task
  process per instance (~2 s).

With ``--celery N`` the mapped requests also run as a deployment runs them: N instances on a real
CeleryExecutor cluster (benchmarks/mapped_cluster.py: 2 workers x 2 slots, one task process per
instance), giving ``ratio_fanout_over_mapped_on_celery`` at the end of the last line.

A line for ``--extra-concurrency`` (16) is printed for reference; the ratios are at ``--concurrency``.
So is the machine's ceiling: bare ``http.client`` connections, unsigned (the devstack answers 403
after the same added latency), as many threads as ``--concurrency``: what no client can beat here.

Targets: ratio_fanout_over_sequential >= 6 at concurrency 8, ratio_fanout_over_mapped >= 50.
Last line: fanout_rps=… sequential_rps=… ratio_fanout_over_sequential=… ratio_fanout_over_mapped=…

    .venv/bin/python benchmarks/fanout.py [--requests 2000] [--mapped 50] [--latency 0.02] [--concurrency 8]
        [--celery 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from devstack_process import connection_env, start_devstack

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAG_ID = "cognito_iam_bench_mapped"


def customers(count: int) -> list[str]:
    return [f"/customers/cus-{n % 9999 + 1:04d}" for n in range(count)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


class Mode:
    """One way of running the GETs, measured over several blocks: seconds and CPU add up."""

    def __init__(self, name: str, concurrency: int) -> None:
        self.name, self.concurrency = name, concurrency
        self.requests = 0
        self.seconds = self.client_cpu = self.server_cpu = 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def run(self, count: int, devstack_pid: int) -> None:
        """One fan-out task execution (results to XCom) of ``count`` GETs."""
        from airflow_cognito_iam.operators.fanout import CognitoIamFanOutOperator

        op = CognitoIamFanOutOperator(
            task_id=f"fanout_{self.concurrency}",
            requests=customers(count),
            max_concurrency=self.concurrency,
            max_xcom_bytes=64 * 2**20,
        )
        client, server = cpu_seconds(os.getpid()), cpu_seconds(devstack_pid)
        started = time.perf_counter()
        result = op.execute({})
        self.seconds += time.perf_counter() - started
        self.client_cpu += cpu_seconds(os.getpid()) - client
        self.server_cpu += cpu_seconds(devstack_pid) - server
        self.requests += count
        if result["succeeded"] != count:
            raise SystemExit(f"{self.name}: {result['succeeded']} of {count} succeeded")

    def report(self) -> str:
        return (
            f"{self.name}: {self.requests} GETs, {self.concurrency} in flight: {self.rps:.1f} requests/s; CPU per "
            f"request {self.client_cpu / self.requests * 1000:.2f} ms here, "
            f"{self.server_cpu / self.requests * 1000:.2f} ms in the devstack"
        )


def ceiling_rps(api_url: str, count: int, concurrency: int) -> float:
    """Requests/s of ``concurrency`` threads of bare http.client GETs: no signing, retries or parsing."""
    import http.client
    import threading
    from urllib.parse import urlsplit

    parts = urlsplit(api_url)
    paths = iter(customers(count))
    lock = threading.Lock()

    def worker() -> None:
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
        while True:
            with lock:
                path = next(paths, None)
            if path is None:
                connection.close()
                return
            connection.request("GET", path)
            connection.getresponse().read()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count / (time.perf_counter() - started)


def airflow_env(home: Path, stack_env: dict[str, str]) -> dict[str, str]:
    env = dict(os.environ)
    env.update(stack_env)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "benchmarks" / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW_COGNITO_IAM_CACHE_DIR": str(home / "cache"),
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        }
    )
    return env


def airflow(args: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one airflow CLI run; exits with its output if it fails."""
    started = time.perf_counter()
    result = subprocess.run(
        [str(BIN / "airflow"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False
    )
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return elapsed


def mapped_seconds_per_instance(env: dict[str, str], count: int, api_url: str) -> tuple[float, float, float]:
    """(seconds per mapped instance, seconds for `count`, seconds for 1) from two `airflow dags test` runs."""
    timings = {}
    for n, day in ((1, "2026-03-01"), (count, "2026-03-02")):
        before = stats(api_url)
        timings[n] = airflow(["dags", "test", DAG_ID, day], {**env, "COGNITO_IAM_BENCH_MAPPED": str(n)})
        done = stats(api_url) - before
        if done != n:
            raise SystemExit(f"mapped run of {n}: the API answered {done} customer requests")
    return (timings[count] - timings[1]) / (count - 1), timings[count], timings[1]


def stats(api_url: str) -> int:
    routes = requests.get(f"{api_url}/_stats", timeout=30).json()["api"]["routes"]
    return int(routes.get("GET /customers/{id}", {}).get("200", 0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--mapped", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.02)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--extra-concurrency", type=int, default=16, help="also measured, for reference (0: skip)")
    parser.add_argument("--blocks", type=int, default=4, help="alternating blocks per mode, to cancel load drift")
    parser.add_argument(
        "--celery", type=int, default=0, metavar="N",
        help="also time N mapped instances on a real CeleryExecutor cluster (2 workers x 2 slots; 0: skip)",
    )
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="cognito-iam-bench-fanout-"))
    os.environ["AIRFLOW_HOME"] = str(workdir / "airflow")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"] = str(workdir / "cache")
    devstack, info = start_devstack()
    stack_env = connection_env(info)
    try:
        os.environ.update(stack_env)
        api_url = json.loads(stack_env["AIRFLOW_CONN_COGNITO_IAM_DEFAULT"])["host"]
        requests.post(
            f"{api_url}/_control/latency", json={"seconds": args.latency, "path_prefix": "/customers/"}, timeout=30
        ).raise_for_status()
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores", flush=True)

        Mode("warm-up", args.concurrency).run(20, devstack.pid)  # sign in outside the measurement
        modes = [Mode("fanout", args.concurrency), Mode("sequential", 1)]
        if args.extra_concurrency:
            modes.append(Mode("fanout", args.extra_concurrency))
        per_block = args.requests // args.blocks
        for block in range(args.blocks):
            for mode in modes if block % 2 == 0 else reversed(modes):
                mode.run(per_block, devstack.pid)
        for mode in modes:
            print(mode.report(), flush=True)
        ceiling = ceiling_rps(api_url, per_block, args.concurrency)
        print(
            f"ceiling: bare http.client, unsigned, {args.concurrency} threads: {ceiling:.1f} requests/s "
            f"(fan-out reaches {modes[0].rps / ceiling:.0%} of it)",
            flush=True,
        )
        fanout_rps, sequential_rps = modes[0].rps, modes[1].rps

        home = workdir / "mapped"
        home.mkdir()
        env = airflow_env(home, stack_env)
        airflow(["db", "migrate"], env)
        per_instance, many, one = mapped_seconds_per_instance(env, args.mapped, api_url)
        mapped_rps = 1 / per_instance
        print(
            f"mapped: airflow dags test of {args.mapped} instances {many:.1f} s, of 1 instance {one:.1f} s: "
            f"{per_instance * 1000:.0f} ms per instance = {mapped_rps:.2f} requests/s",
            flush=True,
        )
    finally:
        devstack.send_signal(signal.SIGTERM)
        try:
            devstack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            devstack.kill()
    on_workers = ""
    if args.celery:
        from mapped_cluster import mapped_seconds_on_cluster

        per_worker_instance, many, one, ready = mapped_seconds_on_cluster(args.celery, latency=args.latency)
        print(
            f"mapped on CeleryExecutor (2 workers x 2 slots, cluster ready in {ready:.0f} s): {args.celery} instances "
            f"{many:.1f} s, 1 instance {one:.1f} s: {per_worker_instance * 1000:.0f} ms per instance = "
            f"{1 / per_worker_instance:.2f} requests/s",
            flush=True,
        )
        on_workers = f" ratio_fanout_over_mapped_on_celery={fanout_rps * per_worker_instance:.1f}"
    print(
        f"fanout_rps={fanout_rps:.1f} sequential_rps={sequential_rps:.1f} "
        f"ratio_fanout_over_sequential={fanout_rps / sequential_rps:.2f} "
        f"ratio_fanout_over_mapped={fanout_rps / mapped_rps:.1f}{on_workers}"
    )


if __name__ == "__main__":
    main()
