"""CognitoIamFanOutOperator: many signed requests in one task, ``max_concurrency`` in flight.

"Pull the details of each of 2,000 customers" with dynamic task mapping costs a task instance
(scheduling, a process, XCom rows) per request; here one task signs in once and runs the requests
on a thread pool. Each request takes the same path as ``CognitoIamApiOperator``'s (hook → the
transport's retries → pagination → response_check → response_filter), so the failure rules are
the same; what this module adds is the pool, the shared throttle and one landing:

* destination: one JSON line per record, ``{"request": <index>, "record": …}``, written as each
  request completes (completion order, tagged with the request's index), committed only if the
  whole fan-out succeeds;
* XCom: ``{"results": [...], "failed": [...], ...}`` with ``results`` in input order.

Threads: one hook and one credential provider for the pool; the hook gives each worker thread its
own ``requests.Session`` (keep-alive pool per thread), since ``requests.Session`` is not documented
as thread-safe. A 429 or ``Retry-After`` backs off the whole pool (``auth/throttle.py``).
"""

from __future__ import annotations

import json as jsonlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow_cognito_iam.auth.errors import (
    ApiRefusalError,
    AuthenticationError,
    ClockSkewError,
    CognitoIamError,
    ConfigurationError,
    TransientError,
)
from airflow_cognito_iam.auth.retry import RetryCancelled, cancellable_sleep
from airflow_cognito_iam.auth.settings import parse_number
from airflow_cognito_iam.auth.throttle import PoolThrottle
from airflow_cognito_iam.auth.transport import check_headers
from airflow_cognito_iam.formats import CONTENT_TYPES
from airflow_cognito_iam.operators.api import (
    CognitoIamApiOperator,
    CognitoIamRetryableError,
    TaskInterruptedError,
    XComTooLargeError,
    _path_of,
)

if TYPE_CHECKING:
    import requests
    from airflow.sdk import Context

__all__ = ["REQUEST_KEYS", "CognitoIamFanOutOperator", "parse_requests"]

#: What one entry of ``requests`` may set; the operator's own arguments are the defaults.
REQUEST_KEYS = frozenset({"endpoint", "query", "json", "data", "headers"})
ON_ERROR = ("fail", "skip")
DEFAULT_MAX_CONCURRENCY = 8
MAX_CONCURRENCY = 64
#: Failed requests named one by one in a task failure message (the count is always given).
LISTED_FAILURES = 20
#: Problems with ``requests`` entries reported at once.
LISTED_PROBLEMS = 10

#: Every request would fail the same way: stop the pool, whatever ``on_error`` says.
_FATAL = (ConfigurationError, AuthenticationError, ClockSkewError)
#: This request cannot succeed; the others may.
_PERMANENT = (ApiRefusalError, ValueError, AirflowException)

FailureKind = Literal["permanent", "transient", "fatal"]


def parse_requests(
    value: Any,
    defaults: Mapping[str, Any],
    field: str = "requests",
    check_endpoint: Callable[[str], object] | None = None,
) -> list[dict[str, Any]]:
    """Each entry as complete request arguments (``defaults`` under it), or ValueError naming each bad field.

    An entry is a mapping of ``endpoint``, ``query``, ``json``, ``data``, ``headers``, or a bare
    endpoint string. ``query`` and ``headers`` merge over the defaults; the others replace them.
    ``check_endpoint`` (e.g. the hook's ``url_for``) may refuse an endpoint with a ConfigurationError.
    """
    if value is None or isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        kind = "nothing" if value is None else type(value).__name__
        raise ValueError(
            f"{field} must be a list of requests ({{'endpoint': …, 'query': …, 'json': …}} or endpoint strings), "
            f"got {kind}"
        )
    parsed: list[dict[str, Any]] = []
    problems: list[str] = []
    for index, entry in enumerate(value):
        where = f"{field}[{index}]"
        if isinstance(entry, str):
            entry = {"endpoint": entry}
        if not isinstance(entry, Mapping):
            problems.append(f"{where} must be a mapping or an endpoint string, got {type(entry).__name__}")
            continue
        unknown = sorted(str(key) for key in set(entry) - REQUEST_KEYS)
        if unknown:
            problems.append(f"{where} has unknown keys {unknown}; allowed: {sorted(REQUEST_KEYS)}")
            continue
        request = {key: defaults.get(key) for key in REQUEST_KEYS}
        endpoint = entry.get("endpoint", defaults.get("endpoint"))
        if not isinstance(endpoint, str) or not endpoint:
            problems.append(f"{where}.endpoint must be a non-empty string (or give the operator an endpoint)")
            continue
        request["endpoint"] = endpoint
        if check_endpoint is not None:
            try:
                check_endpoint(endpoint)
            except ConfigurationError as exc:
                problems.append(f"{where}.endpoint: {'; '.join(exc.problems.values())}")
        for key in ("query", "headers"):
            given = entry.get(key)
            if given is not None and not isinstance(given, Mapping):
                problems.append(f"{where}.{key} must be a mapping, got {type(given).__name__}")
                given = None
            request[key] = {**(defaults.get(key) or {}), **(given or {})}
        for key in ("json", "data"):
            if key in entry:
                request[key] = entry[key]
        if request["json"] is not None and request["data"] is not None:
            problems.append(f"{where}: give either json or data, not both")
        try:
            check_headers(request["headers"], field=f"{where}.headers")
        except ConfigurationError as exc:
            problems.extend(f"{name}: {problem}" for name, problem in exc.problems.items())
        parsed.append(request)
    if problems:
        more = f" (and {len(problems) - LISTED_PROBLEMS} more)" if len(problems) > LISTED_PROBLEMS else ""
        raise ValueError("; ".join(problems[:LISTED_PROBLEMS]) + more)
    return parsed


