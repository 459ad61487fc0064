"""Stream N MiB from the devstack's /export route to its S3 through CognitoIamApiOperator.

Prints the operator process's peak RSS growth (target: <= 64 MiB for 1 GiB) and the throughput.
The devstack (which keeps the uploaded object in memory) runs in this process; the operator runs in
a child process so that only the operator's memory is measured.

    .venv/bin/python benchmarks/bench_stream_s3.py --size-mb 1024
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

TARGET_GROWTH_MIB = 64


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")
    return int(match.group(1))


def run_child(size_mb: int, bucket: str) -> None:
    """Operator side: warm up, reset the peak-RSS mark, stream, report JSON on stdout."""
    from airflow_cognito_iam.operators.api import CognitoIamApiOperator

    def stream(mb: int, key: str) -> dict[str, object]:
        op = CognitoIamApiOperator(
            task_id=f"bench_{mb}",
            endpoint="/export",
            query={"size_mb": mb},
            destination=f"s3://{bucket}/bench/{key}",
        )
        result: dict[str, object] = op.execute({})
        return result

    # Imports and the sign-in are one-off costs that do not grow with the body; everything else
    # (S3 client, part buffers, HTTP buffers) is counted.
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: F401

    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

    CognitoIamHook().get_credentials()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM (peak RSS) to the current RSS
    before = _status_kib("VmRSS")
    started = time.perf_counter()
    result = stream(size_mb, "export.jsonl")
    elapsed = time.perf_counter() - started
    peak = _status_kib("VmHWM")
    print(json.dumps({"result": result, "seconds": elapsed, "rss_before_kib": before, "rss_peak_kib": peak}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024, help="MiB to stream (default 1024)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bucket", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.size_mb, args.bucket)
        return 0

    from airflow_cognito_iam.devstack import DevStack

    with DevStack() as stack:
        env = dict(os.environ)
        env["AIRFLOW_CONN_COGNITO_IAM_DEFAULT"] = stack.conn_json
        env["AIRFLOW_CONN_AWS_DEFAULT"] = stack.aws_conn_json
        cmd = [sys.executable, __file__, "--child", "--size-mb", str(args.size_mb), "--bucket", stack.bucket]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=3600)
        if done.returncode != 0:
            print(done.stderr[-4000:], file=sys.stderr)
            return done.returncode
        report = json.loads(done.stdout.strip().splitlines()[-1])
        head = stack.s3_client().head_object(Bucket=stack.bucket, Key="bench/export.jsonl")

    result = report["result"]
    growth_mib = (report["rss_peak_kib"] - report["rss_before_kib"]) / 1024
    mib = result["bytes"] / 2**20
    print(f"streamed        : {mib:.0f} MiB in {result['records']} lines, object size {head['ContentLength']} bytes")
    print(f"peak RSS growth : {growth_mib:.1f} MiB (target <= {TARGET_GROWTH_MIB} MiB)")
    print(f"growth / size   : {growth_mib / mib:.4f}")
    print(f"throughput      : {mib / report['seconds']:.1f} MiB/s ({report['seconds']:.1f} s)")
    ok = head["ContentLength"] == result["bytes"] and growth_mib <= TARGET_GROWTH_MIB
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
