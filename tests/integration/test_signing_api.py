"""Requests signed by hook.get_auth() are accepted by the devstack API, which verifies with botocore.

The API listens on a random (non-default) port, so every case also checks the port in the signed Host.
"""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

from airflow_cognito_iam.auth.cache import clear_memory_cache
from airflow_cognito_iam.auth.errors import HostNotAllowedError
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

pytestmark = pytest.mark.integration


@pytest.fixture
def hook(cognito_iam_conn):
    clear_memory_cache()
    hook = CognitoIamHook()
    yield hook
    hook.close()
    clear_memory_cache()


CASES = [
    pytest.param("/echo/plain", [("date", "2024-01-02"), ("limit", "5")], id="plain"),
    pytest.param("/echo/with space/a b", [("q", "hello world"), ("two  spaces", "x  y")], id="spaces"),
    pytest.param("/echo/ünïcödé/東京", [("name", "Zoë"), ("city", "東京")], id="unicode"),
    pytest.param("/echo/plus+path", [("expr", "1+1=2"), ("p", "+")], id="plus"),
    pytest.param("/echo/eq=path/~tilde~", [("e", "a=b=c"), ("t", "~x~")], id="equals-tilde"),
    pytest.param("/echo/semi;colon", [("s", "a;b")], id="semicolon"),
    pytest.param("/echo/reserved", [("r", "!*'()@:$,/?#[]&%")], id="reserved"),
    pytest.param("/echo/repeat", [("k", "b"), ("k", "a"), ("a", "2"), ("a", "1"), ("k", "a")], id="repeated-keys"),
    pytest.param("/echo/blank", [("flag", ""), ("z", "")], id="blank-values"),
]


@pytest.mark.parametrize(("path", "params"), CASES)
def test_signed_get_is_accepted_and_arrives_as_meant(hook, cognito_iam_conn, path, params):
    session = requests.Session()
    session.auth = hook.get_auth()
    response = session.get(f"{cognito_iam_conn.api_url}{quote(path)}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    echoed = response.json()
    assert [tuple(pair) for pair in echoed["query"]] == params
    assert echoed["raw_path"] == quote(path, safe="/-_.~")


def test_signed_post_with_unicode_body_is_accepted(hook, cognito_iam_conn):
    body = '{"name": "Zoë", "note": "1+1=2 & ~"}'.encode()
    response = hook.request("POST", "/echo/jobs", data=body, headers={"Content-Type": "application/json"})
    assert response.json()["body_bytes"] == len(body)


def test_request_via_hook_signs_relative_endpoints_under_the_connection_host(hook):
    response = hook.request("GET", "/echo/rel path", params={"q": "a+b c"})
    assert response.json()["query"] == [["q", "a+b c"]]


def test_request_to_another_host_is_refused_before_sending(hook, cognito_iam_conn):
    before = cognito_iam_conn.stats()["api"]["requests"]
    with pytest.raises(HostNotAllowedError, match=r"evil\.example\.net"):
        hook.request("GET", "https://evil.example.net/steal")
    session = requests.Session()
    session.auth = hook.get_auth()
    other_port = cognito_iam_conn.api_url.rsplit(":", 1)[0] + ":1"
    with pytest.raises(HostNotAllowedError):
        session.get(f"{other_port}/echo/x", timeout=5)
    assert cognito_iam_conn.stats()["api"]["requests"] == before


def test_allowed_hosts_lets_signed_requests_reach_a_second_host(cognito_iam_conn):
    clear_memory_cache()
    alias = cognito_iam_conn.api_url.replace("127.0.0.1", "localhost")
    hook = CognitoIamHook(allowed_hosts=[alias.split("://", 1)[1]])
    response = hook.request("GET", f"{alias}/echo/alias")
    assert response.status_code == 200


def test_bearer_mode_sends_the_id_token_to_a_user_pool_authorizer(hook):
    assert hook.request("GET", "/bearer/whoami", mode="id_token").json()["token_use"] == "id"
    assert hook.request("GET", "/bearer/whoami", mode="access_token").json()["token_use"] == "access"
