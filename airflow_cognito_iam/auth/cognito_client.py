"""Cognito's boto3 clients and the one way every call is made (retries, deadline, clock, redaction).

Sign-in and the identity exchange are public operations: clients are unsigned, share one boto3
Session (a second Session costs ~45 ms of a cold task), keep botocore's own retries at one attempt
(``auth.retry`` owns the budget) and register their sockets with the per-attempt deadline.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any, Literal

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError, ReadTimeoutError

from airflow_cognito_iam import __version__
from airflow_cognito_iam.auth.deadline import AttemptDeadline, install_on_boto3_client
from airflow_cognito_iam.auth.errors import ConfigurationError
from airflow_cognito_iam.auth.retry import RetryPolicy, clock_offset_of, is_transient_cognito
from airflow_cognito_iam.auth.settings import CognitoSettings

log = logging.getLogger(__name__)

CognitoService = Literal["cognito-idp", "cognito-identity"]

#: Cognito refuses SRP timestamps about 5 minutes off; past this the clock is the likely cause.
CLOCK_SKEW_SECONDS = 240.0

_SESSION: boto3.session.Session | None = None
_SESSION_LOCK = threading.Lock()


def _session_unlocked() -> boto3.session.Session:
    # A private session (boto3's default one is not thread-safe and may hold a user's profile),
    # shared by every Cognito client of the process; callers hold _SESSION_LOCK.
    global _SESSION
    if _SESSION is None:
        _SESSION = boto3.session.Session()
    return _SESSION


class _RedactCognitoBodies(logging.Filter):
    """Blanks botocore DEBUG records that carry Cognito bodies or a session token.

    botocore logs every request's parameters and every response body at DEBUG; for Cognito that is
    the password, refresh token, ID token and AWS secret key, and Airflow's DEBUG level turns it on.
    Clients of ``CognitoIamHook.get_boto3_session()`` sign with the identity's session token, which
    botocore logs in the canonical request and in the sent headers.
    """

    MARKERS = (
        "PASSWORD",
        "SECRET_HASH",
        "REFRESH_TOKEN",
        "SOFTWARE_TOKEN_MFA_CODE",
        "PASSWORD_CLAIM_SIGNATURE",
        "Logins",
        "IdToken",
        "AccessToken",
        "RefreshToken",
        "SessionToken",
        "SecretKey",
        "Session",
        "X-Amz-Security-Token",
        "x-amz-security-token",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is botocore's problem, not a reason to leak
            return True
        if any(marker in text for marker in self.MARKERS):
            record.msg, record.args = "[body redacted by airflow-cognito-iam: may contain secrets]", ()
        return True


_REDACTOR = _RedactCognitoBodies()


def redact_botocore_debug_logs() -> None:
    """Install the filter on the botocore loggers that print bodies, headers and canonical requests."""
    for name in ("botocore.endpoint", "botocore.parsers", "botocore.auth"):
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


def build_cognito_client(service: CognitoService, settings: CognitoSettings, *, max_attempts: int = 1) -> Any:
    """A boto3 client for ``cognito-idp`` or ``cognito-identity`` that needs no AWS credentials.

    Sign-in and the identity exchange are public operations, so requests are unsigned. botocore's
    retries stay in standard mode but with one attempt by default: ``auth.retry`` owns the budget.
    """
    if service == "cognito-identity":
        endpoint = settings.cognito_identity_endpoint_url
        # An identity pool may live in another region than the user pool; its id says which.
        region = settings.identity_pool_id.split(":", 1)[0] if settings.identity_pool_id else settings.region
    else:
        endpoint = settings.cognito_idp_endpoint_url
        region = settings.region
    config = Config(
        signature_version=UNSIGNED,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=settings.timeout,
        read_timeout=settings.timeout,
        user_agent_extra=f"airflow-cognito-iam/{__version__}",
    )
    redact_botocore_debug_logs()
    with _SESSION_LOCK:  # boto3 Session.client() is not safe to call concurrently on one session
        client = _session_unlocked().client(
            service, region_name=region, endpoint_url=endpoint, verify=settings.verify, config=config
        )
    install_on_boto3_client(client)  # so `timeout` bounds each whole call, not each socket read
    return client


def call_cognito(
    client: Any, operation: str, policy: RetryPolicy, what: str, timeout: float, **kwargs: Any
) -> dict[str, Any]:
    """One Cognito call: retried per ``policy``, each attempt under a total deadline of ``timeout``."""

    def attempt() -> dict[str, Any]:
        with AttemptDeadline(timeout, what) as watch:
            try:
                result: dict[str, Any] = getattr(client, operation)(**kwargs)
                return result
            except (BotoCoreError, OSError):
                if watch.fired:
                    raise ReadTimeoutError(endpoint_url=f"{what} (no complete answer within {timeout:g} s)") from None
                raise

    try:
        response: dict[str, Any] = policy.retrying(is_transient_cognito, what=what)(attempt)
    except ParamValidationError as exc:
        # botocore checked a value before sending (a secret too short, say); its report can quote
        # values, so only the parameter names travel on.
        names = sorted(set(_PARAMETER.findall(str(exc)))) or ["a parameter"]
        fields = sorted({_FIELDS.get(name, name) for name in names})
        raise ConfigurationError(
            {field: f"refused by the AWS SDK before sending {what}: invalid {', '.join(names)}" for field in fields}
        ) from None
    return response


_PARAMETER = re.compile(r"parameter ([A-Za-z0-9_.\[\]]+)")
#: Cognito request parameters and the connection fields they come from.
_FIELDS = {
    "Secret": "client_secret",
    "ClientSecret": "client_secret",
    "ClientId": "client_id",
    "Scopes": "scopes",
    "IdentityPoolId": "identity_pool_id",
    "CustomRoleArn": "custom_role_arn",
    "RefreshToken": "refresh token",
}


def server_clock_offset(exc_or_response: ClientError | dict[str, Any]) -> float | None:
    """Server time minus local time, from the Date header of a Cognito answer (None if absent)."""
    response = exc_or_response.response if isinstance(exc_or_response, ClientError) else exc_or_response
    return clock_offset_of(response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date"))


_JWT = re.compile(r"eyJ[\w-]*\.[\w-]*\.?[\w-]*")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{40,}")


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with known secret values, JWTs and long token-like strings removed; at most 300 chars."""
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    text = _LONG_TOKEN.sub("<redacted>", _JWT.sub("<jwt>", text))
    return text[:300]
