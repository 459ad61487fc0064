"""Counters and timers under one prefix, ``cognito_iam.``, sent wherever the deployment sends metrics.

Airflow-free: the auth layer calls ``incr``/``timing`` here, and the Airflow layer installs a sink
that forwards to Airflow's ``Stats`` (StatsD or OpenTelemetry, as ``[metrics]`` configures). Without
a sink every call is a no-op, so the core costs nothing when used on its own.

Names (README lists them): ``sign_in`` (tag ``flow``), ``sign_in.duration``, ``token_refresh``
(``operation``), ``credential_exchange``, ``cache.hit`` / ``cache.miss`` (``layer``), ``retry``
(``call``, ``cause``), ``refusal`` (``status``), ``api_request.duration`` (``method``, ``status``).
Tag values never carry a secret, a user name or a URL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Protocol

PREFIX = "cognito_iam."


class MetricsSink(Protocol):
    """Where metrics go (the Airflow layer's adapter to ``Stats``)."""

    def incr(self, name: str, tags: dict[str, str]) -> None: ...

    def timing(self, name: str, milliseconds: float, tags: dict[str, str]) -> None: ...


_SINK: MetricsSink | None = None


def set_sink(sink: MetricsSink | None) -> None:
    """Install (or remove, with None) the process's metrics sink."""
    global _SINK
    _SINK = sink


def incr(name: str, **tags: str) -> None:
    """Count one ``cognito_iam.<name>``; never raises (metrics must not fail a task)."""
    sink = _SINK
    if sink is not None:
        with suppress(Exception):  # a broken metrics backend is not the task's problem
            sink.incr(PREFIX + name, tags)


def timing(name: str, milliseconds: float, **tags: str) -> None:
    """Record ``cognito_iam.<name>`` in milliseconds; never raises."""
    sink = _SINK
    if sink is not None:
        with suppress(Exception):
            sink.timing(PREFIX + name, milliseconds, tags)


@contextmanager
def timed(name: str, **tags: str) -> Iterator[None]:
    """Time the block as ``cognito_iam.<name>`` (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        timing(name, (time.perf_counter() - started) * 1000, **tags)
