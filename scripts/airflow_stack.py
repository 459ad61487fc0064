"""Shared plumbing of `make demo` and `make airflow`: the devstack CLI, an AIRFLOW_HOME, and airflow CLI calls.

Everything lives under the repository's ignored ``.local/`` folder, so a run never touches a
developer's own ~/airflow, AWS config or credentials.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local"
BIN = Path(sys.executable).parent
DEVSTACK_START_TIMEOUT = 120.0


class StackError(RuntimeError):
    """A step of the demo failed; the message says which and where its log is."""


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


@contextmanager
def devstack(log_path: Path, *extra_args: str) -> Iterator[dict[str, Any]]:
    """Run ``python -m airflow_cognito_iam.devstack up`` in the background; yield the JSON it prints.

    The stack is stopped on the way out, also when the body raised or the user pressed Ctrl-C.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "airflow_cognito_iam.devstack", "up", *extra_args]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=_isolated_env(),
            start_new_session=True,  # Ctrl-C reaches us first; we stop the stack ourselves
        )
        try:
            assert process.stdout is not None
            info = _read_json_object(process, process.stdout, log)
            yield info
        finally:
            _stop(process)


def _read_json_object(process: subprocess.Popen[str], stream: IO[str], log: IO[str]) -> dict[str, Any]:
    """The first JSON object on the devstack's stdout (it may span several lines)."""
    deadline = time.monotonic() + DEVSTACK_START_TIMEOUT
    buffer = ""
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            raise StackError(f"the devstack exited (code {process.wait()}) before it was ready; see {log.name}")
        log.write(line)
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
    raise StackError(f"the devstack printed no JSON within {DEVSTACK_START_TIMEOUT:.0f} s; see {log.name}")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=15)


def connection_json(info: Mapping[str, Any], key: str) -> str:
    """A connection from the devstack's JSON as the string AIRFLOW_CONN_* expects."""
    value = info.get(key)
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, str):
        return value
    raise StackError(f"the devstack JSON has no {key!r} (keys: {sorted(info)})")


def _isolated_env() -> dict[str, str]:
    env = dict(os.environ)
    # Never pick up a developer's real AWS identity: the demo must prove the Cognito path alone.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        env.pop(name, None)
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def airflow_env(
    home: Path, info: Mapping[str, Any], *, connections_in_env: bool = True, **overrides: str
) -> dict[str, str]:
    """Environment for airflow CLI calls: SQLite home, our dags/, and (by default) the stack's
    connections and Variables as AIRFLOW_CONN_* / AIRFLOW_VAR_* variables."""
    home.mkdir(parents=True, exist_ok=True)
    env = _isolated_env()
    for name in [n for n in env if n.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))]:
        del env[name]  # a developer's own connections must not leak into the demo
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW_COGNITO_IAM_CACHE_DIR": str(home / "cognito-iam-cache"),
        }
    )
    if connections_in_env:
        env.update(
            {
                "AIRFLOW_CONN_COGNITO_IAM_DEFAULT": connection_json(info, "conn_json"),
                "AIRFLOW_CONN_AWS_DEFAULT": connection_json(info, "aws_conn_json"),
                **{f"AIRFLOW_VAR_{key.upper()}": value for key, value in example_variables(info).items()},
            }
        )
    env.update(overrides)
    return env


def example_variables(info: Mapping[str, Any]) -> dict[str, str]:
    """The Airflow Variables the example DAGs read, pointing at the stack."""
    return {
        "cognito_iam_bucket": str(info["bucket"]),
        # Only the identity-boto3 example needs it; on AWS the Variable stays unset.
        "cognito_iam_s3_endpoint_url": str(info["moto_endpoint_url"]),
    }


def airflow(args: list[str], env: Mapping[str, str], log_path: Path, *, timeout: float = 600) -> str:
    """Run ``airflow <args>``; return its output, or raise naming the command and its log."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [str(BIN / "airflow"), *args]
    try:
        result = subprocess.run(
            command, env=dict(env), capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"`airflow {' '.join(args)}` did not finish within {timeout:.0f} s") from exc
    log_path.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-25:])
        raise StackError(f"`airflow {' '.join(args)}` failed (exit {result.returncode}); log: {log_path}\n{tail}")
    return result.stdout


def s3_client(info: Mapping[str, Any]) -> Any:
    """A boto3 S3 client for the devstack, built from its aws connection (as the DAG's S3 writes are)."""
    import boto3

    conn = json.loads(connection_json(info, "aws_conn_json"))
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra)
    return boto3.client(
        "s3",
        endpoint_url=extra.get("endpoint_url"),
        region_name=extra.get("region_name") or info.get("region"),
        aws_access_key_id=conn.get("login") or extra.get("aws_access_key_id"),
        aws_secret_access_key=conn.get("password") or extra.get("aws_secret_access_key"),
    )
