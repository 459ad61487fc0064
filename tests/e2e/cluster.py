"""A real CeleryExecutor Airflow on this machine, for end-to-end tests and benchmarks.

``with Cluster(workdir, workers=2) as cluster:`` starts, on free ports of 127.0.0.1:

* a fresh PostgreSQL database (on the server at ``POSTGRES_URL``) as the metadata database;
* a private ``redis-server``: Celery broker (db 0), result backend (db 1) and the credential cache
  (db 2, Airflow connection ``redis_default``);
* the devstack (Cognito, identity pool, S3, the IAM-protected API);
* ``airflow api-server``, ``scheduler``, ``dag-processor``, ``workers`` x ``airflow celery worker``
  (each with its own ``AIRFLOW_COGNITO_IAM_CACHE_DIR``: one "host" each) and, with
  ``triggerer=True``, ``airflow triggerer``.

``fresh_pod_per_task=True`` (or ``set_fresh_pod_per_task(True)`` between runs) gives every task
process an empty cache directory, as a new pod per task on KubernetesExecutor would: a cluster
policy in ``$AIRFLOW_HOME/config/airflow_local_settings.py`` (which Airflow runs in the task process
while it parses the DAG file, before the task executes) points ``AIRFLOW_COGNITO_IAM_CACHE_DIR`` at
a new directory for each process.

The REST API runs with SimpleAuthManager's ``all_admins`` (no login: it listens on loopback only).
``cognito_iam_default`` lives in the metadata database, so ``set_connection`` can change it between
runs; the other connections and Variables come from the environment. ``stop()`` (also on any start
failure) ends every process it started and all their descendants, then drops the database.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import psutil
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POSTGRES_URL = os.environ.get("COGNITO_IAM_E2E_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
CACHE_KEY_PREFIX = b"airflow-cognito-iam:"
START_TIMEOUT = 300.0
STOP_TIMEOUT = 30.0

_LOCAL_SETTINGS = '''\
"""Fresh pod per task (tests/e2e/cluster.py): while {flag} exists, every task process gets an
empty credential cache directory, as a new pod per task on KubernetesExecutor would."""
import os
import uuid

_FLAG = {flag!r}
_ROOT = {root!r}
_ASSIGNED = {{}}


def task_policy(task):
    # Runs in the task process while it parses the DAG file, before the task executes.
    pid = os.getpid()
    if pid not in _ASSIGNED and os.path.exists(_FLAG):
        _ASSIGNED[pid] = os.path.join(_ROOT, f"pod-{{pid}}-{{uuid.uuid4().hex[:8]}}")
        os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"] = _ASSIGNED[pid]
'''


class ClusterError(RuntimeError):
    """A part of the cluster did not start or behave; the message names its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _isolated_env() -> dict[str, str]:
    """This process's environment without any Airflow setting, connection or real AWS identity."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW_", "AIRFLOW__", "AWS_", "PYTEST_")) and k != "AIRFLOW_HOME"
    }
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


class Cluster:
    """The processes of one CeleryExecutor deployment plus its stack; see the module docstring."""

    def __init__(
        self,
        workdir: Path,
        *,
        workers: int = 2,
        worker_concurrency: int = 2,
        triggerer: bool = False,
        fresh_pod_per_task: bool = False,
        credential_lifetime: float = 3600.0,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.home = workdir / "airflow"
        self.logs = workdir / "logs"
        self.worker_count = workers
        self.worker_concurrency = worker_concurrency
        self.with_triggerer = triggerer
        self.fresh_pod_per_task = fresh_pod_per_task
        self.credential_lifetime = credential_lifetime
        self.extra_env = dict(env or {})
        self.api_port = free_port()
        self.url = f"http://127.0.0.1:{self.api_port}"
        self.redis_port = 0
        self.database = f"cognito_iam_e2e_{secrets.token_hex(4)}"
        self.devstack: dict[str, Any] = {}
        self.env: dict[str, str] = {}
        self.session = requests.Session()
        self._processes: dict[str, subprocess.Popen[bytes]] = {}
        self._seen: set[int] = set()
        self._database_created = False

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Cluster:
        """Start everything and wait until the scheduler is healthy and every worker is ready."""
        self.logs.mkdir(parents=True, exist_ok=True)
        self.home.mkdir(parents=True, exist_ok=True)
        try:
            self._start_redis()
            self._start_devstack()
            self._create_database()
            self.env = self._airflow_env()
            self._migrate()
            self._spawn("api-server", ["api-server", "--port", str(self.api_port), "--host", "127.0.0.1"])
            self._spawn("scheduler", ["scheduler"])
            self._spawn("dag-processor", ["dag-processor"])
            if self.with_triggerer:
                self._spawn("triggerer", ["triggerer"])
            for index in range(1, self.worker_count + 1):
                self._spawn(
                    f"worker{index}",
                    ["celery", "worker", "--celery-hostname", f"worker{index}@%h", "--skip-serve-logs",
                     "--concurrency", str(self.worker_concurrency)],
                    AIRFLOW_COGNITO_IAM_CACHE_DIR=str(self.worker_cache_dir(index)),
                )
            self._wait_healthy()
            for index in range(1, self.worker_count + 1):
                self._wait_for_log(f"worker{index}", "ready.")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """End every process started (Airflow first, then Redis and the devstack); drop the database."""
        infrastructure = ("redis", "devstack")
        self._terminate([p for name, p in self._processes.items() if name not in infrastructure])
        self._terminate([p for name, p in self._processes.items() if name in infrastructure])
        self._processes.clear()
        self.session.close()
        if self._database_created:
            self._psql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self._database_created = False

    def leftovers(self) -> list[int]:
        """PIDs of processes this cluster started (or their children) that are still running."""
        alive = []
        for pid in self._seen:
            try:
                process = psutil.Process(pid)
                if process.status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                continue
        return alive

    # -- the parts --------------------------------------------------------------------------------

    def _start_redis(self) -> None:
        if shutil.which("redis-server") is None:
            raise ClusterError("redis-server is not installed (apt-get install redis-server)")
        self.redis_port = free_port()
        (self.workdir / "redis").mkdir(exist_ok=True)
        self._spawn_raw(
            "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
             "no", "--dir", str(self.workdir / "redis")],
            _isolated_env(),
        )
        deadline = time.monotonic() + 30
        while not self.redis_alive():
            if time.monotonic() > deadline or self._processes["redis"].poll() is not None:
                raise ClusterError(f"redis-server did not start; see {self.logs / 'redis.log'}")
            time.sleep(0.05)

    def redis(self, db: int = 2) -> Any:
        """A redis-py client of the cluster's Redis (db 2 holds the credential cache)."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.redis_port, db=db, socket_timeout=10)

    def redis_alive(self) -> bool:
        try:
            return bool(self.redis(0).ping())
        except Exception:
            return False

    def _start_devstack(self) -> None:
        command = [sys.executable, "-m", "airflow_cognito_iam.devstack", "up", "--credential-lifetime",
                   str(self.credential_lifetime)]
        log = (self.logs / "devstack.log").open("wb")
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=_isolated_env(), cwd=ROOT,
                                   start_new_session=True)
        self._register("devstack", process)
        assert process.stdout is not None
        self.devstack = _read_json(process, process.stdout, self.logs / "devstack.log")

    def _psql(self, statement: str) -> None:
        import psycopg2

        try:
            connection = psycopg2.connect(POSTGRES_URL, connect_timeout=10)
        except psycopg2.OperationalError as exc:
            raise ClusterError(f"PostgreSQL at {POSTGRES_URL} is not reachable (.ci/run starts it): {exc}") from exc
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    def database_exists(self) -> bool:
        import psycopg2

        with psycopg2.connect(POSTGRES_URL, connect_timeout=10) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
            return cursor.fetchone() is not None

    def _create_database(self) -> None:
        self._psql(f'CREATE DATABASE "{self.database}"')
        self._database_created = True

    def database_url(self) -> str:
        base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1)
        return f"{base}/{self.database}"

    def worker_cache_dir(self, index: int) -> Path:
        return self.workdir / "hosts" / f"worker{index}" / "cognito-iam-cache"

    def pods_dir(self) -> Path:
        """Where fresh_pod_per_task puts one cache directory per task process."""
        return self.workdir / "pods"

    @property
    def _pods_flag(self) -> Path:
        return self.workdir / "fresh-pod-per-task"

    def set_fresh_pod_per_task(self, enabled: bool) -> None:
        """From the next task process on: an empty cache directory per task process, or per worker."""
        self.fresh_pod_per_task = enabled
        if enabled:
            self._pods_flag.touch()
        else:
            self._pods_flag.unlink(missing_ok=True)

    def _airflow_env(self) -> dict[str, str]:
        from cryptography.fernet import Fernet

        config = self.home / "config"
        config.mkdir(parents=True, exist_ok=True)
        policy = _LOCAL_SETTINGS.format(flag=str(self._pods_flag), root=str(self.pods_dir()))
        (config / "airflow_local_settings.py").write_text(policy)
        self.set_fresh_pod_per_task(self.fresh_pod_per_task)
        redis_url = f"redis://127.0.0.1:{self.redis_port}"
        info = self.devstack
        env = _isolated_env()
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.database_url(),
                "AIRFLOW__CELERY__BROKER_URL": f"{redis_url}/0",
                "AIRFLOW__CELERY__RESULT_BACKEND": f"{redis_url}/1",
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                # Only the runs a test asks for (backfills, triggers): no scheduled run of the latest
                # interval appears when a DAG is unpaused.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                "AIRFLOW_CONN_AWS_DEFAULT": info["aws_conn_json"],
                "AIRFLOW_CONN_REDIS_DEFAULT": json.dumps(
                    {"conn_type": "redis", "host": "127.0.0.1", "port": self.redis_port, "extra": {"db": 2}}
                ),
                "AIRFLOW_VAR_COGNITO_IAM_BUCKET": str(info["bucket"]),
                "AIRFLOW_VAR_COGNITO_IAM_S3_ENDPOINT_URL": str(info["moto_endpoint_url"]),
                # Processes not started as a worker (scheduler, api-server) never sign in; a stray
                # sign-in there would still not land in a worker's directory.
                "AIRFLOW_COGNITO_IAM_CACHE_DIR": str(self.workdir / "hosts" / "other" / "cognito-iam-cache"),
            }
        )
        env.update(self.extra_env)
        return env

    def _migrate(self) -> None:
        log = self.logs / "db-migrate.log"
        with log.open("wb") as out:
            result = subprocess.run(
                [str(BIN / "airflow"), "db", "migrate"], env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                timeout=START_TIMEOUT, check=False,
            )
        if result.returncode != 0:
            raise ClusterError(f"airflow db migrate failed; see {log}")

    def _spawn(self, name: str, args: list[str], **env: str) -> None:
        self._spawn_raw(name, [str(BIN / "airflow"), *args], {**self.env, **env})

    def _spawn_raw(self, name: str, command: list[str], env: Mapping[str, str]) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(
            command, env=dict(env), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._register(name, process)

    def _register(self, name: str, process: subprocess.Popen[bytes]) -> None:
        self._processes[name] = process
        self._seen.add(process.pid)

    def _check_alive(self) -> None:
        for name, process in self._processes.items():
            if process.poll() is not None:
                raise ClusterError(f"{name} exited with {process.returncode}; see {self.logs / (name + '.log')}")

    def _wait_healthy(self) -> None:
        wanted = {"metadatabase", "scheduler", "dag_processor"} | ({"triggerer"} if self.with_triggerer else set())
        deadline = time.monotonic() + START_TIMEOUT
        states: dict[str, Any] = {}
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                response = self.session.get(f"{self.url}/api/v2/monitor/health", timeout=10)
                body = response.json() if response.ok else {}
                states = {k: (v or {}).get("status") for k, v in body.items() if isinstance(v, dict)}
                if all(states.get(part) == "healthy" for part in wanted):
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(1)
        raise ClusterError(f"not healthy within {START_TIMEOUT:.0f} s: {states}; logs in {self.logs}")

    def _wait_for_log(self, name: str, text: str, timeout: float = START_TIMEOUT) -> None:
        path = self.logs / f"{name}.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if text in path.read_text(errors="replace"):
                return
            time.sleep(0.5)
        raise ClusterError(f"{name} did not log {text!r} within {timeout:.0f} s; see {path}")

    def _terminate(self, processes: list[subprocess.Popen[bytes]]) -> None:
        """SIGTERM each process and every descendant (task processes have process groups of their
        own), all at once; SIGKILL whatever is left after STOP_TIMEOUT."""
        family = [p.pid for p in processes]
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                family += [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
        self._seen.update(family)
        running = _existing(family)
        for member in running:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.terminate()
        _, alive = psutil.wait_procs(running, timeout=STOP_TIMEOUT)
        for survivor in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                survivor.kill()
        psutil.wait_procs(alive, timeout=10)
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)

    # -- using it ---------------------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """A call to the public REST API (``/api/v2`` + path)."""
        return self.session.request(method, f"{self.url}/api/v2{path}", timeout=60, **kwargs)

    def wait_for_dag(self, dag_id: str, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while self.api("GET", f"/dags/{dag_id}").status_code != 200:
            if time.monotonic() > deadline:
                raise ClusterError(f"the dag-processor never registered {dag_id}; see {self.logs}")
            self._check_alive()
            time.sleep(1)

    def unpause(self, dag_id: str) -> None:
        """Backfills of a paused DAG wait; the UI's backfill dialog unpauses it too."""
        response = self.api("PATCH", f"/dags/{dag_id}", json={"is_paused": False})
        if response.status_code != 200:
            raise ClusterError(f"could not unpause {dag_id}: HTTP {response.status_code} {response.text[:300]}")

    def set_connection(self, conn_id: str, conn: Mapping[str, Any]) -> None:
        """Create or replace a connection in the metadata database (what the UI's form does)."""
        extra = conn.get("extra") or {}
        body = {
            "connection_id": conn_id,
            "conn_type": conn["conn_type"],
            "host": conn.get("host"),
            "login": conn.get("login"),
            "password": conn.get("password"),
            "port": conn.get("port"),
            "extra": extra if isinstance(extra, str) else json.dumps(extra),
        }
        response = self.api("PATCH", f"/connections/{conn_id}", json=body)
        if response.status_code == 404:
            response = self.api("POST", "/connections", json=body)
        if response.status_code not in (200, 201):
            raise ClusterError(f"could not store connection {conn_id}: HTTP {response.status_code}")

    def cognito_connection(self, **extra: Any) -> dict[str, Any]:
        """The devstack's cognito_iam connection with extra fields changed (e.g. credential_cache)."""
        conn: dict[str, Any] = json.loads(self.devstack["conn_json"])
        conn["extra"] = {**conn.get("extra", {}), **extra}
        return conn

    def backfill(
        self,
        dag_id: str,
        from_date: str,
        to_date: str,
        *,
        max_active_runs: int = 10,
        conf: Mapping[str, Any] | None = None,
    ) -> int:
        """POST /api/v2/backfills, as the UI's backfill dialog does; returns the backfill id."""
        response = self.api(
            "POST",
            "/backfills",
            json={
                "dag_id": dag_id,
                "from_date": from_date,
                "to_date": to_date,
                "max_active_runs": max_active_runs,
                "reprocess_behavior": "completed",
                "dag_run_conf": dict(conf or {}),
            },
        )
        if response.status_code != 200:
            raise ClusterError(f"POST /backfills answered {response.status_code}: {response.text[:500]}")
        backfill_id: int = response.json()["id"]
        return backfill_id

    def wait_for_backfill(self, dag_id: str, backfill_id: int, timeout: float = 900.0) -> dict[str, str]:
        """Wait until the backfill completed; returns ``{logical date: state}`` of its runs."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            backfill = self.api("GET", f"/backfills/{backfill_id}").json()
            runs = self.runs(dag_id, backfill["from_date"], backfill["to_date"])
            if backfill.get("completed_at") and runs and all(s not in ("queued", "running") for s in runs.values()):
                return runs
            if time.monotonic() > deadline:
                raise ClusterError(f"backfill {backfill_id} not done within {timeout:.0f} s: {runs}")
            time.sleep(2)

    def runs(self, dag_id: str, from_date: str, to_date: str) -> dict[str, str]:
        """``{logical date: state}`` of the DAG's backfill runs between two dates (inclusive)."""
        params = {"run_type": "backfill", "logical_date_gte": from_date, "logical_date_lte": to_date, "limit": 1000}
        body = self.api("GET", f"/dags/{dag_id}/dagRuns", params=params).json()
        return {run["logical_date"][:10]: run["state"] for run in body.get("dag_runs", [])}

    def task_states(self, dag_id: str) -> dict[str, int]:
        """How many task instances of the DAG ended in each state (all runs)."""
        counts: dict[str, int] = {}
        body = self.api("GET", f"/dags/{dag_id}/dagRuns/~/taskInstances", params={"limit": 1000}).json()
        for ti in body.get("task_instances", []):
            counts[str(ti["state"])] = counts.get(str(ti["state"]), 0) + 1
        return counts

    def trigger_run(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """POST a manual DAG run (the UI's Trigger button); returns its run id."""
        body = {"logical_date": None, "conf": dict(conf or {})}
        response = self.api("POST", f"/dags/{dag_id}/dagRuns", json=body)
        if response.status_code != 200:
            raise ClusterError(f"could not trigger {dag_id}: HTTP {response.status_code} {response.text[:300]}")
        run_id: str = response.json()["dag_run_id"]
        return run_id

    def kill(self, name: str) -> None:
        """SIGKILL one component and its children (a crash: no cleanup, no goodbye)."""
        process = self._processes.pop(name)
        for proc in _existing([process.pid]):
            for child in proc.children(recursive=True):
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.kill()
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        process.wait(STOP_TIMEOUT)

    def respawn(self, name: str) -> None:
        """Start a killed Airflow component again, with the same command line and environment."""
        if name == "triggerer":
            log = self.logs / f"{name}.log"
            if log.exists():
                log.rename(self.logs / f"{name}.before-{int(time.time())}.log")
            self._spawn(name, ["triggerer"])
        else:
            raise ClusterError(f"respawn knows only the triggerer, not {name}")

    def finish_jobs(self) -> None:
        """Make the devstack's async jobs done at their next poll."""
        requests.post(f"{self.devstack['api_url']}/_control/jobs-done", timeout=30).raise_for_status()

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on the metadata database."""
        import psycopg2

        base = POSTGRES_URL.rsplit("/", 1)[0]
        connection = psycopg2.connect(f"{base}/{self.database}", connect_timeout=10)
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def devstack_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = requests.get(f"{self.devstack['api_url']}/_stats", timeout=30).json()
        return stats

    def reset_devstack(self) -> None:
        response = requests.post(f"{self.devstack['api_url']}/_control/reset", timeout=30)
        response.raise_for_status()

    def clear_credential_caches(self) -> None:
        """Empty every host's cache directory and the Redis cache, as a new deployment starts."""
        for directory in (self.workdir / "hosts", self.pods_dir()):
            if directory.exists():
                shutil.rmtree(directory)
        client = self.redis(2)
        keys = list(client.scan_iter(match=CACHE_KEY_PREFIX + b"*"))
        if keys:
            client.delete(*keys)

    def s3(self) -> Any:
        """A boto3 S3 client on the devstack (its dummy admin keys), to check what tasks wrote."""
        import boto3

        conn = json.loads(self.devstack["aws_conn_json"])
        return boto3.client(
            "s3",
            endpoint_url=conn["extra"]["endpoint_url"],
            region_name=conn["extra"]["region_name"],
            aws_access_key_id=conn["login"],
            aws_secret_access_key=conn["password"],
        )

    def logs_text(self, names: Iterable[str] | None = None) -> str:
        """The cluster's process logs and task logs, for secret checks and failure messages."""
        paths = [self.logs / f"{n}.log" for n in names] if names else sorted(self.logs.glob("*.log"))
        paths += sorted((self.home / "logs").rglob("*.log")) if names is None else []
        return "\n".join(p.read_text(errors="replace") for p in paths if p.is_file())


def _existing(pids: Iterable[int]) -> list[psutil.Process]:
    processes = []
    for pid in pids:
        try:
            processes.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            continue
    return processes


def _read_json(process: subprocess.Popen[bytes], stream: IO[bytes], log: Path) -> dict[str, Any]:
    """The first JSON object the devstack prints (it spans several lines)."""
    deadline = time.monotonic() + START_TIMEOUT
    buffer = ""
    while time.monotonic() < deadline:
        line = stream.readline().decode()
        if not line:
            raise ClusterError(f"the devstack exited ({process.wait()}) before it was ready; see {log}")
        if not buffer and not line.lstrip().startswith("{"):
            continue
        buffer += line
        try:
            parsed = json.loads(buffer)
        except json.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            return parsed
        buffer = ""
    raise ClusterError(f"the devstack printed no JSON within {START_TIMEOUT:.0f} s; see {log}")
