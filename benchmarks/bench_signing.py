"""Signed vs unsigned GET throughput over loopback keep-alive.

Two servers, each in its own process (as a real API is), so no server work shares this process's
GIL with the client:

* a minimal keep-alive HTTP responder: the ratio is what signing costs the client (canonical URL,
  frozen credentials, HMAC, ~1 KB more headers to send). This is the figure the target is about;
* the devstack API's unsigned ``/_stats`` route, for reference: there werkzeug's pure-Python header
  parsing of the extra ~1 KB (session token, signature) is a large share of a loopback round trip,
  which says more about the dev server than about signing.

Blocks alternate order to cancel drift on a shared machine. Target: signed/unsigned >= 0.90.

Then the operator's own per-request cost: ``CognitoIamApiOperator`` paging through ``--pages``
pages of the minimal server (pagination, checks, the XCom result, its one summary line) against a
plain loop of the same GETs on a stock ``requests.Session`` with the same SigV4 auth (what a
hand-written task does). Target: operator/plain <= 1.2 (time per
request). The last line prints both ratios.

    .venv/bin/python benchmarks/bench_signing.py [--requests 25] [--rounds 200] [--pages 100]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import requests

# A typical job's query: a date and a page size (awkward characters are covered by the tests).
from devstack_process import start_devstack

QUERY = {"date": "2024-01-02", "limit": "100"}


def throughput(session: requests.Session, url: str, count: int) -> float:
    """Requests per second for ``count`` sequential GETs on one keep-alive session."""
    started = time.perf_counter()
    for _ in range(count):
        response = session.get(url, params=QUERY, timeout=30)
        response.raise_for_status()
    return count / (time.perf_counter() - started)


def serve_minimal(port_file: str) -> None:
    """A keep-alive HTTP/1.1 responder: reads each request head, answers ``{}``; runs until killed."""
    import asyncio

    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")  # GETs carry no body
                writer.write(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        with open(port_file, "w") as out:
            out.write(str(server.sockets[0].getsockname()[1]))
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start_minimal_server() -> tuple[subprocess.Popen[str], int]:
    """The minimal responder in a child process; its port."""
    port_file = os.path.join(tempfile.mkdtemp(prefix="bench-port-"), "port")
    process = subprocess.Popen([sys.executable, __file__, "--serve", port_file], text=True)
    for _ in range(200):
        if os.path.exists(port_file):
            with open(port_file) as written:
                port = written.read().strip()
            if port:
                return process, int(port)
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the minimal server did not start")


def compare(signed: requests.Session, url: str, rounds: int, count: int, label: str) -> float:
    """Alternate unsigned/signed blocks on keep-alive sessions and print the median ratio.

    The unsigned session is of the signed one's class (the hook's reads proxy settings once per
    origin), so the ratio is the cost of signing alone.
    """
    unsigned = type(signed)()
    throughput(signed, url, 50)  # warm up both connections
    throughput(unsigned, url, 50)
    ratios, signed_rps, unsigned_rps = [], [], []
    for round_ in range(rounds):
        if round_ % 2:
            s = throughput(signed, url, count)
            u = throughput(unsigned, url, count)
        else:
            u = throughput(unsigned, url, count)
            s = throughput(signed, url, count)
        unsigned_rps.append(u)
        signed_rps.append(s)
        ratios.append(s / u)
    quartiles = statistics.quantiles(ratios, n=4)
    print(f"[{label}]")
    print(f"  unsigned: {statistics.median(unsigned_rps):8.0f} req/s (median of {rounds} blocks)")
    print(f"  signed:   {statistics.median(signed_rps):8.0f} req/s (median of {rounds} blocks)")
    print(f"  ratio signed/unsigned: {statistics.median(ratios):.3f} (median of paired blocks; target >= 0.90)")
    print(f"  ratio interquartile range: {quartiles[0]:.3f} .. {quartiles[2]:.3f}")
    unsigned.close()
    return statistics.median(ratios)


def compare_operator(signed: requests.Session, url: str, port: int, rounds: int, pages: int) -> float:
    """Median ratio of the operator's time per request over a plain signed loop's (paired blocks)."""
    from airflow.sdk.bases.operator import ExecutorSafeguard

    from airflow_cognito_iam.operators.api import CognitoIamApiOperator

    ExecutorSafeguard.test_mode = True  # as under the task runner (no "outside the Task Runner" warning)
    logging.getLogger("airflow.task.operators").setLevel(logging.WARNING)  # not the console's speed
    state = {"page": 0}

    def next_page(response: requests.Response) -> dict[str, Any] | None:
        state["page"] += 1
        return {"query": {"page": str(state["page"])}} if state["page"] < pages else None

    operator = CognitoIamApiOperator(
        task_id="bench_pages", endpoint=url, query=QUERY, pagination=next_page, allowed_hosts=[f"127.0.0.1:{port}"]
    )

    def run_operator() -> float:
        state["page"] = 0
        started = time.perf_counter()
        result = operator.execute({})
        assert len(result) == pages
        return (time.perf_counter() - started) / pages

    # What a hand-written task does: a stock requests.Session with the same SigV4 auth.
    plain = requests.Session()
    plain.auth = signed.auth

    def run_plain() -> float:
        return 1 / throughput(plain, url, pages)

    run_operator()
    run_plain()
    ratios, op_times, plain_times = [], [], []
    for round_ in range(rounds):
        if round_ % 2:
            o, p = run_operator(), run_plain()
        else:
            p, o = run_plain(), run_operator()
        op_times.append(o)
        plain_times.append(p)
        ratios.append(o / p)
    extra_us = (statistics.median(op_times) - statistics.median(plain_times)) * 1e6
    print("[operator vs plain signed loop, minimal keep-alive server]")
    print(f"  plain signed loop: {statistics.median(plain_times) * 1e6:8.0f} us/request (median of {rounds} blocks)")
    print(f"  operator, paged:   {statistics.median(op_times) * 1e6:8.0f} us/request ({pages} pages per execute)")
    print(f"  operator overhead: {extra_us:8.0f} us/request")
    print(f"  ratio operator/plain: {statistics.median(ratios):.3f} (median of paired blocks; target <= 1.20)")
    plain.close()
    return statistics.median(ratios)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=25, help="GETs per block")
    parser.add_argument("--rounds", type=int, default=200, help="pairs of adjacent unsigned/signed blocks")
    parser.add_argument("--pages", type=int, default=100, help="pages per operator execute")
    parser.add_argument("--operator-rounds", type=int, default=30, help="pairs of operator/plain blocks")
    args = parser.parse_args()

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
    os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-cache-")
    devstack, info = start_devstack()
    minimal, port = start_minimal_server()
    try:
        os.environ["AIRFLOW_CONN_COGNITO_IAM_DEFAULT"] = info["conn_json"]
        from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

        hook = CognitoIamHook(allowed_hosts=[f"127.0.0.1:{port}"])
        assert hook.request("GET", "/whoami").status_code == 200  # the signature really verifies
        signed = hook.get_session()
        minimal_url = f"http://127.0.0.1:{port}/orders"
        signing = compare(signed, minimal_url, args.rounds, args.requests, "minimal keep-alive server")
        compare(signed, f"{info['api_url']}/_stats", args.rounds, args.requests, "devstack API (werkzeug)")
        operator = compare_operator(signed, minimal_url, port, args.operator_rounds, args.pages)
        hook.close()
        print(
            f"ratio_signed_over_unsigned={signing:.3f} (target >= 0.90) "
            f"ratio_operator_over_plain={operator:.3f} (target <= 1.20)"
        )
    finally:
        for process in (minimal, devstack):
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve_minimal(sys.argv[2])
    else:
        main()
