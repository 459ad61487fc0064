"""A total deadline per attempt: connect, headers and body, whatever pace the server keeps.

Socket timeouts bound each read, not the request: a server trickling one byte a second keeps a
``timeout=2`` request alive for minutes. Here a single watchdog thread shuts down the sockets an
attempt uses when its deadline passes; the blocked read then fails at once and the caller turns
that into a timeout (transient, so retried within ``max_retry_seconds``).

Sockets are registered by small mixins on urllib3's connection classes (``DeadlineHTTPAdapter`` for
requests, ``install_on_boto3_client`` for botocore), only while a deadline is active in the thread.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any

import requests
from botocore.awsrequest import AWSHTTPConnection, AWSHTTPConnectionPool, AWSHTTPSConnection, AWSHTTPSConnectionPool
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

log = logging.getLogger(__name__)


class DeadlineExceeded(requests.exceptions.Timeout):
    """An attempt ran past its total deadline (a requests Timeout, so it is classified transient)."""


class _Watchdog:
    """One daemon thread firing callbacks at deadlines (a heap, not a Timer thread per request)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cancelled: set[int] = set()
        self._ids = itertools.count()
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float, callback: Callable[[], None]) -> int:
        with self._cond:
            alarm = next(self._ids)
            heapq.heappush(self._heap, (time.monotonic() + seconds, alarm, callback))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="cognito-iam-deadlines", daemon=True)
                self._thread.start()
            if self._heap[0][1] == alarm:  # only an earlier deadline needs the thread to wake up
                self._cond.notify()
            return alarm

    def cancel(self, alarm: int) -> None:
        with self._cond:
            self._cancelled.add(alarm)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][1] in self._cancelled:
                    self._cancelled.discard(heapq.heappop(self._heap)[1])
                if not self._heap:
                    self._cond.wait(30.0)
                    continue
                when, _alarm, callback = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
            try:
                callback()
            except Exception:  # pragma: no cover - a callback only shuts sockets down
                log.debug("deadline callback failed", exc_info=True)


_WATCHDOG = _Watchdog()
_LOCAL = threading.local()


def _shutdown(sock: socket.socket) -> None:
    # The plain socket method, also for an SSLSocket: it only ends the blocked read, from any thread.
    with suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class AttemptDeadline:
    """Context manager: sockets used in this thread while active are shut down at the deadline."""

    def __init__(self, seconds: float, what: str = "request") -> None:
        self.seconds = seconds
        self.what = what
        self.fired = False
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._alarm: int | None = None
        self._previous: AttemptDeadline | None = None

    def __enter__(self) -> AttemptDeadline:
        self._previous = getattr(_LOCAL, "current", None)
        _LOCAL.current = self
        self.rearm(self.seconds)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cancel()
        _LOCAL.current = self._previous

    def rearm(self, seconds: float) -> None:
        """Start a new window of ``seconds`` (streamed bodies get one per chunk)."""
        self.cancel()
        self.fired = False
        self._alarm = _WATCHDOG.arm(seconds, self._expire)

    def cancel(self) -> None:
        """Stop watching (the attempt is over)."""
        if self._alarm is not None:
            _WATCHDOG.cancel(self._alarm)
            self._alarm = None

    def watch(self, sock: socket.socket | None) -> None:
        """Shut ``sock`` down when the deadline passes (at once if it already has)."""
        if sock is None:
            return
        with self._lock:
            self._sockets.add(sock)
            fired = self.fired
        if fired:
            _shutdown(sock)

    def _expire(self) -> None:
        with self._lock:
            self.fired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shutdown(sock)

    def error(self) -> DeadlineExceeded:
        """The exception to raise instead of the broken-connection error a fired deadline causes."""
        return DeadlineExceeded(
            f"{self.what}: no complete response within {self.seconds:g} s (the connection's timeout is a "
            "total deadline per attempt: connect, headers and body)"
        )


def current() -> AttemptDeadline | None:
    """The deadline active in this thread, if any."""
    return getattr(_LOCAL, "current", None)


@contextmanager
def watching_body(response: requests.Response, seconds: float, what: str) -> Iterator[AttemptDeadline]:
    """A deadline over reading ``response``'s body (its connection is watched explicitly)."""
    with AttemptDeadline(seconds, what) as deadline:
        connection = getattr(response.raw, "connection", None)
        deadline.watch(getattr(connection, "sock", None))
        yield deadline


def _register(sock: socket.socket | None) -> None:
    deadline = getattr(_LOCAL, "current", None)
    if deadline is not None:
        deadline.watch(sock)


class _WatchedConnection:
    """Mixin: register the raw socket when created (TLS handshake included) and on each reuse."""

    sock: socket.socket | None

    def _new_conn(self) -> socket.socket:
        sock: socket.socket = super()._new_conn()  # type: ignore[misc]
        _register(sock)
        return sock

    def request(self, *args: Any, **kwargs: Any) -> Any:
        _register(self.sock)
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_WatchedConnection, HTTPConnection):
    pass


class _HTTPSConnection(_WatchedConnection, HTTPSConnection):
    pass


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class DeadlineHTTPAdapter(HTTPAdapter):
    """requests' adapter with sockets a deadline can reach; otherwise unchanged."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS pools are urllib3's own subclasses
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


_POOLS = {"http": _HTTPConnectionPool, "https": _HTTPSConnectionPool}


class _AWSHTTPConnection(_WatchedConnection, AWSHTTPConnection):  # type: ignore[misc]
    pass


class _AWSHTTPSConnection(_WatchedConnection, AWSHTTPSConnection):  # type: ignore[misc]
    pass


class _AWSHTTPConnectionPool(AWSHTTPConnectionPool):
    ConnectionCls = _AWSHTTPConnection


class _AWSHTTPSConnectionPool(AWSHTTPSConnectionPool):
    ConnectionCls = _AWSHTTPSConnection


def install_on_boto3_client(client: Any) -> bool:
    """Make a boto3 client's sockets reachable by deadlines; False if botocore's layout changed.

    botocore has no public hook for its connection classes; its URLLib3Session keeps them in
    ``_pool_classes_by_scheme`` and copies them onto its PoolManager. Without this, Cognito calls
    keep per-read timeouts only.
    """
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    classes = getattr(session, "_pool_classes_by_scheme", None)
    manager = getattr(session, "_manager", None)
    if not isinstance(classes, dict) or manager is None:
        log.debug("botocore session layout changed; Cognito calls keep per-read timeouts only")
        return False
    classes.update({"http": _AWSHTTPConnectionPool, "https": _AWSHTTPSConnectionPool})
    manager.pool_classes_by_scheme = classes
    return True
