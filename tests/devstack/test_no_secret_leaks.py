"""The stack never logs or reprs a secret: passwords, client secret, TOTP secret, tokens, AWS keys."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import requests

from airflow_cognito_iam.devstack.stack import DevStack

from .conftest import signed_request, srp_sign_in

pytestmark = pytest.mark.integration


def test_a_full_session_with_refusals_and_faults_logs_no_secret(
    stack: DevStack, idp: Any, identity: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        tokens = srp_sign_in(stack, idp)
        logins = {stack.provider_name: tokens["IdToken"]}
        identity_id = identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=logins)["IdentityId"]
        creds = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)["Credentials"]
        signed_request("GET", f"{stack.api_url}/orders?date=2026-11-01", creds, stack.region)
        signed_request("GET", f"{stack.api_url}/whoami", creds, stack.region, session_token="wrong-token-value")
        signed_request("GET", f"{stack.api_url}/whoami?_fault=503", creds, stack.region)
        requests.get(f"{stack.api_url}/bearer/whoami", headers={"Authorization": tokens["IdToken"]}, timeout=10)
        with pytest.raises(Exception, match="Incorrect"):
            srp_sign_in(stack, idp, password="Wrong-password-1!")

    secrets = [
        stack.password,
        stack.client_secret,
        stack.totp_secret,
        stack.mfa_password,
        tokens["IdToken"],
        tokens["AccessToken"],
        tokens["RefreshToken"],
        creds["SecretKey"],
        creds["SessionToken"],
    ]
    # The test's own boto3/urllib3 clients log bodies at DEBUG; what the stack's side logs is what counts.
    client_side = ("botocore", "boto3", "urllib3", "s3transfer")
    server_side = [r for r in caplog.records if not r.name.startswith(client_side)]
    server_text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in server_side)
    assert len(server_side) < len(caplog.records), "DEBUG capture was active"
    for secret in secrets:
        assert secret not in server_text
    for secret in (stack.password, stack.client_secret, stack.totp_secret):
        assert secret not in repr(stack)
