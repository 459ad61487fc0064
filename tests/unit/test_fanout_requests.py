"""How fan-out entries combine with the operator's own arguments, and how bad entries are named (no network)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_cognito_iam.operators.fanout import parse_requests

DEFAULTS: dict[str, Any] = {
    "endpoint": "/orders",
    "query": {"limit": 100, "date": "2024-01-01"},
    "json": None,
    "data": None,
    "headers": {"X-Team": "data"},
}


def test_query_and_headers_merge_over_the_defaults_and_the_rest_replaces_them() -> None:
    (first, second, third) = parse_requests(
        [
            {"query": {"date": "2024-01-02"}},
            {"endpoint": "/customers/cus-0001", "headers": {"X-Trace": "1"}},
            "/whoami",
        ],
        DEFAULTS,
    )
    assert first == {**DEFAULTS, "query": {"limit": 100, "date": "2024-01-02"}}
    assert second["endpoint"] == "/customers/cus-0001"
    assert second["headers"] == {"X-Team": "data", "X-Trace": "1"}
    assert third == {**DEFAULTS, "endpoint": "/whoami"}


def test_a_body_per_entry_and_json_with_data_is_refused() -> None:
    (entry,) = parse_requests([{"json": {"id": 1}}], DEFAULTS)
    assert entry["json"] == {"id": 1}
    with pytest.raises(ValueError, match=r"requests\[0\]: give either json or data, not both"):
        parse_requests([{"data": "x"}], {**DEFAULTS, "json": {"a": 1}})


def test_every_problem_is_named_with_its_index_up_to_ten() -> None:
    with pytest.raises(ValueError, match=r"^requests\[0\]\.endpoint") as info:
        parse_requests([{"endpoint": ""}] * 12 + [7], DEFAULTS)
    message = str(info.value)
    assert message.count("must be a non-empty string") == 10
    assert message.endswith("(and 3 more)")


@pytest.mark.parametrize("value", [None, "/orders", {"endpoint": "/orders"}, 3])
def test_requests_must_be_a_list(value: Any) -> None:
    with pytest.raises(ValueError, match="requests must be a list of requests"):
        parse_requests(value, DEFAULTS)


def test_check_endpoint_refusals_are_named_per_entry() -> None:
    from airflow_cognito_iam.auth.errors import ConfigurationError

    def only_local(endpoint: str) -> None:
        if endpoint.startswith("https://"):
            raise ConfigurationError({"endpoint": "not the connection's origin"})

    with pytest.raises(ValueError, match=r"requests\[1\]\.endpoint: not the connection's origin"):
        parse_requests(["/ok", "https://elsewhere.example.com/x"], DEFAULTS, check_endpoint=only_local)
