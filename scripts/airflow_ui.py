"""`make airflow`: the devstack plus `airflow standalone`, ready to click through in a browser.

Starts the offline stack, runs `airflow standalone` (API server + UI, scheduler, dag-processor,
triggerer) with AIRFLOW_HOME under .local/airflow, and stores the `cognito_iam_default` and
`aws_default` connections and the example Variables in Airflow's database through the REST API, so
the UI lists them, opens the cognito_iam form, and its Test button performs a real sign-in. Prints
the URL and login, then runs until Ctrl-C; both processes are stopped on the way out.

The connections are stored the way the connection form itself would save them: every typed field's
key present (the Airflow 3.3 edit form shows only the keys a stored extra has) and port 0 (its
Test button sends 0 for an empty port, which the API server would otherwise take for a changed
destination and refuse with 400). Example DAGs are created paused and unpaused only after the
connections and Variables exist, so the first scheduled run already finds its bucket.

The devstack's pools are new on every start, so the connections are rewritten each time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from airflow_stack import (
    BIN,
    LOCAL,
    ROOT,
    StackError,
    airflow_env,
    connection_json,
    devstack,
    example_variables,
    say,
)

from airflow_cognito_iam.get_provider_info import FORM_DEFAULTS

READY_TIMEOUT = 300.0
DAGS_TIMEOUT = 180.0
USERNAME = "admin"


def api(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """One JSON call to the Airflow REST API; returns (status, decoded body)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}{path}", data=data, method=method)  # noqa: S310 - local server
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw)
        except ValueError:
            return exc.code, raw.decode(errors="replace")


def wait_until_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll /api/v2/monitor/health until the metadatabase and scheduler report healthy."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"airflow standalone exited with {process.returncode}; see {log}")
        try:
            status, body = api(base, "GET", "/api/v2/monitor/health")
        except OSError:
            status, body = 0, None
        if status == 200 and isinstance(body, dict):
            states = {name: (part or {}).get("status") for name, part in body.items() if isinstance(part, dict)}
            if states.get("metadatabase") == "healthy" and states.get("scheduler") == "healthy":
                return
        time.sleep(2)
    raise StackError(f"Airflow was not healthy within {READY_TIMEOUT:.0f} s; see {log}")


def read_password(home: Path) -> str:
    """The password standalone generated for the admin user (simple auth manager's file)."""
    path = home / "simple_auth_manager_passwords.json.generated"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            passwords: dict[str, str] = json.loads(path.read_text())
            return passwords[USERNAME]
        except (OSError, ValueError, KeyError):
            time.sleep(1)
    raise StackError(f"no password for {USERNAME!r} in {path}")


def get_token(base: str, password: str) -> str:
    status, body = api(base, "POST", "/auth/token", {"username": USERNAME, "password": password})
    if status not in (200, 201) or not isinstance(body, dict):
        raise StackError(f"POST /auth/token answered {status}")
    return str(body["access_token"])


def upsert(base: str, token: str, kind: str, key_field: str, body: dict[str, Any]) -> None:
    """Create or replace a connection/variable so the UI shows the current devstack's values."""
    key = body[key_field]
    status, answer = 0, None
    # Right after start-up the scheduler and dag-processor also write to SQLite, which can answer
    # "database is locked" (HTTP 500) for a moment; a few spaced tries ride that out.
    for attempt in range(5):
        if attempt:
            time.sleep(2 * attempt)
        status, answer = api(base, "PATCH", f"/api/v2/{kind}/{key}", body, token)
        if status == 404:
            status, answer = api(base, "POST", f"/api/v2/{kind}", body, token)
        if status < 500:
            break
    if status not in (200, 201):
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        raise StackError(f"could not store {kind[:-1]} {key!r} (HTTP {status}): {str(detail)[:300]}")


def connection_body(conn_id: str, conn: dict[str, Any]) -> dict[str, Any]:
    """A devstack connection in the REST API's shape, as the UI's form would have saved it.

    A ``cognito_iam`` extra gets every form field (its default, else null), so the edit form shows
    all of them; every connection gets port 0 unless it has one, so the list's Test button works;
    the devstack's ``aws`` connection also tests against the stack (moto answers STS).
    """
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra)
    if conn["conn_type"] == "cognito_iam":
        extra = {**FORM_DEFAULTS, **extra}
    elif conn["conn_type"] == "aws" and extra.get("endpoint_url"):
        # The amazon hook's Test calls STS at service_config's endpoint only (else public AWS).
        extra = {**extra, "service_config": {"sts": {"endpoint_url": extra["endpoint_url"]}}}
    return {
        "connection_id": conn_id,
        "conn_type": conn["conn_type"],
        "host": conn.get("host"),
        "login": conn.get("login"),
        "password": conn.get("password"),
        "port": conn.get("port") or 0,
        "extra": json.dumps(extra),
    }


