"""Helpers for devstack tests: Cognito clients against the strict endpoint and against moto alone,
a full sign-in, and botocore-signed requests (botocore is the reference signer, as in the stack)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import boto3
import pytest
import requests
from botocore import UNSIGNED
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from pycognito.aws_srp import AWSSRP

from airflow_cognito_iam.devstack.stack import DevStack

NO_RETRY = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1, "mode": "standard"})


def unsigned_client(service: str, endpoint_url: str, region: str) -> Any:
    """A Cognito client as apps use it: unsigned public APIs, no retries so each refusal is visible."""
    return boto3.client(service, region_name=region, endpoint_url=endpoint_url, config=NO_RETRY)  # type: ignore[call-overload]


@pytest.fixture
def stack(cognito_iam_conn: DevStack) -> DevStack:
    """The session stack, reset for this test."""
    return cognito_iam_conn


@pytest.fixture
def idp(stack: DevStack) -> Any:
    return unsigned_client("cognito-idp", stack.moto_endpoint_url, stack.region)


@pytest.fixture
def raw_idp(stack: DevStack) -> Any:
    """cognito-idp of moto alone (same data, no strict layer), to show what moto accepts."""
    return unsigned_client("cognito-idp", stack.raw_moto_endpoint_url, stack.region)


@pytest.fixture
def identity(stack: DevStack) -> Any:
    return unsigned_client("cognito-identity", stack.moto_endpoint_url, stack.region)


@pytest.fixture
def raw_identity(stack: DevStack) -> Any:
    return unsigned_client("cognito-identity", stack.raw_moto_endpoint_url, stack.region)


def srp_sign_in(stack: DevStack, idp: Any, *, password: str | None = None) -> dict[str, Any]:
    """USER_SRP_AUTH with pycognito as the client; returns the AuthenticationResult."""
    srp = AWSSRP(
        username=stack.username,
        password=stack.password if password is None else password,
        pool_id=stack.user_pool_id,
        client_id=stack.client_id,
        client_secret=stack.client_secret,
        client=idp,
    )
    result: dict[str, Any] = srp.authenticate_user()["AuthenticationResult"]
    return result


def get_aws_credentials(stack: DevStack, idp: Any, identity: Any) -> dict[str, Any]:
    """Sign in, GetId, GetCredentialsForIdentity: the identity-pool credentials of the seeded user."""
    id_token = srp_sign_in(stack, idp)["IdToken"]
    logins = {stack.provider_name: id_token}
    identity_id = identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=logins)["IdentityId"]
    response = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)
    creds: dict[str, Any] = response["Credentials"]
    creds["IdentityId"] = identity_id
    return creds


@pytest.fixture
def aws_creds(stack: DevStack, idp: Any, identity: Any) -> dict[str, Any]:
    return get_aws_credentials(stack, idp, identity)


def signed_request(
    method: str,
    url: str,
    creds: Mapping[str, Any],
    region: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    at: dt.datetime | None = None,
    service: str = "execute-api",
    send_body: bytes | None = None,
    session_token: str | None = None,
) -> requests.Response:
    """Sign with botocore's SigV4 (optionally as of time ``at``) and send with requests.

    ``send_body`` sends a different body than the signed one (tampering); ``session_token`` sends a
    different token header than the one signed with.
    """
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    signer = SigV4Auth(
        Credentials(creds["AccessKeyId"], creds["SecretKey"], creds.get("SessionToken")), service, region
    )
    if at is None:
        signer.add_auth(request)
    else:
        # botocore stamps "now"; a skew test needs another time, so sign its pieces by hand.
        stamp = at.strftime("%Y%m%dT%H%M%SZ")
        request.context["timestamp"] = stamp
        request.headers["X-Amz-Date"] = stamp
        if creds.get("SessionToken"):
            request.headers["X-Amz-Security-Token"] = creds["SessionToken"]
        canonical = signer.canonical_request(request)
        signature = signer.signature(signer.string_to_sign(request, canonical), request)
        signed = signer.signed_headers(signer.headers_to_sign(request))
        request.headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, SignedHeaders={signed}, Signature={signature}"
        )
    sent_headers = dict(request.headers)
    if session_token is not None:
        sent_headers["X-Amz-Security-Token"] = session_token
    return requests.request(
        method, url, data=body if send_body is None else send_body, headers=sent_headers, timeout=30
    )
