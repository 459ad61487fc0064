"""`make airflow` gives a working Airflow: healthy API server, testable connection, runnable backfill.

Runs scripts/airflow_ui.py (devstack + `airflow standalone`) as a user would, then drives the public
REST API with a token from the simple auth manager: the health endpoint, the connection form's
Test action, and a backfill of the daily DAG that the scheduler then runs against the devstack.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
DAG_ID = "cognito_iam_orders_daily"
START_TIMEOUT = 360.0
BACKFILL_TIMEOUT = 300.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Airflow:
    """The running `make airflow` script and an authenticated REST session to it."""

    def __init__(self, ready: dict[str, Any], home: Path) -> None:
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


@pytest.fixture(scope="module")
def airflow_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("make-airflow")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "airflow_ui.py"), "--port", str(_free_port()), "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "AIRFLOW_HOME"},
        cwd=ROOT,
    )
    assert process.stdout is not None
    output: list[str] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
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
        yield Airflow(ready, home)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def test_api_server_and_scheduler_report_healthy(airflow_ui: Airflow) -> None:
    response = requests.get(f"{airflow_ui.url}/api/v2/monitor/health", timeout=30)
    assert response.status_code == 200
    health = response.json()
    assert health["metadatabase"]["status"] == "healthy"
    assert health["scheduler"]["status"] == "healthy"


def test_simple_auth_manager_login_guards_the_api(airflow_ui: Airflow) -> None:
    assert requests.get(f"{airflow_ui.url}/api/v2/dags", timeout=30).status_code == 401
    bad = requests.post(
        f"{airflow_ui.url}/auth/token", json={"username": airflow_ui.username, "password": "wrong"}, timeout=30
    )
    assert bad.status_code == 401
    assert airflow_ui.login().status_code == 201


def test_connection_form_test_button_signs_in_to_the_devstack(airflow_ui: Airflow) -> None:
    airflow_ui.login()
    stored = airflow_ui.api("GET", "/connections/cognito_iam_default")
    assert stored.status_code == 200
    conn = stored.json()
    assert conn["conn_type"] == "cognito_iam"
    assert conn["password"] != airflow_ui.password
    # The UI's Test button posts the form; the stored (masked) secrets are merged back in server-side.
    result = airflow_ui.api("POST", "/connections/test", json=conn)
    assert result.status_code == 200
    assert result.json()["status"] is True, result.json()
    assert "identity" in result.json()["message"]


def test_backfill_of_the_daily_dag_is_created_and_runs(airflow_ui: Airflow) -> None:
    airflow_ui.login()
    deadline = time.monotonic() + 120
    while airflow_ui.api("GET", f"/dags/{DAG_ID}").status_code != 200:
        assert time.monotonic() < deadline, "the dag-processor never registered the daily DAG"
        time.sleep(2)

    created = airflow_ui.api(
        "POST",
        "/backfills",
        json={
            "dag_id": DAG_ID,
            "from_date": "2026-02-01T00:00:00Z",
            "to_date": "2026-02-02T00:00:00Z",
            "max_active_runs": 2,
            "reprocess_behavior": "completed",
        },
    )
    assert created.status_code == 200, created.text
    backfill = created.json()
    assert backfill["dag_id"] == DAG_ID

    def backfill_runs() -> dict[str, str]:
        runs = airflow_ui.api("GET", f"/dags/{DAG_ID}/dagRuns", params={"run_type": "backfill"}).json()
        return {run["logical_date"][:10]: run["state"] for run in runs["dag_runs"]}

    deadline = time.monotonic() + BACKFILL_TIMEOUT
    states = backfill_runs()
    while any(state in ("queued", "running") for state in states.values()) and time.monotonic() < deadline:
        time.sleep(5)
        states = backfill_runs()
    assert states == {"2026-02-01": "success", "2026-02-02": "success"}

    stats = requests.get(f"{airflow_ui.devstack_api_url}/_stats", timeout=30).json()
    assert stats["api"]["routes"]["GET /orders"]["200"] >= 4, "two days, two pages each"
