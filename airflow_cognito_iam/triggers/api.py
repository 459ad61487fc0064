"""CognitoIamApiTrigger: poll a signed endpoint on the triggerer's event loop until a check holds.

What travels in the trigger's kwargs (stored in clear in the metadata database) is only what a
reader of the DAG already sees: connection id, method, endpoint, query, header names that cannot
carry credentials, the check's dotted path and its JSON arguments. Credentials are resolved here, in
the triggerer, from the connection: one hook per connection per triggerer process, so any number
of waits on one connection share one sign-in, one refresh and one keep-alive pool.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TaskSuccessEvent, TriggerEvent

from airflow_cognito_iam.auth.bodies import BodyTooLargeError
from airflow_cognito_iam.auth.errors import (
    ApiRefusalError,
    AuthenticationError,
    ClockSkewError,
    ConfigurationError,
    TransientError,
)
from airflow_cognito_iam.auth.retry import RetryPolicy

if TYPE_CHECKING:
    import requests

    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

#: Header names whose values are credentials: refused in deferrable mode (kwargs are stored in clear).
_SECRET_HEADER = re.compile(r"auth|token|secret|key|cookie|session|password|signature", re.IGNORECASE)
#: A status document; anything larger is not a status.
MAX_STATUS_BYTES = 16 * 1024 * 1024
#: Largest response body carried back to the task in the event (else only its size).
MAX_EVENT_BODY_BYTES = 64 * 1024

_HOOKS: dict[tuple[str, str, tuple[str, ...]], CognitoIamHook] = {}


def dotted_path(check: Callable[..., Any] | str | None, field: str) -> str | None:
    """``check`` as an importable ``module.function`` path, verified now rather than in the triggerer."""
    if check is None:
        return None
    if isinstance(check, str):
        load_callable(check, field)
        return check
    module, name = getattr(check, "__module__", None), getattr(check, "__qualname__", "")
    path = f"{module}.{name}"
    if not module or "<" in name or module == "__main__" or module.startswith("unusual_prefix_"):
        raise ValueError(
            f"{field}={name or check!r} cannot run in the triggerer: deferrable mode needs a function it can "
            "import, defined in a module on the Python path (not a lambda, not a nested function, not the DAG "
            "file itself); pass it, or its dotted path, e.g. 'my_company.checks.export_ready'"
        )
    if load_callable(path, field) is not check:
        raise ValueError(f"{field}: {path} does not import as the function given")
    return path


def load_callable(path: str, field: str) -> Callable[..., Any]:
    """Import ``package.module.function``; ValueError naming ``field`` when it does not import."""
    module_name, _, name = path.rpartition(".")
    try:
        target = getattr(importlib.import_module(module_name), name) if module_name else None
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"{field}={path!r} does not import: {type(exc).__name__}: {exc}") from None
    if not callable(target):
        raise ValueError(f"{field}={path!r} is not a callable 'package.module.function'")
    return target  # type: ignore[no-any-return]


def refuse_secret_headers(headers: Mapping[str, str] | None, field: str = "headers") -> None:
    """Trigger kwargs sit in the metadata database in clear: no credential may travel in them."""
    names = sorted(name for name in headers or {} if _SECRET_HEADER.search(name))
    if names:
        raise ValueError(
            f"{field}: {names} would be stored in clear in the metadata database with the trigger; in "
            "deferrable mode pass only headers that carry no credential (signing comes from the connection)"
        )


class CognitoIamApiTrigger(BaseTrigger):
    """Poll ``endpoint`` every ``poke_interval`` seconds until ``response_check`` says done.

    Fires ``{"status": "success", ...}`` (with the check's XCom value), ``{"status": "failed"}``
    for a refusal, a bad connection or a check that raised, or ``{"status": "timeout"}`` at
    ``end_at`` (epoch seconds). A transient failure that outlasts one poll's retries counts as
    "not yet", as in poke mode. With ``end_from_trigger`` a success ends the task here
    (``TaskSuccessEvent`` with the result as its XCom): no worker slot is taken to resume it.
    """

    def __init__(
        self,
        *,
        cognito_iam_conn_id: str,
        endpoint: str,
        method: str = "GET",
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: str = "iam",
        response_check: str | None = None,
        response_check_kwargs: Mapping[str, Any] | None = None,
        not_ready_status_codes: Sequence[int] = (404,),
        poke_interval: float = 60.0,
        end_at: float | None = None,
        max_attempts: int = 3,
        max_retry_seconds: float = 30.0,
        allowed_hosts: Sequence[str] = (),
        job_id: str | None = None,
        end_from_trigger: bool = False,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.cognito_iam_conn_id = cognito_iam_conn_id
        self.endpoint = endpoint
        self.method = method
        self.query = dict(query or {})
        self.headers = dict(headers or {})
        self.auth = auth
        self.response_check = response_check
        self.response_check_kwargs = dict(response_check_kwargs or {})
        self.not_ready_status_codes = list(not_ready_status_codes)
        self.poke_interval = float(poke_interval)
        self.end_at = end_at
        self.max_attempts = int(max_attempts)
        self.max_retry_seconds = float(max_retry_seconds)
        self.allowed_hosts = list(allowed_hosts)
        self.job_id = job_id
        self.end_from_trigger = bool(end_from_trigger)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "cognito_iam_conn_id": self.cognito_iam_conn_id,
                "endpoint": self.endpoint,
                "method": self.method,
                "query": self.query,
                "headers": self.headers,
                "auth": self.auth,
                "response_check": self.response_check,
                "response_check_kwargs": self.response_check_kwargs,
                "not_ready_status_codes": self.not_ready_status_codes,
                "poke_interval": self.poke_interval,
                "end_at": self.end_at,
                "max_attempts": self.max_attempts,
                "max_retry_seconds": self.max_retry_seconds,
                "allowed_hosts": self.allowed_hosts,
                "job_id": self.job_id,
                "end_from_trigger": self.end_from_trigger,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        polls = 0
        try:
            hook = await shared_hook(self.cognito_iam_conn_id, tuple(self.allowed_hosts))
            url = hook.url_for(self.endpoint)
            check = load_callable(self.response_check, "response_check") if self.response_check else None
        except (ConfigurationError, ValueError) as exc:
            yield self._event("failed", polls, message=f"{type(exc).__name__}: {exc}")
            return
        policy = RetryPolicy(max_attempts=self.max_attempts, max_seconds=self.max_retry_seconds)
        async with hook.async_transport.in_use():
            while True:
                polls += 1
                outcome = await self._poll(hook, url, policy, check)
                if outcome is not None:
                    event = self._event(polls=polls, **outcome)
                    break
                if self.end_at is not None and time.time() + self.poke_interval > self.end_at:
                    event = self._event("timeout", polls, message=f"not done after {polls} poll(s)")
                    break
                await asyncio.sleep(self.poke_interval)
        if self.end_from_trigger and event.payload.get("status") == "success":
            # Ends the task in the triggerer; failures and timeouts still resume it to raise.
            yield TaskSuccessEvent(xcoms={"return_value": result_of(event.payload)})
            return
        yield event

    async def _poll(
        self, hook: CognitoIamHook, url: str, policy: RetryPolicy, check: Callable[..., Any] | None
    ) -> dict[str, Any] | None:
        """One poll: the event's fields when the wait is over, None for "not yet"."""
        where = f"{self.method} {_path(url)}"
        started = time.monotonic()
        try:
            response = await hook.async_transport.send(
                self.method,
                url,
                mode=self.auth,  # type: ignore[arg-type]
                params=self.query or None,
                headers=self.headers or None,
                retry_policy=policy,
                max_body_bytes=MAX_STATUS_BYTES,
            )
        except ApiRefusalError as exc:
            if exc.status_code in self.not_ready_status_codes:
                self.log.info("%s: not ready yet (HTTP %s)", where, exc.status_code)
                return None
            return {"status": "failed", "message": f"ApiRefusalError: {exc}"}
        except (ConfigurationError, AuthenticationError, ClockSkewError) as exc:
            return {"status": "failed", "message": f"{type(exc).__name__}: {exc}"}
        except BodyTooLargeError:
            return {"status": "failed", "message": f"{where}: the status body is over {MAX_STATUS_BYTES} bytes"}
        except TransientError as exc:
            self.log.warning("Poll failed after retries, will poll again: %s", exc)
            return None
        try:
            verdict = (
                (200 <= response.status_code < 300) if check is None else check(response, **self.response_check_kwargs)
            )
        except Exception as exc:  # the check's own verdict, e.g. "the job failed"
            return {"status": "failed", "message": f"response_check raised {type(exc).__name__}: {exc}"}
        done, value = _verdict(verdict)
        if not done:
            elapsed = (time.monotonic() - started) * 1000
            self.log.info("%s: HTTP %d, not done yet (%.1f ms)", where, response.status_code, elapsed)
            return None
        return {"status": "success", "xcom_value": value, "status_code": response.status_code, **_body_of(response)}

    def _event(self, status: str, polls: int, **fields: Any) -> TriggerEvent:
        return TriggerEvent({"status": status, "polls": polls, "job_id": self.job_id, **fields})  # type: ignore[no-untyped-call]


async def shared_hook(conn_id: str, allowed_hosts: tuple[str, ...]) -> CognitoIamHook:
    """The triggerer-wide hook for a connection (as it is now): one provider for all its waits.

    The connection is fetched without blocking the loop; a changed connection gets a new hook.
    Building the settings (validation, masking) runs in a thread, like every other blocking step.
    """
    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

    conn = await CognitoIamHook.aget_connection(conn_id)
    fingerprint = hashlib.sha256(
        repr((conn.host, conn.login, conn.password, conn.port, conn.extra)).encode()
    ).hexdigest()
    key = (conn_id, fingerprint, allowed_hosts)
    hook = _HOOKS.get(key)
    if hook is None:
        hook = _HOOKS.setdefault(key, CognitoIamHook(conn_id, allowed_hosts=allowed_hosts, connection=conn))
    await asyncio.to_thread(lambda: hook.pin)
    return hook


def result_of(event: Mapping[str, Any]) -> Any:
    """What a finished wait returns to XCom: the check's value, else a summary of the final response."""
    if event.get("xcom_value") is not None:
        return event["xcom_value"]
    return {key: event[key] for key in ("status_code", "polls", "body", "body_bytes") if key in event}


def _verdict(value: Any) -> tuple[bool, Any]:
    from airflow.sdk import PokeReturnValue

    if isinstance(value, PokeReturnValue):
        return bool(value.is_done), value.xcom_value
    return bool(value), None


def _body_of(response: requests.Response) -> dict[str, Any]:
    """The final body for the task's XCom when small and JSON; otherwise just its size."""
    body = response.content
    if len(body) <= MAX_EVENT_BODY_BYTES:
        try:
            return {"body": response.json()}
        except ValueError:
            pass
    return {"body_bytes": len(body)}


def _path(url: str) -> str:
    from airflow_cognito_iam.auth.transport import loggable

    return loggable(url)
