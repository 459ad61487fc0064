"""CognitoIamFanOutOperator against the devstack over real HTTP: faults, rate limits, failures, XCom.

Each test calls ``op.execute(context)`` as the task runner would and judges by what an observer
sees: the object in S3 (or its absence), the returned summary, and the API's own counters.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from airflow.sdk.exceptions import AirflowFailException

from airflow_cognito_iam.devstack import DevStack
from airflow_cognito_iam.devstack.api_server import customer_for, orders_for
from airflow_cognito_iam.operators.api import CognitoIamRetryableError
from airflow_cognito_iam.operators.fanout import CognitoIamFanOutOperator

pytestmark = pytest.mark.integration


def next_page(response: requests.Response) -> dict[str, Any] | None:
    token = response.json()["next_token"]
    return {"query": {"next_token": token}} if token else None


def records(response: requests.Response) -> list[dict[str, Any]]:
    return list(response.json()["records"])


def customer_ids(count: int, start: int = 1) -> list[str]:
    return [f"cus-{n:04d}" for n in range(start, start + count)]


def s3_lines(stack: DevStack, key: str) -> list[Any]:
    body = stack.s3_client().get_object(Bucket=stack.bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in body.splitlines()]


def s3_keys(stack: DevStack, prefix: str) -> list[str]:
    listing = stack.s3_client().list_objects_v2(Bucket=stack.bucket, Prefix=prefix)
    return [obj["Key"] for obj in listing.get("Contents", [])]


def route_counts(stack: DevStack, route: str) -> Counter[str]:
    routes: dict[str, dict[str, int]] = stack.stats()["api"]["routes"]
    return Counter({str(status): count for status, count in routes.get(route, {}).items()})


def days(count: int) -> list[str]:
    import datetime as dt

    first = dt.date(2024, 1, 1)
    return [(first + dt.timedelta(days=n)).isoformat() for n in range(count)]


# --- (a) every record exactly once under faults ----------------------------------------------------


def test_200_paginated_requests_under_30_percent_faults_store_every_record_exactly_once(
    cognito_iam_conn: DevStack,
) -> None:
    stack = cognito_iam_conn
    dates = days(200)
    # 30 % of attempts fail: about 15 % answer one of API Gateway's 5xx, and 18 % of the rest are
    # reset before any response.
    for kind, rate in (("500", 0.05), ("502", 0.04), ("503", 0.04), ("504", 0.03)):
        stack.set_faults(kind, rate=rate, path_prefix="/orders")
    stack.set_faults("reset", rate=0.18, path_prefix="/orders")
    stack.set_latency(0.005, "/orders")  # enough for requests to overlap on a busy machine
    key = "fanout/faults/orders.jsonl"
    op = CognitoIamFanOutOperator(
        task_id="orders_by_day",
        endpoint="/orders",
        query={"limit": 100},
        requests=[{"query": {"date": date}} for date in dates],
        pagination=next_page,
        response_filter=records,
        destination=f"s3://{stack.bucket}/{key}",
        max_attempts=12,
        max_concurrency=8,
    )

    summary = op.execute({})

    lines = s3_lines(stack, key)
    by_request: dict[int, list[Any]] = {}
    for line in lines:
        by_request.setdefault(line["request"], []).append(line["record"])
    assert sorted(by_request) == list(range(200))
    for index, date in enumerate(dates):
        assert by_request[index] == orders_for(date), f"request {index} lost, duplicated or reordered records"
    assert summary["records"] == len(lines) == sum(len(orders_for(d)) for d in dates)
    assert summary["succeeded"] == 200
    assert summary["failed"] == []
    assert summary["pages"] == 400  # 101-139 records a day, 100 a page
    counts = route_counts(stack, "GET /orders")
    assert counts["200"] == 400, "each page fetched successfully exactly once"
    assert all(counts[status] > 0 for status in ("500", "502", "503", "504", "0")), counts
    faulted = sum(counts[status] for status in ("500", "502", "503", "504", "0"))
    assert faulted / (faulted + counts["200"]) > 0.2, f"the faults really fired: {counts}"
    assert 2 <= stack.stats()["api"]["in_flight_peak"] <= 8
    head = stack.s3_client().head_object(Bucket=stack.bucket, Key=key)
    assert head["ContentLength"] == summary["bytes"]
    assert head["ContentType"] == "application/x-ndjson"


# --- (b) a token bucket: the pool backs off together ----------------------------------------------


def test_rate_limited_pool_backs_off_together_without_a_retry_storm(cognito_iam_conn: DevStack) -> None:
    stack = cognito_iam_conn
    stack.set_rate_limit(rate=40, burst=10, path_prefix="/customers/")
    ids = customer_ids(160)
    op = CognitoIamFanOutOperator(
        task_id="details",
        requests=[f"/customers/{cid}" for cid in ids],
        max_concurrency=8,
        max_attempts=10,
    )

    summary = op.execute({})

    assert summary["results"] == [customer_for(cid) for cid in ids]
    counts = route_counts(stack, "GET /customers/{id}")
    throttled = stack.stats()["rate_limited"]["total"] if "rate_limited" in stack.stats() else counts["429"]
    attempts = sum(counts.values())
    print(f"attempts={attempts} 429s={counts['429']} throttled={throttled} summary={summary['throttled']}")
    assert counts["200"] == len(ids)
    assert attempts == len(ids) + counts["429"]
    assert summary["throttled"] == counts["429"], "every 429 reached the pool's gate"
    # Without the shared gate each worker keeps sending into the empty bucket: ~8 429s per refill.
    assert counts["429"] <= 24, f"retry storm: {counts}"


def test_one_429_with_retry_after_pauses_every_worker_not_just_its_request(cognito_iam_conn: DevStack) -> None:
    import itertools
    import time

    stack = cognito_iam_conn
    stack.set_latency(0.02, "/customers/")
    stack.set_faults("429", count=1, retry_after=2, path_prefix="/customers/cus-0010")
    finished: list[float] = []

    def when(response: requests.Response) -> Any:
        finished.append(time.monotonic())
        return response.json()

    ids = customer_ids(60)
    result = CognitoIamFanOutOperator(
        task_id="details", requests=[f"/customers/{c}" for c in ids], response_filter=when, max_concurrency=8
    ).execute({})

    assert result["results"] == [customer_for(c) for c in ids]
    assert result["throttled"] == 1
    finished.sort()
    gaps = [later - earlier for earlier, later in itertools.pairwise(finished)]
    pause = max(gaps)
    after = len([t for t in finished if t > finished[gaps.index(pause)]])
    # Only what was already in flight finished during the pause; the rest waited for Retry-After.
    assert pause > 1.5, f"no pool-wide pause: longest gap between responses {pause:.2f} s"
    assert after >= 40, f"only {after} requests waited for the gate"


# --- (c) a request that cannot succeed -----------------------------------------------------------


def detail_requests(ids: list[str]) -> list[dict[str, Any]]:
    # A query value that must never appear in a message: messages name query *names* only.
    return [{"endpoint": f"/customers/{cid}", "query": {"ref": "private-ref-value"}} for cid in ids]


def test_one_permanent_failure_fails_the_task_naming_it_and_stores_nothing(cognito_iam_conn: DevStack) -> None:
    stack = cognito_iam_conn
    ids = customer_ids(40)
    ids[17] = "cus-0000"  # the devstack answers 404 for this one
    key = "fanout/failed/details.jsonl"
    op = CognitoIamFanOutOperator(
        task_id="details", requests=detail_requests(ids), destination=f"s3://{stack.bucket}/{key}", max_concurrency=4
    )

    with pytest.raises(AirflowFailException) as info:
        op.execute({})

    message = str(info.value)
    assert "requests[17] GET /customers/cus-0000: refused (HTTP 404)" in message
    assert message.startswith("1 of 40 request(s) failed")
    assert "private-ref-value" not in message
    assert s3_keys(stack, "fanout/failed/") == [], "nothing committed"
    assert stack.s3_client().list_multipart_uploads(Bucket=stack.bucket).get("Uploads", []) == []
    # Fail fast: requests not yet started when the 404 came back were never sent.
    assert sum(route_counts(stack, "GET /customers/{id}").values()) < 40


def test_on_error_skip_lists_the_failed_request_and_stores_the_others(cognito_iam_conn: DevStack) -> None:
    stack = cognito_iam_conn
    ids = customer_ids(40)
    ids[17] = "cus-0000"
    key = "fanout/skipped/details.jsonl"
    op = CognitoIamFanOutOperator(
        task_id="details",
        requests=detail_requests(ids),
        destination=f"s3://{stack.bucket}/{key}",
        on_error="skip",
        max_concurrency=4,
    )

    summary = op.execute({})

    assert summary["failed"] == [
        {"index": 17, "method": "GET", "path": "/customers/cus-0000", "error": "refused (HTTP 404)"}
    ]
    assert summary["succeeded"] == 39
    lines = s3_lines(stack, key)
    assert sorted(line["request"] for line in lines) == [i for i in range(40) if i != 17]
    assert all(line["record"] == customer_for(ids[line["request"]]) for line in lines)
    assert summary["records"] == len(lines) == 39
    assert "private-ref-value" not in json.dumps(summary)


def test_transient_failures_outlasting_the_retries_are_a_retryable_task_failure(cognito_iam_conn: DevStack) -> None:
    stack = cognito_iam_conn
    stack.set_faults("503", rate=1.0, path_prefix="/customers/cus-0003")
    key = "fanout/transient/details.jsonl"
    op = CognitoIamFanOutOperator(
        task_id="details",
        requests=detail_requests(customer_ids(10)),
        destination=f"s3://{stack.bucket}/{key}",
        on_error="skip",  # does not apply: a task retry can fix a transient failure
        max_attempts=2,
    )

    with pytest.raises(CognitoIamRetryableError, match=r"requests\[2\] GET /customers/cus-0003: TransientError"):
        op.execute({})
    assert s3_keys(stack, "fanout/transient/") == []


# --- stopping: execution_timeout and SIGTERM reach only the main thread ------------------------------


def failing_fan_out(stack: DevStack, **kwargs: Any) -> CognitoIamFanOutOperator:
    """40 requests, 4 in flight, against an API answering 503 to all, with a budget that lasts minutes."""
    stack.set_faults("503", rate=1.0, path_prefix="/customers/")
    return CognitoIamFanOutOperator(
        task_id="details",
        requests=detail_requests(customer_ids(40)),
        max_concurrency=4,
        max_attempts=20,  # spending it takes minutes: 0.5 s doubling to the 20 s cap, full jitter
        max_retry_seconds=600,
        **kwargs,
    )


@contextlib.contextmanager
def sigterm_after(seconds: float, handler: Any) -> Iterator[None]:
    """``handler`` on SIGTERM, and a SIGTERM to this process after ``seconds``, for the block's length.

    To the process, as the supervisor sends it: ``raise_signal()`` from the timer would signal only
    the timer's thread, and Python would run the handler only when the main thread next woke.
    """
    previous = signal.signal(signal.SIGTERM, handler)
    killer = threading.Timer(seconds, os.kill, args=(os.getpid(), signal.SIGTERM))
    killer.start()
    try:
        yield
    finally:
        killer.cancel()
        signal.signal(signal.SIGTERM, previous)


def test_execution_timeout_stops_the_retries_in_flight(cognito_iam_conn: DevStack) -> None:
    """Airflow's timeout raises in the main thread; the workers must not retry on until their budget ends."""
    import time

    from airflow.sdk.exceptions import AirflowTaskTimeout
    from airflow.sdk.execution_time.timeout import timeout

    stack = cognito_iam_conn
    op = failing_fan_out(stack, destination=f"s3://{stack.bucket}/fanout/timeout/details.jsonl")

    started = time.monotonic()
    with pytest.raises(AirflowTaskTimeout), timeout(2):
        op.execute({})
    print(f"execute ended {time.monotonic() - started:.2f} s after it started (timeout 2 s)")
    op.on_kill()  # as the task runner does after a timeout: nothing more to stop, and no raise
    after_execute = route_counts(stack, "GET /customers/{id}")["503"]
    print(f"attempts={after_execute}")
    time.sleep(1.5)

    assert route_counts(stack, "GET /customers/{id}")["503"] == after_execute, "no attempt after execute ended"
    # Spending their budget, the 4 requests in flight would each make all 20 attempts (80 in minutes);
    # in the 2 s before the stop each makes about 4.
    assert 4 <= after_execute < 40, after_execute
    assert s3_keys(stack, "fanout/timeout/") == []


