"""A gate shared by the concurrent requests of one fan-out: a 429 backs off the whole pool.

Per-request retries alone make a throttled pool worse: each worker that gets a 429 waits on its
own while the others keep sending into the empty bucket, so every refill is drained at once by
the whole pool again. Here every attempt first waits its turn at one gate:

* a 429 (or any transient answer carrying ``Retry-After``) closes the gate for everyone, for the
  server's ``Retry-After`` or, without one, a backoff doubling per throttle episode (0.5 s to 30 s);
* the throttle also starts *pacing*: attempt starts are spaced by an interval, first set from the
  rate the server admitted between the previous reopening and this 429 (80 % of it), then shortened 2 %
  per success (a gentle multiplicative increase, as TCP and the AWS SDKs' adaptive mode do), so
  the reopened pool does not burst into the next 429;
* 429s of attempts already in flight when the gate closed belong to the same episode: they extend
  the pause but do not tighten the pace again.

No Airflow and no I/O here; ``clock`` and ``sleep`` are injectable so tests do not wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: Pacing shorter than this is no pacing at all: the pool runs free again.
_MIN_INTERVAL = 0.001
_MAX_INTERVAL = 10.0
_SPEEDUP = 0.98
_HEADROOM = 0.8


class PoolThrottle:
    """One gate for every worker of a fan-out; thread-safe.

    Call :meth:`wait_turn` before each attempt and :meth:`observe` with each response's status and
    ``Retry-After`` (seconds). ``ApiTransport.send(throttle=...)`` does both.
    """

    def __init__(
        self,
        *,
        base_pause: float = 0.5,
        max_pause: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_pause = base_pause
        self.max_pause = max_pause
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._paused_until = 0.0
        self._interval = 0.0
        self._next_start = 0.0
        self._episodes = 0
        self._cycle_started = clock()
        self._cycle_successes = 0
        #: Counters for the task's summary line: 429s seen, and seconds workers spent waiting (summed).
        self.throttled = 0
        self.waited_seconds = 0.0

    @property
    def interval(self) -> float:
        """Seconds between attempt starts across the pool (0: not paced)."""
        return self._interval

    @property
    def episodes(self) -> int:
        """How many times the gate closed (429s of attempts already in flight not counted again)."""
        return self._episodes

    def wait_turn(self) -> float:
        """Block until this attempt may start; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock()
                if now < self._paused_until:
                    delay, reserved = self._paused_until - now, False
                else:
                    start = max(now, self._next_start)
                    if self._interval:
                        self._next_start = start + self._interval  # our slot: paced workers go one by one
                    delay, reserved = start - now, True
                    if delay <= 0:
                        self.waited_seconds += waited
                        return waited
            self._sleep(delay)
            waited += delay
            if reserved:
                with self._lock:
                    if self._clock() >= self._paused_until:  # else a 429 closed the gate meanwhile
                        self.waited_seconds += waited
                        return waited

    def observe(self, status: int, retry_after: float | None = None) -> None:
        """Tell the gate how an attempt was answered."""
        throttled = status == 429 or (retry_after is not None and status in (503, 502, 504))
        with self._lock:
            now = self._clock()
            if not throttled:
                if status < 400:
                    self._cycle_successes += 1
                    if self._interval:
                        self._interval *= _SPEEDUP
                        if self._interval < _MIN_INTERVAL:
                            self._interval = 0.0
                return
            self.throttled += 1
            same_episode = now < self._paused_until
            if not same_episode:
                self._episodes += 1
                elapsed = max(now - self._cycle_started, 1e-3)
                if self._cycle_successes:
                    admitted = self._cycle_successes / elapsed
                    self._interval = min(_MAX_INTERVAL, max(self._interval, 1.0 / (admitted * _HEADROOM)))
                else:
                    self._interval = min(_MAX_INTERVAL, max(2 * self._interval, 0.05))
                self._cycle_successes = 0
            if retry_after is not None:
                pause = min(max(retry_after, 0.0), self.max_pause)
            else:
                pause = min(self.base_pause * 2 ** (self._episodes - 1), self.max_pause)
            self._paused_until = max(self._paused_until, now + pause)
            self._cycle_started = self._paused_until  # the pause is not time the server refused to admit
            self._next_start = max(self._next_start, self._paused_until)
