"""`airflow dags test` at DEBUG prints every MaskSecret message; our tokens and AWS keys are not among them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from airflow_cognito_iam.auth.cache import FileCredentialCache
from airflow_cognito_iam.auth.settings import CognitoSettings
from airflow_cognito_iam.devstack import DevStack

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def test_dags_test_at_debug_prints_no_token_or_aws_key(
    cognito_iam_conn: DevStack, airflow_env: dict[str, str], airflow_cli: Any
) -> None:
    stack = cognito_iam_conn
    cache_dir = os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"]
    env = {
        **airflow_env,
        **stack.env(),
        "AIRFLOW_VAR_COGNITO_IAM_BUCKET": stack.bucket,
        "AIRFLOW_COGNITO_IAM_CACHE_DIR": cache_dir,
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "DEBUG",
    }
    result = airflow_cli(["dags", "test", "cognito_iam_orders_daily", "2026-03-15"], env)
    output = result.stdout + result.stderr
    assert "MaskSecret" in output, "the DEBUG channel this test is about must be on"

    conn = stack.conn_dict()
    settings = CognitoSettings.from_connection(
        host=conn["host"], login=conn["login"], password=conn["password"], extra=conn["extra"]
    )
    entry = FileCredentialCache(settings, Path(cache_dir)).load()
    assert entry is not None
    assert entry.tokens is not None
    assert entry.credentials is not None
    derived = {
        "id token": entry.tokens.id_token,
        "access token": entry.tokens.access_token,
        "refresh token": entry.tokens.refresh_token,
        "AWS secret key": entry.credentials.secret_access_key,
        "session token": entry.credentials.session_token,
    }
    for name, value in derived.items():
        assert value
        assert value not in output, f"the {name} reached the DEBUG output"