def test_sigterm_stops_an_xcom_fan_out_and_fails_the_task(cognito_iam_conn: DevStack) -> None:
    """on_kill (SIGTERM: a user marks the task failed) stops the pool even with no sink to discard."""
    import time

    from airflow_cognito_iam.operators.api import TaskInterruptedError

    stack = cognito_iam_conn
    op = failing_fan_out(stack)
    on_term = lambda signum, frame: op.on_kill()  # noqa: E731 - the handler the task runner installs
    with sigterm_after(2, on_term), pytest.raises(TaskInterruptedError, match="stopped during GET fan-out of 40"):
        op.execute({})
    after_execute = route_counts(stack, "GET /customers/{id}")["503"]
    print(f"attempts={after_execute}")
    time.sleep(1.5)

    assert route_counts(stack, "GET /customers/{id}")["503"] == after_execute, "no attempt after execute ended"
    assert 4 <= after_execute < 40, after_execute


def test_a_stopped_fan_out_never_succeeds_even_if_the_interrupt_is_swallowed(cognito_iam_conn: DevStack) -> None:
    """on_kill raises from a signal handler; code it lands in may swallow that (botocore wraps any
    error raised during a send). The requests not started must then fail the task, not vanish."""

    from airflow_cognito_iam.operators.api import TaskInterruptedError

    stack = cognito_iam_conn
    stack.set_latency(0.05, "/customers/")  # 200 requests, 4 in flight: about 2.5 s
    op = CognitoIamFanOutOperator(
        task_id="details", requests=detail_requests(customer_ids(200)), max_concurrency=4
    )

    def swallowed(signum: int, frame: Any) -> None:
        with contextlib.suppress(TaskInterruptedError):
            op.on_kill()

    with sigterm_after(1, swallowed), pytest.raises(TaskInterruptedError, match="nothing was returned or stored"):
        op.execute({})
    assert route_counts(stack, "GET /customers/{id}")["200"] < 200, "stopped before the end"
    op.on_kill()  # after execute: nothing to stop, no raise


