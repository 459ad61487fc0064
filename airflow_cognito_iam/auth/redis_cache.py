"""Redis credential cache: one encrypted entry per identity for a whole Airflow deployment.

The file cache is shared by the task processes of one host; with several Celery worker hosts, or a
fresh pod per task on KubernetesExecutor, every host or pod would sign in. Redis, which such a
deployment already runs, holds one entry per identity instead, sealed exactly like a cache file
(Fernet, key derived from the connection's secrets) so reading Redis does not reveal tokens.

Layered and fault-tolerant: the in-process cache in front, Redis behind it, the host's file cache
as the fallback. Redis unreachable, slow (every command is bounded) or holding an entry that cannot
be read costs one warning per process and at worst a sign-in, never a task. No Airflow import: the
Airflow layer hands in a function that builds the ``redis.Redis`` client from its connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import LockError, RedisError, ResponseError
from redis.lock import Lock
from redis.retry import Retry

from airflow_cognito_iam.auth.cache import (
    CacheEntry,
    FileCredentialCache,
    MemoryCredentialCache,
    derive_fernet_key,
    fresher,
    seal_entry,
    unseal_entry,
    useful_until,
)
from airflow_cognito_iam.auth.settings import CognitoSettings

log = logging.getLogger(__name__)

RedisFactory = Callable[[], Any]
"""Builds the ``redis.Redis`` client; called lazily, once per cache, and may raise."""

KEY_PREFIX = "airflow-cognito-iam:v1:"
#: Seconds per Redis command (connect, send, read): a hung Redis costs this once, then the file cache.
DEFAULT_TIMEOUT = 2.0
#: A lock holder that died stops blocking the others after this (one sign-in with retries fits in it).
DEFAULT_LOCK_TIMEOUT = 60.0
#: Waiting longer than this for another worker's refresh, a worker refreshes by itself.
DEFAULT_LOCK_WAIT = 60.0
#: After a Redis failure this process goes straight to the file cache for this long.
DEFAULT_RETRY_AFTER = 30.0
_LOCK_POLL_SECONDS = 0.05
_MIN_TTL_SECONDS = 1.0


class RedisUnavailableError(Exception):
    """Redis could not be reached, timed out or refused a command."""


def no_redis_client() -> Any:
    """The factory used when the caller gave none: there is no Redis to talk to."""
    raise RedisUnavailableError("no Redis client configured (the Airflow hook passes one)")


def bound_client(client: Any, timeout: float) -> Any:
    """Bound every command of ``client`` by ``timeout`` and turn off redis-py's own retries.

    redis-py retries a failed command three times with backoff by default, and an Airflow Redis
    connection sets no socket timeout; either turns a dead Redis into a stalled task. A cluster
    client has no single pool to adjust and is returned as it is.
    """
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if isinstance(kwargs, dict):
        for name in ("socket_timeout", "socket_connect_timeout"):
            current = kwargs.get(name)
            if current is None or current > timeout:
                kwargs[name] = timeout
        client.set_retry(Retry(NoBackoff(), 0))
    return client


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# Per process: a Redis that failed is skipped for a while, and each kind of fault is reported once.
_OUTAGE_UNTIL: dict[str, float] = {}
_WARNED: set[tuple[str, str]] = set()
_STATE_GUARD = threading.Lock()


def reset_process_state() -> None:
    """Forget Redis outages and issued warnings (tests, or after fixing Redis in a long process)."""
    with _STATE_GUARD:
        _OUTAGE_UNTIL.clear()
        _WARNED.clear()


def _warn_once(name: str, kind: str, message: str, *args: object) -> None:
    with _STATE_GUARD:
        first = (name, kind) not in _WARNED
        _WARNED.add((name, kind))
    log.log(logging.WARNING if first else logging.DEBUG, message, *args)


class RedisCredentialCache:
    """The Redis layer alone: one key per identity, sealed like the file cache, TTL at expiry.

    The key names the identity (``settings.cache_key()``: user, pools, client, role, endpoints) and
    a hash of the Fernet key, so two connections never share an entry and a connection with other
    secrets never overwrites this one's. Methods raise RedisUnavailableError; an entry that cannot
    be read is a miss (``unreadable`` says so).
    """

    def __init__(
        self,
        settings: CognitoSettings,
        client: Redis,
        *,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        lock_wait: float = DEFAULT_LOCK_WAIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._client = client
        self._lock_timeout = lock_timeout
        self._lock_wait = lock_wait
        self._clock = clock
        self._fernet: Fernet | None = None
        self._key: str | None = None
        #: True when the last load() found an entry it could not decrypt or parse.
        self.unreadable = False

    @property
    def fernet(self) -> Fernet:
        if self._fernet is None:
            self._fernet = Fernet(derive_fernet_key(self._settings))
        return self._fernet

    @property
    def key(self) -> str:
        """``airflow-cognito-iam:v1:<cache key>:<key id>``; no secret can be read from it."""
        if self._key is None:
            key_id = hashlib.sha256(derive_fernet_key(self._settings)).hexdigest()[:16]
            self._key = f"{KEY_PREFIX}{self._settings.cache_key()}:{key_id}"
        return self._key

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """redis-py's Lock (random token, Lua release, ``lock_timeout``); bounded wait, then proceed."""
        lock = Lock(
            self._client,
            f"{self.key}:lock",
            timeout=self._lock_timeout,
            sleep=_LOCK_POLL_SECONDS,
            blocking_timeout=self._lock_wait,
        )
        try:
            acquired = bool(lock.acquire())
        except RedisError as exc:
            raise RedisUnavailableError(_describe(exc)) from exc
        if not acquired:
            log.warning(
                "Waited %.0f s for another worker's credential refresh; refreshing here instead", self._lock_wait
            )
        try:
            yield
        finally:
            if acquired:
                try:
                    lock.release()
                except LockError:
                    # Held past lock_timeout: another worker may have refreshed as well; harmless.
                    log.debug("The credential refresh lock had expired before its release")
                except RedisError as exc:
                    log.debug("Could not release the credential refresh lock (%s)", _describe(exc))

    def load(self) -> CacheEntry | None:
        """The decrypted entry; None when absent or unreadable (tampered, truncated, foreign key)."""
        self.unreadable = False
        try:
            blob: Any = self._client.get(self.key)
        except ResponseError:
            self.unreadable = True  # e.g. WRONGTYPE: something else stored a non-string at our key
            return None
        except RedisError as exc:
            raise RedisUnavailableError(_describe(exc)) from exc
        if blob is None:
            return None
        raw = blob.encode() if isinstance(blob, str) else bytes(blob)
        entry = unseal_entry(self.fernet, self._settings, raw)
        self.unreadable = entry is None
        return entry

    def store(self, entry: CacheEntry) -> None:
        """SET with a TTL at the entry's expiry (an expired entry is not written)."""
        until = useful_until(entry)
        ttl = until.timestamp() - self._clock() if until is not None else 0.0
        if ttl < _MIN_TTL_SECONDS:
            return
        try:
            self._client.set(self.key, seal_entry(self.fernet, self._settings, entry), px=int(ttl * 1000))
        except RedisError as exc:
            raise RedisUnavailableError(_describe(exc)) from exc


