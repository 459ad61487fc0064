"""Machine-to-machine tokens: GetClientToken and the user pool domain's ``/oauth2/token`` endpoint.

Both authorize an app client rather than a user: client id + secret in, an access token out whose
``scope`` claim holds custom scopes of the pool's resource servers. moto has neither, so the strict
layer mints the token itself, signed with the same key (and ``kid``) as moto's user tokens so every
verifier of the stack accepts it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from airflow_cognito_iam.devstack.errors import CognitoError

CLIENT_TOKEN_FLOW = "ALLOW_CLIENT_TOKEN_AUTH"
#: What a pool's access tokens live when nothing shortened them (Cognito's default, one hour).
DEFAULT_LIFETIME_SECONDS = 3600


def allowed_scopes(client: Any) -> list[str]:
    return [str(s) for s in client.extended_config.get("AllowedOAuthScopes") or []]


def check_client_config(params: dict[str, Any], existing: Any | None) -> None:
    """ALLOW_CLIENT_TOKEN_AUTH must be the client's only flow, and the client must have a secret."""
    flows = params.get("ExplicitAuthFlows")
    if not isinstance(flows, list) or CLIENT_TOKEN_FLOW not in flows:
        return
    if len(flows) > 1:
        raise CognitoError(
            "InvalidParameterException",
            f"{CLIENT_TOKEN_FLOW} is mutually exclusive with user authentication flows; it must be the only flow.",
        )
    has_secret = bool(params.get("GenerateSecret") or params.get("ClientSecret"))
    if existing is not None:
        has_secret = has_secret or bool(existing.generate_secret)
    if not has_secret:
        raise CognitoError("InvalidParameterException", f"{CLIENT_TOKEN_FLOW} requires an app client with a secret.")


def granted_scopes(client: Any, requested: Sequence[str] | None) -> list[str]:
    """The scopes to put in the token: the requested ones if all are allowed, else every allowed one."""
    allowed = allowed_scopes(client)
    if not requested:
        return allowed
    for scope in requested:
        if scope not in allowed:
            raise ScopeError(scope)
    return list(dict.fromkeys(requested))


class ScopeError(Exception):
    """A requested scope the client may not have (OAuth ``invalid_scope``)."""


def mint_access_token(pool: Any, client: Any, scopes: list[str]) -> tuple[str, int]:
    """An RS256 access token as Cognito issues for client credentials: no user, ``sub`` is the client."""
    from joserfc import jwt

    lifetime = int(getattr(pool, "devstack_token_lifetime", DEFAULT_LIFETIME_SECONDS))
    now = int(time.time())
    claims = {
        "sub": client.id,
        "token_use": "access",
        "scope": " ".join(scopes),
        "auth_time": now,
        "iss": f"https://cognito-idp.{pool.region}.amazonaws.com/{pool.id}",
        "exp": now + lifetime,
        "iat": now,
        "version": 2,
        "jti": str(uuid.uuid4()),
        "client_id": client.id,
    }
    token: str = jwt.encode({"kid": "dummy", "alg": "RS256"}, claims, pool.json_web_key)
    return token, lifetime


def get_client_token(pool: Any, client: Any, params: dict[str, Any]) -> dict[str, Any]:
    """GetClientToken: needs ALLOW_CLIENT_TOKEN_AUTH and the raw secret; Scopes default to all allowed."""
    flows = client.extended_config.get("ExplicitAuthFlows") or []
    if not client.generate_secret or CLIENT_TOKEN_FLOW not in flows:
        raise CognitoError("InvalidParameterException", f"{CLIENT_TOKEN_FLOW} flow not enabled for this client")
    secret = params.get("Secret")
    if not isinstance(secret, str) or not hmac.compare_digest(secret.encode(), str(client.secret).encode()):
        raise CognitoError("NotAuthorizedException", f"Unable to verify secret for client {client.id}")
    requested = params.get("Scopes")
    try:
        scopes = granted_scopes(client, requested if isinstance(requested, list) else None)
    except ScopeError as exc:
        raise CognitoError("InvalidParameterException", f"invalid_scope: {exc} is not allowed for this client") from exc
    token, lifetime = mint_access_token(pool, client, scopes)
    return {"ClientAuthenticationResult": {"AccessToken": token, "ExpiresIn": lifetime, "TokenType": "Bearer"}}


class OAuthError(Exception):
    """An error answer of the token endpoint: ``{"error": code}`` with its HTTP status."""

    def __init__(self, error: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


OAuthAnswer = tuple[int, dict[str, Any], list[tuple[str, str]]]


def token_endpoint(body: bytes, authorization: str, find_client: Any) -> OAuthAnswer:
    """POST /oauth2/token with grant_type=client_credentials: (status, JSON body, extra headers)."""
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    basic = authorization.strip()
    client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
    used_basic = basic.lower().startswith("basic ")
    if used_basic:
        try:
            client_id, _, client_secret = base64.b64decode(basic[6:].strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return _oauth_error(OAuthError("invalid_client", 401), used_basic)
    try:
        if form.get("grant_type") != "client_credentials":
            raise OAuthError("unsupported_grant_type" if form.get("grant_type") else "invalid_request")
        try:
            _, pool, client = find_client(client_id)
        except CognitoError as exc:
            raise OAuthError("invalid_client", 401 if used_basic else 400) from exc
        if not client.generate_secret or not hmac.compare_digest(client_secret.encode(), str(client.secret).encode()):
            raise OAuthError("invalid_client", 401 if used_basic else 400)
        oauth_flows = client.extended_config.get("AllowedOAuthFlows") or []
        if "client_credentials" not in oauth_flows or not client.extended_config.get("AllowedOAuthFlowsUserPoolClient"):
            raise OAuthError("unauthorized_client")
        try:
            scopes = granted_scopes(client, form.get("scope", "").split())
        except ScopeError as exc:
            raise OAuthError("invalid_scope") from exc
    except OAuthError as error:
        return _oauth_error(error, used_basic)
    token, lifetime = mint_access_token(pool, client, scopes)
    return 200, {"access_token": token, "expires_in": lifetime, "token_type": "Bearer"}, []


def _oauth_error(error: OAuthError, used_basic: bool) -> OAuthAnswer:
    headers = [("WWW-Authenticate", 'Basic realm="oauth2"')] if error.status == 401 and used_basic else []
    return error.status, {"error": error.error}, headers