# --- validation ----------------------------------------------------------------------------------


def test_bad_arguments_are_refused_at_parse_time_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"requests\[1\]\.endpoint must be a non-empty string") as info:
        CognitoIamFanOutOperator(
            task_id="bad",
            requests=[{"endpoint": "/whoami"}, {"endpoint": 5}, {"qeury": {"a": 1}}, {"endpoint": "/x", "query": [1]}],
        )
    assert "requests[2] has unknown keys ['qeury']" in str(info.value)
    assert "requests[3].query must be a mapping" in str(info.value)
    with pytest.raises(ValueError, match=r"max_concurrency must be a whole number from 1 to 64, got 0"):
        CognitoIamFanOutOperator(task_id="bad", requests=[], max_concurrency=0)
    with pytest.raises(ValueError, match=r"on_error='ignore' must be one of \['fail', 'skip'\]"):
        CognitoIamFanOutOperator(task_id="bad", requests=[], on_error="ignore")  # type: ignore[arg-type]


def test_rendered_requests_are_checked_before_any_network_call(cognito_iam_conn: DevStack) -> None:
    stack = cognito_iam_conn
    op = CognitoIamFanOutOperator(task_id="bad", requests="{{ params.requests }}")
    op.requests = [
        "/whoami",
        "https://elsewhere.example.com/steal",
        {"endpoint": "/x", "headers": {"X-Bad": " leading space"}},
    ]

    with pytest.raises(AirflowFailException) as info:
        op.execute({})

    message = str(info.value)
    assert "requests[1].endpoint: https://elsewhere.example.com is not the connection's origin" in message
    assert "requests[2].headers" in message
    assert stack.stats()["cognito"] == {}, "no sign-in"
    assert stack.stats()["api"]["routes"] == {}, "no request"
    with pytest.raises(AirflowFailException, match="requests must be a list of requests"):
        CognitoIamFanOutOperator(task_id="bad", requests={"endpoint": "/whoami"}).execute({})


