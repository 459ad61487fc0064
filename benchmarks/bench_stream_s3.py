"""Stream N MiB from the devstack's /export route to its S3: CognitoIamApiOperator vs a plain control.

The control is what a hand-written task would do: a signed ``requests`` stream handed to boto3's
``upload_fileobj`` (its default TransferConfig: 8 MiB parts, 10 threads). Both run in the same run,
alternating, each in its own child process so that only its memory is measured. The devstack's API
runs in this process and S3 in a moto server process of its own (``--s3 shared`` puts S3 back in
the devstack), so generating the export and receiving the parts do not share one GIL. That moved
the ratio little (0.82 -> 0.83 on a quiet machine). What did move it (0.83 -> 0.99 at 200 MiB,
1.14 at 1 GiB): sending CRC32 checksums as ``upload_fileobj`` does, so moto, like S3, no longer
computes a CRC64NVME of the whole object at Complete (0.80 s -> 0.52 s for 200 MiB).

Prints each side's peak RSS growth, throughput and client CPU per MiB, then the ratio. Targets: operator/control
throughput >= 0.9, operator peak RSS growth <= 64 MiB (at 1 GiB).

    .venv/bin/python benchmarks/bench_stream_s3.py [--size-mb 200] [--rounds 2] [--s3 own|shared]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

TARGET_GROWTH_MIB = 64


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")
    return int(match.group(1))


def run_child(size_mb: int, bucket: str, control: bool) -> None:
    """One side: warm up, reset the peak-RSS mark, stream, report JSON on stdout."""
    from airflow_cognito_iam.operators.api import CognitoIamApiOperator

    key = "control.jsonl" if control else "export.jsonl"

    def stream(mb: int) -> dict[str, object]:
        op = CognitoIamApiOperator(
            task_id=f"bench_{mb}",
            endpoint="/export",
            query={"size_mb": mb},
            destination=f"s3://{bucket}/bench/{key}",
        )
        result: dict[str, object] = op.execute({})
        return result

    def stream_control(mb: int) -> dict[str, object]:
        # requests stream -> upload_fileobj, signed by the same credentials. The S3 client is built
        # inside the timed window, as the operator builds its own (it was outside until 2026-12-02).
        s3 = S3Hook(aws_conn_id="aws_default").get_conn()
        response = requests.get(hook.url_for("/export"), params={"size_mb": mb}, auth=auth, stream=True, timeout=60)
        response.raise_for_status()
        response.raw.decode_content = True
        counted = _Counting(response.raw)
        s3.upload_fileobj(counted, bucket, f"bench/{key}")
        return {"bytes": counted.bytes, "records": counted.lines}

    # Imports and the sign-in are one-off costs that do not grow with the body; everything else
    # (S3 client, part buffers, HTTP buffers) is counted, on both sides.
    import requests
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    from airflow.sdk.bases.operator import ExecutorSafeguard

    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

    # As under the task runner: execute() called directly would otherwise log a warning through
    # inspect.stack() (~0.3 s of source-file reads) that no real task pays.
    ExecutorSafeguard.test_mode = True
    hook = CognitoIamHook()
    hook.get_credentials()
    auth = hook.get_auth()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM (peak RSS) to the current RSS
    before = _status_kib("VmRSS")
    cpu_before = _cpu_seconds()
    started = time.perf_counter()
    result = stream_control(size_mb) if control else stream(size_mb)
    elapsed = time.perf_counter() - started
    cpu = _cpu_seconds() - cpu_before
    peak = _status_kib("VmHWM")
    report = {"result": result, "seconds": elapsed, "cpu_seconds": cpu, "rss_before_kib": before, "rss_peak_kib": peak}
    print(json.dumps(report))


def _cpu_seconds() -> float:
    """User + system CPU of this process, all threads: on 2 cores the client's CPU sets the pace."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Counting:
    """A read-only file object over the response that counts bytes and lines for the control."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self.bytes = 0
        self.lines = 0

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._raw.read(size if size >= 0 else None)
        self.bytes += len(data)
        self.lines += data.count(b"\n")
        return data


@contextlib.contextmanager
def _moto_s3_process() -> Iterator[str]:
    """``moto_server`` on a free loopback port, stopped (by PID) on exit; yields its endpoint URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit("moto_server exited at start") from None
                time.sleep(0.1)
        else:
            raise SystemExit("moto_server did not start within 30 s")
        yield endpoint
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def _s3_client(endpoint: str, region: str, key_id: str, secret: str) -> Any:
    """A boto3 client for the moto process, with the devstack's dummy keys (moto accepts any)."""
    import boto3

    return boto3.client(
        "s3", endpoint_url=endpoint, region_name=region, aws_access_key_id=key_id, aws_secret_access_key=secret
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=200, help="MiB to stream (default 200; the target is at 1024)")
    parser.add_argument("--rounds", type=int, default=2, help="operator/control pairs, alternating order")
    parser.add_argument("--s3", choices=("own", "shared"), default="own", help="S3 in its own process (default)")
    parser.add_argument("--child", choices=("operator", "control"), help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.size_mb, args.bucket, args.child == "control")
        return 0

    from airflow_cognito_iam.devstack import DevStack

    reports: dict[str, list[dict[str, Any]]] = {"operator": [], "control": []}
    sizes: dict[str, int] = {}
    with DevStack() as stack, contextlib.ExitStack() as cleanup:
        env = dict(os.environ)
        env["AIRFLOW_CONN_COGNITO_IAM_DEFAULT"] = stack.conn_json
        aws_conn = stack.aws_conn_dict()
        s3_client = stack.s3_client
        if args.s3 == "own":
            endpoint = cleanup.enter_context(_moto_s3_process())
            aws_conn["extra"]["endpoint_url"] = endpoint
            client = _s3_client(endpoint, stack.region, aws_conn["login"], aws_conn["password"])
            location = {"LocationConstraint": stack.region}
            location = {} if stack.region == "us-east-1" else {"CreateBucketConfiguration": location}
            client.create_bucket(Bucket=stack.bucket, **location)
            s3_client = lambda: client  # noqa: E731
        env["AIRFLOW_CONN_AWS_DEFAULT"] = json.dumps(aws_conn)
        print(f"S3: {'a moto server process of its own' if args.s3 == 'own' else 'in the devstack process'}")
        for round_ in range(args.rounds):
            for side in ("operator", "control") if round_ % 2 == 0 else ("control", "operator"):
                cmd = [sys.executable, __file__, "--child", side, "--size-mb", str(args.size_mb)]
                cmd += ["--bucket", stack.bucket]
                done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=3600)
                if done.returncode != 0:
                    print(done.stderr[-4000:], file=sys.stderr)
                    return done.returncode
                reports[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
                key = "bench/control.jsonl" if side == "control" else "bench/export.jsonl"
                sizes[side] = s3_client().head_object(Bucket=stack.bucket, Key=key)["ContentLength"]
                s3_client().delete_object(Bucket=stack.bucket, Key=key)  # the stack keeps objects in RAM

    figures: dict[str, tuple[float, float]] = {}
    for side, runs in reports.items():
        growth = statistics.median((r["rss_peak_kib"] - r["rss_before_kib"]) / 1024 for r in runs)
        mib = runs[0]["result"]["bytes"] / 2**20
        rate = statistics.median(mib / r["seconds"] for r in runs)
        cpu_ms = statistics.median(1000 * r["cpu_seconds"] / mib for r in runs)
        figures[side] = (growth, rate)
        each = ", ".join(f"{mib / r['seconds']:.1f}" for r in runs)
        print(
            f"{side:9}: {mib:.0f} MiB, object {sizes[side]} bytes, peak RSS growth {growth:.1f} MiB, "
            f"{rate:.1f} MiB/s, client CPU {cpu_ms:.1f} ms/MiB (median of {len(runs)}; "
            f"each: {each} MiB/s)"
        )
    growth_mib, rate = figures["operator"]
    ratio = rate / figures["control"][1]
    expected = reports["operator"][0]["result"]["bytes"]
    ok = sizes["operator"] == expected and growth_mib <= TARGET_GROWTH_MIB and ratio >= 0.9
    print(f"targets: throughput ratio >= 0.9, operator peak RSS growth <= {TARGET_GROWTH_MIB} MiB")
    print(
        f"{'PASS' if ok else 'FAIL'} size_mb={args.size_mb} operator_mib_s={rate:.1f} "
        f"control_mib_s={figures['control'][1]:.1f} ratio_operator_over_control={ratio:.2f} "
        f"operator_rss_growth_mib={growth_mib:.1f} control_rss_growth_mib={figures['control'][0]:.1f}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
