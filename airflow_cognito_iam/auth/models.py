"""Values passed between the sign-in, exchange and credential layers; secrets stay out of ``repr``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class DeviceInfo:
    """A device Cognito remembers for this user: sent as DEVICE_KEY, proven with device SRP."""

    device_key: str
    device_group_key: str
    device_password: str = field(repr=False)


@dataclass(frozen=True)
class CognitoTokens:
    """User pool tokens. ``expires_at`` is when the ID/access tokens stop working (UTC, aware).

    ``secret_hash_username`` is the user's internal username (``sub`` for alias sign-in), which
    Cognito requires in SECRET_HASH for REFRESH_TOKEN_AUTH instead of the name the user typed.
    ``id_token`` is empty for machine-to-machine tokens (an app client has no ID token).
    """

    id_token: str = field(repr=False)
    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_at: datetime
    secret_hash_username: str | None = None
    device: DeviceInfo | None = field(default=None, repr=False)


@dataclass(frozen=True)
class IdentityCredentials:
    """Temporary AWS credentials issued by the identity pool for one identity."""

    identity_id: str
    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expiration: datetime
