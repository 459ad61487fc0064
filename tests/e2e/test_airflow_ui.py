"""`make airflow` gives a working Airflow: healthy API server, testable connection, runnable backfill.

Runs scripts/airflow_ui.py (devstack + `airflow standalone`) as a user would, then drives the public
REST API with a token from the simple auth manager: the health endpoint, the connection form's
Test action, and a backfill of the daily DAG that the scheduler then runs against the devstack.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

DAG_ID = "cognito_iam_orders_daily"
BACKFILL_TIMEOUT = 300.0


@pytest.fixture(scope="module")
def airflow_ui(make_airflow: Any) -> Any:
    """conftest's MakeAirflow: the stack of this module."""
    return make_airflow


def test_api_server_and_scheduler_report_healthy(airflow_ui: Any) -> None:
    response = requests.get(f"{airflow_ui.url}/api/v2/monitor/health", timeout=30)
    assert response.status_code == 200
    health = response.json()
    assert health["metadatabase"]["status"] == "healthy"
    assert health["scheduler"]["status"] == "healthy"


def test_simple_auth_manager_login_guards_the_api(airflow_ui: Any) -> None:
    assert requests.get(f"{airflow_ui.url}/api/v2/dags", timeout=30).status_code == 401
    bad = requests.post(
        f"{airflow_ui.url}/auth/token", json={"username": airflow_ui.username, "password": "wrong"}, timeout=30
    )
    assert bad.status_code == 401
    assert airflow_ui.login().status_code == 201


def test_connection_form_test_button_signs_in_to_the_devstack(airflow_ui: Any) -> None:
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


def browser_test_body(conn: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """What the connection list's Test button posts (Airflow 3.3.2 UI): blanks as "", port as Number(port)."""
    body = {
        "conn_type": conn["conn_type"],
        "connection_id": conn["connection_id"],
        "description": conn.get("description") or "",
        "extra": conn.get("extra") or "{}",
        "host": conn.get("host") or "",
        "login": conn.get("login") or "",
        "password": conn.get("password") or "",
        "port": int(conn.get("port") or 0),
        "schema": conn.get("schema") or "",
    }
    return {**body, **changes}


def when(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp)


def other_no_port(conn: dict[str, Any]) -> int | None:
    return None if conn.get("port") == 0 else 0


def test_stored_connection_has_every_form_field_and_port_zero(airflow_ui: Any) -> None:
    from airflow_cognito_iam.get_provider_info import CONN_FIELDS

    airflow_ui.login()
    conn = airflow_ui.api("GET", "/connections/cognito_iam_default").json()
    assert conn["port"] == 0, "the list's Test button sends 0 for an empty port; 0 must be stored"
    assert set(json.loads(conn["extra"])) >= set(CONN_FIELDS), "the edit form shows only stored keys"


def test_the_browsers_test_request_signs_in(airflow_ui: Any) -> None:
    airflow_ui.login()
    for conn_id in ("cognito_iam_default", "aws_default"):
        conn = airflow_ui.api("GET", f"/connections/{conn_id}").json()
        result = airflow_ui.api("POST", "/connections/test", json=browser_test_body(conn))
        assert result.status_code == 200, f"{conn_id}: {result.text}"
        assert result.json()["status"] is True, result.json()


def test_a_wrong_password_with_masked_secrets_blames_the_password_and_reveals_nothing(airflow_ui: Any) -> None:
    airflow_ui.login()
    conn = airflow_ui.api("GET", "/connections/cognito_iam_default").json()
    stored = airflow_ui.stored_connection("cognito_iam_default")
    secrets = [stored["password"], stored["extra_dejson"]["client_secret"], "Wrong-Passw0rd!"]
    # The other way to say "no port" (null vs 0): the API server sees another destination and hands
    # the hook the form as sent, client_secret still masked ('***'), as it did for every browser Test
    # while make airflow stored a null port.
    body = browser_test_body(conn, password="Wrong-Passw0rd!", port=other_no_port(conn))
    result = airflow_ui.api("POST", "/connections/test", json=body).json()
    message = result["message"]
    assert result["status"] is False
    assert "incorrect username or password" in message
    assert "SECRET_HASH" not in message
    assert "client_secret" not in message
    assert "changes to password" in message
    assert not re.search(r"connection '[A-Za-z]{8}'", message), "the API server's random id means nothing"
    assert not any(secret in message for secret in secrets)


def test_stored_secrets_are_not_reused_for_another_user(airflow_ui: Any) -> None:
    airflow_ui.login()
    conn = airflow_ui.api("GET", "/connections/cognito_iam_default").json()
    body = browser_test_body(conn, login="someone-else", password="Wrong-Passw0rd!", port=other_no_port(conn))
    result = airflow_ui.api("POST", "/connections/test", json=body).json()
    assert result["status"] is False
    assert "client_secret arrived masked" in result["message"]
    assert "changed login" in result["message"]


def test_first_scheduled_run_succeeds_on_its_first_try(airflow_ui: Any) -> None:
    """make airflow unpauses the DAGs only after storing the Variables (the bucket) and connections."""
    airflow_ui.login()
    runs = airflow_ui.wait_for_runs(DAG_ID, "scheduled", 1, BACKFILL_TIMEOUT)
    (run_id,) = runs
    assert runs[run_id] == "success"
    task = airflow_ui.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/pull_orders").json()
    assert (task["state"], task["try_number"]) == ("success", 1)
    # The order itself, from the audit log: every connection and Variable write, then the run.
    events = airflow_ui.api("GET", "/eventLogs", params={"limit": 100, "order_by": "when"}).json()["event_logs"]
    writes = [when(e["when"]) for e in events if e["event"].endswith(("_connection", "_variable"))]
    assert len(writes) >= 4, events
    run = airflow_ui.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}").json()
    assert when(run["queued_at"]) > max(writes), "the first run was queued before its settings were stored"


def test_backfill_of_the_daily_dag_is_created_and_runs(airflow_ui: Any) -> None:
    airflow_ui.login()
    deadline = time.monotonic() + 120
    while airflow_ui.api("GET", f"/dags/{DAG_ID}").status_code != 200:
        assert time.monotonic() < deadline, "the dag-processor never registered the daily DAG"
        time.sleep(2)

    body = {
        "dag_id": DAG_ID,
        "from_date": "2026-02-01T00:00:00Z",
        "to_date": "2026-02-02T00:00:00Z",
        "max_active_runs": 2,
        "reprocess_behavior": "completed",
    }
    created = airflow_ui.api("POST", "/backfills", json=body)
    for attempt in range(1, 6):
        # SQLite: while the scheduler writes, Airflow answers 503 "Database is locked" (it says to retry).
        if created.status_code != 503:
            break
        time.sleep(2 * attempt)
        created = airflow_ui.api("POST", "/backfills", json=body)
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
