"""An API behind "API Gateway with AWS_IAM authorization": SigV4 checked, then realistic routes.

Routes give operators and sensors real work: a paginated dataset, customer details (one small
request each, for fan-out), a large streamed export, an async job, an identity echo, an IAM-denied
prefix, a Cognito-authorizer (bearer) prefix, and fault injection per request or globally.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import json
import math
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl

from airflow_cognito_iam.devstack.keepalive import SOCKET_KEY
from airflow_cognito_iam.devstack.sigv4 import ApiGatewayError, IncomingRequest, verify_sigv4
from airflow_cognito_iam.devstack.state import (
    FAULT_KINDS,
    ApiFaults,
    CredentialRegistry,
    Fault,
    IssuedCredentials,
    Latency,
    RateLimits,
    Stats,
)
from airflow_cognito_iam.devstack.tokens import TokenError, verify_id_token

StartResponse = Callable[..., Any]

FAULT_HEADER = "x-devstack-fault"
FAULT_QUERY = "_fault"
# What API Gateway itself answers: a crashed integration (500, 502), a throttled stage (503) and
# the 29 s integration timeout (504).
_GATEWAY_ERRORS: dict[str, tuple[int, str, str]] = {
    "500": (500, "Internal server error", "InternalServerErrorException"),
    "502": (502, "Internal server error", "BadGatewayException"),
    "503": (503, "Service Unavailable", "ServiceUnavailableException"),
    "504": (504, "Endpoint request timed out", "IntegrationTimeout"),
}
MAX_SLOW_SECONDS = 30.0
MAX_EXPORT_MB = 10 * 1024
EXPORT_LINE_BYTES = 1024
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_JOB_PATH = re.compile(r"^/jobs/(?P<job_id>[0-9a-f-]{36})$")
_CUSTOMER_PATH = re.compile(r"^/customers/(?P<customer_id>cus-\d{4})$")


@dataclass
class _Job:
    job_id: str
    polls_until_done: int
    seconds_until_done: float
    created_at: float
    result_path: str
    fail: bool
    polls: int = 0


@dataclass(frozen=True)
class ApiConfig:
    """What the API needs to know about the stack it fronts."""

    region: str
    account_id: str
    user_pool_id: str
    client_ids: frozenset[str] = field(default_factory=frozenset)
    #: App clients whose client-credentials access tokens the /m2m/ routes accept (users' ones too).
    machine_client_ids: frozenset[str] = field(default_factory=frozenset)
    service: str = "execute-api"
    api_id: str = "devstack"
    stage: str = "prod"


def orders_for(date: str) -> list[dict[str, Any]]:
    """The deterministic orders of one day: 101-139 records, the same on every call and every stack."""
    rng = random.Random(f"orders:{date}")  # noqa: S311 - reproducible test data, not security
    count = 101 + rng.randrange(39)
    seconds = sorted(rng.randrange(86400) for _ in range(count))
    return [
        {
            "order_id": f"ord-{date.replace('-', '')}-{index:04d}",
            "date": date,
            "created_at": f"{date}T{sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}Z",
            "customer_id": f"cus-{rng.randrange(1, 500):04d}",
            "amount": round(rng.uniform(5, 500), 2),
            "currency": rng.choice(["EUR", "USD", "GBP"]),
            "status": rng.choice(["placed", "shipped", "delivered", "cancelled"]),
        }
        for index, sec in enumerate(seconds)
    ]


def customer_for(customer_id: str) -> dict[str, Any]:
    """The deterministic details of one customer (``cus-0001`` .. ``cus-9999``, the ids orders carry)."""
    rng = random.Random(f"customer:{customer_id}")  # noqa: S311 - reproducible test data, not security
    return {
        "customer_id": customer_id,
        "name": f"Customer {customer_id[4:]}",
        "country": rng.choice(["DE", "FR", "GB", "NL", "US"]),
        "tier": rng.choice(["bronze", "silver", "gold"]),
        "since": f"{rng.randrange(2015, 2026)}-{rng.randrange(1, 13):02d}-01",
    }


def export_lines(size_bytes: int) -> Iterator[bytes]:
    """Deterministic JSON lines of exactly EXPORT_LINE_BYTES each, produced lazily in ~64 KiB chunks."""
    lines = size_bytes // EXPORT_LINE_BYTES
    chunk: list[bytes] = []
    for seq in range(lines):
        head = f'{{"seq":{seq},"pad":"'
        tail = '"}\n'
        chunk.append((head + "x" * (EXPORT_LINE_BYTES - len(head) - len(tail)) + tail).encode())
        if len(chunk) == 64:
            yield b"".join(chunk)
            chunk = []
    if chunk:
        yield b"".join(chunk)


def _encode_token(date: str, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{date}|{offset}".encode()).decode().rstrip("=")


def _decode_token(token: str, date: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        token_date, _, offset = raw.partition("|")
        value = int(offset)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiGatewayError(400, "BadRequestException", "Invalid next_token") from exc
    if token_date != date or value < 0:
        raise ApiGatewayError(400, "BadRequestException", "next_token does not belong to this date")
    return value


class _Response:
    def __init__(
        self,
        status: int,
        body: dict[str, Any] | Iterable[bytes],
        headers: list[tuple[str, str]] | None = None,
        content_length: int | None = None,
    ) -> None:
        self.status = status
        self.headers = list(headers or [])
        if isinstance(body, dict):
            payload = json.dumps(body).encode()
            self.chunks: Iterable[bytes] = [payload]
            self.headers += [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
        else:
            self.chunks = body
            if content_length is not None:
                self.headers.append(("Content-Length", str(content_length)))


_REASONS = {
    200: "OK", 201: "Created", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 429: "Too Many Requests", 500: "Internal Server Error",
    503: "Service Unavailable",
}  # fmt: skip


def _error_response(error: ApiGatewayError) -> _Response:
    return _Response(error.status, {"message": error.message}, [("x-amzn-ErrorType", error.error_type)])


class StackControl(Protocol):
    """The knobs of a running stack, offered over HTTP for tests that run it out of process."""

    def set_faults(
        self,
        kind: str,
        *,
        rate: float = ...,
        count: int | None = ...,
        retry_after: float = ...,
        delay_seconds: float = ...,
        path_prefix: str | None = ...,
    ) -> None: ...
    def clear_faults(self) -> None: ...
    def set_cognito_faults(
        self,
        *,
        count: int | None = ...,
        rate: float = ...,
        actions: Iterable[str] | None = ...,
        error: str = ...,
        status: int = ...,
    ) -> None: ...
    def clear_cognito_faults(self) -> None: ...
    def set_credential_lifetime(self, seconds: float) -> None: ...
    def set_token_lifetime(self, seconds: int) -> None: ...
    def expire_credentials(self) -> None: ...
    def set_refresh_grace_period(self, seconds: int) -> None: ...
    def set_latency(self, seconds: float, path_prefix: str = ...) -> None: ...
    def clear_latency(self) -> None: ...
    def set_rate_limit(self, rate: float, burst: int, path_prefix: str = ...) -> None: ...
    def clear_rate_limits(self) -> None: ...
    def reset(self) -> None: ...


_FAULT_FIELDS = {"kind", "rate", "count", "retry_after", "delay_seconds", "path_prefix"}
_COGNITO_FAULT_FIELDS = {"count", "rate", "actions", "error", "status"}


def _control(control: StackControl, method: str, path: str, body: bytes) -> _Response:
    """Unsigned control routes (``/_control/...``), mirroring DevStack's methods."""
    spec = json.loads(body) if body else {}
    if not isinstance(spec, dict):
        raise ValueError("body must be a JSON object")
    route = (method, path)
    if route == ("POST", "/_control/faults"):
        unknown = set(spec) - _FAULT_FIELDS
        if unknown or "kind" not in spec:
            raise ValueError(f"faults need 'kind' and only {sorted(_FAULT_FIELDS)}; got {sorted(spec)}")
        kind = spec.pop("kind")
        control.set_faults(str(kind), **spec)
    elif route == ("DELETE", "/_control/faults"):
        control.clear_faults()
    elif route == ("POST", "/_control/cognito-faults"):
        unknown = set(spec) - _COGNITO_FAULT_FIELDS
        if unknown:
            raise ValueError(f"cognito faults take only {sorted(_COGNITO_FAULT_FIELDS)}; got {sorted(unknown)}")
        control.set_cognito_faults(**spec)
    elif route == ("DELETE", "/_control/cognito-faults"):
        control.clear_cognito_faults()
    elif route == ("POST", "/_control/credential-lifetime"):
        control.set_credential_lifetime(float(spec["seconds"]))
    elif route == ("POST", "/_control/token-lifetime"):
        control.set_token_lifetime(int(spec["seconds"]))
    elif route == ("POST", "/_control/refresh-grace-period"):
        control.set_refresh_grace_period(int(spec["seconds"]))
    elif route == ("POST", "/_control/latency"):
        control.set_latency(float(spec["seconds"]), str(spec.get("path_prefix", "/")))
    elif route == ("DELETE", "/_control/latency"):
        control.clear_latency()
    elif route == ("POST", "/_control/rate-limit"):
        burst = spec["burst"]
        if not isinstance(burst, int):
            raise ValueError("burst must be a whole number")
        control.set_rate_limit(float(spec["rate"]), burst, str(spec.get("path_prefix", "/")))
    elif route == ("DELETE", "/_control/rate-limit"):
        control.clear_rate_limits()
    elif route == ("POST", "/_control/expire-credentials"):
        control.expire_credentials()
    elif route == ("POST", "/_control/reset"):
        control.reset()
    else:
        raise ApiGatewayError(404, "NotFoundException", "Not Found")
    return _Response(200, {"ok": True})


