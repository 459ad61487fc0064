"""How a user tests their own code offline with the fixture (the README example, kept honest)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_cognito_iam.devstack import DevStack

from .conftest import srp_sign_in

pytestmark = pytest.mark.integration


def test_readme_example_hook_pulls_orders_offline(cognito_iam_conn: DevStack) -> None:
    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

    hook = CognitoIamHook()  # reads AIRFLOW_CONN_COGNITO_IAM_DEFAULT, set by the fixture
    response = hook.request("GET", "/orders", params={"date": "2026-11-01", "limit": 50})

    assert len(response.json()["records"]) == 50
    assert cognito_iam_conn.stats()["cognito"]["GetCredentialsForIdentity"] == 1
    assert cognito_iam_conn.stats()["api"]["routes"]["GET /orders"] == {"200": 1}


def test_fixture_resets_faults_and_counters_between_tests_part_one(cognito_iam_conn: DevStack) -> None:
    cognito_iam_conn.set_faults("503")
    cognito_iam_conn.set_cognito_faults(count=None)
    cognito_iam_conn.set_credential_lifetime(5)


def test_fixture_resets_faults_and_counters_between_tests_part_two(cognito_iam_conn: DevStack, idp: Any) -> None:
    """Runs after part one (file order): nothing it set is still in force."""
    import requests

    assert cognito_iam_conn.registry.lifetime_seconds == 3600
    assert cognito_iam_conn.stats()["cognito"] == {}
    assert requests.get(f"{cognito_iam_conn.api_url}/whoami?_fault=", timeout=10).status_code == 403
    assert "IdToken" in srp_sign_in(cognito_iam_conn, idp)
