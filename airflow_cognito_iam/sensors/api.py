"""CognitoIamApiSensor: wait until a signed API call says a condition holds (e.g. a job is done)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from airflow.sdk import BaseSensorOperator, PokeReturnValue, conf
from airflow.sdk.bases.decorator import determine_kwargs
from airflow.sdk.exceptions import AirflowFailException

from airflow_cognito_iam.auth.bodies import BodyTooLargeError, read_capped
from airflow_cognito_iam.auth.deadline import watching_body
from airflow_cognito_iam.auth.errors import (
    ApiRefusalError,
    AuthenticationError,
    ClockSkewError,
    ConfigurationError,
    TransientError,
)
from airflow_cognito_iam.auth.retry import RetryPolicy
from airflow_cognito_iam.auth.settings import MAX_RETRY_SECONDS, parse_number
from airflow_cognito_iam.auth.transport import AUTH_MODES, METHODS, AuthMode
from airflow_cognito_iam.operators.api import is_broken_body_types
from airflow_cognito_iam.triggers.api import dotted_path, load_callable, refuse_secret_headers

#: A status document, read whole into memory for response_check.
MAX_POKE_BODY_BYTES = 16 * 1024 * 1024

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook


class CognitoIamApiSensor(BaseSensorOperator):
    """Poll a signed endpoint until ``response_check`` returns true.

    Each poke is one signed request through :class:`CognitoIamHook`; credentials come from the
    hook's cache, so they are refreshed across pokes (and across reschedules in ``mode="reschedule"``)
    without a sign-in per poke.

    :param endpoint: path relative to the connection host (templated).
    :param cognito_iam_conn_id: ``cognito_iam`` connection.
    :param method: HTTP method (GET unless the API wants otherwise).
    :param query: query-string parameters (templated).
    :param headers: extra request headers (templated); never logged.
    :param auth: ``"iam"``, ``"id_token"`` or ``"access_token"``.
    :param response_check: ``callable(response, **context) -> bool | PokeReturnValue``; default:
        done on any 2xx response.
    :param not_ready_status_codes: statuses meaning "not yet" rather than failure (default 404).
    :param max_attempts: attempts per poke for 429/502/503/504 and connection errors.
    :param max_retry_seconds: time budget of those attempts; a poke that still fails counts as "not yet".
    :param allowed_hosts: extra hosts signed requests may go to.
    :param response_check_kwargs: extra keyword arguments for ``response_check`` (JSON values).
    :param deferrable: wait in the triggerer instead of a worker slot (operators/deferrable.py).
        ``response_check`` must then be importable there (a module function or its dotted path);
        it gets the response and ``response_check_kwargs``, not the task context.
    :param end_from_trigger: with ``deferrable``, a met condition ends the task in the triggerer
        (its result pushed to XCom there) instead of resuming it on a worker.
    """

    template_fields: Sequence[str] = ("cognito_iam_conn_id", "endpoint", "query", "headers")
    template_fields_renderers = {"query": "json", "headers": "json"}

    def __init__(
        self,
        *,
        endpoint: str,
        cognito_iam_conn_id: str = "cognito_iam_default",
        method: str = "GET",
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        auth: AuthMode = "iam",
        response_check: Callable[..., bool | PokeReturnValue] | str | None = None,
        not_ready_status_codes: Collection[int] = (404,),
        max_attempts: int = 3,
        max_retry_seconds: float = 30.0,
        allowed_hosts: Collection[str] = (),
        response_check_kwargs: Mapping[str, Any] | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        end_from_trigger: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        numbers: dict[str, str] = {}
        parse_number(max_attempts, "max_attempts", 1, 100, numbers, integral=True)
        parse_number(max_retry_seconds, "max_retry_seconds", 0, MAX_RETRY_SECONDS, numbers)
        problems = [f"{name} {problem}" for name, problem in numbers.items()]
        if auth not in AUTH_MODES:
            problems.append(f"auth={auth!r} must be one of {list(AUTH_MODES)}")
        if not isinstance(method, str) or method.upper() not in METHODS:
            problems.append(f"method={method!r} must be one of {sorted(METHODS)}")
        if deferrable:
            try:
                dotted_path(response_check, "response_check")
                refuse_secret_headers(headers)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError(f"{type(self).__name__} {kwargs.get('task_id', '')!r}: " + "; ".join(problems))
        self.endpoint = endpoint
        self.cognito_iam_conn_id = cognito_iam_conn_id
        self.method = method.upper()
        self.query = query or {}
        self.headers = headers or {}
        self.auth = auth
        self.response_check = response_check
        self.not_ready_status_codes = frozenset(not_ready_status_codes)
        self.max_attempts = int(max_attempts)
        self.max_retry_seconds = max_retry_seconds
        self.allowed_hosts = tuple(allowed_hosts)
        self.response_check_kwargs = dict(response_check_kwargs or {})
        self.deferrable = deferrable
        self.end_from_trigger = end_from_trigger

    @cached_property
    def hook(self) -> CognitoIamHook:
        """The hook for ``cognito_iam_conn_id``; one per task process, so one keep-alive session."""
        from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

        return CognitoIamHook(
            self.cognito_iam_conn_id,
            allowed_hosts=self.allowed_hosts,
            retry_policy=RetryPolicy(max_attempts=self.max_attempts, max_seconds=self.max_retry_seconds),
        )

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        from airflow_cognito_iam.operators.deferrable import defer_sensor

        try:
            defer_sensor(self, context)
        except ValueError as exc:
            raise AirflowFailException(f"{type(self).__name__}: {exc}") from exc
        return None  # not reached: defer raises TaskDeferred

    def execute_complete(self, context: Context, event: Mapping[str, Any] | None = None) -> Any:
        """Resumed after the triggerer saw the condition hold: the check's value, or a summary, to XCom."""
        from airflow_cognito_iam.operators.deferrable import finish_wait, result_of

        done = finish_wait(event, f"{self.method} {urlsplit(self.endpoint).path}", soft_fail=self.soft_fail)
        self.log.info("Condition met after %s poll(s) in the triggerer", done.get("polls"))
        return result_of(done)

    def poke(self, context: Context) -> bool | PokeReturnValue:
        try:
            response = self.hook.request(
                self.method,
                self.endpoint,
                mode=self.auth,
                params=self.query or None,
                headers=self.headers or None,
                stream=True,
            )
            where = f"{self.method} {urlsplit(self.endpoint).path}"
            with watching_body(response, self.hook.settings.timeout, where) as watch:
                try:
                    read_capped(response, MAX_POKE_BODY_BYTES)
                except BodyTooLargeError:
                    raise AirflowFailException(
                        f"{where}: the status body is over {MAX_POKE_BODY_BYTES} bytes; a sensor reads status, not data"
                    ) from None
                except is_broken_body_types() as exc:
                    raise TransientError(
                        f"{where}: body broke off ({'deadline' if watch.fired else type(exc).__name__})"
                    ) from None
        except ApiRefusalError as exc:
            if exc.status_code in self.not_ready_status_codes:
                self.log.info("Not ready yet: HTTP %s", exc.status_code)
                return False
            raise AirflowFailException(f"ApiRefusalError: {exc}") from exc
        except (ConfigurationError, AuthenticationError, ClockSkewError) as exc:
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        except TransientError as exc:
            # An outage shorter than the sensor's timeout should not fail the wait.
            self.log.warning("Poke failed after retries, will poke again: %s", exc)
            return False
        if self.response_check is None:
            return _is_success(response)
        check = self.response_check
        if isinstance(check, str):
            check = load_callable(check, "response_check")
        kwargs = {**determine_kwargs(check, [response], context), **self.response_check_kwargs}
        return check(response, **kwargs)


def _is_success(response: requests.Response) -> bool:
    return 200 <= response.status_code < 300