@dataclass(frozen=True)
class _Done:
    index: int
    result: Any  # what CognitoIamApiOperator would return to XCom for this request alone
    records: list[Any]
    pages: int


@dataclass(frozen=True)
class _Failed:
    index: int
    method: str
    path: str
    kind: FailureKind
    error: BaseException

    def entry(self) -> dict[str, Any]:
        """Secret-free description for XCom and messages: index, method, path (no query values)."""
        return {"index": self.index, "method": self.method, "path": self.path, "error": _cause(self.error)}

    def line(self) -> str:
        return f"requests[{self.index}] {self.method} {self.path}: {_cause(self.error)}"


class CognitoIamFanOutOperator(CognitoIamApiOperator):
    """Run many signed requests in one task, ``max_concurrency`` at a time, on the same credentials.

    Takes every argument of :class:`CognitoIamApiOperator` (method, auth, pagination, response_check,
    response_filter, destination, output_format, compression, retries…) as defaults for each request.

    :param requests: list of ``{"endpoint": …, "query": …, "json": …, "data": …, "headers": …}``
        (or endpoint strings), templated; an ``XComArg`` of an upstream task works too. ``query`` and
        ``headers`` merge over the operator's; ``endpoint`` defaults to the operator's ``endpoint``.
    :param max_concurrency: requests in flight at once (threads; default 8).
    :param on_error: ``"fail"`` (default): a request that fails permanently fails the task, naming
        it, and nothing is stored. ``"skip"``: such requests are listed under ``failed`` in the
        returned summary and the others are stored. Transient failures that outlast the retries
        always fail the task with a retryable error (a task retry can fix them).
    """

    template_fields: Sequence[str] = (*CognitoIamApiOperator.template_fields, "requests")
    template_fields_renderers = {**CognitoIamApiOperator.template_fields_renderers, "requests": "json"}

    def __init__(
        self,
        *,
        requests: Any,
        endpoint: str = "",
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        on_error: Literal["fail", "skip"] = "fail",
        **kwargs: Any,
    ) -> None:
        super().__init__(endpoint=endpoint, **kwargs)
        numbers: dict[str, str] = {}
        parse_number(max_concurrency, "max_concurrency", 1, MAX_CONCURRENCY, numbers, integral=True)
        problems = [f"{name} {problem}" for name, problem in numbers.items()]
        if on_error not in ON_ERROR:
            problems.append(f"on_error={on_error!r} must be one of {list(ON_ERROR)}")
        if self.output_format == "raw":
            problems.append("output_format='raw' has no meaning across requests; use 'jsonl' or 'json'")
        if isinstance(requests, list | tuple):  # known at parse time: refuse bad entries now, not at run time
            try:
                parse_requests(requests, self._initial_request())
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError(f"{type(self).__name__} {kwargs.get('task_id', '')!r}: " + "; ".join(problems))
        self.requests = requests
        self.max_concurrency = int(max_concurrency)
        self.on_error = on_error
        self._throttle: PoolThrottle | None = None
        self._specs: list[dict[str, Any]] = []
        #: Set when the workers must stop: no request, page or retry starts after it.
        self._cancel: threading.Event | None = None
        #: ``on_kill`` ran during ``execute``: whatever happens next, the task must not succeed.
        self._killed = False
        self._executing = False

    def execute(self, context: Context) -> Any:
        self._cancel = threading.Event()  # made here: an Event cannot be deep-copied with the task
        self._killed, self._executing = False, True
        try:
            try:
                self._specs = self._checked_requests()
            except (ValueError, CognitoIamError) as exc:
                raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
            return super().execute(context)
        finally:
            self._executing = False
            self._cancel.set()
            self.hook.close()  # the workers' keep-alive sessions

    def on_kill(self) -> None:
        """SIGTERM: stop the pool and any write, and fail the task, even in XCom mode (no sink to discard).

        Airflow also calls this after ``execution_timeout`` has unwound ``execute``; then there is
        nothing left to stop and the timeout stays the task's error.
        """
        if not self._executing or self._cancel is None:
            return
        sink = self._active_sink
        if sink is not None and sink.closed:  # already stored whole: let the task finish, as the base does
            return
        self._killed = True
        self._cancel.set()
        super().on_kill()  # discards a partial destination and raises
        self._raise_if_killed()

    def _raise_if_killed(self) -> None:
        # on_kill raises from a signal handler, and code it interrupts may swallow that (botocore
        # wraps any error during a send, and retries it): check again where a result is decided.
        if self._killed:
            raise TaskInterruptedError(f"stopped during {self._described()}; nothing was returned or stored")

    def _send(self, request: Mapping[str, Any]) -> requests.Response:
        if self._cancel is not None and self._cancel.is_set():
            raise RetryCancelled("stopped before the next request: the task is stopping")
        return super()._send(request)

    def _retry_sleep(self, seconds: float) -> None:
        if self._cancel is None:
            time.sleep(seconds)
        else:
            cancellable_sleep(self._cancel, seconds)

    def _checked_requests(self) -> list[dict[str, Any]]:
        """The rendered requests, each resolved to a pinned URL; every problem named before any network call."""
        return parse_requests(self.requests, self._initial_request(), check_endpoint=self.hook.url_for)

    def _described(self) -> str:
        return f"{self.method} fan-out of {len(self._specs)} request(s)"

    def _content_type(self) -> str | None:
        return CONTENT_TYPES[self.output_format]  # always records, one tagged line each

    # -- landing --------------------------------------------------------------------------------

    def _to_xcom(self, context: Context) -> dict[str, Any]:
        results: list[Any] = [None] * len(self._specs)
        size = 0

        def keep(done: _Done) -> None:
            nonlocal size
            size += len(jsonlib.dumps(done.result, default=str).encode()) + 2
            if size > self.max_xcom_bytes:
                raise XComTooLargeError(
                    f"The results of {self._described()} are over max_xcom_bytes={self.max_xcom_bytes} (at least "
                    f"{size} bytes). XCom is for small results: set destination='s3://bucket/prefix/{{{{ ds }}}}/"
                    "details.jsonl' (or a file:// path) to stream them to storage, or raise max_xcom_bytes."
                )
            results[done.index] = done.result

        summary = self._fan_out(context, keep)
        summary["results"] = results
        self._log_summary(summary, "returned to XCom")
        return summary

    def _to_destination(self, context: Context, uri: str) -> dict[str, Any]:
        with self._open(uri) as sink:
            writer = self._writer(sink)

            def land(done: _Done) -> None:
                for record in done.records:
                    writer.write_record({"request": done.index, "record": record})

            summary = self._fan_out(context, land)
            writer.finish()
        summary.update(self._summary_of(uri, sink, records=summary["records"], pages=summary["pages"]))
        self._log_summary(summary, f"{summary['bytes']} bytes written to {uri}")
        self._summary = summary  # for the lineage facets on complete
        self._emit_asset_event(context, summary)
        return summary

    def _log_summary(self, summary: Mapping[str, Any], where: str) -> None:
        self.log.info(
            "%s: %d ok, %d skipped as failed, %d page(s), %d record(s) in %.1f s, %d in flight; "
            "throttled %d time(s), workers waited %.1f s at the gate; %s",
            self._described(),
            summary["succeeded"],
            len(summary["failed"]),
            summary["pages"],
            summary["records"],
            summary["seconds"],
            min(self.max_concurrency, len(self._specs)),
            summary["throttled"],
            summary["gate_wait_seconds"],
            where,
        )

    # -- the pool -------------------------------------------------------------------------------

    def _fan_out(self, context: Context, land: Callable[[_Done], None]) -> dict[str, Any]:
        """Run every request on the pool; ``land`` each success in this thread; raise on failure."""
        started = time.monotonic()
        throttle = self._throttle = PoolThrottle(sleep=self._retry_sleep)
        self._warm_up()
        self._raise_if_killed()
        stop = threading.Event()
        failures: list[_Failed] = []
        succeeded = pages = records = 0
        pool = ThreadPoolExecutor(
            max_workers=max(1, min(self.max_concurrency, len(self._specs))), thread_name_prefix="cognito-iam-fanout"
        )
        # Each future's result is a one-item list popped here: a landed request's records are not kept.
        futures: list[Future[list[_Done | _Failed | None]]] = []
        try:
            futures = [pool.submit(self._one, context, i, spec, stop) for i, spec in enumerate(self._specs)]
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                outcome = future.result().pop()
                if isinstance(outcome, _Failed):
                    failures.append(outcome)
                    if outcome.kind != "permanent" or self.on_error == "fail":
                        stop.set()  # start nothing new; what is in flight finishes
                        for pending in futures:
                            pending.cancel()
                elif outcome is not None:
                    land(outcome)
                    succeeded += 1
                    pages += outcome.pages
                    records += len(outcome.records)
        finally:
            # Left early (a timeout, on_kill, a landing failure): requests in flight give up at
            # their next wait instead of spending their retry budget while the pool shuts down.
            self._cancel_pool()
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        self._raise_if_killed()
        if any(f.kind != "permanent" for f in failures) or (failures and self.on_error == "fail"):
            self._raise_for(failures)
        failures.sort(key=lambda failure: failure.index)
        return {
            "requests": len(self._specs),
            "succeeded": succeeded,
            "failed": [failure.entry() for failure in failures],
            "pages": pages,
            "records": records,
            "seconds": round(time.monotonic() - started, 3),
            "throttled": throttle.throttled,
            "gate_wait_seconds": round(throttle.waited_seconds, 3),
        }

    def _cancel_pool(self) -> None:
        if self._cancel is not None:
            self._cancel.set()

    def _warm_up(self) -> None:
        """Sign in (or find cached credentials) once here, not in eight threads at once."""
        if not self._specs:
            return
        if self.auth == "iam":
            self.hook.get_credentials()
        else:
            self.hook.get_tokens()

    def _one(
        self, context: Context, index: int, spec: dict[str, Any], stop: threading.Event
    ) -> list[_Done | _Failed | None]:
        """One request, all its pages, in a worker thread; a request's failure is returned, not raised."""
        stopping = stop.is_set() or (self._cancel is not None and self._cancel.is_set())
        return [None if stopping else self._outcome(context, index, spec)]

    def _outcome(self, context: Context, index: int, spec: dict[str, Any]) -> _Done | _Failed:
        try:
            result, items, pages = self._collect(context, spec)
        except _FATAL as exc:
            return self._failed(index, spec, "fatal", exc)
        except TransientError as exc:
            return self._failed(index, spec, "transient", exc)
        except CognitoIamRetryableError as exc:
            return self._failed(index, spec, "transient", exc)
        except _PERMANENT as exc:
            return self._failed(index, spec, "permanent", exc)
        return _Done(index, result, items, pages)

    def _failed(self, index: int, spec: Mapping[str, Any], kind: FailureKind, exc: BaseException) -> _Failed:
        return _Failed(index, self.method, _path_of(spec["endpoint"]), kind, exc)

    def _collect(self, context: Context, spec: Mapping[str, Any]) -> tuple[Any, list[Any], int]:
        """(XCom result, records to store, pages) of one request, as the base operator would land them."""
        values: list[Any] = []
        last: Any = None
        pages = 0
        for response in self._pages(context, request=spec):  # _send refuses a page after a stop
            pages += 1
            try:
                last = self._filtered(response, context)
            finally:
                response.close()
            if self.response_filter is not None and isinstance(last, list):
                values.extend(last)
            else:
                values.append(last)
        return (last if self.pagination is None else values), values, pages

    def _raise_for(self, failures: list[_Failed]) -> None:
        """Fail the task naming the failed requests; the destination was not committed."""
        failures.sort(key=lambda failure: failure.index)
        fatal = next((f for f in failures if f.kind == "fatal"), None)
        if fatal is not None:
            raise fatal.error  # execute() turns it into the usual non-retryable failure
        listed = "; ".join(failure.line() for failure in failures[:LISTED_FAILURES])
        more = f" (and {len(failures) - LISTED_FAILURES} more)" if len(failures) > LISTED_FAILURES else ""
        text = (
            f"{len(failures)} of {len(self._specs)} request(s) failed: {listed}{more}. Nothing was stored; "
            "requests after the first failure were not started"
        )
        if any(failure.kind == "transient" for failure in failures):
            raise CognitoIamRetryableError(f"{text} (transient failures: the task's retries apply)")
        raise AirflowFailException(f"{text} (pass on_error='skip' to store the others and list these)")


def _cause(exc: BaseException) -> str:
    """Why a request failed, without query values: our messages carry query *names* only."""
    if isinstance(exc, ApiRefusalError) and exc.status_code is not None:
        return f"refused (HTTP {exc.status_code})"
    text = str(exc).split(" (limits:", 1)[0]
    return f"{type(exc).__name__}: {text[:300]}"
