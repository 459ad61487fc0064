"""CognitoIamApiOperator: call an IAM-protected API as a Cognito identity and land the result.

The hook owns signing, credential refresh, host pinning and retries of each request; this operator
owns what a task needs around them: pagination, checks and filters, and where the result goes
(XCom for small results, a streamed ``s3://`` or ``file://`` object for anything else).
"""

from __future__ import annotations

import base64
import contextlib
import json as jsonlib
import socket
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from airflow.sdk import Asset, AssetAlias, BaseOperator, conf
from airflow.sdk.bases.decorator import determine_kwargs
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from airflow_cognito_iam.auth.bodies import BodyTooLargeError, decode_text, read_capped
from airflow_cognito_iam.auth.deadline import watching_body
from airflow_cognito_iam.auth.errors import (
    ApiRefusalError,
    AuthenticationError,
    ClockSkewError,
    ConfigurationError,
    HostNotAllowedError,
    TransientError,
)
from airflow_cognito_iam.auth.retry import RetryPolicy
from airflow_cognito_iam.auth.settings import MAX_RETRY_SECONDS, parse_number
from airflow_cognito_iam.auth.throttle import PoolThrottle
from airflow_cognito_iam.auth.transport import (
    AUTH_MODES,
    IDEMPOTENT_METHODS,
    METHODS,
    AuthMode,
    attempts_of,
    check_headers,
)
from airflow_cognito_iam.formats import (
    CONTENT_TYPES,
    OUTPUT_FORMATS,
    Compression,
    OutputFormat,
    RecordWriter,
    compression_for,
)
from airflow_cognito_iam.object_storage import NATIVE_SCHEMES, Destination, ObjectStorageSink, resolve
from airflow_cognito_iam.storage import (
    DEFAULT_UPLOAD_CONCURRENCY,
    Sink,
    StorageError,
    check_upload_concurrency,
    open_sink,
    parse_destination,
)
from airflow_cognito_iam.triggers.api import dotted_path

#: The default job check (``airflow_cognito_iam.checks.job_status``), by dotted path.
DEFAULT_STATUS_CHECK = "airflow_cognito_iam.checks.job_status"

if TYPE_CHECKING:
    from airflow.sdk import Context, ObjectStoragePath

    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

__all__ = [
    "AUTH_MODES",
    "AuthMode",
    "CognitoIamApiOperator",
    "CognitoIamRetryableError",
    "XComTooLargeError",
    "is_broken_body",
    "merge_request",
]

#: Keys a ``pagination`` callable may return; dict values merge over the current request's.
PAGINATION_KEYS = frozenset({"endpoint", "query", "json", "data", "headers"})
DEFAULT_MAX_XCOM_BYTES = 1024 * 1024
#: Pages read for pagination or response_filter are held in memory: at most this much, decoded.
DEFAULT_MAX_PAGE_BYTES = 64 * 1024 * 1024
#: Read size when streaming a body to storage: large enough for throughput, small next to a part.
STREAM_CHUNK_BYTES = 1024 * 1024
#: Per-endpoint URLs and body-retry objects kept for the pages of one request; a fan-out over
#: distinct endpoints would otherwise keep one of each per request for the whole task.
MAX_CACHED_ENDPOINTS = 256

#: Errors retrying cannot fix: fail the task without Airflow's task-level retries.
_PERMANENT_ERRORS = (ConfigurationError, AuthenticationError, ApiRefusalError, ClockSkewError, ValueError)


class XComTooLargeError(AirflowFailException):
    """The result is too big for XCom; the user should stream it to ``destination`` instead."""


class CognitoIamRetryableError(AirflowException):
    """A transient failure outlasted the per-request retries: Airflow's task ``retries`` apply."""


class TaskInterruptedError(AirflowException):
    """The task was told to stop (SIGTERM) while writing or fanning out; nothing partial was kept.

    An ``AirflowException``: the task's ``retries`` apply, as to any other interrupted run.
    """


