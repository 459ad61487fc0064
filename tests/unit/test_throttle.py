"""The fan-out's shared gate: one 429 pauses every worker, then the pool is paced (fake clock, no sleeping)."""

from __future__ import annotations

import itertools
import threading

import pytest

from airflow_cognito_iam.auth.throttle import PoolThrottle


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def gate(fake: FakeTime) -> PoolThrottle:
    return PoolThrottle(clock=fake.clock, sleep=fake.sleep)


def test_an_unthrottled_pool_never_waits(fake: FakeTime) -> None:
    throttle = gate(fake)
    for _ in range(100):
        assert throttle.wait_turn() == 0.0
        throttle.observe(200)
    assert fake.slept == []
    assert throttle.interval == 0.0


def test_a_429_with_retry_after_pauses_the_next_attempt_of_every_worker(fake: FakeTime) -> None:
    throttle = gate(fake)
    throttle.observe(429, retry_after=2.0)
    assert throttle.wait_turn() == pytest.approx(2.0)  # any worker, not just the one that got the 429
    assert fake.now == pytest.approx(102.0)
    assert throttle.episodes == 1


def test_429s_of_requests_already_in_flight_are_one_episode(fake: FakeTime) -> None:
    throttle = gate(fake)
    for _ in range(20):
        throttle.observe(200)
    fake.now += 1.0
    throttle.observe(429, retry_after=1.0)
    paced = throttle.interval
    for _ in range(7):  # the other seven workers' answers arrive during the pause
        fake.now += 0.01
        throttle.observe(429, retry_after=1.0)
    assert throttle.episodes == 1
    assert throttle.throttled == 8
    assert throttle.interval == paced, "in-flight 429s do not tighten the pace again"
    # 20 admitted in 1 s: paced at 80 % of that.
    assert paced == pytest.approx(1 / 16, rel=0.01)


def test_without_retry_after_the_pause_doubles_per_episode(fake: FakeTime) -> None:
    throttle = gate(fake)
    pauses = []
    for _ in range(4):
        throttle.observe(429)
        pauses.append(throttle.wait_turn())
    assert pauses[:3] == pytest.approx([0.5, 1.0, 2.0], abs=0.1)


def test_after_a_throttle_workers_start_one_by_one_and_the_pace_recovers(fake: FakeTime) -> None:
    throttle = gate(fake)
    for _ in range(10):
        throttle.observe(200)
    fake.now += 1.0
    throttle.observe(429, retry_after=1.0)
    interval = throttle.interval
    starts = []
    for _ in range(5):
        throttle.wait_turn()
        starts.append(fake.now)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert gaps == pytest.approx([interval] * 4)
    for _ in range(400):
        throttle.observe(200)
    assert throttle.interval == 0.0, "successes bring the pool back to full speed"


def test_a_503_with_retry_after_closes_the_gate_and_a_plain_503_does_not(fake: FakeTime) -> None:
    throttle = gate(fake)
    throttle.observe(503)
    assert throttle.wait_turn() == 0.0
    throttle.observe(503, retry_after=3.0)
    assert throttle.wait_turn() == pytest.approx(3.0)


def test_threads_share_one_gate() -> None:
    throttle = PoolThrottle()
    throttle.observe(429, retry_after=0.2)
    waited: list[float] = []
    threads = [threading.Thread(target=lambda: waited.append(throttle.wait_turn())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(waited) == 4
    assert min(waited) > 0.1
