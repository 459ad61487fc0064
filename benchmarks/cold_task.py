"""Cold task start: a fresh process that signs in and makes one signed request, phase by phase.

Every repetition is a new Python process (as every Airflow task is). Three kinds alternate:

* ``cold``: this package, empty credential cache: sign-in (SRP), identity exchange, one GET;
* ``warm``: this package, credentials already in the host's file cache: no Cognito call;
* ``control``: a hand-written function, boto3 ``USER_PASSWORD_AUTH`` + ``cognito-identity`` +
  ``requests`` with ``requests-aws4auth``: the least a task could do (no SRP, no cache, no checks).

Airflow's own import (``airflow.sdk``) is timed apart and left out of the ratios: every task pays
it whatever the operator. Phases (milliseconds, medians): ``imports`` (after airflow.sdk), ``build``
(connection + the two Cognito clients), ``srp`` (SRP arithmetic), ``calls`` (Cognito round trips and
the rest of sign-in), ``cache`` (cache lookup/store, key derivation), ``request`` (first API GET).
Targets: cold/control <= 1.5, warm/control <= 1.1.

    .venv/bin/python benchmarks/cold_task.py [--repetitions 7]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

from devstack_process import start_devstack

PHASES = ("imports", "build", "srp", "calls", "cache", "request")


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def child_package(cold: bool) -> dict[str, float]:
    """This package's path: hook → provider (cache, sign-in, exchange) → one signed GET.

    A warm task never builds the Cognito clients (the provider builds them lazily), so ``build``
    is the connection alone there.
    """
    started = time.perf_counter()
    import airflow.sdk  # noqa: F401

    airflow_ms = _ms(started)
    started = time.perf_counter()
    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
    from airflow_cognito_iam.operators import api  # noqa: F401  (a task imports the operator)

    imports = _ms(started)
    timers: dict[str, float] = {"srp": 0.0, "cache": 0.0}

    def timed(owner: Any, name: str, bucket: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                timers[bucket] += _ms(began)

        setattr(owner, name, wrapper)

    from airflow_cognito_iam.auth import cache, user_pool

    srp_class = vars(user_pool)["AWSSRP"]
    for name in ("__init__", "get_auth_params", "process_challenge"):
        timed(srp_class, name, "srp")
    for cls_name in ("FileCredentialCache", "SharedCredentialCache", "MemoryCredentialCache"):
        cls = getattr(cache, cls_name, None)
        for name in ("get", "put", "load", "store", "lock"):
            if cls is not None and name in vars(cls):
                timed(cls, name, "cache")

    started = time.perf_counter()
    hook = CognitoIamHook()
    provider = hook.provider
    if cold:
        _ = provider.authenticator, provider.exchanger  # the two Cognito clients
    build = _ms(started)
    started = time.perf_counter()
    hook.get_credentials()
    credentials = _ms(started)
    started = time.perf_counter()
    response = hook.request("GET", "/whoami")
    request = _ms(started)
    assert response.status_code == 200, response.status_code
    hook.close()
    calls = max(0.0, credentials - timers["srp"] - timers["cache"])
    return {
        "airflow": airflow_ms,
        "imports": imports,
        "build": build,
        "srp": timers["srp"],
        "calls": calls,
        "cache": timers["cache"],
        "request": request,
    }


def child_control() -> dict[str, float]:
    """The hand-written function: password flow, identity exchange, requests-aws4auth."""
    started = time.perf_counter()
    import airflow.sdk  # noqa: F401

    airflow_ms = _ms(started)
    started = time.perf_counter()
    import base64
    import hashlib
    import hmac

    import boto3
    import requests
    from botocore import UNSIGNED
    from botocore.config import Config
    from requests_aws4auth import AWS4Auth

    imports = _ms(started)
    conn = json.loads(os.environ["AIRFLOW_CONN_COGNITO_IAM_DEFAULT"])
    extra = conn["extra"]
    started = time.perf_counter()
    session = boto3.session.Session()
    config = Config(signature_version=UNSIGNED)
    endpoint = extra.get("cognito_idp_endpoint_url")
    idp = session.client("cognito-idp", region_name=extra["region"], endpoint_url=endpoint, config=config)
    identity = session.client("cognito-identity", region_name=extra["region"], endpoint_url=endpoint, config=config)
    build = _ms(started)
    started = time.perf_counter()
    username, password = conn["login"], conn["password"]
    digest = hmac.new(extra["client_secret"].encode(), (username + extra["client_id"]).encode(), hashlib.sha256)
    auth = idp.initiate_auth(
        ClientId=extra["client_id"],
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={
            "USERNAME": username,
            "PASSWORD": password,
            "SECRET_HASH": base64.b64encode(digest.digest()).decode(),
        },
    )
    id_token = auth["AuthenticationResult"]["IdToken"]
    logins = {f"cognito-idp.{extra['region']}.amazonaws.com/{extra['user_pool_id']}": id_token}
    identity_id = identity.get_id(IdentityPoolId=extra["identity_pool_id"], Logins=logins)["IdentityId"]
    creds = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)["Credentials"]
    calls = _ms(started)
    started = time.perf_counter()
    signer = AWS4Auth(
        creds["AccessKeyId"], creds["SecretKey"], extra["region"], "execute-api", session_token=creds["SessionToken"]
    )
    response = requests.get(f"{conn['host'].rstrip('/')}/whoami", auth=signer, timeout=30)
    request = _ms(started)
    assert response.status_code == 200, response.status_code
    return {
        "airflow": airflow_ms,
        "imports": imports,
        "build": build,
        "srp": 0.0,
        "calls": calls,
        "cache": 0.0,
        "request": request,
    }


def run(kind: str, env: dict[str, str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} child failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=7, help="fresh processes per kind")
    parser.add_argument("--child", choices=("cold", "warm", "control"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child_control() if args.child == "control" else child_package(args.child == "cold")))
        return 0

    # pip compiles a wheel's modules at install; an editable install or PYTHONDONTWRITEBYTECODE=1
    # would make every child compile this package from source (~75 ms of "imports") instead.
    import compileall

    import airflow_cognito_iam

    compileall.compile_dir(os.path.dirname(airflow_cognito_iam.__file__), quiet=1)
    home = tempfile.mkdtemp(prefix="bench-airflow-")
    devstack, info = start_devstack()
    try:
        base = dict(os.environ, AIRFLOW_HOME=home, AIRFLOW_CONN_COGNITO_IAM_DEFAULT=info["conn_json"])
        warm_dir = tempfile.mkdtemp(prefix="bench-cache-warm-")
        warm_env = dict(base, AIRFLOW_COGNITO_IAM_CACHE_DIR=warm_dir)
        run("cold", warm_env)  # fills the warm cache (and the OS file cache for every kind)
        run("control", base)
        results: dict[str, list[dict[str, float]]] = {"cold": [], "warm": [], "control": []}
        for repetition in range(args.repetitions):
            order = ("cold", "warm", "control") if repetition % 2 == 0 else ("control", "warm", "cold")
            for kind in order:
                if kind == "cold":
                    env = dict(base, AIRFLOW_COGNITO_IAM_CACHE_DIR=tempfile.mkdtemp(prefix="bench-cache-cold-"))
                else:
                    env = warm_env if kind == "warm" else base
                results[kind].append(run(kind, env))
    finally:
        devstack.send_signal(signal.SIGTERM)
        devstack.wait(timeout=30)

    totals: dict[str, float] = {}
    print(f"median of {args.repetitions} fresh processes each, milliseconds (airflow.sdk import excluded)")
    print(f"{'kind':8} {'airflow':>8} " + " ".join(f"{p:>8}" for p in PHASES) + f" {'total':>8}")
    for kind, runs in results.items():
        medians = {key: statistics.median(r[key] for r in runs) for key in ("airflow", *PHASES)}
        totals[kind] = statistics.median(sum(r[p] for p in PHASES) for r in runs)
        cells = " ".join(f"{medians[p]:8.1f}" for p in PHASES)
        print(f"{kind:8} {medians['airflow']:8.1f} {cells} {totals[kind]:8.1f}")
    cold = totals["cold"] / totals["control"]
    warm = totals["warm"] / totals["control"]
    print("targets: cold_over_control <= 1.5, warm_over_control <= 1.1")
    print(
        f"cold_ms={totals['cold']:.0f} warm_ms={totals['warm']:.0f} control_ms={totals['control']:.0f} "
        f"ratio_cold_over_control={cold:.2f} ratio_warm_over_control={warm:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
