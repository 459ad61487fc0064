"""CognitoSigV4Auth signs what botocore's SigV4Auth (the reference) would verify, for awkward URLs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import ReadOnlyCredentials, RefreshableCredentials

from airflow_cognito_iam.auth.errors import HostNotAllowedError
from airflow_cognito_iam.auth.signing import (
    BearerTokenAuth,
    CognitoSigV4Auth,
    canonical_netloc,
    canonicalize_url,
    host_allowed,
)

ACCESS_KEY = "ASIAEXAMPLEKEY000001"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN+/=="
_AUTH = re.compile(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                   r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})")


def refreshable(expiry: datetime | None = None) -> RefreshableCredentials:
    expiry = expiry or datetime.now(UTC) + timedelta(hours=1)
    return RefreshableCredentials(
        ACCESS_KEY, SECRET_KEY, TOKEN, expiry, refresh_using=lambda: {}, method="test",
        time_fetcher=lambda: datetime.now(UTC),
    )


def botocore_accepts(prepared: requests.PreparedRequest, secret_key: str = SECRET_KEY) -> bool:
    """Server-side check: re-derive the signature from what goes on the wire, with botocore."""
    match = _AUTH.fullmatch(prepared.headers["Authorization"])
    assert match, prepared.headers["Authorization"]
    access_key, _date, region, service, signed, signature = match.groups()
    wire = urlsplit(str(prepared.url))
    target = wire.path + (f"?{wire.query}" if wire.query else "")
    host = prepared.headers.get("Host") or canonical_netloc(str(prepared.url))
    headers = {"host": host}
    for name in signed.split(";"):
        if name != "host":
            headers[name] = prepared.headers[name]
    request = AWSRequest(method=prepared.method, url=f"http://{host}{target}", headers=headers,
                         data=prepared.body or b"")
    request.context["timestamp"] = prepared.headers["X-Amz-Date"]
    signer = SigV4Auth(ReadOnlyCredentials(access_key, secret_key, headers.get("x-amz-security-token")),
                       service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return bool(expected == signature)


def sign(url: str, method: str = "GET", params: object = None, body: object = None,
         auth: requests.auth.AuthBase | None = None) -> requests.PreparedRequest:
    auth = auth or CognitoSigV4Auth(refreshable(), "eu-west-1", "execute-api", ["api.example.com:8443"])
    prepared = requests.Session().prepare_request(
        requests.Request(method, url, params=params, data=body, auth=auth)  # type: ignore[arg-type]
    )
    return prepared


AWKWARD = [
    ("/orders", {"date": "2024-01-02", "limit": "10"}),
    ("/a b/c", {"q": "hello world"}),
    ("/ünï/cödé", {"name": "Zoë", "city": "東京"}),
    ("/plus+sign", {"expr": "1+1=2"}),
    ("/tilde~x/eq=y", {"t": "~a~", "e": "a=b"}),
    ("/semi;colon/path", {"s": "a;b"}),
    ("/matrix;v=1", {}),
    ("/reserved", {"r": "!*'()@:$,/?#[]&", "pct": "100%"}),
    ("/repeat", [("k", "b"), ("k", "a"), ("a", "2"), ("a", "1"), ("k", "a")]),
    ("/empty", [("flag", ""), ("z", "")]),
    ("/dots/./x/../y", {"x": "."}),
    ("/encoded%2Fslash", {}),
]


@pytest.mark.parametrize(("path", "params"), AWKWARD)
def test_signature_verifies_with_botocore_for_awkward_paths_and_queries(path, params):
    prepared = sign(f"https://api.example.com:8443{path}", params=params)
    assert botocore_accepts(prepared)


@pytest.mark.parametrize(("path", "params"), AWKWARD)
def test_canonical_url_keeps_the_values_the_caller_meant(path, params):
    original = requests.Request("GET", f"https://api.example.com:8443{path}", params=params).prepare()
    prepared = sign(f"https://api.example.com:8443{path}", params=params)
    sent, meant = urlsplit(str(prepared.url)), urlsplit(str(original.url))
    assert parse_qsl(sent.query, keep_blank_values=True) == parse_qsl(meant.query, keep_blank_values=True)
    assert unquote(sent.path) == unquote(meant.path)


def test_non_default_port_is_in_the_signed_host_and_default_port_is_not():
    assert sign("https://api.example.com:8443/x").headers["Host"] == "api.example.com:8443"
    auth = CognitoSigV4Auth(refreshable(), "eu-west-1", allowed_hosts=["api.example.com"])
    prepared = sign("https://API.example.com:443/x", auth=auth)
    assert prepared.headers["Host"] == "api.example.com"
    assert botocore_accepts(prepared)


def test_session_token_is_sent_and_signed():
    prepared = sign("https://api.example.com:8443/x")
    assert prepared.headers["X-Amz-Security-Token"] == TOKEN
    assert "x-amz-security-token" in _AUTH.fullmatch(prepared.headers["Authorization"]).group(5).split(";")


def test_post_body_is_signed():
    prepared = sign("https://api.example.com:8443/jobs", method="POST", body='{"name": "Zoë"}')
    assert botocore_accepts(prepared)


def test_a_wrong_secret_is_rejected_by_the_reference():
    prepared = sign("https://api.example.com:8443/x", params={"a": "b"})
    assert not botocore_accepts(prepared, secret_key="not-the-secret")


def test_resigning_a_retried_request_replaces_the_old_signature():
    auth = CognitoSigV4Auth(refreshable(), "eu-west-1", allowed_hosts=["api.example.com:8443"])
    prepared = sign("https://api.example.com:8443/x?a=1", auth=auth)
    again = auth(prepared.copy())
    assert botocore_accepts(again)


def test_signing_for_another_host_is_refused():
    with pytest.raises(HostNotAllowedError, match=r"evil\.example\.net"):
        sign("https://evil.example.net/steal")
    with pytest.raises(HostNotAllowedError):
        sign("https://api.example.com:9999/x")  # same name, other port: another service


def test_host_allowed_matches_host_with_or_without_port():
    assert host_allowed("https://api.example.com/x", ["api.example.com"])
    assert host_allowed("http://127.0.0.1:8080/x", ["http://127.0.0.1:8080"])
    assert not host_allowed("http://127.0.0.1:8080/x", ["127.0.0.1"])  # a bare host means the default port
    assert host_allowed("http://127.0.0.1/x", ["127.0.0.1"])
    assert not host_allowed("http://127.0.0.1:8081/x", ["127.0.0.1:8080"])


def test_host_allowed_treats_an_explicit_default_port_as_the_same_host():
    # A connection host typed as https://abc.execute-api...:443/prod must not refuse its own requests.
    assert host_allowed("https://abc.example.com/prod/x", ["abc.example.com:443"])
    assert host_allowed("https://abc.example.com:443/prod/x", ["abc.example.com"])
    assert host_allowed("https://ABC.example.com/x", ["abc.EXAMPLE.com:443"])
    assert not host_allowed("https://abc.example.com:8443/x", ["abc.example.com:443"])
    assert not host_allowed("http://abc.example.com/x", ["abc.example.com:443"])
    assert not host_allowed("https://abc.example.com/x", ["abc.example.com:notaport"])
    assert host_allowed("http://[::1]:8080/x", ["[::1]:8080"])


def test_canonicalize_url_encodes_space_as_percent_20_and_plus_as_2b():
    assert canonicalize_url("http://h/a b/c+d?x=a+b&y=a%2Bb&z") == "http://h/a%20b/c%2Bd?x=a%20b&y=a%2Bb&z"


def test_signed_headers_do_not_follow_a_redirect():
    prepared = sign("https://api.example.com:8443/x")
    response = requests.Response()
    response.status_code = 302
    response.headers["Location"] = "https://elsewhere.example.org/"
    response.request = prepared
    for hook in prepared.hooks["response"]:
        hook(response)
    assert "X-Amz-Security-Token" not in prepared.headers
    assert "Authorization" not in prepared.headers


def test_refreshed_credentials_are_used_for_the_next_request():
    calls = []

    def refresh() -> dict[str, str]:
        calls.append(1)
        return {"access_key": "ASIANEWKEY", "secret_key": "new-secret", "token": "new-token",
                "expiry_time": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}

    creds = RefreshableCredentials(ACCESS_KEY, SECRET_KEY, TOKEN, datetime.now(UTC) + timedelta(seconds=5),
                                   refresh, "test", time_fetcher=lambda: datetime.now(UTC))
    auth = CognitoSigV4Auth(creds, "eu-west-1", allowed_hosts=["api.example.com"])
    prepared = sign("https://api.example.com/x", auth=auth)
    assert calls == [1]
    assert prepared.headers["X-Amz-Security-Token"] == "new-token"
    assert botocore_accepts(prepared, secret_key="new-secret")


def test_bearer_auth_sends_the_raw_token_or_a_scheme():
    prepared = sign("https://api.example.com/x", auth=BearerTokenAuth(lambda: "tok.en.jwt"))
    assert prepared.headers["Authorization"] == "tok.en.jwt"
    prepared = sign("https://api.example.com/x", auth=BearerTokenAuth(lambda: "tok", scheme="Bearer"))
    assert prepared.headers["Authorization"] == "Bearer tok"
    with pytest.raises(HostNotAllowedError):
        sign("https://evil.example.net/", auth=BearerTokenAuth(lambda: "tok", allowed_hosts=["api.example.com"]))


def test_repr_shows_no_credentials():
    auth = CognitoSigV4Auth(refreshable(), "eu-west-1", allowed_hosts=["api.example.com"])
    for secret in (SECRET_KEY, ACCESS_KEY, TOKEN):
        assert secret not in repr(auth)


def test_signed_header_whitespace_is_trimmed_as_botocore_does():
    auth = CognitoSigV4Auth(refreshable(), "eu-west-1", allowed_hosts=["api.example.com"])
    prepared = requests.Session().prepare_request(requests.Request(
        "GET", "https://api.example.com/x", headers={"X-Amz-Meta-Note": 'a  "b   c"   d'}, auth=auth))
    assert "x-amz-meta-note" in prepared.headers["Authorization"]
    assert botocore_accepts(prepared)


def test_signing_across_midnight_rescopes_the_key_to_the_new_date(monkeypatch: pytest.MonkeyPatch) -> None:
    # The date string is cached per second and the signing key per scope date: both must move at midnight.
    from airflow_cognito_iam.auth import sigv4

    auth = CognitoSigV4Auth(refreshable(), "eu-west-1", "execute-api", ["api.example.com:8443"])
    for moment in ("2026-11-26T23:59:59", "2026-11-27T00:00:01"):
        now = datetime.fromisoformat(moment).replace(tzinfo=UTC).timestamp()
        monkeypatch.setattr(sigv4.time, "time", lambda now=now: now)
        prepared = sign("https://api.example.com:8443/orders", params={"date": "x"}, auth=auth)
        match = _AUTH.fullmatch(prepared.headers["Authorization"])
        assert match
        assert prepared.headers["X-Amz-Date"] == moment.replace("-", "").replace(":", "") + "Z"
        assert match.group(2) == prepared.headers["X-Amz-Date"][:8]
        assert botocore_accepts(prepared)
