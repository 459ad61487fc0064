"""State shared by the strict Cognito layer and the API server: issued credentials, counters, faults.

Everything here is guarded by a lock because both servers answer on worker threads.
"""

from __future__ import annotations

import random
import secrets
import string
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

FaultKind = Literal["500", "502", "503", "504", "429", "reset", "slow"]
FAULT_KINDS: tuple[str, ...] = ("500", "502", "503", "504", "429", "reset", "slow")

_KEY_ALPHABET = string.ascii_uppercase + "234567"


@dataclass(frozen=True)
class IssuedCredentials:
    """AWS credentials handed out by GetCredentialsForIdentity and what the API may check against."""

    access_key_id: str
    secret_key: str = field(repr=False)
    session_token: str = field(repr=False)
    expires_at: float
    identity_id: str
    role_arn: str
    subject: str


class CredentialRegistry:
    """Unique credentials per call, with a configurable lifetime, looked up by access key id."""

    def __init__(self, lifetime_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, IssuedCredentials] = {}
        self._lifetime = lifetime_seconds
        self._clock = clock

    @property
    def lifetime_seconds(self) -> float:
        """Lifetime given to credentials issued from now on."""
        return self._lifetime

    def set_lifetime(self, seconds: float) -> None:
        """Change the lifetime of credentials issued from now on."""
        if seconds <= 0:
            raise ValueError("credential lifetime must be positive seconds")
        with self._lock:
            self._lifetime = float(seconds)

    def issue(self, *, identity_id: str, role_arn: str, subject: str) -> IssuedCredentials:
        """Mint and remember a fresh ASIA-style key, secret and session token."""
        creds = IssuedCredentials(
            access_key_id="ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16)),
            secret_key=secrets.token_urlsafe(30)[:40],
            session_token="IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(180),
            expires_at=self._clock() + self._lifetime,
            identity_id=identity_id,
            role_arn=role_arn,
            subject=subject,
        )
        with self._lock:
            self._by_key[creds.access_key_id] = creds
        return creds

    def get(self, access_key_id: str) -> IssuedCredentials | None:
        """The credentials issued under this key id, expired or not; None if never issued."""
        with self._lock:
            return self._by_key.get(access_key_id)

    def expire_all(self) -> int:
        """Make every issued credential expired now (tests of the refresh path without sleeping)."""
        now = self._clock() - 1
        with self._lock:
            for key, creds in list(self._by_key.items()):
                if creds.expires_at > now:
                    self._by_key[key] = IssuedCredentials(
                        access_key_id=creds.access_key_id,
                        secret_key=creds.secret_key,
                        session_token=creds.session_token,
                        expires_at=now,
                        identity_id=creds.identity_id,
                        role_arn=creds.role_arn,
                        subject=creds.subject,
                    )
            return len(self._by_key)

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_key)


class Stats:
    """Counters per Cognito action and per API route and status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cognito: Counter[str] = Counter()
        self._cognito_rejected: Counter[str] = Counter()
        self._api: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self._s3: Counter[str] = Counter()
        self._throttled: Counter[str] = Counter()
        self._in_flight = 0
        self._in_flight_peak = 0

    def api_started(self) -> None:
        """A request entered the API's handler (with its added latency): counts toward the concurrency peak."""
        with self._lock:
            self._in_flight += 1
            self._in_flight_peak = max(self._in_flight_peak, self._in_flight)

    def api_finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def throttled(self, route: str) -> None:
        """An API request refused with 429 by a rate limit (not by an injected fault)."""
        with self._lock:
            self._throttled[route] += 1

    def cognito_call(self, action: str) -> None:
        with self._lock:
            self._cognito[action] += 1

    def cognito_rejected(self, action: str) -> None:
        with self._lock:
            self._cognito_rejected[action] += 1

    def api_call(self, route: str, status: int) -> None:
        with self._lock:
            self._api[route][str(status)] += 1

    def s3_call(self, method: str) -> None:
        with self._lock:
            self._s3[method] += 1

    def reset(self) -> None:
        with self._lock:
            self._cognito.clear()
            self._cognito_rejected.clear()
            self._api.clear()
            self._s3.clear()
            self._throttled.clear()
            self._in_flight_peak = self._in_flight

    def snapshot(self) -> dict[str, Any]:
        """A JSON-ready copy: ``cognito`` (calls per action), ``cognito_rejected``, ``api``, ``s3``."""
        with self._lock:
            statuses: Counter[str] = Counter()
            for per_status in self._api.values():
                statuses.update(per_status)
            return {
                "cognito": dict(self._cognito),
                "cognito_rejected": dict(self._cognito_rejected),
                "api": {
                    "routes": {route: dict(per_status) for route, per_status in self._api.items()},
                    "statuses": dict(statuses),
                    "requests": sum(statuses.values()),
                    "in_flight_peak": self._in_flight_peak,
                },
                "s3": dict(self._s3),
                "rate_limited": {"routes": dict(self._throttled), "total": sum(self._throttled.values())},
            }


@dataclass
class _Rule:
    """A fault rule: fires with ``rate``, only ``remaining`` more times unless that is None."""

    rate: float
    remaining: int | None


R = TypeVar("R", bound=_Rule)


