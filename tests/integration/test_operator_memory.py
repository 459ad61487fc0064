"""A 100 MiB response streamed to S3 keeps the task's memory flat (a memory bound, not a timing one).

The operator runs in a child process so that its peak RSS is measured alone: the devstack in this
process keeps the uploaded object in memory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from airflow_cognito_iam.devstack import DevStack

pytestmark = pytest.mark.integration

SIZE_MB = 100
BOUND_MIB = 64

CHILD = r"""
import json, re, sys
from airflow_cognito_iam.operators.api import CognitoIamApiOperator

bucket, size_mb = sys.argv[1], int(sys.argv[2])

def kib(field):
    with open("/proc/self/status") as status:
        return int(re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE).group(1))

def stream(mb, key):
    op = CognitoIamApiOperator(
        task_id="export", endpoint="/export", query={"size_mb": mb}, destination=f"s3://{bucket}/{key}"
    )
    return op.execute({})

# One-off costs that do not grow with the body: imports and the sign-in. The rest is counted.
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
CognitoIamHook().get_credentials()
with open("/proc/self/clear_refs", "w") as clear_refs:
    clear_refs.write("5")  # reset the peak-RSS mark to the current RSS
before = kib("VmRSS")
result = stream(size_mb, "memory/export.jsonl")
print(json.dumps({"result": result, "growth_kib": kib("VmHWM") - before}))
"""


def _can_reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _can_reset_peak_rss(), reason="needs Linux /proc/self/clear_refs to measure peak RSS")
def test_100_mib_stream_to_s3_keeps_peak_rss_growth_under_64_mib(cognito_iam_conn: DevStack) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, cognito_iam_conn.bucket, str(SIZE_MB)],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    growth_mib = report["growth_kib"] / 1024
    assert growth_mib < BOUND_MIB, f"peak RSS grew {growth_mib:.1f} MiB while streaming {SIZE_MB} MiB"
    s3 = cognito_iam_conn.s3_client()
    head = s3.head_object(Bucket=cognito_iam_conn.bucket, Key="memory/export.jsonl")
    assert head["ContentLength"] == report["result"]["bytes"] == SIZE_MB * 2**20
    assert report["result"]["records"] == SIZE_MB * 1024
    assert s3.list_multipart_uploads(Bucket=cognito_iam_conn.bucket).get("Uploads", []) == []
