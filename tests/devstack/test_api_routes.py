"""The API's routes and fault injection, called with botocore-signed requests."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from airflow_cognito_iam.devstack.api_server import EXPORT_LINE_BYTES, orders_for
from airflow_cognito_iam.devstack.stack import DevStack

from .conftest import signed_request, srp_sign_in

pytestmark = pytest.mark.integration


def _get(stack: DevStack, creds: dict[str, Any], path: str, **kwargs: Any) -> requests.Response:
    return signed_request("GET", f"{stack.api_url}{path}", creds, stack.region, **kwargs)


def test_orders_paginate_deterministically_over_three_or_more_pages(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    pages: list[list[dict[str, Any]]] = []
    path = "/orders?date=2026-11-20&limit=50"
    for _ in range(10):
        body = _get(stack, aws_creds, path).json()
        pages.append(body["records"])
        if body["next_token"] is None:
            break
        path = f"/orders?date=2026-11-20&limit=50&next_token={body['next_token']}"

    records = [record for page in pages for record in page]
    assert len(pages) >= 3
    assert all(len(page) == 50 for page in pages[:-1])
    assert len({r["order_id"] for r in records}) == len(records)
    assert records == orders_for("2026-11-20")
    assert _get(stack, aws_creds, "/orders?date=2026-11-20").json()["records"] == records[:50]


def test_orders_differ_between_dates(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    first = _get(stack, aws_creds, "/orders?date=2026-11-20&limit=5").json()["records"]
    second = _get(stack, aws_creds, "/orders?date=2026-11-21&limit=5").json()["records"]

    assert first != second
    assert {r["date"] for r in second} == {"2026-11-21"}


@pytest.mark.parametrize(
    "query", ["", "date=2026-13-01", "date=2026-11-20&limit=0", "date=2026-11-20&next_token=not%21a%20token"]
)
def test_orders_refuse_bad_parameters_with_400(stack: DevStack, aws_creds: dict[str, Any], query: str) -> None:
    response = _get(stack, aws_creds, f"/orders?{query}")

    assert response.status_code == 400
    assert response.json()["message"]


def test_export_streams_the_requested_mebibytes_of_json_lines(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    response = signed_request("GET", f"{stack.api_url}/export?size_mb=2", aws_creds, stack.region)
    size = 0
    lines = 0
    for line in response.iter_lines():
        json.loads(line)
        size += len(line) + 1
        lines += 1

    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) == 2 * 1024 * 1024
    assert size == 2 * 1024 * 1024
    assert lines == 2 * 1024 * 1024 // EXPORT_LINE_BYTES


def test_job_is_pending_for_the_requested_polls_then_done(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    created = signed_request(
        "POST", f"{stack.api_url}/jobs", aws_creds, stack.region, body=b'{"polls": 2, "date": "2026-11-20"}'
    )
    job_id = created.json()["job_id"]

    statuses = [_get(stack, aws_creds, f"/jobs/{job_id}").json() for _ in range(3)]

    assert created.status_code == 202
    assert [s["status"] for s in statuses] == ["pending", "pending", "done"]
    assert statuses[-1]["result_path"] == "/orders?date=2026-11-20"
    assert _get(stack, aws_creds, statuses[-1]["result_path"]).status_code == 200


def test_unknown_job_and_route_are_404(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    assert _get(stack, aws_creds, "/jobs/00000000-0000-0000-0000-000000000000").status_code == 404
    assert _get(stack, aws_creds, "/nothing-here").status_code == 404


def test_bearer_route_accepts_a_pool_id_token_and_refuses_others(stack: DevStack, idp: Any) -> None:
    tokens = srp_sign_in(stack, idp)

    accepted = requests.get(f"{stack.api_url}/bearer/whoami", headers={"Authorization": tokens["IdToken"]}, timeout=10)
    refused = requests.get(f"{stack.api_url}/bearer/whoami", headers={"Authorization": "Bearer x.y.z"}, timeout=10)

    assert accepted.status_code == 200
    assert accepted.json()["username"] == stack.username
    assert refused.status_code == 401
    assert refused.json() == {"message": "Unauthorized"}


def test_per_request_503_and_429_faults(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    unavailable = _get(stack, aws_creds, "/whoami", headers={"X-Devstack-Fault": "503"})
    throttled = _get(stack, aws_creds, "/whoami?_fault=429:7")

    assert unavailable.status_code == 503
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"


@pytest.mark.parametrize(
    ("kind", "message", "error_type"),
    [
        ("500", "Internal server error", "InternalServerErrorException"),
        ("502", "Internal server error", "BadGatewayException"),
        ("504", "Endpoint request timed out", "IntegrationTimeout"),
    ],
)
def test_per_request_gateway_errors_look_like_api_gateway(
    stack: DevStack, aws_creds: dict[str, Any], kind: str, message: str, error_type: str
) -> None:
    answer = _get(stack, aws_creds, f"/whoami?_fault={kind}")

    assert answer.status_code == int(kind)
    assert answer.json() == {"message": message}
    assert answer.headers["x-amzn-ErrorType"] == error_type


def test_per_request_connection_reset_gives_no_response(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    with pytest.raises(requests.ConnectionError):
        _get(stack, aws_creds, "/whoami", headers={"X-Devstack-Fault": "reset"})

    assert _get(stack, aws_creds, "/whoami").status_code == 200


def test_slow_fault_still_answers(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    assert _get(stack, aws_creds, "/whoami", headers={"X-Devstack-Fault": "slow:0.2"}).status_code == 200


def test_global_faults_hit_the_next_requests_then_clear(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    stack.set_faults("503", count=2, path_prefix="/whoami")

    statuses = [_get(stack, aws_creds, "/whoami").status_code for _ in range(3)]

    assert statuses == [503, 503, 200]
    assert stack.stats()["api"]["routes"]["GET /whoami"] == {"503": 2, "200": 1}


def test_global_fault_rate_applies_until_cleared(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    stack.set_faults("429", rate=1.0, retry_after=3)
    assert _get(stack, aws_creds, "/whoami").status_code == 429

    stack.clear_faults()

    assert _get(stack, aws_creds, "/whoami").status_code == 200


def test_stats_endpoint_is_unsigned_and_matches_stats(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    _get(stack, aws_creds, "/orders?date=2026-11-20&limit=1")
    requests.get(f"{stack.api_url}/whoami", timeout=10)
    stack_stats = stack.stats()

    served = requests.get(f"{stack.api_url}/_stats", timeout=10).json()

    assert served["api"] == stack_stats["api"]
    assert served["api"]["routes"]["GET /orders"] == {"200": 1}
    assert served["api"]["routes"]["GET /whoami"] == {"403": 1}


def test_api_keeps_connections_alive_like_api_gateway(stack: DevStack) -> None:
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(stack.api_url)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=10)
    try:
        conn.request("GET", "/_stats")
        first = conn.getresponse()
        first.read()
        sock = conn.sock
        conn.request("GET", "/_stats")
        second = conn.getresponse()
        second.read()

        assert first.status == second.status == 200
        assert sock is not None
        assert conn.sock is sock
    finally:
        conn.close()


def test_control_routes_drive_faults_and_credentials_over_http(stack: DevStack, aws_creds: dict[str, Any]) -> None:
    """For a stack started with the CLI, where tests cannot call DevStack methods."""
    control = f"{stack.api_url}/_control"
    assert requests.post(f"{control}/faults", json={"kind": "503", "count": 1}, timeout=10).status_code == 200
    assert _get(stack, aws_creds, "/whoami").status_code == 503
    assert _get(stack, aws_creds, "/whoami").status_code == 200

    requests.post(f"{control}/expire-credentials", timeout=10)
    assert (
        _get(stack, aws_creds, "/whoami").json()["message"] == "The security token included in the request is expired"
    )

    requests.post(f"{control}/cognito-faults", json={"count": 1, "actions": ["GetId"]}, timeout=10)
    requests.post(f"{control}/credential-lifetime", json={"seconds": 30}, timeout=10)
    assert stack.registry.lifetime_seconds == 30
    assert requests.post(f"{control}/token-lifetime", json={"seconds": 60}, timeout=10).status_code == 200
    bad = requests.post(f"{control}/faults", json={"kind": "503", "colour": "red"}, timeout=10)
    assert bad.status_code == 400

    assert requests.post(f"{control}/reset", timeout=10).status_code == 200
    assert stack.registry.lifetime_seconds == 3600
    assert stack.stats()["api"]["requests"] == 0