class _Rules(Generic[R]):
    """Fault rules shared by request threads: the first matching rule that fires wins."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[R] = []
        self._rng = rng or random.Random()  # noqa: S311 - fault dice, not security

    @staticmethod
    def _check(rate: float, count: int | None, unit: str) -> None:
        if count is not None and count < 1:
            raise ValueError(f"count must be a positive number of {unit}, or None for every one")
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")

    def _add(self, rule: R) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def _fire(self, applies: Callable[[R], bool]) -> R | None:
        """The first rule that applies and fires; consumes one use of a counted rule."""
        with self._lock:
            for rule in self._rules:
                if not applies(rule):
                    continue
                if rule.remaining is not None and rule.remaining <= 0:
                    continue
                if rule.rate < 1.0 and self._rng.random() >= rule.rate:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule
        return None


@dataclass
class _FaultRule(_Rule):
    kind: str
    retry_after: float
    delay_seconds: float
    path_prefix: str | None


@dataclass(frozen=True)
class Fault:
    """A fault to apply to one API request."""

    kind: str
    retry_after: float = 1.0
    delay_seconds: float = 2.0


class ApiFaults(_Rules[_FaultRule]):
    """Global API fault rules: each applies with a rate, optionally only to the next N matching requests."""

    def add(
        self,
        kind: str,
        *,
        rate: float = 1.0,
        count: int | None = None,
        retry_after: float = 1.0,
        delay_seconds: float = 2.0,
        path_prefix: str | None = None,
    ) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {FAULT_KINDS}, got {kind!r}")
        self._check(rate, count, "requests")
        self._add(_FaultRule(rate, count, kind, retry_after, delay_seconds, path_prefix))

    def pick(self, path: str) -> Fault | None:
        """The fault for this request, if a rule fires; consumes one use of a counted rule."""
        rule = self._fire(lambda r: not r.path_prefix or path.startswith(r.path_prefix))
        return Fault(rule.kind, rule.retry_after, rule.delay_seconds) if rule else None


@dataclass
class _CognitoFaultRule(_Rule):
    error: str
    status: int
    actions: frozenset[str] | None


class CognitoFaults(_Rules[_CognitoFaultRule]):
    """Throttle Cognito calls (TooManyRequestsException by default) to exercise client retries."""

    def add(
        self,
        *,
        count: int | None = 1,
        rate: float = 1.0,
        actions: Iterable[str] | None = None,
        error: str = "TooManyRequestsException",
        status: int = 400,
    ) -> None:
        self._check(rate, count, "calls")
        self._add(_CognitoFaultRule(rate, count, error, status, frozenset(actions) if actions else None))

    def pick(self, action: str) -> tuple[str, int] | None:
        """(error code, HTTP status) if this call should fail."""
        rule = self._fire(lambda r: r.actions is None or action in r.actions)
        return (rule.error, rule.status) if rule else None


class Latency:
    """Added latency per route prefix (the longest matching prefix wins), slept in the request's own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_prefix: dict[str, float] = {}

    def set(self, seconds: float, path_prefix: str = "/") -> None:
        if not 0.0 <= seconds <= 30.0 or seconds != seconds:
            raise ValueError("latency must be between 0 and 30 seconds")
        if not path_prefix.startswith("/"):
            raise ValueError("path_prefix must start with /")
        with self._lock:
            self._by_prefix[path_prefix] = float(seconds)

    def clear(self) -> None:
        with self._lock:
            self._by_prefix.clear()

    def for_path(self, path: str) -> float:
        with self._lock:
            matches = [p for p in self._by_prefix if path.startswith(p)]
            return self._by_prefix[max(matches, key=len)] if matches else 0.0

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._by_prefix)


@dataclass
class _Bucket:
    rate: float
    burst: float
    tokens: float
    updated: float


class RateLimits:
    """Token buckets per route prefix, as API Gateway throttles: ``rate`` requests/s refill, ``burst`` capacity.

    A request draws from the bucket of its longest matching prefix only. Refused requests get the
    seconds until a token is back, for ``Retry-After``.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def set(self, rate: float, burst: int, path_prefix: str = "/") -> None:
        if not rate > 0 or rate != rate or rate == float("inf"):
            raise ValueError("rate must be a positive number of requests per second")
        if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
            raise ValueError("burst must be a positive whole number of requests")
        if not path_prefix.startswith("/"):
            raise ValueError("path_prefix must start with /")
        with self._lock:
            self._buckets[path_prefix] = _Bucket(float(rate), float(burst), float(burst), self._clock())

    def clear(self) -> None:
        with self._lock:
            self._buckets.clear()

    def take(self, path: str) -> float | None:
        """None if the request may go ahead, else the seconds until the bucket has a token again."""
        with self._lock:
            matches = [p for p in self._buckets if path.startswith(p)]
            if not matches:
                return None
            bucket = self._buckets[max(matches, key=len)]
            now = self._clock()
            bucket.tokens = min(bucket.burst, bucket.tokens + (now - bucket.updated) * bucket.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return None
            return (1.0 - bucket.tokens) / bucket.rate

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {p: {"rate": b.rate, "burst": b.burst} for p, b in self._buckets.items()}
