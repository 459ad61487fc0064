"""The devstack in a process of its own, for benchmarks that must not share a GIL with it."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any


def start_devstack() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``python -m airflow_cognito_iam.devstack up`` in a child process; its JSON settings."""
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_cognito_iam.devstack", "up"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    document = ""
    for line in process.stdout:  # one (indented) JSON document, then the stack keeps running
        document += line
        if line.rstrip() == "}":
            return process, json.loads(document)
    process.kill()
    raise SystemExit("the devstack did not start")


def connection_env(info: dict[str, Any]) -> dict[str, str]:
    """The connection variables of a started devstack (what ``devstack up --env`` prints)."""
    return {"AIRFLOW_CONN_COGNITO_IAM_DEFAULT": info["conn_json"], "AIRFLOW_CONN_AWS_DEFAULT": info["aws_conn_json"]}
