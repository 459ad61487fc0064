"""The Cognito identity's own AWS credentials in a @task: read S3 as the identity, not as the worker.

``CognitoIamHook.get_boto3_session()`` returns a ``boto3.Session`` whose credentials are the
identity pool credentials of the connection's user (refreshed automatically before they expire).
Anything that identity's IAM role allows is then a boto3 call away - here: find the newest object
under a prefix of the bucket and read its first lines. The worker's own AWS identity (instance
role, ``aws_default``) is not involved, so this shows exactly what the user's role may read.

On AWS the identity pool's authenticated role needs ``s3:ListBucket`` on the bucket (prefix
``orders/``) and ``s3:GetObject`` on ``arn:aws:s3:::<bucket>/orders/*``.

Settings: ``bucket`` / ``prefix`` params; bucket default from the Airflow Variable
``cognito_iam_bucket``; ``s3_endpoint_url`` from the Variable ``cognito_iam_s3_endpoint_url`` (empty
on AWS; the devstack sets it). Connection: ``cognito_iam_default``. Triggered manually.
"""

from __future__ import annotations

from typing import Any

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

with DAG(
    dag_id="cognito_iam_identity_boto3",
    description="Read S3 with the Cognito identity's boto3 session",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={
        "bucket": Param(None, type=["null", "string"], description="Bucket; blank: Variable cognito_iam_bucket"),
        "prefix": Param("orders/", type="string", description="Key prefix the identity may read"),
        "lines": Param(3, type="integer", minimum=0, maximum=100, description="Lines to return"),
    },
    default_args={"retries": 2},
    tags=["cognito_iam", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def read_newest_object(bucket: str, endpoint_url: str, params: dict[str, Any]) -> dict[str, Any]:
        """Newest object under the prefix and its first lines, read with the identity's credentials."""
        session = CognitoIamHook("cognito_iam_default").get_boto3_session()
        s3 = session.client("s3", endpoint_url=endpoint_url or None)
        newest: dict[str, Any] | None = None
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=params["prefix"]):
            for obj in page.get("Contents", []):
                # Ties (same second) go to the later key: dt=YYYY-MM-DD keys sort by date.
                if newest is None or (obj["LastModified"], obj["Key"]) > (newest["LastModified"], newest["Key"]):
                    newest = obj
        if newest is None:
            return {"bucket": bucket, "prefix": params["prefix"], "key": None, "lines": []}
        body = s3.get_object(Bucket=bucket, Key=newest["Key"])["Body"]
        lines: list[str] = []
        for line in body.iter_lines():
            if len(lines) >= params["lines"]:
                break
            lines.append(line.decode())
        body.close()
        return {"bucket": bucket, "key": newest["Key"], "size": newest["Size"], "lines": lines}

    # Arguments given here are templated when the task runs; Variables are not read at parse time.
    read_newest_object(
        bucket="{{ params.bucket or var.value.get('cognito_iam_bucket', 'cognito-iam-example') }}",
        endpoint_url="{{ var.value.get('cognito_iam_s3_endpoint_url', '') }}",
    )
