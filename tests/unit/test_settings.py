"""CognitoSettings: validation up front, every problem at once, nothing secret in errors or repr."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_cognito_iam.auth.errors import ConfigurationError
from airflow_cognito_iam.auth.settings import CognitoSettings, is_loopback_host

GOOD_EXTRA = {
    "user_pool_id": "eu-west-1_AbC123xyz",
    "client_id": "1example23456789abcdefghij",
    "client_secret": "client-secret-value",
    "identity_pool_id": "eu-west-1:01234567-89ab-cdef-0123-456789abcdef",
    "totp_secret": "JBSWY3DPEHPK3PXP",
}


def build(extra: dict[str, Any] | None = None, **kwargs: Any) -> CognitoSettings:
    values: dict[str, Any] = {
        "host": "https://abc123defg.execute-api.eu-central-1.amazonaws.com/prod",
        "login": "etl-bot",
        "password": "Sup3r-Secret!",
        "extra": {**GOOD_EXTRA, **(extra or {})},
    }
    values.update(kwargs)
    return CognitoSettings.from_connection(**values)


def problems_of(**kwargs: Any) -> dict[str, str]:
    with pytest.raises(ConfigurationError) as caught:
        build(**kwargs)
    return caught.value.problems


def test_region_is_inferred_from_the_user_pool_id() -> None:
    assert build().region == "eu-west-1"


def test_explicit_region_overrides_the_pool_prefix() -> None:
    assert build({"region": "us-east-2"}).region == "us-east-2"


def test_api_region_is_inferred_from_an_execute_api_host() -> None:
    settings = build()
    assert settings.api_region == "eu-central-1"
    assert settings.signing_region == "eu-central-1"
    assert settings.api_service == "execute-api"


def test_api_region_falls_back_to_the_pool_region_for_a_custom_domain() -> None:
    settings = build(host="https://api.example.com/v1")
    assert settings.api_region is None
    assert settings.signing_region == "eu-west-1"


def test_vpc_endpoint_host_gives_the_api_region() -> None:
    settings = build(host="https://abc-vpce-0123.execute-api.ap-southeast-2.vpce.amazonaws.com/prod")
    assert settings.signing_region == "ap-southeast-2"


def test_host_without_scheme_defaults_to_https_and_keeps_the_port() -> None:
    settings = build(host="api.example.com", port=8443)
    assert settings.api_base_url == "https://api.example.com:8443"
    assert settings.api_host == "api.example.com:8443"


def test_every_missing_field_is_reported_at_once() -> None:
    problems = problems_of(login="", password=None, extra={"user_pool_id": "", "client_id": None})
    assert set(problems) >= {"login", "password", "user_pool_id", "client_id"}


def test_malformed_ids_are_named_with_an_example() -> None:
    problems = problems_of(
        extra={"user_pool_id": "AbC123", "identity_pool_id": "not-a-pool", "custom_role_arn": "role/x"}
    )
    assert "eu-west-1_AbC123xyz" in problems["user_pool_id"]
    assert "<region>:<uuid>" in problems["identity_pool_id"]
    assert "arn:aws:iam" in problems["custom_role_arn"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("auth_flow", "CUSTOM_AUTH"), ("credential_cache", "disk"), ("timeout", "soon"), ("max_attempts", 0)],
)
def test_invalid_enumerations_and_numbers_are_refused(field: str, value: Any) -> None:
    assert field in problems_of(extra={field: value})


def test_plain_http_to_a_remote_host_is_refused_unless_opted_in() -> None:
    assert "host" in problems_of(host="http://api.internal.example:8080")
    assert build(host="http://api.internal.example:8080", extra={"allow_http": "true"}).api_base_url == (
        "http://api.internal.example:8080"
    )


def test_plain_http_to_loopback_is_allowed_for_local_stacks() -> None:
    settings = build(
        host="http://127.0.0.1:9000",
        extra={"cognito_idp_endpoint_url": "http://localhost:4566/", "cognito_identity_endpoint_url": "http://[::1]:1"},
    )
    assert settings.api_base_url == "http://127.0.0.1:9000"
    assert settings.cognito_idp_endpoint_url == "http://localhost:4566"


def test_endpoint_overrides_obey_the_same_http_rule() -> None:
    assert "cognito_idp_endpoint_url" in problems_of(extra={"cognito_idp_endpoint_url": "http://10.0.0.5:4566"})


def test_a_typo_in_an_extra_is_named_with_a_suggestion() -> None:
    problems = problems_of(extra={"identity_pool": "eu-west-1:0123"})
    assert "identity_pool_id" in problems["identity_pool"]


def test_unrelated_unknown_extras_are_ignored() -> None:
    assert build({"owner_team": "data-platform"}).client_id == GOOD_EXTRA["client_id"]


def test_string_booleans_and_numbers_from_the_ui_are_parsed() -> None:
    settings = build({"verify": "false", "timeout": "12.5", "allowed_hosts": "a.example.com, b.example.com"})
    assert settings.verify is False
    assert settings.timeout == 12.5
    assert settings.allowed_hosts == ("a.example.com", "b.example.com")


def test_verify_may_name_a_ca_bundle() -> None:
    assert build({"verify": "/etc/ssl/certs/corp.pem"}).verify == "/etc/ssl/certs/corp.pem"


def test_no_secret_reaches_repr_or_error_messages() -> None:
    settings = build()
    text = repr(settings)
    with pytest.raises(ConfigurationError) as caught:
        build({"auth_flow": "bogus"})
    for secret in ("Sup3r-Secret!", GOOD_EXTRA["client_secret"], GOOD_EXTRA["totp_secret"]):
        assert secret not in text
        assert secret not in str(caught.value)


def test_error_names_the_connection() -> None:
    with pytest.raises(ConfigurationError, match="'my_api'"):
        CognitoSettings.from_connection(host=None, login=None, password=None, extra={}, conn_id="my_api")


def test_provider_name_is_the_identity_pool_logins_key() -> None:
    assert build().provider_name == "cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC123xyz"


def test_provider_name_keeps_the_pool_region_when_region_is_overridden() -> None:
    # The Logins key names the issuer of the ID token, which is the pool's own region.
    assert build({"region": "us-east-1"}).provider_name.startswith("cognito-idp.eu-west-1.amazonaws.com/")


def test_provider_name_uses_the_china_partition_domain() -> None:
    settings = build({"user_pool_id": "cn-north-1_AbC123", "identity_pool_id": "cn-north-1:0123abcd-0000"})
    assert settings.provider_name == "cognito-idp.cn-north-1.amazonaws.com.cn/cn-north-1_AbC123"


def test_cache_key_is_stable_secret_free_and_user_specific() -> None:
    a, b = build(), build(password="another-password")
    other_user = build(login="someone-else")
    assert a.cache_key() == b.cache_key()
    assert a.cache_key() != other_user.cache_key()
    assert "Sup3r-Secret!" not in a.cache_key()


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("10.0.0.1", False),
        ("example.com", False),
        (None, False),
    ],
)
def test_loopback_detection(host: str | None, expected: bool) -> None:
    assert is_loopback_host(host) is expected


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_retry_seconds", "nan"),
        ("max_retry_seconds", float("inf")),
        ("max_attempts", "nan"),
        ("max_attempts", 2.5),
        ("max_attempts", True),
        ("timeout", "inf"),
        ("timeout", True),
        ("timeout", 0),
        ("timeout", [30]),
        ("refresh_margin_seconds", -1),
        ("max_retry_seconds", 10**9),
    ],
)
def test_numbers_must_be_finite_in_range_and_not_booleans(name: str, value: Any) -> None:
    problems = problems_of(extra={name: value})
    assert set(problems) == {name}
    assert " from " in problems[name]
    assert " to " in problems[name]


def test_numeric_strings_are_accepted() -> None:
    settings = build({"timeout": "12.5", "max_attempts": "3", "max_retry_seconds": 7})
    assert (settings.timeout, settings.max_attempts, settings.max_retry_seconds) == (12.5, 3, 7.0)


@pytest.mark.parametrize("extra", [["user_pool_id"], "user_pool_id", 42, True])
def test_extra_that_is_not_an_object_is_a_configuration_error(extra: Any) -> None:
    with pytest.raises(ConfigurationError) as caught:
        CognitoSettings.from_connection(host=None, login="u", password="p", extra=extra)
    assert set(caught.value.problems) == {"extra"}


def test_null_extra_means_no_extras() -> None:
    with pytest.raises(ConfigurationError) as caught:
        CognitoSettings.from_connection(host=None, login="u", password="p", extra=None)
    assert set(caught.value.problems) == {"user_pool_id", "client_id"}


@pytest.mark.parametrize("host", ["https://[::1", "https://api.example.com:99999/x", "https://api.example.com:0/"])
def test_malformed_host_is_a_configuration_error(host: str) -> None:
    assert "host" in problems_of(host=host)


@pytest.mark.parametrize("port", [70000, -1, True])
def test_out_of_range_port_is_refused(port: Any) -> None:
    assert "port" in problems_of(port=port)


def test_port_zero_from_the_ui_means_no_port() -> None:
    assert build(port=0).api_host == "abc123defg.execute-api.eu-central-1.amazonaws.com"


@pytest.mark.parametrize("secret", ["not base32!", "JBSWY3DPEHPK3PX1", "0000"])
def test_totp_secret_must_be_base32(secret: str) -> None:
    assert set(problems_of(extra={"totp_secret": secret})) == {"totp_secret"}


def test_stored_nulls_mean_defaults() -> None:
    settings = build({"auth_flow": None, "credential_cache": None, "timeout": None, "verify": None, "region": None})
    assert (settings.auth_flow, settings.credential_cache, settings.timeout, settings.verify) == (
        "USER_SRP_AUTH",
        "shared",
        30.0,
        True,
    )


def test_client_credentials_needs_no_user_but_a_secret_and_no_identity_pool() -> None:
    extra = {**GOOD_EXTRA, "auth_flow": "CLIENT_CREDENTIALS", "scopes": "orders/read orders/write", "totp_secret": None}
    problems = problems_of(login=None, password=None, extra=extra)
    assert set(problems) == {"identity_pool_id"}
    del extra["identity_pool_id"]
    settings = CognitoSettings.from_connection(host=None, login=None, password=None, extra=extra)
    assert settings.is_machine
    assert settings.scopes == ("orders/read", "orders/write")
    assert "client_secret" in problems_of(login=None, password=None, extra={**extra, "client_secret": None})


def test_scopes_only_with_client_credentials() -> None:
    assert "scopes" in problems_of(extra={"scopes": ["a/b"]})


def test_redis_cache_and_preferred_challenge_are_settings() -> None:
    settings = build({"credential_cache": "redis", "cache_conn_id": "redis_creds", "auth_flow": "USER_AUTH",
                      "preferred_challenge": "PASSWORD"})
    assert (settings.credential_cache, settings.cache_conn_id, settings.preferred_challenge) == (
        "redis", "redis_creds", "PASSWORD")
