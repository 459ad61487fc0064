"""Verify user pool ID tokens the way the identity pool and a Cognito authorizer do.

moto signs every pool's tokens with one RSA key shipped in its package; its public half is served at
``/<pool_id>/.well-known/jwks.json``. We read the same file in-process instead of over HTTP.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jwt


class TokenError(Exception):
    """The token is not a valid, unexpired token of the expected pool and client."""


@lru_cache(maxsize=1)
def _moto_signing_keys() -> dict[str, Any]:
    """kid -> public key of moto's user pool signing key."""
    from moto.utilities.utils import load_resource

    document = load_resource("cognitoidp/resources/jwks-public.json")
    return {key["kid"]: jwt.PyJWK(key).key for key in document["keys"]}


def issuer_for(region: str, user_pool_id: str) -> str:
    """The ``iss`` claim of tokens from this pool."""
    return f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"


def verify_id_token(
    token: str,
    *,
    region: str,
    user_pool_id: str,
    client_ids: set[str] | None,
    token_use: str = "id",  # noqa: S107 - a claim value, not a secret
    leeway: float = 0.0,
) -> dict[str, Any]:
    """Return the claims if the RS256 signature, issuer, audience, token_use and expiry all hold."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError("token is not a JWT") from exc
    key = _moto_signing_keys().get(str(header.get("kid")))
    if key is None or header.get("alg") != "RS256":
        raise TokenError("token is not signed by the user pool")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=["RS256"],
            issuer=issuer_for(region, user_pool_id),
            leeway=leeway,
            options={"verify_aud": False, "require": ["exp", "iss", "sub", "token_use"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token is expired") from exc
    except jwt.InvalidIssuerError as exc:
        raise TokenError("token was issued by another user pool") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("token signature or claims are invalid") from exc
    if claims.get("token_use") != token_use:
        raise TokenError(f"token is not an {token_use} token")
    audience = claims.get("aud") if token_use == "id" else claims.get("client_id")
    if client_ids is not None and audience not in client_ids:
        raise TokenError("token was issued to another app client")
    return claims
