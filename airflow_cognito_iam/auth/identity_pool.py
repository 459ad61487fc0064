"""Identity pool exchange: a user pool ID token becomes temporary AWS credentials (enhanced flow).

GetId runs once per exchanger (the identity id of a user never changes), then every exchange is a
single GetCredentialsForIdentity with Logins ``{cognito-idp.<region>.amazonaws.com/<pool>: id_token}``.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from airflow_cognito_iam.auth import metrics
from airflow_cognito_iam.auth.cognito_client import build_cognito_client, call_cognito, scrub, server_clock_offset
from airflow_cognito_iam.auth.errors import (
    AuthenticationError,
    CognitoIamError,
    ConfigurationError,
)
from airflow_cognito_iam.auth.models import IdentityCredentials
from airflow_cognito_iam.auth.retry import RetryPolicy, describe_exception
from airflow_cognito_iam.auth.settings import CognitoSettings

log = logging.getLogger(__name__)


class IdTokenRejectedError(AuthenticationError):
    """The identity pool refused the ID token itself (expired or not yet valid): sign in again."""


class IdentityPoolExchanger:
    """Turns ID tokens of one user into credentials from the connection's identity pool."""

    def __init__(
        self, settings: CognitoSettings, client: Any = None, *, retry_policy: RetryPolicy | None = None
    ) -> None:
        self.settings = settings
        self._client = client
        self._policy = retry_policy or RetryPolicy.from_settings(settings)
        self._identity_id: str | None = None
        #: Server time minus local time at the last answer (seconds), to explain clock skew.
        self.server_offset: float | None = None

    @property
    def identity_id(self) -> str | None:
        """The Cognito identity id, known after the first exchange."""
        return self._identity_id

    def remember_identity(self, identity_id: str) -> None:
        """Use an identity id found in a cache: the next exchange skips GetId."""
        self._identity_id = identity_id

    def get_credentials(self, id_token: str) -> IdentityCredentials:
        """Temporary AWS credentials for the user holding ``id_token``."""
        s = self.settings
        if not s.identity_pool_id:
            raise ConfigurationError(
                {"identity_pool_id": "required to get AWS credentials (IAM mode), e.g. 'eu-west-1:0123abcd-...'"},
                conn_id=s.conn_id,
            )
        if not id_token:
            raise AuthenticationError("no ID token to exchange for AWS credentials")
        logins = {s.provider_name: id_token}
        remembered = self._identity_id is not None
        if self._identity_id is None:
            response = self._call("get_id", id_token, IdentityPoolId=s.identity_pool_id, Logins=logins)
            self._identity_id = str(response["IdentityId"])
            log.info("Cognito identity %s in identity pool %s", self._identity_id, s.identity_pool_id)
        request: dict[str, Any] = {"IdentityId": self._identity_id, "Logins": logins}
        if s.custom_role_arn:
            request["CustomRoleArn"] = s.custom_role_arn
        try:
            response = self._call("get_credentials_for_identity", id_token, **request)
        except ConfigurationError:
            if not remembered:
                raise
            # The remembered identity was deleted (or merged): ask for the user's identity again, once.
            log.info(
                "Identity %s no longer exists; asking identity pool %s again", request["IdentityId"], s.identity_pool_id
            )
            self._identity_id = None
            return self.get_credentials(id_token)
        metrics.incr("credential_exchange")
        creds = response["Credentials"]
        self._identity_id = str(response.get("IdentityId") or self._identity_id)
        return IdentityCredentials(
            identity_id=self._identity_id,
            access_key_id=creds["AccessKeyId"],
            secret_access_key=creds["SecretKey"],
            session_token=creds["SessionToken"],
            expiration=creds["Expiration"],
        )

    def _call(self, operation: str, id_token: str, **kwargs: Any) -> dict[str, Any]:
        what = f"Cognito {operation} in identity pool {self.settings.identity_pool_id}"
        if self._client is None:
            self._client = build_cognito_client("cognito-identity", self.settings)
        try:
            response = call_cognito(self._client, operation, self._policy, what, self.settings.timeout, **kwargs)
        except ClientError as exc:
            self.server_offset = server_clock_offset(exc)
            raise self._map_error(exc, operation, id_token) from None
        self.server_offset = server_clock_offset(response)
        return response

    def _map_error(self, exc: ClientError, operation: str, id_token: str) -> CognitoIamError:
        s = self.settings
        code = exc.response.get("Error", {}).get("Code", "")
        raw = exc.response.get("Error", {}).get("Message", "") or ""
        low = raw.lower()
        message = scrub(raw, [id_token, s.password, s.client_secret])
        pool = s.identity_pool_id
        role = f" and custom role {s.custom_role_arn}" if s.custom_role_arn else ""
        if code == "NotAuthorizedException" and ("expired" in low or "not yet valid" in low):
            return IdTokenRejectedError(f"identity pool {pool} refused the ID token of user {s.username!r}: {message}")
        if code == "NotAuthorizedException" and s.custom_role_arn and "role" in low:
            return AuthenticationError(
                f"identity pool {pool} will not issue custom role {s.custom_role_arn} to user "
                f"{s.username!r}: an administrator must set the pool's authenticated role selection to "
                "'Choose role from token' (or a rule) that allows this role, and the role's trust policy "
                f"must allow cognito-identity.amazonaws.com for aud {pool}"
            )
        if code == "NotAuthorizedException":
            return AuthenticationError(
                f"identity pool {pool} does not trust user pool {s.user_pool_id} / app client "
                f"{s.client_id} (Logins key {s.provider_name}): an administrator must add them as a "
                "Cognito user pool authentication provider of the identity pool "
                "(update-identity-pool --cognito-identity-providers)"
            )
        if code == "ResourceNotFoundException":
            if operation == "get_credentials_for_identity" and self._identity_id is not None:
                self._identity_id = None  # deleted identity: the next exchange starts with GetId again
            where = s.cognito_identity_endpoint_url or f"region {pool.split(':')[0] if pool else s.region}"
            return ConfigurationError(
                {
                    "identity_pool_id": f"Cognito ({where}) has no identity pool {pool} (or identity): check "
                    "identity_pool_id"
                },
                conn_id=s.conn_id,
            )
        if code == "InvalidIdentityPoolConfigurationException":
            return AuthenticationError(
                f"identity pool {pool} cannot issue credentials{role}: its role configuration is broken. An "
                "administrator must give it an authenticated role whose trust policy allows "
                f"sts:AssumeRoleWithWebIdentity from cognito-identity.amazonaws.com with aud {pool} and amr "
                "authenticated"
            )
        if code == "InvalidParameterException":
            return ConfigurationError(
                {"identity_pool_id/custom_role_arn": f"identity pool {pool} rejected {operation}: {message}"},
                conn_id=s.conn_id,
            )
        return AuthenticationError(f"identity pool {pool} refused user {s.username!r}{role}: {describe_exception(exc)}")