class ApiApp:
    """The WSGI app of the IAM-protected API."""

    def __init__(
        self,
        config: ApiConfig,
        *,
        registry: CredentialRegistry,
        stats: Stats,
        faults: ApiFaults,
        stats_snapshot: Callable[[], dict[str, Any]],
        control: StackControl | None = None,
        clock: Callable[[], float] = time.time,
        latency: Latency | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self.config = config
        self.latency = latency or Latency()
        self.rate_limits = rate_limits or RateLimits()
        self.registry = registry
        self.stats = stats
        self.faults = faults
        self._stats_snapshot = stats_snapshot
        self._control = control
        self._clock = clock
        self._jobs: dict[str, _Job] = {}
        self._jobs_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        raw_uri = environ.get("REQUEST_URI") or environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
        raw_path, _, raw_query = raw_uri.partition("?")
        # WSGI hands the decoded path as latin-1 text; the URL's bytes are UTF-8.
        path = str(environ.get("PATH_INFO", "/")).encode("latin-1").decode("utf-8", "replace")
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        headers = {
            key[5:].replace("_", "-").lower(): str(value) for key, value in environ.items() if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        if environ.get("CONTENT_LENGTH"):
            headers["content-length"] = environ["CONTENT_LENGTH"]
        body = self._read_body(environ)

        if path == "/_stats" and method == "GET":
            return self._send(start_response, _Response(200, self._stats_snapshot()))
        if (method, path) == ("POST", "/_control/jobs-done"):
            return self._send(start_response, _Response(200, {"finished": self.finish_jobs()}))
        if path.startswith("/_control/") and self._control is not None:
            try:
                answer = _control(self._control, method, path, body)
            except (ValueError, TypeError, KeyError) as exc:
                answer = _error_response(ApiGatewayError(400, "BadRequestException", f"bad control request: {exc}"))
            except ApiGatewayError as error:
                answer = _error_response(error)
            return self._send(start_response, answer)

        route = self._route_key(method, path)
        wait = self.rate_limits.take(path)
        if wait is not None:
            # Throttled before any work, as API Gateway does; Retry-After is whole seconds, at least 1.
            self.stats.throttled(route)
            self.stats.api_call(route, 429)
            throttled = _Response(
                429,
                {"message": "Too Many Requests"},
                [("x-amzn-ErrorType", "TooManyRequestsException"), ("Retry-After", str(max(1, math.ceil(wait))))],
            )
            return self._send(start_response, throttled)
        self.stats.api_started()
        try:
            return self._admitted(
                environ, start_response, route, method, path, raw_path, raw_query, query, headers, body
            )
        finally:
            self.stats.api_finished()

    def _admitted(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        route: str,
        method: str,
        path: str,
        raw_path: str,
        raw_query: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> Iterable[bytes]:
        """A request past the rate limit: added latency, faults, then the route."""
        delay = self.latency.for_path(path)
        if delay > 0:
            time.sleep(delay)  # this request's thread only: the server answers others meanwhile
        fault = self._fault_for(path, query, headers)
        if fault is not None:
            faulted = self._apply_fault(fault, environ)
            if faulted is None and fault.kind == "reset":
                self.stats.api_call(route, 0)
                # Writing to the shut-down socket fails quietly, as a dropped connection.
                start_response("500 Internal Server Error", [("Content-Length", "0")])
                return [b""]
            if faulted is not None:
                self.stats.api_call(route, faulted.status)
                return self._send(start_response, faulted)
        try:
            response = self._handle(method, path, raw_path, raw_query, query, headers, body)
        except ApiGatewayError as error:
            response = _error_response(error)
        self.stats.api_call(route, response.status)
        return self._send(start_response, response)

    # -- plumbing ---------------------------------------------------------------------------------

    @staticmethod
    def _read_body(environ: dict[str, Any]) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        return bytes(environ["wsgi.input"].read(length)) if length > 0 else b""

    @staticmethod
    def _send(start_response: StartResponse, response: _Response) -> Iterable[bytes]:
        start_response(f"{response.status} {_REASONS.get(response.status, 'Error')}", response.headers)
        return response.chunks

    @staticmethod
    def _route_key(method: str, path: str) -> str:
        if _JOB_PATH.match(path):
            return f"{method} /jobs/{{id}}"
        if path.startswith("/customers/"):
            return f"{method} /customers/{{id}}"
        for prefix in ("/admin/", "/echo/"):
            if path.startswith(prefix):
                return f"{method} {prefix}*"
        if path in ("/orders", "/whoami", "/export", "/jobs", "/bearer/whoami", "/m2m/orders"):
            return f"{method} {path}"
        return f"{method} <other>"

    def _fault_for(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Fault | None:
        spec = headers.get(FAULT_HEADER) or query.get(FAULT_QUERY)
        if spec:
            kind, _, arg = spec.partition(":")
            if kind in FAULT_KINDS:
                try:
                    number = float(arg) if arg else None
                except ValueError:
                    number = None
                if kind == "429":
                    return Fault(kind, retry_after=number if number is not None else 1.0)
                if kind == "slow":
                    return Fault(kind, delay_seconds=number if number is not None else 2.0)
                return Fault(kind)
        return self.faults.pick(path)

    @staticmethod
    def _apply_fault(fault: Fault, environ: dict[str, Any]) -> _Response | None:
        if fault.kind in _GATEWAY_ERRORS:
            status, message, error_type = _GATEWAY_ERRORS[fault.kind]
            return _Response(status, {"message": message}, [("x-amzn-ErrorType", error_type)])
        if fault.kind == "429":
            retry_after = max(0, round(fault.retry_after))
            return _Response(
                429,
                {"message": "Too Many Requests"},
                [("x-amzn-ErrorType", "TooManyRequestsException"), ("Retry-After", str(retry_after))],
            )
        if fault.kind == "slow":
            time.sleep(min(max(fault.delay_seconds, 0.0), MAX_SLOW_SECONDS))
            return None
        sock = environ.get(SOCKET_KEY) or environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            # Linger 0 turns the eventual close into a RST; shutdown ends the exchange with no response.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        return None

    def _caller(
        self, method: str, raw_path: str, raw_query: str, headers: dict[str, str], body: bytes
    ) -> IssuedCredentials:
        return verify_sigv4(
            IncomingRequest(method, headers.get("host", ""), raw_path, raw_query, headers, body),
            lookup=self.registry.get,
            region=self.config.region,
            service=self.config.service,
            now=dt.datetime.fromtimestamp(self._clock(), dt.UTC),
        )

    def _assumed_role_arn(self, caller: IssuedCredentials) -> str:
        role_name = caller.role_arn.rsplit("/", 1)[-1]
        return f"arn:aws:sts::{self.config.account_id}:assumed-role/{role_name}/CognitoIdentityCredentials"

    # -- routes -----------------------------------------------------------------------------------

    def _handle(
        self,
        method: str,
        path: str,
        raw_path: str,
        raw_query: str,
        query: dict[str, str],
        headers: dict[str, str],
        body: bytes,
    ) -> _Response:
        if path.startswith("/bearer/"):
            return self._bearer(method, path, headers)
        if path.startswith("/m2m/"):
            return self._m2m(method, path, query, headers, body)
        caller = self._caller(method, raw_path, raw_query, headers, body)
        if path.startswith("/admin/") or path == "/admin":
            resource = (
                f"arn:aws:execute-api:{self.config.region}:{self.config.account_id}:"
                f"{self.config.api_id}/{self.config.stage}/{method}{path}"
            )
            raise ApiGatewayError(
                403,
                "AccessDeniedException",
                f"User: {self._assumed_role_arn(caller)} is not authorized to perform: execute-api:Invoke "
                f"on resource: {resource}",
            )
        if path.startswith("/echo/"):
            return _Response(
                200,
                {
                    "method": method,
                    "path": path,
                    "raw_path": raw_path,
                    "query": parse_qsl(raw_query, keep_blank_values=True),
                    "body_bytes": len(body),
                    "body_sha256": hashlib.sha256(body).hexdigest(),
                    "identity_id": caller.identity_id,
                },
            )
        routes: dict[tuple[str, str], Callable[[], _Response]] = {
            ("GET", "/whoami"): lambda: self._whoami(caller),
            ("GET", "/orders"): lambda: self._orders(query),
            ("GET", "/export"): lambda: self._export(query),
            ("POST", "/jobs"): lambda: self._create_job(body),
        }
        handler = routes.get((method, path))
        if handler is not None:
            return handler()
        job = _JOB_PATH.match(path)
        if job and method == "GET":
            return self._poll_job(job["job_id"])
        customer = _CUSTOMER_PATH.match(path)
        if customer and method == "GET":
            if customer["customer_id"] == "cus-0000":
                raise ApiGatewayError(404, "NotFoundException", "customer not found")
            return _Response(200, customer_for(customer["customer_id"]))
        if any(p == path for _, p in routes) or job:
            raise ApiGatewayError(405, "MethodNotAllowedException", "Method Not Allowed")
        raise ApiGatewayError(404, "NotFoundException", "Not Found")

    def _whoami(self, caller: IssuedCredentials) -> _Response:
        return _Response(
            200,
            {
                "identity_id": caller.identity_id,
                "access_key_id": caller.access_key_id,
                "role_arn": caller.role_arn,
                "caller_arn": self._assumed_role_arn(caller),
                "sub": caller.subject,
            },
        )

    @staticmethod
    def _orders(query: dict[str, str]) -> _Response:
        date = query.get("date", "")
        try:
            if not _DATE.match(date):
                raise ValueError(date)
            dt.date.fromisoformat(date)
        except ValueError as exc:
            raise ApiGatewayError(400, "BadRequestException", "date must be a YYYY-MM-DD calendar date") from exc
        try:
            limit = int(query.get("limit") or DEFAULT_PAGE_SIZE)
        except ValueError as exc:
            raise ApiGatewayError(400, "BadRequestException", "limit must be an integer") from exc
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise ApiGatewayError(400, "BadRequestException", f"limit must be between 1 and {MAX_PAGE_SIZE}")
        token = query.get("next_token")
        offset = _decode_token(token, date) if token else 0
        records = orders_for(date)
        page = records[offset : offset + limit]
        end = offset + len(page)
        return _Response(200, {"records": page, "next_token": _encode_token(date, end) if end < len(records) else None})

    @staticmethod
    def _export(query: dict[str, str]) -> _Response:
        try:
            size_mb = int(query.get("size_mb") or 1)
        except ValueError as exc:
            raise ApiGatewayError(400, "BadRequestException", "size_mb must be an integer") from exc
        if not 0 <= size_mb <= MAX_EXPORT_MB:
            raise ApiGatewayError(400, "BadRequestException", f"size_mb must be between 0 and {MAX_EXPORT_MB}")
        size = size_mb * 1024 * 1024
        return _Response(200, export_lines(size), [("Content-Type", "application/x-ndjson")], content_length=size)

    def _create_job(self, body: bytes) -> _Response:
        try:
            spec = json.loads(body) if body else {}
            if not isinstance(spec, dict):
                raise ValueError("body")
            polls = int(spec.get("polls", 2))
            seconds = float(spec.get("seconds", 0))
        except (ValueError, TypeError) as exc:
            raise ApiGatewayError(400, "BadRequestException", "body must be JSON {polls, seconds, date, fail}") from exc
        if polls < 0 or seconds < 0:
            raise ApiGatewayError(400, "BadRequestException", "polls and seconds must not be negative")
        date = spec.get("date")
        result_path = f"/orders?date={date}" if isinstance(date, str) and _DATE.match(date) else "/export?size_mb=1"
        job = _Job(str(uuid.uuid4()), polls, seconds, self._clock(), result_path, bool(spec.get("fail", False)))
        with self._jobs_lock:
            self._jobs[job.job_id] = job
        return _Response(202, {"job_id": job.job_id, "status": "pending"})

    def finish_jobs(self) -> int:
        """Make every job created so far done at its next poll (tests that wait on many jobs)."""
        with self._jobs_lock:
            for job in self._jobs.values():
                job.polls_until_done, job.seconds_until_done = 0, 0.0
            return len(self._jobs)

    def _poll_job(self, job_id: str) -> _Response:
        with self._jobs_lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise ApiGatewayError(404, "NotFoundException", f"job {job_id} not found")
            job.polls += 1
            done = job.polls > job.polls_until_done and self._clock() - job.created_at >= job.seconds_until_done
        if not done:
            return _Response(200, {"job_id": job_id, "status": "pending", "polls": job.polls})
        if job.fail:
            return _Response(200, {"job_id": job_id, "status": "failed", "error": "job failed as requested"})
        return _Response(200, {"job_id": job_id, "status": "done", "result_path": job.result_path})

    def _bearer(self, method: str, path: str, headers: dict[str, str]) -> _Response:
        token = headers.get("authorization", "").strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        claims: dict[str, Any] | None = None
        for token_use in ("id", "access"):
            try:
                claims = verify_id_token(
                    token,
                    region=self.config.region,
                    user_pool_id=self.config.user_pool_id,
                    client_ids=set(self.config.client_ids),
                    token_use=token_use,
                )
                break
            except TokenError:
                continue
        if claims is None:
            raise ApiGatewayError(401, "UnauthorizedException", "Unauthorized")
        if (method, path) != ("GET", "/bearer/whoami"):
            raise ApiGatewayError(404, "NotFoundException", "Not Found")
        return _Response(
            200,
            {
                "sub": claims.get("sub"),
                "username": claims.get("cognito:username") or claims.get("username"),
                "token_use": claims.get("token_use"),
            },
        )

    def _m2m(self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> _Response:
        """A resource server behind a Cognito authorizer with OAuth scopes: each route names the scope it needs."""
        needed = _M2M_ROUTES.get((method, path))
        if needed is None:
            known = any(p == path for _, p in _M2M_ROUTES)
            raise ApiGatewayError(405 if known else 404, "MethodNotAllowedException" if known else "NotFoundException",
                                  "Method Not Allowed" if known else "Not Found")  # fmt: skip
        token = headers.get("authorization", "").strip()
        if token.lower().startswith("bearer "):
            token = token[7:].strip()
        try:
            claims = verify_id_token(
                token,
                region=self.config.region,
                user_pool_id=self.config.user_pool_id,
                client_ids=set(self.config.client_ids | self.config.machine_client_ids),
                token_use="access",
            )
        except TokenError:
            return _Response(401, {"message": "Unauthorized"}, [("WWW-Authenticate", "Bearer")])
        granted = str(claims.get("scope") or "").split()
        if needed not in granted:
            return _Response(
                403,
                {"message": f"Forbidden: the access token lacks the scope {needed}", "granted_scopes": granted},
                [("WWW-Authenticate", f'Bearer error="insufficient_scope", scope="{needed}"')],
            )
        if method == "GET":
            date = query.get("date") or "2026-01-01"
            if not _DATE.match(date):
                raise ApiGatewayError(400, "BadRequestException", "date must be a YYYY-MM-DD calendar date")
            return _Response(200, {"client_id": claims.get("client_id"), "records": orders_for(date)[:10]})
        try:
            order = json.loads(body) if body else {}
        except ValueError as exc:
            raise ApiGatewayError(400, "BadRequestException", "body must be JSON") from exc
        return _Response(
            201, {"order_id": f"ord-{uuid.uuid4().hex[:12]}", "status": "accepted", "echo": order,
                  "client_id": claims.get("client_id")},
        )  # fmt: skip


#: Route -> the OAuth scope its Cognito authorizer requires.
_M2M_ROUTES = {
    ("GET", "/m2m/orders"): "devstack-api/orders.read",
    ("POST", "/m2m/orders"): "devstack-api/orders.write",
}
