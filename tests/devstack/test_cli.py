"""`python -m airflow_cognito_iam.devstack up`: starts, prints its settings, stops cleanly on a signal."""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.integration

START_DEADLINE_SECONDS = 60
STOP_DEADLINE_SECONDS = 30


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "airflow_cognito_iam.devstack", "up", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], complete: Callable[[str], bool]) -> str:
    """Collect stdout until ``complete(text)`` holds, the process ends, or the deadline passes."""
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    text = ""
    deadline = time.monotonic() + START_DEADLINE_SECONDS
    while not complete(text) and time.monotonic() < deadline:
        try:
            text += lines.get(timeout=1)
        except queue.Empty:
            if proc.poll() is not None:
                break
    return text


def _children(pid: int) -> list[int]:
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                children.append(int(entry.name))
    return children


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _stop(proc: subprocess.Popen[str], signum: int) -> int:
    proc.send_signal(signum)
    try:
        return proc.wait(timeout=STOP_DEADLINE_SECONDS)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_up_prints_json_serves_and_stops_on_sigterm_without_children() -> None:
    proc = _start()
    try:
        document = json.loads(_read_until(proc, _parses))
        for key in (
            "api_url", "moto_endpoint_url", "user_pool_id", "client_id", "client_secret", "identity_pool_id",
            "region", "username", "password", "bucket", "conn_json", "aws_conn_json",
        ):  # fmt: skip
            assert document[key], key
        assert json.loads(document["conn_json"])["extra"]["user_pool_id"] == document["user_pool_id"]
        assert requests.get(f"{document['api_url']}/_stats", timeout=10).status_code == 200
        assert _children(proc.pid) == []
    finally:
        code = _stop(proc, signal.SIGTERM)

    assert code == 0
    assert not Path(f"/proc/{proc.pid}").exists() or proc.returncode is not None


def test_up_env_prints_export_lines_and_stops_on_sigint() -> None:
    proc = _start("--env")
    try:
        text = _read_until(proc, lambda t: t.count("\n") >= 2)
    finally:
        code = _stop(proc, signal.SIGINT)

    exports = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in text.splitlines() if line)
    assert code == 0
    assert json.loads(exports["AIRFLOW_CONN_COGNITO_IAM_DEFAULT"])["conn_type"] == "cognito_iam"
    assert json.loads(exports["AIRFLOW_CONN_AWS_DEFAULT"])["conn_type"] == "aws"


def test_up_on_fixed_ports_and_all_interfaces_advertises_a_reachable_host() -> None:
    import socket

    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    proc = _start("--host", "0.0.0.0", "--port-moto", str(ports[0]), "--port-api", str(ports[1]))
    try:
        document = json.loads(_read_until(proc, _parses))
    finally:
        code = _stop(proc, signal.SIGTERM)

    assert code == 0
    assert document["moto_endpoint_url"] == f"http://127.0.0.1:{ports[0]}"
    assert document["api_url"] == f"http://127.0.0.1:{ports[1]}"


def test_plugin_import_is_cheap_and_needs_neither_moto_nor_airflow() -> None:
    code = (
        "import sys, airflow_cognito_iam.devstack.pytest_plugin, airflow_cognito_iam.devstack as d; "
        "print(sorted(m for m in ('moto', 'airflow', 'boto3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)

    assert out.stdout.strip() == "[]"


def test_devstack_imports_no_airflow() -> None:
    code = (
        "import sys\n"
        "from airflow_cognito_iam.devstack import DevStack\n"
        "import airflow_cognito_iam.devstack.__main__, airflow_cognito_iam.devstack.cognito_layer\n"
        "with DevStack() as stack:\n"
        "    pass\n"
        "print(any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules))\n"
    )
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True, env=env)

    assert out.stdout.strip() == "False"


def test_up_on_a_busy_port_fails_clearly_without_hanging() -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "airflow_cognito_iam.devstack", "up", "--port-api", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert done.returncode == 1
    assert "cannot start" in done.stderr
    assert done.stdout == ""
