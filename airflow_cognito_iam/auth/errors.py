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
    """A signed request would leave the connection's origin (credentials must not travel)."""

    def __init__(self, origin: str, allowed: list[str]) -> None:
        self.origin = origin
        super().__init__(
            {
                "endpoint": f"{origin} is not the connection's origin nor in allowed_hosts {allowed} "
                "(scheme, host and port must all match; a host without a port means port 443)"
            }
        )


class UnsafeUrlError(ConfigurationError):
    """A URL whose destination is ambiguous or unsafe to send credentials to."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__({"endpoint": f"URL {_shown(url)!r} {why}"})


def _shown(url: str) -> str:
    # The query can carry personal data or tokens; the rest says enough to find the bad URL.
    text = url.split("?", 1)[0]
    return "".join(c if 0x20 <= ord(c) != 0x7F else "?" for c in text)[:200]


class ClockSkewError(CognitoIamError):
    """This worker's clock is too far from AWS's for signatures and expiry times to work."""

    def __init__(self, offset_seconds: float, what: str) -> None:
        self.offset_seconds = offset_seconds
        direction = "ahead of" if offset_seconds < 0 else "behind"
        super().__init__(
            f"{what}: this worker's clock is {abs(offset_seconds):.0f} s off ({direction} the server's Date "
            "header). Signatures and credential expiry depend on the clock: synchronise it (NTP, chrony) "
            "and run the task again."
        )