class LayeredRedisCache:
    """In-process cache in front, Redis behind it, this host's file cache whenever Redis fails.

    ``lock()`` takes the in-process lock, then the Redis lock (or, with Redis down, the file lock),
    so N workers that find an entry near expiry produce one refresh: the others wait, re-read and
    use it. Stores go to all three layers, so a later Redis outage finds the host's file warm.
    ``last_hit`` tells where the last ``load()`` found its entry: "memory", "redis" or "shared".
    """

    def __init__(
        self,
        settings: CognitoSettings,
        client_factory: RedisFactory,
        *,
        name: str = "redis",
        directory: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        lock_wait: float = DEFAULT_LOCK_WAIT,
        retry_after: float = DEFAULT_RETRY_AFTER,
    ) -> None:
        self.memory = MemoryCredentialCache(settings)
        self.file = FileCredentialCache(settings, directory)
        self._settings = settings
        self._factory = client_factory
        self._name = name
        self._timeout = timeout
        self._lock_timeout = lock_timeout
        self._lock_wait = lock_wait
        self._retry_after = retry_after
        self._redis: RedisCredentialCache | None = None
        self.last_hit: str | None = None

    # -- the Redis layer, while it works -----------------------------------------------------------

    def _layer(self) -> RedisCredentialCache | None:
        with _STATE_GUARD:
            if _OUTAGE_UNTIL.get(self._name, 0.0) > time.monotonic():
                return None
        if self._redis is None:
            try:
                client = bound_client(self._factory(), self._timeout)
            except Exception as exc:  # a missing connection or provider must not fail the task
                self._unavailable(exc)
                return None
            self._redis = RedisCredentialCache(
                self._settings, client, lock_timeout=self._lock_timeout, lock_wait=self._lock_wait
            )
        return self._redis

    def _unavailable(self, exc: BaseException) -> None:
        with _STATE_GUARD:
            _OUTAGE_UNTIL[self._name] = time.monotonic() + self._retry_after
        _warn_once(
            self._name,
            "unavailable",
            "Redis credential cache %r unavailable (%s); using this host's file cache (then a sign-in), "
            "retrying Redis every %.0f s",
            self._name,
            str(exc) if isinstance(exc, RedisUnavailableError) else _describe(exc),
            self._retry_after,
        )

    def _put(self, layer: RedisCredentialCache, entry: CacheEntry) -> None:
        try:
            layer.store(entry)
        except RedisUnavailableError as exc:
            self._unavailable(exc)

    # -- CredentialCache ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """In-process lock, then the deployment-wide Redis lock; the file lock when Redis is down."""
        with self.memory.lock(), contextlib.ExitStack() as held:
            layer = self._layer()
            if layer is not None:
                try:
                    held.enter_context(layer.lock())
                except RedisUnavailableError as exc:
                    self._unavailable(exc)
                    layer = None
            if layer is None:
                held.enter_context(self.file.lock())
            yield

    def load(self) -> CacheEntry | None:
        """The freshest of the in-process and Redis entries; the file's when Redis has none or fails."""
        remote: CacheEntry | None = None
        layer = self._layer()
        if layer is not None:
            try:
                remote = layer.load()
            except RedisUnavailableError as exc:
                self._unavailable(exc)
                layer = None
            else:
                if layer.unreadable:
                    _warn_once(
                        self._name,
                        "unreadable",
                        "Redis credential cache %r holds an entry for this identity that cannot be read "
                        "(corrupt, truncated, or sealed with other secrets); ignoring it",
                        self._name,
                    )
        source = "redis"
        if remote is None:
            remote, source = self.file.load(), "shared"
            if remote is not None and layer is not None:
                self._put(layer, remote)  # Redis lost it (restart, eviction): share it again
        entry, self.last_hit = fresher((self.memory.load(), "memory"), (remote, source))
        return entry

    def store(self, entry: CacheEntry) -> None:
        """Store in memory, Redis (TTL at expiry) and this host's file."""
        self.memory.store(entry)
        layer = self._layer()
        if layer is not None:
            self._put(layer, entry)
        self.file.store(entry)
