"""Bearer token: call an API Gateway route protected by a Cognito user pool authorizer.

Not every API uses ``AWS_IAM`` authorization. Routes behind a *Cognito user pool authorizer* want
the user's ID token (or access token, for scope-based authorizers) in the ``Authorization`` header
instead of a SigV4 signature. The same ``cognito_iam`` connection serves both: ``auth="id_token"``
signs in (or reuses cached tokens, refreshing them with the refresh token when they near expiry)
and sends the raw ID token as ``Authorization: <id token>``, as REST API Cognito authorizers expect
(no ``Bearer`` prefix). No identity pool is needed for this mode.

The token is never logged or returned; the task returns what the API says about the caller.
Triggered manually (no schedule); uses the ``cognito_iam_default`` connection.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_cognito_iam.operators.api import CognitoIamApiOperator

with DAG(
    dag_id="cognito_iam_bearer_token",
    description="Call a Cognito-authorizer route with the user's ID token",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    default_args={"retries": 2},
    tags=["cognito_iam", "example"],
    doc_md=__doc__,
) as dag:
    CognitoIamApiOperator(
        task_id="whoami_with_id_token",
        cognito_iam_conn_id="cognito_iam_default",
        endpoint="/bearer/whoami",
        auth="id_token",
    )
