"""The Redis cache's pure parts: one sealed format for file and Redis, secret-free per-identity keys,
bounded clients, and a Redis that cannot even be built degrading to the file cache with one warning.

Everything that talks to a Redis server is in tests/integration/test_redis_cache.py.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from redis import Redis

from airflow_cognito_iam.auth.cache import (
    CacheEntry,
    FileCredentialCache,
    SharedCredentialCache,
    cache_for,
    clear_memory_cache,
    derive_fernet_key,
    fresher,
    seal_entry,
    unseal_entry,
    useful_until,
)
from airflow_cognito_iam.auth.models import CognitoTokens, IdentityCredentials
from airflow_cognito_iam.auth.redis_cache import (
    KEY_PREFIX,
    LayeredRedisCache,
    RedisCredentialCache,
    bound_client,
    reset_process_state,
)
from airflow_cognito_iam.auth.settings import CognitoSettings

NOW = datetime.now(UTC).replace(microsecond=0)
PASSWORD = "Corr3ct-Horse-Battery"


def settings(**overrides: object) -> CognitoSettings:
    extra: dict[str, object] = {
        "user_pool_id": "eu-west-1_AbC123",
        "client_id": "client123",
        "client_secret": "client-secret-value",
        "identity_pool_id": "eu-west-1:0123abcd-0000-0000-0000-000000000000",
        "credential_cache": "redis",
    }
    login, password = overrides.pop("login", "alice"), overrides.pop("password", PASSWORD)
    extra.update(overrides)
    return CognitoSettings.from_connection(
        host="https://api.example.com", login=str(login), password=str(password), extra=extra, conn_id="c"
    )


def entry(credentials_for: timedelta = timedelta(hours=1), tokens_for: timedelta = timedelta(hours=1)) -> CacheEntry:
    tokens = CognitoTokens(
        id_token="eyJ.id-token-value.sig",
        access_token="eyJ.access-token-value.sig",
        refresh_token="refresh-token-value",
        expires_at=NOW + tokens_for,
    )
    creds = IdentityCredentials(
        identity_id="eu-west-1:identity",
        access_key_id="ASIAACCESSKEYVALUE",
        secret_access_key="secret-access-key-value",
        session_token="session-token-value",
        expiration=NOW + credentials_for,
    )
    return CacheEntry(tokens, creds, NOW)


@pytest.fixture(autouse=True)
def _fresh_process_state():
    clear_memory_cache()
    reset_process_state()
    yield
    clear_memory_cache()
    reset_process_state()


def test_file_and_redis_share_one_sealed_format(tmp_path: Path):
    file_cache = FileCredentialCache(settings(), tmp_path)
    file_cache.store(entry())
    fernet = Fernet(derive_fernet_key(settings()))
    assert unseal_entry(fernet, settings(), file_cache.path.read_bytes()) == entry()
    file_cache.path.write_bytes(seal_entry(fernet, settings(), entry()))
    assert FileCredentialCache(settings(), tmp_path).load() == entry()


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda blob: blob[: len(blob) // 2], id="truncated"),
        pytest.param(lambda blob: blob[:40] + (b"A" if blob[40:41] != b"A" else b"B") + blob[41:], id="tampered"),
        pytest.param(lambda blob: b"not a fernet token", id="garbage"),
        pytest.param(lambda blob: b"", id="empty"),
    ],
)
def test_a_damaged_blob_unseals_to_nothing(damage: Any):
    fernet = Fernet(derive_fernet_key(settings()))
    assert unseal_entry(fernet, settings(), damage(seal_entry(fernet, settings(), entry()))) is None


def test_a_blob_sealed_for_another_identity_or_key_unseals_to_nothing():
    mine = Fernet(derive_fernet_key(settings()))
    foreign = Fernet(Fernet.generate_key())
    assert unseal_entry(mine, settings(), seal_entry(foreign, settings(), entry())) is None
    # Same secrets, another identity (the sealed cache key differs): not ours either.
    assert unseal_entry(mine, settings(), seal_entry(mine, settings(custom_role_arn="arn:aws:iam::123456789012:role/x"),
                                                     entry())) is None


def test_redis_keys_name_the_identity_and_the_secrets_without_revealing_them():
    client = Redis(port=1)  # never connects: key names are computed locally
    key = RedisCredentialCache(settings(), client).key
    assert key.startswith(KEY_PREFIX)
    for text in ("alice", PASSWORD, "client-secret-value", "client123"):
        assert text not in key
    assert RedisCredentialCache(settings(), client).key == key, "stable across processes"
    others = [
        settings(login="bob"),
        settings(password="Another-Passw0rd!"),
        settings(client_id="client456"),
        settings(identity_pool_id="eu-west-1:ffffffff-0000-0000-0000-000000000000"),
        settings(custom_role_arn="arn:aws:iam::123456789012:role/Reader"),
        settings(cognito_idp_endpoint_url="http://127.0.0.1:4566"),
    ]
    keys = {RedisCredentialCache(other, client).key for other in others}
    assert key not in keys
    assert len(keys) == len(others)


def test_bound_client_caps_socket_timeouts_and_turns_off_redis_py_retries():
    client = bound_client(Redis(port=1), 2.0)
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["socket_timeout"] == 2.0
    assert kwargs["socket_connect_timeout"] == 2.0
    assert client.get_retry().get_retries() == 0
    patient = bound_client(Redis(port=1, socket_timeout=30, socket_connect_timeout=0.5), 2.0)
    assert patient.connection_pool.connection_kwargs["socket_timeout"] == 2.0
    assert patient.connection_pool.connection_kwargs["socket_connect_timeout"] == 0.5


def test_useful_until_is_the_later_of_credential_and_token_expiry():
    assert useful_until(entry(timedelta(minutes=10), timedelta(hours=1))) == NOW + timedelta(hours=1)
    assert useful_until(entry(timedelta(hours=2), timedelta(minutes=5))) == NOW + timedelta(hours=2)
    assert useful_until(CacheEntry()) is None


def test_fresher_prefers_the_later_credentials_and_names_the_layer():
    old, new = entry(timedelta(minutes=10)), entry(timedelta(minutes=50))
    assert fresher((old, "memory"), (new, "redis")) == (new, "redis")
    assert fresher((new, "memory"), (old, "redis")) == (new, "memory")
    assert fresher((None, "memory"), (None, "redis")) == (None, None)


def test_shared_cache_says_which_layer_answered(tmp_path: Path):
    cache = SharedCredentialCache(settings(credential_cache="shared"), tmp_path)
    assert cache.load() is None
    assert cache.last_hit is None
    cache.store(entry())
    assert cache.load() == entry()
    assert cache.last_hit == "memory"
    clear_memory_cache()
    assert cache.load() == entry()
    assert cache.last_hit == "shared"


def test_cache_for_redis_is_layered_and_a_redis_that_cannot_be_built_falls_back_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    monkeypatch.setenv("AIRFLOW_COGNITO_IAM_CACHE_DIR", str(tmp_path))
    calls: list[int] = []

    def no_connection() -> Any:
        calls.append(1)
        raise LookupError("The conn_id `redis_default` isn't defined")

    cache = cache_for(settings(), redis_client=no_connection)
    assert isinstance(cache, LayeredRedisCache)
    caplog.set_level(logging.DEBUG, logger="airflow_cognito_iam.auth.redis_cache")
    with cache.lock():
        assert cache.load() is None
        cache.store(entry())
    clear_memory_cache()
    later = cache_for(settings(), redis_client=no_connection)
    assert isinstance(later, LayeredRedisCache)
    with later.lock():
        assert later.load() == entry()
    assert later.last_hit == "shared"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "redis_default" in warnings[0].getMessage()
    assert "file cache" in warnings[0].getMessage()
    assert len(calls) == 1, "during the outage window the process does not try again"


def test_cache_for_other_modes_are_unchanged():
    assert cache_for(settings(credential_cache="none")) is None
    assert type(cache_for(settings(credential_cache="shared"))).__name__ == "SharedCredentialCache"
    assert type(cache_for(settings(credential_cache="memory"))).__name__ == "MemoryCredentialCache"
