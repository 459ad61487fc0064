"""Run the devstack inside docker compose and publish connections that reach it by service name.

The devstack's pools, clients and passwords are created at start-up, so its connections cannot be
written into docker-compose.yml. This wrapper starts the devstack CLI, reads the JSON it prints,
rewrites every endpoint from the bind address to the compose hostname (``http://devstack:8081``),
adds ``allow_http`` (plain http to a non-loopback host is refused otherwise), and writes one file
per ``AIRFLOW_CONN_*`` variable into the shared volume. docker_entrypoint.sh in the Airflow
services loads them. The files hold the devstack's throw-away test user only.

Usage: compose_devstack.py --public-host devstack --state-dir DIR -- python -m airflow_cognito_iam.devstack up ...
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

CONN_FILES = ("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", "AIRFLOW_CONN_AWS_DEFAULT")
_BIND_HOSTS = {"0.0.0.0", "127.0.0.1", "localhost", "::", "[::]"}  # noqa: S104 - names to replace, not binds


def public_url(url: str, public_host: str) -> str:
    """Swap a bind/loopback host for the compose service name, keeping scheme, port and path."""
    parts = urlsplit(url)
    if parts.hostname not in _BIND_HOSTS:
        return url
    netloc = public_host if parts.port is None else f"{public_host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def publish_connection(conn: dict[str, Any], public_host: str) -> dict[str, Any]:
    """Return the connection with every URL made reachable from other containers."""
    conn = json.loads(json.dumps(conn))  # deep copy; connections are plain JSON
    if isinstance(conn.get("host"), str) and "://" in conn["host"]:
        conn["host"] = public_url(conn["host"], public_host)
    extra = conn.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra)
    for key, value in list(extra.items()):
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            extra[key] = public_url(value, public_host)
    if conn.get("conn_type") == "cognito_iam":
        extra["allow_http"] = True
    conn["extra"] = extra
    return conn


def _connections(info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for var, keys in (
        ("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", ("conn_json", "conn", "connection")),
        ("AIRFLOW_CONN_AWS_DEFAULT", ("aws_conn_json", "aws_conn", "aws_connection")),
    ):
        for key in keys:
            value = info.get(key)
            if isinstance(value, str):
                value = json.loads(value)
            if isinstance(value, dict):
                found[var] = value
                break
    if "AIRFLOW_CONN_COGNITO_IAM_DEFAULT" not in found:
        raise SystemExit(f"devstack printed no connection (keys: {sorted(info)})")
    return found


def _read_json(stream: Any) -> dict[str, Any]:
    """Read stdout lines until they form one JSON object (the devstack may pretty-print it)."""
    buffer = ""
    for line in stream:
        sys.stdout.write(line)
        stripped = line.strip()
        if not buffer and not stripped.startswith("{"):
            continue
        buffer += line
        try:
            parsed = json.loads(buffer)
        except json.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            return parsed
        buffer = ""
    raise SystemExit("devstack exited before printing its connection JSON")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--public-host", required=True, help="hostname other containers use, e.g. devstack")
    parser.add_argument("--state-dir", type=Path, required=True, help="shared volume for the connection files")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- devstack command line")
    args = parser.parse_args(argv)
    command = [c for c in args.command if c != "--"] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the devstack command after --")

    args.state_dir.mkdir(parents=True, exist_ok=True)
    # A file left by the previous container would make the healthcheck pass with stale pools.
    for name in CONN_FILES:
        (args.state_dir / name).unlink(missing_ok=True)

    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, bufsize=1)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: child.send_signal(signum))
    assert child.stdout is not None
    try:
        info = _read_json(child.stdout)
        for var, conn in _connections(info).items():
            target = args.state_dir / var
            tmp = target.with_suffix(".tmp")
            tmp.write_text(json.dumps(publish_connection(conn, args.public_host)))
            os.chmod(tmp, 0o640)
            tmp.replace(target)  # the healthcheck must never see half a file
        print(f"published {', '.join(CONN_FILES)} for host {args.public_host}", flush=True)
        for line in child.stdout:
            sys.stdout.write(line)
    finally:
        if child.poll() is None:
            child.terminate()
        code = child.wait()
    return code


if __name__ == "__main__":
    sys.exit(main())
