"""Added latency and token-bucket rate limits on the API, for benchmarks and client back-off tests."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from airflow_cognito_iam.devstack.stack import DevStack

from .conftest import signed_request

pytestmark = pytest.mark.integration


def _get(stack: DevStack, creds: dict[str, Any], path: str) -> requests.Response:
    return signed_request("GET", f"{stack.api_url}{path}", creds, stack.region)


def test_latency_delays_each_request_of_its_prefix_without_serialising_them(
    stack: DevStack, aws_creds: dict[str, Any]
) -> None:
    stack.set_latency(0.5, path_prefix="/orders")
    stack.reset_stats()

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(lambda _: _get(stack, aws_creds, "/orders?date=2026-11-20").status_code, range(6)))

    assert statuses == [200] * 6
    assert time.monotonic() - started >= 0.5
    stats = stack.stats()
    assert stats["api"]["in_flight_peak"] >= 2  # the sleeps overlapped: the server is threaded
    assert stats["latency"] == {"/orders": 0.5}


def test_rate_limit_refuses_past_the_burst_with_retry_after(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    stack.set_rate_limit(rate=0.1, burst=3, path_prefix="/orders")

    answers = [_get(stack, aws_creds, "/orders?date=2026-11-20&limit=1") for _ in range(5)]

    assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
    refused = answers[-1]
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["x-amzn-ErrorType"] == "TooManyRequestsException"
    assert _get(stack, aws_creds, "/whoami").status_code == 200  # another prefix has no limit
    stats = stack.stats()
    assert stats["rate_limited"] == {"routes": {"GET /orders": 2}, "total": 2}
    assert stats["api"]["routes"]["GET /orders"] == {"200": 3, "429": 2}


def test_the_bucket_refills_at_its_rate(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    stack.set_rate_limit(rate=5, burst=1)
    assert _get(stack, aws_creds, "/whoami").status_code == 200

    statuses = set()
    deadline = time.monotonic() + 5
    while 200 not in statuses or 429 not in statuses:
        assert time.monotonic() < deadline, statuses
        statuses.add(_get(stack, aws_creds, "/whoami").status_code)


def test_control_routes_set_and_clear_latency_and_rate_limits(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    control = f"{stack.api_url}/_control"
    assert requests.post(f"{control}/latency", json={"seconds": 0.02}, timeout=10).status_code == 200
    assert requests.post(f"{control}/rate-limit", json={"rate": 0.1, "burst": 1, "path_prefix": "/whoami"},
                         timeout=10).status_code == 200  # fmt: skip
    assert requests.post(f"{control}/rate-limit", json={"rate": 0, "burst": 1}, timeout=10).status_code == 400
    assert requests.post(f"{control}/latency", json={"seconds": -1}, timeout=10).status_code == 400
    assert [_get(stack, aws_creds, "/whoami").status_code for _ in range(2)] == [200, 429]
    assert requests.get(f"{stack.api_url}/_stats", timeout=10).json()["latency"] == {"/": 0.02}

    assert requests.delete(f"{control}/rate-limit", timeout=10).status_code == 200
    assert requests.delete(f"{control}/latency", timeout=10).status_code == 200

    assert _get(stack, aws_creds, "/whoami").status_code == 200
    assert stack.stats()["latency"] == {}


def test_reset_clears_latency_and_rate_limits(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    stack.set_latency(5)
    stack.set_rate_limit(rate=0.1, burst=1)

    stack.reset()

    assert [_get(stack, aws_creds, "/whoami").status_code for _ in range(3)] == [200, 200, 200]
    assert stack.stats()["rate_limits"] == {}
