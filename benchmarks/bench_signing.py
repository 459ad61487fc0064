"""Signed vs unsigned GET throughput over loopback keep-alive against the devstack API.

Both sessions hit the same route (``/_stats``, which the devstack serves before any SigV4 check, so
the server does identical work), so the ratio isolates what signing costs the client: canonical
URL, frozen credentials, HMAC. Target: signed/unsigned >= 0.90.

    .venv/bin/python benchmarks/bench_signing.py [--requests 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import requests


def throughput(session: requests.Session, url: str, count: int) -> float:
    """Requests per second for ``count`` sequential GETs on one keep-alive session."""
    started = time.perf_counter()
    for _ in range(count):
        response = session.get(url, params={"date": "2024-01-02", "q": "a b+c"}, timeout=30)
        response.raise_for_status()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="GETs per block")
    parser.add_argument("--rounds", type=int, default=30, help="pairs of adjacent unsigned/signed blocks")
    args = parser.parse_args()

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-cache-")
    from airflow_cognito_iam.devstack import DevStack
    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

    with DevStack() as stack:
        os.environ.update(stack.env())
        hook = CognitoIamHook()
        assert hook.request("GET", "/whoami").status_code == 200  # the signature really verifies
        url = f"{stack.api_url}/_stats"
        signed, unsigned = hook.get_session(), requests.Session()
        throughput(signed, url, 50)  # warm up both connections
        throughput(unsigned, url, 50)
        # Short adjacent blocks in alternating order, compared pairwise: on a shared machine the
        # background load drifts over seconds, so long separate runs compare load, not signing.
        ratios, signed_rps, unsigned_rps = [], [], []
        for round_ in range(args.rounds):
            if round_ % 2:
                s = throughput(signed, url, args.requests)
                u = throughput(unsigned, url, args.requests)
            else:
                u = throughput(unsigned, url, args.requests)
                s = throughput(signed, url, args.requests)
            unsigned_rps.append(u)
            signed_rps.append(s)
            ratios.append(s / u)
        quartiles = statistics.quantiles(ratios, n=4)
        print(f"unsigned: {statistics.median(unsigned_rps):8.0f} req/s (median of {args.rounds} blocks)")
        print(f"signed:   {statistics.median(signed_rps):8.0f} req/s (median of {args.rounds} blocks)")
        print(f"ratio signed/unsigned: {statistics.median(ratios):.3f} (median of paired blocks; target >= 0.90)")
        print(f"ratio interquartile range: {quartiles[0]:.3f} .. {quartiles[2]:.3f}")
        hook.close()


if __name__ == "__main__":
    main()
