"""Error taxonomy: the class tells the caller whether retrying can help.

No message built here or by callers may contain a secret (password, client secret, TOTP secret,
token, AWS key or session token): `airflow dags test` does not mask.
"""

from __future__ import annotations

from collections.abc import Mapping


class CognitoIamError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigurationError(CognitoIamError, ValueError):
    """The connection is missing fields or has invalid ones; raised before any network call.

    ``problems`` maps each bad field name to what is wrong with it, so every problem is reported at once.
    """

    def __init__(self, problems: Mapping[str, str], conn_id: str | None = None) -> None:
        self.problems = dict(problems)
        self.conn_id = conn_id
        where = f"connection {conn_id!r}" if conn_id else "Cognito IAM settings"
        lines = "; ".join(f"{name}: {problem}" for name, problem in self.problems.items())
        super().__init__(f"Invalid {where}: {lines}")


class AuthenticationError(CognitoIamError):
    """Cognito refused the user or the identity exchange; retrying cannot help, an admin must act."""


class TransientError(CognitoIamError):
    """Throttling, 5xx, connection reset or timeout: worth retrying with backoff."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ExpiredCredentialsError(CognitoIamError):
    """The API says the signing credentials expired: refresh once, then retry."""


class ApiRefusalError(CognitoIamError):
    """The API refused the request (403 not authorized, 404, other 4xx); never retried."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class HostNotAllowedError(ConfigurationError):
    """A signed request would leave the connection's host (credentials must not travel)."""

    def __init__(self, host: str, allowed: list[str]) -> None:
        super().__init__(
            {"endpoint": f"host {host!r} is not the connection's host nor in allowed_hosts {allowed}"}
        )