# --- XCom ----------------------------------------------------------------------------------------


def test_results_to_xcom_in_input_order_and_over_max_xcom_bytes_fails(cognito_iam_conn: DevStack) -> None:
    ids = customer_ids(30, start=500)
    result = CognitoIamFanOutOperator(task_id="details", requests=[f"/customers/{c}" for c in ids]).execute({})
    assert result["results"] == [customer_for(c) for c in ids]
    assert result["failed"] == []

    too_small = CognitoIamFanOutOperator(task_id="d", requests=[f"/customers/{c}" for c in ids], max_xcom_bytes=1000)
    with pytest.raises(AirflowFailException, match="over max_xcom_bytes=1000"):
        too_small.execute({})


def test_bearer_mode_fans_out_with_the_id_token_and_at_most_max_concurrency_in_flight(
    cognito_iam_conn: DevStack,
) -> None:
    stack = cognito_iam_conn
    stack.set_latency(0.05, "/bearer/")
    result = CognitoIamFanOutOperator(
        task_id="bearer", requests=["/bearer/whoami"] * 12, auth="id_token", max_concurrency=3
    ).execute({})

    assert {body["token_use"] for body in result["results"]} == {"id"}
    assert len(result["results"]) == 12
    assert 2 <= stack.stats()["api"]["in_flight_peak"] <= 3
    assert stack.stats()["cognito"].get("InitiateAuth") == 1, "one sign-in for the whole pool"
    assert "GetCredentialsForIdentity" not in stack.stats()["cognito"]
