"""Machine-to-machine sign-in (``auth_flow = CLIENT_CREDENTIALS``): an app client, no user.

The app client id and secret buy an access token with the connection's ``scopes``: through
Cognito's ``GetClientToken``, or the user pool domain's ``/oauth2/token`` (``client_credentials``
grant) when the connection gives ``oauth_token_url``. There is no refresh token and no ID token
(so no identity pool and no SigV4): the token is re-requested before it expires and sent as a
bearer token to Cognito-authorizer routes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from botocore.exceptions import ClientError

from airflow_cognito_iam.auth import metrics
from airflow_cognito_iam.auth.cognito_client import build_cognito_client, call_cognito, scrub
from airflow_cognito_iam.auth.deadline import AttemptDeadline, DeadlineHTTPAdapter
from airflow_cognito_iam.auth.errors import AuthenticationError, CognitoIamError, ConfigurationError
from airflow_cognito_iam.auth.models import CognitoTokens
from airflow_cognito_iam.auth.retry import TRANSIENT_HTTP_STATUSES, RetryPolicy, is_transient_api
from airflow_cognito_iam.auth.sessions import EnvironmentOnceSession
from airflow_cognito_iam.auth.settings import CognitoSettings

log = logging.getLogger(__name__)


class ClientCredentialsAuthenticator:
    """Gets and renews M2M access tokens for one app client (same interface as the user pool one)."""

    def __init__(self, settings: CognitoSettings, client: Any = None, *, retry_policy: RetryPolicy | None = None):
        self.settings = settings
        self._client = client
        self._policy = retry_policy or RetryPolicy.from_settings(settings)
        self._session: requests.Session | None = None
        self.last_method: str | None = None

    def _who(self) -> str:
        s = self.settings
        scopes = " ".join(s.scopes) or "the client's default scopes"
        return f"app client {s.client_id} of user pool {s.user_pool_id} (CLIENT_CREDENTIALS, scopes {scopes})"

    def get_valid_tokens(self, current: CognitoTokens | None, now: datetime, margin: float) -> CognitoTokens:
        """``current`` if valid beyond ``margin`` seconds, else a new token."""
        if current is not None and current.expires_at - timedelta(seconds=margin) > now:
            return current
        tokens = self.sign_in()
        self.last_method = "sign-in"
        return tokens

    def sign_in(self, device: Any = None) -> CognitoTokens:
        """A new access token."""
        started = datetime.now(UTC)
        with metrics.timed("sign_in.duration", flow="CLIENT_CREDENTIALS"):
            if self.settings.oauth_token_url:
                access, expires_in = self._token_endpoint()
            else:
                access, expires_in = self._get_client_token()
        metrics.incr("sign_in", flow="CLIENT_CREDENTIALS")
        log.info("Got an access token for %s", self._who())
        return CognitoTokens(
            id_token="",
            access_token=access,
            refresh_token=None,
            expires_at=started + timedelta(seconds=expires_in),
        )

    def _get_client_token(self) -> tuple[str, int]:
        s = self.settings
        if self._client is None:
            self._client = build_cognito_client("cognito-idp", s)
        request: dict[str, Any] = {"ClientId": s.client_id, "Secret": s.client_secret}
        if s.scopes:
            request["Scopes"] = list(s.scopes)
        try:
            response = call_cognito(
                self._client,
                "get_client_token",
                self._policy,
                f"Cognito GetClientToken for {self._who()}",
                s.timeout,
                **request,
            )
        except ClientError as exc:
            raise self._map_error(exc) from None
        result = response.get("ClientAuthenticationResult") or {}
        if not result.get("AccessToken"):
            raise AuthenticationError(f"Cognito answered GetClientToken with no access token for {self._who()}")
        return str(result["AccessToken"]), int(result.get("ExpiresIn", 3600))

    def _token_endpoint(self) -> tuple[str, int]:
        s = self.settings
        assert s.oauth_token_url is not None
        if self._session is None:
            self._session = EnvironmentOnceSession()
            self._session.mount("https://", DeadlineHTTPAdapter())
            self._session.mount("http://", DeadlineHTTPAdapter())
        form = {"grant_type": "client_credentials"}
        if s.scopes:
            form["scope"] = " ".join(s.scopes)
        session = self._session

        def attempt() -> requests.Response:
            with AttemptDeadline(s.timeout, "POST /oauth2/token") as watch:
                try:
                    response = session.post(
                        str(s.oauth_token_url),
                        data=form,
                        auth=(s.client_id, s.client_secret or ""),
                        timeout=s.timeout,
                        verify=s.verify,
                        allow_redirects=False,
                    )
                    _ = response.content
                except requests.RequestException:
                    if watch.fired:
                        raise watch.error() from None
                    raise
            if response.status_code in TRANSIENT_HTTP_STATUSES:
                raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
            return response

        response: requests.Response = self._policy.retrying(is_transient_api, what="POST /oauth2/token")(attempt)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
            error = str(body.get("error", "")) if isinstance(body, dict) else ""
            raise self._oauth_error(response.status_code, error)
        return str(body["access_token"]), int(body.get("expires_in", 3600))

    def _oauth_error(self, status: int, error: str) -> CognitoIamError:
        s = self.settings
        if error == "invalid_client":
            return ConfigurationError(
                {"client_secret": f"the token endpoint refused app client {s.client_id}: wrong client id or secret"},
                conn_id=s.conn_id,
            )
        if error == "invalid_scope":
            return ConfigurationError(
                {
                    "scopes": f"app client {s.client_id} may not ask for {list(s.scopes)}: an administrator must add "
                    "them to the client's allowed OAuth scopes (resource server scopes)"
                },
                conn_id=s.conn_id,
            )
        if error in ("unauthorized_client", "unsupported_grant_type"):
            return ConfigurationError(
                {
                    "auth_flow": f"app client {s.client_id} is not allowed the client_credentials grant: an "
                    "administrator must enable it (AllowedOAuthFlows client_credentials)"
                },
                conn_id=s.conn_id,
            )
        return AuthenticationError(f"the token endpoint refused {self._who()}: HTTP {status} {error}".rstrip())

    def _map_error(self, exc: ClientError) -> CognitoIamError:
        s = self.settings
        code = exc.response.get("Error", {}).get("Code", "")
        message = scrub(str(exc.response.get("Error", {}).get("Message", "")), [s.client_secret])
        low = message.lower()
        if code == "NotAuthorizedException":
            return ConfigurationError(
                {"client_secret": f"Cognito refused the secret of app client {s.client_id}: {message}"},
                conn_id=s.conn_id,
            )
        if "scope" in low:
            return ConfigurationError(
                {
                    "scopes": f"app client {s.client_id} may not ask for {list(s.scopes)}: {message}. An "
                    "administrator must add them to the client's allowed OAuth scopes"
                },
                conn_id=s.conn_id,
            )
        if code in ("InvalidParameterException", "OperationNotEnabledException", "ForbiddenException"):
            return ConfigurationError(
                {
                    "auth_flow": f"app client {s.client_id} cannot get M2M tokens ({code}: {message}): an "
                    "administrator must make ALLOW_CLIENT_TOKEN_AUTH its only auth flow and give it a secret, or "
                    "set oauth_token_url to the user pool domain's /oauth2/token"
                },
                conn_id=s.conn_id,
            )
        if code == "ResourceNotFoundException":
            return ConfigurationError(
                {"client_id": f"no app client {s.client_id} in user pool {s.user_pool_id}"}, conn_id=s.conn_id
            )
        return AuthenticationError(f"Cognito refused {self._who()}: {code}")
