"""`cognito_iam.*` metrics reach a real StatsD listener during a real `airflow dags test` run."""

from __future__ import annotations

import os
import re
import socket
import threading
from collections import defaultdict
from typing import Any

import pytest

from airflow_cognito_iam.devstack import DevStack

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

_LINE = re.compile(r"^(?P<name>[^:]+):(?P<value>[-\d.]+)\|(?P<kind>c|ms|g)")


class StatsdListener:
    """A UDP socket on loopback that keeps every StatsD line it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.lines: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(65535)
            except OSError:
                continue
            self.lines.extend(data.decode(errors="replace").splitlines())

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        self.sock.close()


def test_dags_test_emits_the_documented_metrics_to_statsd(
    cognito_iam_conn: DevStack, airflow_env: dict[str, str], airflow_cli: Any
) -> None:
    stack = cognito_iam_conn
    listener = StatsdListener()
    try:
        env = {
            **airflow_env,
            **stack.env(),
            "AIRFLOW_VAR_COGNITO_IAM_BUCKET": stack.bucket,
            "AIRFLOW_COGNITO_IAM_CACHE_DIR": os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"],
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(listener.port),
            "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        }
        result = airflow_cli(["dags", "test", "cognito_iam_orders_daily", "2026-03-16"], env)
    finally:
        listener.close()

    seen: dict[str, list[float]] = defaultdict(list)
    for line in listener.lines:
        if (match := _LINE.match(line)) and match["name"].startswith("airflow.cognito_iam."):
            seen[match["name"].removeprefix("airflow.")].append(float(match["value"]))
    assert seen, f"no cognito_iam metric arrived; got {listener.lines[:20]}"
    print("\n".join(line for line in listener.lines if ".cognito_iam." in line))  # shown with -s, and on failure
    # One sign-in (SRP), one exchange, a miss in the empty cache, then requests timed.
    assert seen["cognito_iam.sign_in"] == [1.0]
    assert 0 < seen["cognito_iam.sign_in.duration"][0] < 30_000
    assert seen["cognito_iam.credential_exchange"] == [1.0]
    assert seen["cognito_iam.cache.miss"]
    durations = seen["cognito_iam.api_request.duration"]
    assert len(durations) >= 2, "one timer per API request (the day has two pages)"
    assert all(0 < ms < 30_000 for ms in durations)
    text = "\n".join(listener.lines) + result.stdout + result.stderr
    for secret in (stack.password, stack.client_secret, stack.username):
        assert secret not in "\n".join(listener.lines)
    assert stack.password not in text
