"""Refresh tokens as Cognito treats them in 2026: rotation with a retry grace period, and revocation.

moto keeps ``pool.refresh_tokens`` (token -> (client id, username, origin_jti), None once signed
out). The strict layer keeps what moto has no notion of: when a token was rotated out and how long
its grace lasts. The token family is moto's ``origin_jti``: a rotated token keeps its family, so
RevokeToken on any member ends all of them, as Cognito's token session does.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_cognito_iam.devstack.errors import CognitoError

#: RefreshTokenRotationType.RetryGracePeriodSeconds range (API reference).
MAX_GRACE_SECONDS = 60


@dataclass(frozen=True)
class Rotation:
    """An app client's RefreshTokenRotation setting."""

    enabled: bool
    grace_seconds: int = 0

    @classmethod
    def of_client(cls, client: Any) -> Rotation:
        """Read it from the client's config as CreateUserPoolClient / UpdateUserPoolClient stored it."""
        spec = client.extended_config.get("RefreshTokenRotation") or {}
        return cls(spec.get("Feature") == "ENABLED", int(spec.get("RetryGracePeriodSeconds") or 0))


def validate_rotation(spec: Any) -> None:
    """Refuse a RefreshTokenRotation value Cognito would refuse (InvalidParameterException)."""
    if spec is None:
        return
    if not isinstance(spec, dict) or spec.get("Feature") not in ("ENABLED", "DISABLED"):
        raise CognitoError(
            "InvalidParameterException",
            "1 validation error detected: Value at 'refreshTokenRotation.feature' failed to satisfy constraint: "
            "Member must satisfy enum value set: [ENABLED, DISABLED]",
        )
    grace = spec.get("RetryGracePeriodSeconds", 0)
    if isinstance(grace, bool) or not isinstance(grace, int) or not 0 <= grace <= MAX_GRACE_SECONDS:
        raise CognitoError(
            "InvalidParameterException",
            "1 validation error detected: Value at 'refreshTokenRotation.retryGracePeriodSeconds' failed to "
            f"satisfy constraint: Member must have value between 0 and {MAX_GRACE_SECONDS}",
        )


def invalid() -> CognitoError:
    """Unknown token, another client's token, or (device pools) the wrong or a forgotten device."""
    return CognitoError("NotAuthorizedException", "Invalid Refresh Token.")


def revoked() -> CognitoError:
    return CognitoError("NotAuthorizedException", "Refresh Token has been revoked")


def reused() -> CognitoError:
    """A rotated-out token used after its grace period (the API model's RefreshTokenReuseException)."""
    return CognitoError(
        "RefreshTokenReuseException", "The refresh token has already been rotated and its grace period has ended."
    )


class RefreshTokens:
    """Rotation bookkeeping over moto's refresh-token map; one lock makes single use atomic."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        # token -> (rotated out at, grace seconds in force then)
        self._rotated_out: dict[str, tuple[float, int]] = {}

    def owner(self, pool: Any, client: Any, token: Any) -> tuple[str, str, str]:
        """(client id, username, family) of a live token of this client, or the error Cognito gives."""
        if not isinstance(token, str) or token not in pool.refresh_tokens:
            raise invalid()
        owner: tuple[str, str, str] | None = pool.refresh_tokens[token]
        if owner is None:
            raise revoked()
        if owner[0] != client.id:
            raise invalid()
        with self._lock:
            rotated = self._rotated_out.get(token)
        if rotated is not None and self._clock() - rotated[0] > rotated[1]:
            raise reused()
        return owner

    def rotate(self, pool: Any, client: Any, token: str, rotation: Rotation) -> str:
        """Issue the successor of ``token`` (same family) and start the old one's grace period.

        Checked again under the lock, so two refreshes racing with one token and no grace period
        cannot both succeed.
        """
        with self._lock:
            now = self._clock()
            rotated = self._rotated_out.get(token)
            if rotated is not None and now - rotated[0] > rotated[1]:
                raise reused()
            owner = pool.refresh_tokens.get(token)
            if owner is None:
                raise revoked()
            successor = _new_refresh_token()
            pool.refresh_tokens[successor] = owner
            self._rotated_out.setdefault(token, (now, rotation.grace_seconds))
        return successor

    def revoke_family(self, pool: Any, family: str) -> int:
        """End every refresh token of the family (RevokeToken); returns how many were live."""
        ended = 0
        with self._lock:
            for token, owner in list(pool.refresh_tokens.items()):
                if owner is not None and owner[2] == family:
                    pool.refresh_tokens[token] = None
                    ended += 1
            for access_token, (_, _) in list(getattr(pool, "access_tokens", {}).items()):
                if _origin_jti(access_token) == family:
                    pool.access_tokens.pop(access_token, None)
        return ended

    def clear(self) -> None:
        with self._lock:
            self._rotated_out.clear()


def _new_refresh_token() -> str:
    # Cognito's refresh tokens are opaque JWE strings; moto's are UUIDs. Opaque and unguessable is what matters.
    return "eyJjdHkiOiJKV1QiLCJlbmMiOiJBMjU2R0NNIiwiYWxnIjoiUlNBLU9BRVAifQ." + secrets.token_urlsafe(48)


def _origin_jti(token: str) -> str | None:
    import jwt

    try:
        value = jwt.decode(token, options={"verify_signature": False}).get("origin_jti")
    except jwt.PyJWTError:
        return None
    return str(value) if value else None
