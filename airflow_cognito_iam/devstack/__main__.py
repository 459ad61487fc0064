"""``python -m airflow_cognito_iam.devstack up``: run the offline stack until interrupted."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m airflow_cognito_iam.devstack",
        description="Offline Cognito + identity pool + S3 + SigV4-protected API for demos and DAG tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the stack, print its settings, run until SIGINT/SIGTERM")
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for docker-compose)")
    up.add_argument(
        "--advertise-host",
        default=None,
        help="host name clients use in URLs (e.g. the compose service name); default: the listen address",
    )
    up.add_argument("--port-moto", type=int, default=0, help="port of the Cognito/S3 endpoint (default: free)")
    up.add_argument("--port-api", type=int, default=0, help="port of the API (default: free)")
    up.add_argument("--region", default="us-east-1")
    up.add_argument(
        "--credential-lifetime", type=float, default=3600.0, help="seconds identity-pool credentials stay valid"
    )
    up.add_argument("--env", action="store_true", help="print shell export lines instead of JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)

    from airflow_cognito_iam.devstack.stack import DevStack

    stack = DevStack(
        region=args.region,
        host=args.host,
        moto_port=args.port_moto,
        api_port=args.port_api,
        advertised_host=args.advertise_host,
        credential_lifetime=args.credential_lifetime,
    )
    try:
        stack.start()
    except OSError as exc:
        print(f"devstack: cannot start: {exc}", file=sys.stderr)
        return 1
    try:
        if args.env:
            for name, value in stack.env().items():
                print(f"export {name}={shlex.quote(value)}")
        else:
            print(json.dumps(stack.describe(), indent=2))
        sys.stdout.flush()
        print(
            f"devstack: API on {stack.api_url}, Cognito/S3 on {stack.moto_endpoint_url}; Ctrl-C stops", file=sys.stderr
        )
        while not stop.wait(0.5):
            pass
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
