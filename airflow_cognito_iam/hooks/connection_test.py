"""The UI's Test button, as the Airflow 3.3 API server drives it.

The Test route stores the form under a random connection id and keeps the real id only in its own
frame; secrets the form left masked arrive as ``***``. These helpers find the connection under test,
put the stored secrets back where the form masked them (only while the sign-in target is unchanged),
and name the fields the form changed, so a wrong password is reported as such.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from types import FrameType
from typing import Any

log = logging.getLogger(__name__)

SECRET_EXTRAS = ("client_secret", "totp_secret")

_TEST_ROUTE_MODULE = "airflow.api_fastapi.core_api.routes.public.connections"
_MASKED = "***"
#: Where a sign-in goes and as whom: stored secrets are reused only while none of these changed,
#: as the API server reuses stored credentials only for the stored host and port.
_SIGN_IN_TARGET = (
    "login",
    "user_pool_id",
    "client_id",
    "region",
    "cognito_idp_endpoint_url",
    "oauth_token_url",
)


def _same(name: str, new: Any, old: Any) -> bool:
    """Equal, or both unset; for the port, 0 is what the UI sends for "none"."""
    unset: tuple[Any, ...] = (None, "", 0) if name == "port" else (None, "")
    return new == old or (new in unset and old in unset and not isinstance(new, bool) and not isinstance(old, bool))


@dataclass
class ConnValues:
    """The connection values a test uses, with extras decoded."""

    host: str | None
    login: str | None
    password: str | None
    port: int | None
    extra: dict[str, Any]

    @classmethod
    def of(cls, conn: Any) -> ConnValues:
        extra = conn.extra_dejson if conn.extra else {}
        return cls(conn.host, conn.login, conn.password, conn.port, dict(extra) if isinstance(extra, dict) else {})

    def _fields(self) -> dict[str, Any]:
        return {"host": self.host, "login": self.login, "password": self.password, "port": self.port, **self.extra}

    def changed_from(self, stored: ConnValues) -> list[str]:
        """Fields whose form value differs from the stored one; a masked secret counts as unchanged."""
        mine, theirs = self._fields(), stored._fields()
        changed = []
        for name in sorted(set(mine) | set(theirs)):
            new = mine.get(name)
            if new != _MASKED and not _same(name, new, theirs.get(name)):
                changed.append(name)
        return changed

    def restore_masked(self, stored: ConnValues, changed: list[str]) -> str | None:
        """Put the stored secrets in place of masked ones; or say why they may not be used."""
        masked = self.masked()
        if not masked:
            return None
        moved = [name for name in changed if name in _SIGN_IN_TARGET]
        if moved:
            return (
                f"{' and '.join(masked)} arrived masked (***) while the form changed {', '.join(moved)}: "
                "stored secrets are only reused for the stored sign-in target; type them to test"
            )
        if self.password == _MASKED:
            self.password = stored.password
        for name in SECRET_EXTRAS:
            if self.extra.get(name) == _MASKED:
                self.extra[name] = stored.extra.get(name)
        return None

    def masked(self) -> list[str]:
        names = ["password"] if self.password == _MASKED else []
        return names + [name for name in SECRET_EXTRAS if self.extra.get(name) == _MASKED]


def changes_note(changed: list[str]) -> str:
    return f" (tested with the form's changes to {', '.join(changed)})" if changed else ""


def connection_under_test(transient_conn_id: str) -> tuple[str, Any] | None:
    """``(connection id, stored Connection or None)`` when the API server's Test route called us.

    That route stores the form under a random id and keeps the real one only in its own frame,
    so we read it there. The stored connection is loaded only if the caller may read it, as the
    route itself does; anything unexpected means "not under test", never an error.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "test_connection" and frame.f_globals.get("__name__") == _TEST_ROUTE_MODULE:
            break
        frame = frame.f_back
    if frame is None:
        return None
    local = frame.f_locals
    body = local.get("test_body")
    conn_id = getattr(body, "connection_id", None)
    if local.get("transient_conn_id") != transient_conn_id or not isinstance(conn_id, str):
        return None
    try:
        from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails
        from airflow.models.connection import Connection

        team_name = local.get("team_name")
        allowed = local["auth_manager"].is_authorized_connection(
            method="GET", details=ConnectionDetails(conn_id=conn_id, team_name=team_name), user=local["user"]
        )
        stored = Connection.get_connection_from_secrets(conn_id, team_name=team_name) if allowed else None
    except Exception:  # not found, or an Airflow whose route looks different: test the form as sent
        log.debug("stored connection %s not readable for the test", conn_id, exc_info=True)
        stored = None
    return conn_id, stored