def is_broken_body(exc: BaseException) -> bool:
    """True when the response started but its body broke off (reset, truncation, read timeout)."""
    return isinstance(
        exc,
        requests.exceptions.ChunkedEncodingError
        | requests.exceptions.ConnectionError
        | requests.exceptions.Timeout
        | Urllib3HTTPError,
    ) and not isinstance(exc, requests.exceptions.SSLError)


def merge_request(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The next request's arguments: ``changes`` merged over ``current`` (dicts merged, others replaced)."""
    unknown = sorted(set(changes) - PAGINATION_KEYS)
    if unknown:
        raise ValueError(f"pagination returned unknown keys {unknown}; allowed: {sorted(PAGINATION_KEYS)}")
    merged = dict(current)
    for key, value in changes.items():
        old = merged.get(key)
        merged[key] = {**old, **value} if isinstance(old, dict) and isinstance(value, dict) else value
    return merged


class CognitoIamApiOperator(BaseOperator):
    """Call an API behind API Gateway (AWS_IAM or Cognito authorizer) as a Cognito user pool user.

    :param cognito_iam_conn_id: ``cognito_iam`` connection: API host, user and pools.
    :param endpoint: path relative to the connection host (templated). An absolute URL must point at
        the connection's host or one of ``allowed_hosts``.
    :param method: HTTP method.
    :param query: query-string parameters (templated). (``params`` is BaseOperator's DAG params.)
    :param json: JSON request body (templated).
    :param data: raw or form request body (templated).
    :param headers: extra request headers (templated); never logged.
    :param auth: ``"iam"`` (SigV4 with identity pool credentials), ``"id_token"`` or ``"access_token"``
        (``Authorization`` bearer token for Cognito-authorizer APIs).
    :param pagination: ``callable(response) -> dict | None``: the request arguments to change for the
        next page (any of endpoint, query, json, data, headers; dicts merge over the current ones),
        or ``None`` when done.
    :param response_check: ``callable(response, **context) -> bool`` run on every page; False fails.
    :param response_filter: ``callable(response, **context) -> value`` run on every page; a list
        value counts as records (one JSON line each in storage, concatenated in XCom).
    :param destination: ``s3://bucket/key`` or ``file:///path`` (templated). Omit to return the
        result to XCom. The object appears only when complete; a re-run overwrites it.
    :param aws_conn_id: AWS connection for ``s3://`` destinations (amazon provider).
    :param upload_concurrency: parts of an ``s3://`` multipart upload in flight at once (memory:
        that many 8 MiB parts plus one).
    :param max_xcom_bytes: largest result returned to XCom; larger results fail, naming ``destination``.
    :param max_attempts: attempts per request for 429/502/503/504 and connection errors.
    :param max_retry_seconds: total time budget for the attempts of one request.
    :param retry_non_idempotent: also repeat POST/PATCH after errors where the server may have
        received the request (only opt in when the API deduplicates).
    :param allowed_hosts: extra hosts signed requests may go to (e.g. a pagination link's host).
    :param deferrable: async-job mode (see operators/deferrable.py): send the request once, read the
        job id (``job_id_field``) from its answer, wait in the triggerer until ``status_endpoint``
        (templated; ``{job_id}`` is replaced) passes ``status_check`` (a dotted path with JSON
        ``status_check_kwargs``), then fetch the endpoint the check returns as a plain run would.
    :param poll_interval: seconds between status polls; ``job_timeout``: seconds before giving up.
    """

    template_fields: Sequence[str] = (
        "cognito_iam_conn_id",
        "aws_conn_id",
        "endpoint",
        "query",
        "json",
        "data",
        "headers",
        "destination",
        "destination_conn_id",
        "status_endpoint",
    )
    template_fields_renderers = {"query": "json", "json": "json", "headers": "json", "data": "py"}
    #: A fan-out's pool-wide gate (operators/fanout.py); a single request path has none.
    _throttle: PoolThrottle | None = None
    ui_color = "#ff9900"

    def __init__(
        self,
        *,
        endpoint: str,
        cognito_iam_conn_id: str = "cognito_iam_default",
        method: str = "GET",
        query: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        auth: AuthMode = "iam",
        pagination: Callable[[requests.Response], Mapping[str, Any] | None] | None = None,
        response_check: Callable[..., bool] | None = None,
        response_filter: Callable[..., Any] | None = None,
        destination: str | ObjectStoragePath | None = None,
        aws_conn_id: str | None = "aws_default",
        destination_conn_id: str | None = None,
        output_format: OutputFormat = "jsonl",
        compression: Compression | None = None,
        upload_concurrency: int = DEFAULT_UPLOAD_CONCURRENCY,
        max_xcom_bytes: int = DEFAULT_MAX_XCOM_BYTES,
        max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
        max_attempts: int = 5,
        max_retry_seconds: float = 60.0,
        retry_non_idempotent: bool = False,
        allowed_hosts: Collection[str] = (),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        status_endpoint: str | None = None,
        status_check: str | Callable[..., Any] = DEFAULT_STATUS_CHECK,
        status_check_kwargs: Mapping[str, Any] | None = None,
        job_id_field: str = "job_id",
        poll_interval: float = 30.0,
        job_timeout: float = 7200.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        numbers: dict[str, str] = {}
        parse_number(max_xcom_bytes, "max_xcom_bytes", 1, 2**40, numbers, integral=True)
        parse_number(max_page_bytes, "max_page_bytes", 1, 2**40, numbers, integral=True)
        parse_number(max_attempts, "max_attempts", 1, 100, numbers, integral=True)
        parse_number(max_retry_seconds, "max_retry_seconds", 0, MAX_RETRY_SECONDS, numbers)
        problems = [f"{name} {problem}" for name, problem in numbers.items()]
        if auth not in AUTH_MODES:
            problems.append(f"auth={auth!r} must be one of {list(AUTH_MODES)}")
        if not isinstance(method, str) or method.upper() not in METHODS:
            problems.append(f"method={method!r} must be one of {sorted(METHODS)}")
        if json is not None and data is not None:
            problems.append("give either json or data, not both")
        if isinstance(allowed_hosts, str):
            problems.append("allowed_hosts must be a list of host names, not one string")
        if output_format not in OUTPUT_FORMATS:
            problems.append(f"output_format={output_format!r} must be one of {list(OUTPUT_FORMATS)}")
        if compression not in (None, "gzip"):
            problems.append(f"compression={compression!r} must be 'gzip' or None")
        try:
            check_upload_concurrency(upload_concurrency)
        except ValueError as exc:
            problems.append(str(exc))
        if deferrable and status_endpoint:
            job_numbers: dict[str, str] = {}
            parse_number(poll_interval, "poll_interval", 0.01, 86400, job_numbers)
            parse_number(job_timeout, "job_timeout", 1, 30 * 86400, job_numbers)
            problems += [f"{name} {problem}" for name, problem in job_numbers.items()]
            try:
                dotted_path(status_check, "status_check")
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError(f"{type(self).__name__} {kwargs.get('task_id', '')!r}: " + "; ".join(problems))
        self.cognito_iam_conn_id = cognito_iam_conn_id
        self.endpoint = endpoint
        self.method = method.upper()
        self.query = query or {}
        self.json = json
        self.data = data
        self.headers = headers or {}
        self.auth = auth
        self.pagination = pagination
        self.response_check = response_check
        self.response_filter = response_filter
        self.destination = destination
        self.aws_conn_id = aws_conn_id
        self.destination_conn_id = destination_conn_id
        self.output_format = output_format
        self.compression = compression
        self.upload_concurrency = upload_concurrency
        self.max_xcom_bytes = int(max_xcom_bytes)
        self.max_page_bytes = int(max_page_bytes)
        self.max_attempts = int(max_attempts)
        self.max_retry_seconds = max_retry_seconds
        self.retry_non_idempotent = retry_non_idempotent
        self.allowed_hosts = tuple(allowed_hosts)
        # Without a status endpoint there is nothing to wait on: the request runs as usual.
        self.deferrable = bool(deferrable and status_endpoint)
        self.status_endpoint = status_endpoint
        self.status_check = status_check
        self.status_check_kwargs = dict(status_check_kwargs or {})
        self.job_id_field = job_id_field
        self.poll_interval = poll_interval
        self.job_timeout = job_timeout
        self._active_sink: Sink | None = None
        self._active_response: requests.Response | None = None
        self._urls: dict[str, str] = {}
        self._body_retryings: dict[str, Any] = {}
        self._batch = _Batch()

    @cached_property
    def request_retry_policy(self) -> RetryPolicy:
        """Backoff for each request, from this operator's retry settings."""
        return RetryPolicy(max_attempts=self.max_attempts, max_seconds=self.max_retry_seconds, sleep=self._retry_sleep)

    def _retry_sleep(self, seconds: float) -> None:
        """The wait between attempts; the fan-out cuts it short when the task is told to stop."""
        time.sleep(seconds)

    @cached_property
    def hook(self) -> CognitoIamHook:
        """The hook for ``cognito_iam_conn_id``, pinned to the connection host plus ``allowed_hosts``."""
        from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

        return CognitoIamHook(
            self.cognito_iam_conn_id, allowed_hosts=self.allowed_hosts, retry_policy=self.request_retry_policy
        )

    def execute(self, context: Context) -> Any:
        if self.deferrable:
            from airflow_cognito_iam.operators.deferrable import submit_and_defer

            return self._classified(lambda: submit_and_defer(self, context))
        return self._execute_now(context)

    def execute_complete(
        self, context: Context, event: Mapping[str, Any] | None = None, job_id: str | None = None
    ) -> Any:
        """Resumed after the triggerer saw the job finish: fetch and land the result."""
        from airflow_cognito_iam.operators.deferrable import resume_job

        return resume_job(self, context, event, job_id)

    def _execute_now(self, context: Context) -> Any:
        return self._classified(lambda: self._run(context))

    def _run(self, context: Context) -> Any:
        self._batch = _Batch()
        if self.destination:
            _ = self._destination  # resolves and validates it (scheme, key, compression)
        check_headers(self.headers)
        # Resolves the connection and refuses a foreign host before any network call.
        self._url(self.endpoint)
        if self.destination:
            return self._to_destination(context, self._destination.uri)
        return self._to_xcom(context)

    def _classified(self, run: Callable[[], Any]) -> Any:
        """Run ``run``; errors become fail-at-once or retryable task failures by their class."""
        try:
            return run()
        except _PERMANENT_ERRORS as exc:
            # Airflow's task retries cannot fix a bad connection, a refused role or a bad argument.
            raise AirflowFailException(f"{type(exc).__name__}: {exc}") from exc
        except TransientError as exc:
            raise CognitoIamRetryableError(f"TransientError: {exc} (the task's retries apply)") from exc
        except StorageError as exc:
            if exc.permanent:
                raise AirflowFailException(f"StorageError: {exc}") from exc
            raise CognitoIamRetryableError(f"StorageError: {exc} (the task's retries apply)") from exc

    def on_kill(self) -> None:
        """SIGTERM (worker shutdown, a user marking the task failed): discard a half-written object.

        Airflow calls this from the signal handler and then lets the task run on. Here the read in
        flight is cut, the upload aborted at once, and an exception unwinds the write, all before
        the supervisor escalates to SIGKILL (which nothing can clean up).
        """
        sink = self._active_sink
        if sink is None or sink.closed:
            return
        self.log.warning("Task told to stop while writing %s; discarding the partial upload", sink.uri)
        response = self._active_response
        if response is not None:
            connection = getattr(response.raw, "connection", None)
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
        sink.abort()
        raise TaskInterruptedError(f"stopped while writing {sink.uri}; nothing was left at the destination")

    def _described(self) -> str:
        """``GET /orders?date&limit``: method, path and query *names* (values stay out of logs)."""
        names = "&".join(str(name) for name in self.query)
        return f"{self.method} {_path_of(self.endpoint)}" + (f"?{names}" if names else "")

    # -- requests -------------------------------------------------------------------------------

    def _initial_request(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "query": self.query,
            "json": self.json,
            "data": self.data,
            "headers": self.headers,
        }

    def _url(self, endpoint: str) -> str:
        """The pinned URL of ``endpoint``, joined and checked once per distinct endpoint."""
        url = self._urls.get(endpoint)
        if url is None:
            if len(self._urls) >= MAX_CACHED_ENDPOINTS:  # a fan-out over 100,000 customers: stay bounded
                self._urls.clear()
            url = self._urls[endpoint] = self.hook.url_for(endpoint)
        return url

    def _send(self, request: Mapping[str, Any]) -> requests.Response:
        """One signed request with the status read and the body not yet read."""
        self._active_response = response = self.hook.transport.send(
            self.method,
            self._url(request["endpoint"]),
            mode=self.auth,
            retry_non_idempotent=self.retry_non_idempotent,
            retry_policy=self.request_retry_policy,
            params=request["query"] or None,
            json=request["json"],
            data=request["data"],
            headers=request["headers"] or None,
            stream=True,
            throttle=self._throttle,
        )
        self._batch.add(response)
        return response

    def _body_retrying(self, request: Mapping[str, Any]) -> Any:
        """Tenacity retrying for a body that broke off mid-read; safe only for idempotent methods.

        Built once per endpoint path, not per page (tenacity keeps each call's state per thread); at most
        ``MAX_CACHED_ENDPOINTS`` are kept.
        """
        what = f"{self.method} {_path_of(request['endpoint'])} body"
        retrying = self._body_retryings.get(what)
        if retrying is None:
            repeatable = self.method in IDEMPOTENT_METHODS or self.retry_non_idempotent
            policy = self.request_retry_policy if repeatable else RetryPolicy(max_attempts=1)
            if len(self._body_retryings) >= MAX_CACHED_ENDPOINTS:
                self._body_retryings.clear()
            retrying = self._body_retryings[what] = policy.retrying(is_broken_body, what=what)
        return retrying

    def _fetch_page(self, request: Mapping[str, Any], limit: int | None = None) -> requests.Response:
        """Fetch a whole page into memory, fetching it again if its body breaks off.

        Because a page is complete before anything is written, a retried page is never duplicated.
        The body is read under the attempt deadline and at most ``limit`` (else ``max_page_bytes``)
        decoded bytes are held.
        """
        cap = self.max_page_bytes if limit is None else min(limit, self.max_page_bytes)
        where = f"{self.method} {_path_of(request['endpoint'])}"

        def once() -> requests.Response:
            response = self._send(request)
            try:
                with watching_body(response, self.hook.settings.timeout, where) as watch:
                    try:
                        self._batch.received += len(read_capped(response, cap))
                    except is_broken_body_types() as exc:
                        if watch.fired:
                            raise watch.error() from None
                        raise exc
            except BodyTooLargeError:
                response.close()
                if limit is not None and cap == limit:
                    raise _BodyTooLarge from None
                raise self._page_too_large(where) from None
            except BaseException:
                response.close()
                raise
            return response

        response: requests.Response = self._body_retrying(request)(once)
        return response

    def _page_too_large(self, where: str) -> ValueError:
        return ValueError(
            f"a page of {where} is over max_page_bytes={self.max_page_bytes} (decoded): pages read for "
            "pagination, response_filter or XCom are held in memory. Raise max_page_bytes, or stream the body "
            "unfiltered to destination='s3://…' (bounded memory at any size)"
        )

    def _pages(
        self,
        context: Context,
        limit: Callable[[], int | None] | None = None,
        request: Mapping[str, Any] | None = None,
    ) -> Iterator[requests.Response]:
        """Yield each checked page of ``request`` (default: this operator's own); follows ``pagination``."""
        request = dict(request) if request is not None else self._initial_request()
        seen = {_fingerprint(request)}
        while True:
            response = self._fetch_page(request, limit() if limit else None)
            self._check(response, context)
            yield response
            if self.pagination is None:
                return
            changes = self.pagination(response)
            if not changes:
                return
            request = merge_request(request, changes)
            try:
                self._url(request["endpoint"])
            except HostNotAllowedError as exc:
                raise AirflowFailException(f"pagination pointed outside the allowed hosts: {exc}") from exc
            fingerprint = _fingerprint(request)
            if fingerprint in seen:
                raise AirflowFailException(
                    "pagination returned a request already made; stopping instead of looping forever "
                    f"(endpoint {_path_of(request['endpoint'])})"
                )
            seen.add(fingerprint)

    def _check(self, response: requests.Response, context: Context) -> None:
        if self.response_check is None:
            return
        kwargs = determine_kwargs(self.response_check, [response], context)
        if not self.response_check(response, **kwargs):
            raise AirflowException(
                f"response_check returned False for {self.method} {_path_of(response.url)} "
                f"(HTTP {response.status_code})"
            )

    def _filtered(self, response: requests.Response, context: Context) -> Any:
        if self.response_filter is None:
            if self.output_format == "raw":  # bytes asked for: base64 keeps them exact in XCom
                return base64.b64encode(response.content).decode("ascii")
            return _decode(response)
        kwargs = determine_kwargs(self.response_filter, [response], context)
        return self.response_filter(response, **kwargs)

    # -- XCom -----------------------------------------------------------------------------------

    def _to_xcom(self, context: Context) -> Any:
        raw_total = 0

        def remaining() -> int | None:
            # Without a filter the raw body is what lands in XCom, so stop reading early.
            return None if self.response_filter else self.max_xcom_bytes - raw_total + 1

        results: list[Any] = []
        pages = 0
        for response in self._safe_pages(context, remaining):
            pages += 1
            raw_total += len(response.content)
            if self.response_filter is None:
                self._refuse_if_too_large(raw_total)
            value = self._filtered(response, context)
            if self.pagination is None:
                results = [value]
            elif self.response_filter is not None and isinstance(value, list):
                results.extend(value)
            else:
                results.append(value)
        result = results[0] if self.pagination is None else results
        size = len(jsonlib.dumps(result, default=str).encode())
        self._refuse_if_too_large(size)
        self.log.info(
            "%s: %d page(s), %d bytes returned to XCom; %s", self._described(), pages, size, self._batch.describe()
        )
        return result

    def _safe_pages(self, context: Context, limit: Callable[[], int | None]) -> Iterator[requests.Response]:
        try:
            yield from self._pages(context, limit)
        except _BodyTooLarge:
            self._refuse_if_too_large(self.max_xcom_bytes + 1)

    def _refuse_if_too_large(self, size: int) -> None:
        if size > self.max_xcom_bytes:
            raise XComTooLargeError(
                f"The result of {self.method} {_path_of(self.endpoint)} is over max_xcom_bytes="
                f"{self.max_xcom_bytes} (at least {size} bytes). XCom is for small results: set "
                "destination='s3://bucket/prefix/{{ ds }}/result.jsonl' (or a file:// path) to stream "
                "it to storage, or raise max_xcom_bytes."
            )

    # -- storage --------------------------------------------------------------------------------

    def _to_destination(self, context: Context, uri: str) -> dict[str, Any]:
        if self.pagination is None and self.response_filter is None:
            summary = self._stream_body(context, uri)
        else:
            summary = self._write_pages(context, uri)
        self.log.info(
            "%s: %d page(s), %d record(s), %d bytes written to %s; %s",
            self._described(),
            summary["pages"],
            summary["records"],
            summary["bytes"],
            uri,
            self._batch.describe(),
        )
        self._summary = summary  # for the lineage facets on complete
        self._emit_asset_event(context, summary)
        return summary

    def _content_type(self) -> str | None:
        """The stored object's type: the format's when we write records, else the API's body as is."""
        return CONTENT_TYPES[self.output_format] if self.pagination or self.response_filter else None

    def _open(self, uri: str) -> Sink:
        content_type = self._content_type()
        destination = self._destination
        if destination.path is not None and destination.scheme not in NATIVE_SCHEMES:
            sink: Sink = ObjectStorageSink(uri, destination.path)
        else:
            sink = open_sink(
                uri,
                destination.conn_id or self.aws_conn_id,
                content_type=content_type,
                upload_concurrency=self.upload_concurrency,
            )
        self._active_sink = sink  # what on_kill discards
        return sink

    @cached_property
    def _destination(self) -> Destination:
        """The rendered destination, resolved (URI, scheme, connection) before any network call."""
        destination = resolve(self.destination, self.destination_conn_id)
        if destination.scheme in NATIVE_SCHEMES:
            parse_destination(destination.uri)
        compression_for(destination.uri, self.compression)
        return destination

    def _writer(self, sink: Sink) -> RecordWriter:
        return RecordWriter(sink, self.output_format, compression_for(sink.uri, self.compression))

    def _stream_body(self, context: Context, uri: str) -> dict[str, Any]:
        """Stream one response body to storage; a body that breaks off is fetched again into a new sink."""
        request = self._initial_request()

        timeout = self.hook.settings.timeout
        where = f"{self.method} {_path_of(request['endpoint'])}"

        def once() -> dict[str, Any]:
            response = self._send(request)
            with response:
                self._check(response, context)
                lines = 0
                last = b"\n"
                with self._open(uri) as sink, watching_body(response, timeout, where) as watch:
                    writer = self._writer(sink)
                    try:
                        # Each chunk must arrive within `timeout`: a trickling server cannot hold the
                        # task for ever, and a large body is not cut off by a total deadline.
                        for chunk in response.iter_content(STREAM_CHUNK_BYTES):
                            watch.rearm(timeout)
                            self._batch.received += len(chunk)
                            writer.write_raw(chunk)  # one body is stored as received (maybe gzipped)
                            lines += chunk.count(b"\n")
                            last = chunk[-1:] or last
                    except is_broken_body_types():
                        if watch.fired:
                            raise watch.error() from None
                        raise
                    writer.finish_raw()
                    lines += last != b"\n"
            return self._summary_of(uri, sink, records=lines, pages=1)

        summary: dict[str, Any] = self._body_retrying(request)(once)
        return summary

    def _write_pages(self, context: Context, uri: str) -> dict[str, Any]:
        """One JSON line per page, or per record when ``response_filter`` returns a list."""
        pages = records = 0
        with self._open(uri) as sink:
            writer = self._writer(sink)
            for response in self._pages(context):
                pages += 1
                if self.output_format == "raw" and self.response_filter is None:
                    writer.write_raw(response.content)  # pages as received, back to back
                    records += 1
                    response.close()
                    continue
                value = self._filtered(response, context)
                items = value if self.response_filter is not None and isinstance(value, list) else [value]
                for item in items:
                    writer.write_record(item)
                records += len(items)
                response.close()
            writer.finish()
        return self._summary_of(uri, sink, records=records, pages=pages)

    def _summary_of(self, uri: str, sink: Sink, *, records: int, pages: int) -> dict[str, Any]:
        """What the task returns, the asset event carries and lineage reports."""
        return {
            "uri": uri,
            "bytes": sink.bytes_written,
            "records": records,
            "pages": pages,
            "format": self.output_format,
            "compression": compression_for(uri, self.compression),
        }

    # -- OpenLineage (operators/lineage.py; the provider is an optional extra) -------------------

    def get_openlineage_facets_on_start(self) -> Any:
        """The API endpoint as input, the destination as output (no statistics yet)."""
        from airflow_cognito_iam.operators.lineage import lineage

        return lineage(self._endpoint_url(), self._destination_uri())

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """As on start, plus the records and bytes written."""
        from airflow_cognito_iam.operators.lineage import lineage

        return lineage(self._endpoint_url(), self._destination_uri(), getattr(self, "_summary", None))

    def _destination_uri(self) -> str | None:
        try:
            return self._destination.uri if self.destination else None
        except Exception:  # an invalid destination already failed the task
            return None

    def _endpoint_url(self) -> str | None:
        try:
            return self.hook.url_for(self.endpoint)
        except Exception:  # lineage must never fail a task; a bad endpoint already failed it
            return None

    def _emit_asset_event(self, context: Context, summary: Mapping[str, Any]) -> None:
        """Describe the written object on the Asset event for matching ``outlets``.

        Airflow emits an event for every Asset in ``outlets`` when the task succeeds; an Asset whose
        URI is the destination (or a folder of it) gets the counts as extra, and an AssetAlias gets an
        event for the exact object written (useful with a templated destination).
        """
        outlet_events = context.get("outlet_events")
        if outlet_events is None or not self.outlets:
            return
        uri = str(summary["uri"])
        extra = {key: summary[key] for key in ("uri", "bytes", "records", "pages", "format", "compression")}
        named = False
        for outlet in self.outlets:
            if isinstance(outlet, AssetAlias):
                outlet_events[outlet].add(Asset(uri=uri), extra=extra)
                named = True
            elif isinstance(outlet, Asset) and (uri == outlet.uri or uri.startswith(outlet.uri.rstrip("/") + "/")):
                outlet_events[outlet].extra.update(extra)
                named = True
        if not named:
            self.log.warning(
                "None of the outlets names %s (use Asset(%r), an Asset of a parent folder, or an AssetAlias)",
                uri,
                uri,
            )


class _Batch:
    """What the one INFO summary of a task's requests says: statuses, attempts, bytes received.

    Per attempt there is only a DEBUG line (auth/transport.py); an INFO line per page cost about a
    tenth of the per-request time against a fast API.
    """

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.attempts = 0
        self.received = 0  # decoded body bytes read

    def add(self, response: requests.Response) -> None:
        self.statuses[response.status_code] += 1
        self.attempts += attempts_of(response)

    def describe(self) -> str:
        statuses = ", ".join(f"HTTP {status} x{count}" for status, count in sorted(self.statuses.items()))
        return f"{statuses or 'no responses'}, {self.attempts} attempt(s), {self.received} bytes received"


class _BodyTooLarge(Exception):
    """A body went past the byte limit while being read."""


def _decode(response: requests.Response) -> Any:
    """The JSON body, or its text when it is not JSON; a body that is not text is refused."""
    body = response.content
    try:
        return jsonlib.loads(body)
    except UnicodeDecodeError:
        pass
    except ValueError:
        pass
    try:
        return decode_text(body, response)
    except UnicodeDecodeError:
        charset = response.encoding or "utf-8"
        raise ValueError(
            f"the body of {_path_of(response.url)} ({response.headers.get('Content-Type', 'no Content-Type')}) is "
            f"not {charset} text, so it cannot go to XCom as a string without corrupting it; set destination= "
            "to store the bytes as they are"
        ) from None


def is_broken_body_types() -> tuple[type[BaseException], ...]:
    """The exception types a body that broke off mid-read raises (see :func:`is_broken_body`)."""
    return (
        requests.exceptions.ChunkedEncodingError,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
        Urllib3HTTPError,
        OSError,
    )


def _fingerprint(request: Mapping[str, Any]) -> str:
    return jsonlib.dumps(request, sort_keys=True, default=str)


def _path_of(endpoint: str) -> str:
    """The path alone: query strings can carry values that do not belong in logs."""
    return urlsplit(endpoint).path or "/"