def configure(base: str, token: str, info: dict[str, Any]) -> None:
    for conn_id, key in (("cognito_iam_default", "conn_json"), ("aws_default", "aws_conn_json")):
        conn = json.loads(connection_json(info, key))
        upsert(base, token, "connections", "connection_id", connection_body(conn_id, conn))
    for variable, value in example_variables(info).items():
        upsert(base, token, "variables", "key", {"key": variable, "value": value})


def unpause_examples(base: str, token: str, process: subprocess.Popen[bytes], log: Path) -> list[str]:
    """Wait until the dag-processor registered every example DAG, then unpause them all."""
    expected = len([p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_")])
    deadline = time.monotonic() + DAGS_TIMEOUT
    dag_ids: list[str] = []
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"airflow standalone exited with {process.returncode}; see {log}")
        status, body = api(base, "GET", "/api/v2/dags?limit=100", token=token)
        if status == 200 and isinstance(body, dict):
            dag_ids = sorted(dag["dag_id"] for dag in body.get("dags", []))
            if len(dag_ids) >= expected:
                break
        _, errors = api(base, "GET", "/api/v2/importErrors", token=token)
        if isinstance(errors, dict) and errors.get("import_errors"):
            first = errors["import_errors"][0]
            raise StackError(f"example DAG {first.get('filename')} does not import: {first.get('stack_trace')}")
        time.sleep(2)
    else:
        raise StackError(f"only {dag_ids} of {expected} example DAGs registered within {DAGS_TIMEOUT:.0f} s")
    for dag_id in dag_ids:
        status, answer = api(base, "PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False}, token)
        if status != 200:
            raise StackError(f"could not unpause {dag_id} (HTTP {status}): {str(answer)[:300]}")
    return dag_ids


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)  # standalone's children (scheduler, api-server...) too
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=8080, help="port of the UI / API server")
    parser.add_argument("--home", type=Path, default=LOCAL / "airflow", help="AIRFLOW_HOME")
    args = parser.parse_args(argv)
    home: Path = args.home.resolve()
    logs = home / "logs-make-airflow"
    base = f"http://127.0.0.1:{args.port}"

    def on_sigterm(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt  # same clean shutdown as Ctrl-C

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        say("starting the devstack")
        with devstack(logs / "devstack.log") as info:
            # Connections live in the database (editable in the UI): environment ones would shadow them.
            env = airflow_env(
                home,
                info,
                connections_in_env=False,
                AIRFLOW__API__PORT=str(args.port),
                AIRFLOW__API__WORKERS="1",
                # Task processes reach the API server here; the default assumes port 8080.
                AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{base}/execution/",
                # A laptop-sized executor: the default 32 parallel tasks start 32 worker processes.
                AIRFLOW__CORE__PARALLELISM="4",
                # Paused until the connections and Variables exist (unpause_examples), so the daily
                # example's first run (yesterday's, at once) does not start before its bucket is known.
                AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
            )
            log_path = logs / "standalone.log"
            say(f"airflow standalone (AIRFLOW_HOME={home}); log: {log_path}")
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [str(BIN / "airflow"), "standalone"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                try:
                    wait_until_healthy(base, process, log_path)
                    password = read_password(home)
                    token = get_token(base, password)
                    configure(base, token, info)
                    dag_ids = unpause_examples(base, token, process, log_path)
                    say(f"connections and Variables stored; unpaused {', '.join(dag_ids)}")
                    say("Airflow is ready")
                    print(f"    URL:      {base}/", flush=True)
                    print(f"    login:    {USERNAME} / {password}", flush=True)
                    print("    Admin > Connections: press Test on cognito_iam_default;", flush=True)
                    print("    cognito_iam_orders_daily is unpaused: start a backfill from its page.", flush=True)
                    print("    Ctrl-C stops Airflow and the devstack.", flush=True)
                    ready = {"ready": True, "url": base, "username": USERNAME, "devstack_api_url": info["api_url"]}
                    print(json.dumps(ready), flush=True)
                    while process.poll() is None:
                        time.sleep(1)
                    raise StackError(f"airflow standalone exited with {process.returncode}; see {log_path}")
                finally:
                    stop(process)
    except KeyboardInterrupt:
        say("Airflow and the devstack stopped")
        return 0
    except StackError as exc:
        print(f"make airflow FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
