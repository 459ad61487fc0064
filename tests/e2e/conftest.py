"""A real Airflow for end-to-end tests: its own SQLite AIRFLOW_HOME, migrated once per session.

Each airflow CLI call costs 5-20 s on a small machine, so the database is migrated once and the
tests share it; every test still runs real `airflow` processes against the devstack over HTTP.
`running_make_airflow` starts what `make airflow` starts (devstack + `airflow standalone`) for the
modules that drive the UI's API or the UI itself.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run_airflow(args: list[str], env: Mapping[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the airflow CLI of this virtualenv; fail the test with its output if it fails."""
    result = subprocess.run(
        [str(BIN / "airflow"), *args],
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        output = f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        pytest.fail(f"airflow {' '.join(args)} exited {result.returncode}:\n{output}")
    return result


class AirflowCli(Protocol):
    def __call__(
        self, args: list[str], env: Mapping[str, str], timeout: float = ...
    ) -> subprocess.CompletedProcess[str]: ...


@pytest.fixture(scope="session")
def airflow_cli() -> AirflowCli:
    """``airflow_cli(args, env)``: run the airflow CLI, failing the test with its output on error."""
    return run_airflow


@pytest.fixture(scope="session")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment of a migrated, isolated Airflow whose dags folder is the repository's dags/."""
    home = tmp_path_factory.mktemp("airflow-home")
    env = dict(os.environ)
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
    )
    run_airflow(["db", "migrate"], env)
    return env


MAKE_AIRFLOW_START_TIMEOUT = 420.0
#: Folders of screenshots and page dumps written this session, printed at the end of the run.
ARTIFACT_DIRS: list[Path] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MakeAirflow:
    """The running `make airflow` script (scripts/airflow_ui.py) and an authenticated REST session to it."""

    def __init__(self, ready: dict[str, Any], home: Path) -> None:
        self.home = home
        self.url = str(ready["url"])
        self.devstack_api_url = str(ready["devstack_api_url"])
        passwords = json.loads((home / "simple_auth_manager_passwords.json.generated").read_text())
        self.username = str(ready["username"])
        self.password = str(passwords[self.username])
        self.session = requests.Session()

    def login(self) -> requests.Response:
        response = self.session.post(
            f"{self.url}/auth/token", json={"username": self.username, "password": self.password}, timeout=30
        )
        if response.ok:
            self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        return response

    def api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.url}/api/v2{path}", timeout=60, **kwargs)

    def devstack_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = requests.get(f"{self.devstack_api_url}/_stats", timeout=30).json()
        return stats

    def stored_connection(self, conn_id: str) -> dict[str, Any]:
        """The connection as stored, secrets in clear (the REST API masks them): `airflow connections get`."""
        env = {
            **os.environ,
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
        }
        result = run_airflow(["connections", "get", conn_id, "-o", "json"], env, timeout=120)
        (conn,) = json.loads(result.stdout)
        return dict(conn)

    def wait_for_runs(self, dag_id: str, run_type: str, count: int, timeout: float) -> dict[str, str]:
        """``{run_id: state}`` of the dag's runs of that type once ``count`` exist and none is unfinished."""
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            body = self.api("GET", f"/dags/{dag_id}/dagRuns", params={"run_type": run_type}).json()
            states = {run["dag_run_id"]: run["state"] for run in body["dag_runs"]}
            if len(states) >= count and not any(s in ("queued", "running") for s in states.values()):
                return states
            time.sleep(3)
        raise AssertionError(f"{dag_id} {run_type} runs not finished within {timeout:.0f} s: {states}")


@contextmanager
def running_make_airflow(home: Path) -> Iterator[MakeAirflow]:
    """Run scripts/airflow_ui.py as `make airflow` does, on a free port; stop it (by PID) on the way out."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "airflow_ui.py"), "--port", str(free_port()), "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "AIRFLOW_HOME"},
        cwd=ROOT,
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        deadline = time.monotonic() + MAKE_AIRFLOW_START_TIMEOUT
        ready: dict[str, Any] | None = None
        # readline blocks, but the script prints a line per step and exits on failure (EOF).
        while ready is None and time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
            if line.startswith('{"ready"'):
                ready = json.loads(line)
        if ready is None:
            pytest.fail("make airflow did not become ready:\n" + "".join(output[-40:]))
        airflow = MakeAirflow(ready, home)
        assert airflow.login().status_code == 201
        yield airflow
    finally:
        process.send_signal(signal.SIGTERM)  # the script stops standalone's process group and the devstack
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture(scope="module")
def make_airflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MakeAirflow]:
    """One `make airflow` stack per test module that asks for it (each start costs ≈ 40 s)."""
    with running_make_airflow(tmp_path_factory.mktemp("make-airflow")) as airflow:
        yield airflow


@pytest.fixture(scope="module")
def artifact_dir(request: pytest.FixtureRequest) -> Path:
    """This module's screenshot folder under .local/ (ignored by git), emptied first; printed at the end.

    Not under pytest's basetemp: pytest keeps only its last three, and parallel runs on one machine
    would delete the folder before anyone looks at it.
    """
    path = ROOT / ".local" / "e2e-screenshots" / request.module.__name__.rsplit(".", 1)[-1]
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    ARTIFACT_DIRS.append(path)
    return path


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for path in ARTIFACT_DIRS:
        terminalreporter.write_line(f"browser screenshots and page dumps: {path}")
