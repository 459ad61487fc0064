"""Proxy variables still apply although the hook's sessions read the environment once per origin."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_cognito_iam.auth.sessions import EnvironmentOnceSession
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

pytestmark = pytest.mark.integration

_PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


class _ForwardProxy(BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy that records the absolute URLs it was asked for."""

    seen: list[str]

    def _forward(self) -> None:
        self.server.seen.append(self.path)  # type: ignore[attr-defined]
        target = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
        path = target.path + (f"?{target.query}" if target.query else "")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream.request(self.command, path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = do_PUT = _forward

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForwardProxy)
    server.seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", server.seen  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


@pytest.fixture
def clean_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _signed_in_hook() -> CognitoIamHook:
    hook = CognitoIamHook()
    hook.get_credentials()  # Cognito (boto3) before the proxy variables: only the API call is under test
    return hook


def test_http_proxy_carries_the_signed_api_request(
    cognito_iam_conn: Any, proxy: tuple[str, list[str]], clean_proxy_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = proxy
    hook = _signed_in_hook()
    monkeypatch.setenv("HTTP_PROXY", url)
    for _ in range(3):
        assert hook.request("GET", "/whoami").status_code == 200  # the signature verifies through it
    hook.close()
    assert [urlsplit(path).path for path in seen] == ["/whoami"] * 3
    assert all(path.startswith(cognito_iam_conn.api_url) for path in seen)


def test_no_proxy_sends_the_api_request_direct(
    cognito_iam_conn: Any, proxy: tuple[str, list[str]], clean_proxy_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, seen = proxy
    hook = _signed_in_hook()
    monkeypatch.setenv("HTTP_PROXY", url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert hook.request("GET", "/whoami").status_code == 200
    hook.close()
    assert seen == []


def test_https_proxy_and_no_proxy_are_resolved_per_host(
    clean_proxy_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "direct.example.com")
    session = EnvironmentOnceSession()

    def proxies(url: str) -> dict[str, str]:
        merged = session.merge_environment_settings(url, {}, None, True, None)
        return dict(merged["proxies"])

    assert proxies("https://abc.execute-api.eu-west-1.amazonaws.com/prod/orders?page=2") == {
        "https": "http://proxy.internal:3128",
        "no": "direct.example.com",
    }
    assert "https" not in proxies("https://direct.example.com/orders")
    # Read once: a change after the first request of an origin is not seen (a task's environment is fixed).
    monkeypatch.setenv("HTTPS_PROXY", "http://other.internal:3128")
    assert proxies("https://abc.execute-api.eu-west-1.amazonaws.com/prod/x")["https"] == "http://proxy.internal:3128"
