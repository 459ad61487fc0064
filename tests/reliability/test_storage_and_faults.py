"""Nothing partial in storage, ever; and fault storms that lose or repeat nothing.

S3 is the devstack's (moto); failures are injected into the S3 *client* through botocore's event
system (what a real S3 500 looks like to botocore), never into our sink.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from airflow_cognito_iam.auth.retry import RetryPolicy
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
from airflow_cognito_iam.operators.api import CognitoIamApiOperator
from airflow_cognito_iam.storage import FileSink, S3Sink, StorageError
from tests.support.misbehaving import (
    MisbehavingServer,
    Seen,
    reset_before_answer,
    reset_mid_body,
    respond,
)

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.body


def fail_s3(client: Any, operation: str, when: Any = lambda params: True) -> list[int]:
    """Make ``operation`` answer HTTP 500 (every botocore retry too) when ``when(params)``."""
    hits: list[int] = []
    body = b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"

    def before_call(params: dict[str, Any], context: dict[str, Any], **kwargs: Any) -> None:
        context["fail"] = when(params)  # the API parameters, before serialisation

    def before_send(request: Any, **kwargs: Any) -> AWSResponse | None:
        if request.context.get("fail"):
            hits.append(1)
            return AWSResponse(request.url, 500, {}, _Raw(body))
        return None

    client.meta.events.register(f"provide-client-params.s3.{operation}", before_call)
    client.meta.events.register(f"before-send.s3.{operation}", before_send)
    return hits


def open_uploads(stack: Any) -> list[str]:
    return [u["Key"] for u in stack.s3_client().list_multipart_uploads(Bucket=stack.bucket).get("Uploads", [])]


def keys(stack: Any, prefix: str) -> list[str]:
    listed = stack.s3_client().list_objects_v2(Bucket=stack.bucket, Prefix=prefix)
    return [obj["Key"] for obj in listed.get("Contents", [])]


# -- 8. a failure during commit aborts the upload ------------------------------------------------


def test_a_500_on_complete_multipart_upload_leaves_no_upload_and_no_object(cognito_iam_conn: Any) -> None:
    stack = cognito_iam_conn
    client = stack.s3_client()
    hits = fail_s3(client, "CompleteMultipartUpload")
    key = "commit-fails/big.bin"
    sink = S3Sink(f"s3://{stack.bucket}/{key}", stack.bucket, key, client, part_size=5 * MiB)
    with pytest.raises(StorageError, match=f"bucket '{stack.bucket}', key '{key}'"), sink:
        sink.write(b"a" * (6 * MiB))
    assert hits
    assert open_uploads(stack) == []
    assert keys(stack, "commit-fails/") == []


def test_a_500_on_the_part_uploaded_inside_commit_aborts_too(cognito_iam_conn: Any) -> None:
    stack = cognito_iam_conn
    client = stack.s3_client()
    hits = fail_s3(client, "UploadPart", when=lambda params: params.get("PartNumber") == 2)
    key = "last-part-fails/big.bin"
    sink = S3Sink(f"s3://{stack.bucket}/{key}", stack.bucket, key, client, part_size=5 * MiB)
    with pytest.raises(StorageError, match="UploadPart"), sink:
        sink.write(b"b" * (5 * MiB + 10))  # part 1 now, part 2 inside commit
    assert hits
    assert open_uploads(stack) == []
    assert keys(stack, "last-part-fails/") == []


def test_a_part_failing_in_a_worker_mid_upload_stops_the_writes_and_aborts(cognito_iam_conn: Any) -> None:
    stack = cognito_iam_conn
    client = stack.s3_client()
    hits = fail_s3(client, "UploadPart", when=lambda params: params.get("PartNumber") == 2)
    sent: list[int] = []
    client.meta.events.register(
        "provide-client-params.s3.UploadPart", lambda params, **kwargs: sent.append(params["PartNumber"])
    )
    key = "worker-part-fails/big.bin"
    sink = S3Sink(f"s3://{stack.bucket}/{key}", stack.bucket, key, client, part_size=5 * MiB, upload_concurrency=3)
    written: list[int] = []

    def write_40_parts() -> None:
        with sink:
            for number in range(40):  # the failure of part 2 must stop the writer long before 40
                sink.write(b"c" * (5 * MiB))
                written.append(number)

    with pytest.raises(StorageError, match="UploadPart"):
        write_40_parts()
    assert hits
    assert len(written) < 40
    assert max(sent) < 40
    assert open_uploads(stack) == []
    assert keys(stack, "worker-part-fails/") == []


def test_parallel_parts_arrive_byte_exact_in_part_order(cognito_iam_conn: Any) -> None:
    stack = cognito_iam_conn
    client = stack.s3_client()
    key = "parallel/ordered.bin"
    chunks = [bytes([65 + i]) * (3 * MiB + i) for i in range(9)]  # parts straddle the writes
    with S3Sink(f"s3://{stack.bucket}/{key}", stack.bucket, key, client, part_size=5 * MiB) as sink:
        for chunk in chunks:
            sink.write(chunk)
    assert client.get_object(Bucket=stack.bucket, Key=key)["Body"].read() == b"".join(chunks)


def test_no_such_bucket_names_the_bucket_and_key(cognito_iam_conn: Any) -> None:
    stack = cognito_iam_conn
    sink = S3Sink("s3://no-such-bucket-x/k/orders.jsonl", "no-such-bucket-x", "k/orders.jsonl", stack.s3_client())
    with pytest.raises(StorageError, match=r"NoSuchBucket.*'no-such-bucket-x' does not exist") as info, sink:
        sink.write(b"x")
    assert "k/orders.jsonl" in str(info.value)
    assert info.value.permanent


def test_a_file_whose_final_rename_fails_leaves_no_partial(tmp_path: Path) -> None:
    target = tmp_path / "out" / "result.jsonl"
    target.mkdir(parents=True)  # a directory where the file should go: os.replace fails
    sink = FileSink(f"file://{target}", target)
    with pytest.raises(StorageError, match="could not move"), sink:
        sink.write(b"data\n")
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.jsonl"]
    assert target.is_dir()


# -- fault storms: every record exactly once, every byte exact ------------------------------------

FAULTS = [respond(500), respond(503), respond(429, {"message": "slow down"}, {"Retry-After": "0"}),
          reset_before_answer(), reset_mid_body()]
PAGES = 60


def pages_handler(seen: Seen) -> Any:
    from urllib.parse import parse_qs, urlsplit

    page = int(parse_qs(urlsplit(seen.path).query).get("page", ["0"])[0])
    records = [{"page": page, "n": n} for n in range(20)]
    return respond(200, {"records": records, "next": page + 1 if page + 1 < PAGES else None})


def test_a_60_page_pull_to_s3_under_30_percent_faults_writes_each_record_once(
    cognito_iam_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = cognito_iam_conn
    with MisbehavingServer() as api:
        api.handler = pages_handler  # type: ignore[attr-defined]
        api.faults("/pages", 0.3, FAULTS)
        monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(stack.conn_dict(host=api.url)))
        key = "storm/pages.jsonl"
        op = CognitoIamApiOperator(
            task_id="storm",
            endpoint="/pages",
            query={"page": 0},
            pagination=lambda r: {"query": {"page": r.json()["next"]}} if r.json()["next"] is not None else None,
            response_filter=lambda r: r.json()["records"],
            destination=f"s3://{stack.bucket}/{key}",
            max_attempts=10,
        )
        op.request_retry_policy = RetryPolicy(max_attempts=10, max_seconds=60, initial=0.01, cap=0.05)  # type: ignore[misc]
        summary = op.execute({})
        seen = len(api.requests_to("/pages"))
    body = stack.s3_client().get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    records = [json.loads(line) for line in body.splitlines()]
    assert records == [{"page": p, "n": n} for p in range(PAGES) for n in range(20)]
    assert summary["records"] == PAGES * 20
    assert seen > PAGES, "the storm must actually have hit some requests"
    assert open_uploads(stack) == []


def test_an_upload_under_30_percent_faults_arrives_byte_exact_every_attempt(
    cognito_iam_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = cognito_iam_conn
    payload = [os.urandom(64 * 1024) for _ in range(48)]  # 3 MiB from a generator
    with MisbehavingServer() as api:
        api.faults("/upload", 0.3, FAULTS, seed=11)
        monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(stack.conn_dict(host=api.url)))
        hook = CognitoIamHook(retry_policy=RetryPolicy(max_attempts=10, max_seconds=60, initial=0.01, cap=0.05))
        for _ in range(10):
            hook.request("PUT", "/upload", data=(chunk for chunk in payload))
        attempts = api.requests_to("/upload")
    assert len(attempts) > 10
    whole = b"".join(payload)
    assert all(a.body == whole for a in attempts)
    assert all(a.body_sha_ok for a in attempts)
