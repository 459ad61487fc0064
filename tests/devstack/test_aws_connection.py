"""The stack's ``aws_default`` connection drives the amazon provider's S3Hook against the stack."""

from __future__ import annotations

import pytest

from airflow_cognito_iam.devstack.stack import DevStack

pytestmark = pytest.mark.integration


def test_s3hook_with_the_stack_aws_connection_writes_to_the_seeded_bucket(stack: DevStack) -> None:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    hook = S3Hook(aws_conn_id="aws_default")
    hook.load_string("from the hook", key="hook/test.txt", bucket_name=stack.bucket, replace=True)

    body = stack.s3_client().get_object(Bucket=stack.bucket, Key="hook/test.txt")["Body"].read()
    assert body == b"from the hook"
    assert stack.stats()["s3"]["PUT"] >= 1
