"""Credential caches: encrypted 0600 files readable only with the connection's secrets; misses are safe."""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_cognito_iam.auth.cache import (
    CacheEntry,
    FileCredentialCache,
    MemoryCredentialCache,
    SharedCredentialCache,
    cache_for,
    clear_memory_cache,
    default_cache_dir,
)
from airflow_cognito_iam.auth.models import CognitoTokens, IdentityCredentials
from airflow_cognito_iam.auth.settings import CognitoSettings

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def settings(**overrides: object) -> CognitoSettings:
    extra = {"user_pool_id": "eu-west-1_AbC123", "client_id": "client123", "client_secret": "client-secret-value",
             "identity_pool_id": "eu-west-1:0123abcd-0000-0000-0000-000000000000"}
    login, password = overrides.pop("login", "alice"), overrides.pop("password", "Corr3ct-Horse-Battery")
    extra.update(overrides)  # type: ignore[arg-type]
    return CognitoSettings.from_connection(host="https://api.example.com", login=str(login), password=str(password),
                                           extra=extra, conn_id="cognito_iam_default")


def entry() -> CacheEntry:
    tokens = CognitoTokens(id_token="eyJ.id-token-value.sig", access_token="eyJ.access-token-value.sig",
                           refresh_token="refresh-token-value", expires_at=NOW + timedelta(hours=1),
                           secret_hash_username="sub-123")
    creds = IdentityCredentials(identity_id="eu-west-1:identity", access_key_id="ASIAACCESSKEYVALUE",
                                secret_access_key="secret-access-key-value", session_token="session-token-value",
                                expiration=NOW + timedelta(hours=1))
    return CacheEntry(tokens, creds, NOW)


SECRETS = ("eyJ.id-token-value.sig", "eyJ.access-token-value.sig", "refresh-token-value", "ASIAACCESSKEYVALUE",
           "secret-access-key-value", "session-token-value", "Corr3ct-Horse-Battery", "client-secret-value")


@pytest.fixture(autouse=True)
def _fresh_memory():
    clear_memory_cache()
    yield
    clear_memory_cache()


def test_entry_round_trips_through_the_encrypted_file(tmp_path: Path):
    cache = FileCredentialCache(settings(), tmp_path)
    cache.store(entry())
    assert FileCredentialCache(settings(), tmp_path).load() == entry()


def test_file_is_0600_in_a_0700_directory_and_holds_no_plaintext_secret(tmp_path: Path):
    directory = tmp_path / "cache"
    cache = FileCredentialCache(settings(), directory)
    cache.store(entry())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    blob = cache.path.read_bytes()
    for secret in SECRETS:
        assert secret.encode() not in blob
    assert b"alice" not in blob  # the user name is not in the file name or content either
    assert "alice" not in cache.path.name


def test_a_new_directory_is_0700_whatever_the_umask(tmp_path: Path):
    old = os.umask(0o022)
    try:
        FileCredentialCache(settings(), tmp_path / "new" / "cache").store(entry())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new" / "cache").stat().st_mode) == 0o700


def test_an_existing_directory_is_never_chmodded(tmp_path: Path):
    # e.g. a shared 1777 directory used as cache dir by root: it must keep its sticky bit.
    directory = tmp_path / "shared"
    directory.mkdir()
    os.chmod(directory, 0o1777)
    cache = FileCredentialCache(settings(), directory)
    cache.store(entry())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o1777
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600
    assert cache.load() is not None


def test_a_planted_lock_symlink_is_not_followed(tmp_path: Path):
    directory = tmp_path / "cache"
    cache = FileCredentialCache(settings(), directory)
    cache.store(entry())
    target = tmp_path / "victim-file"
    cache._lock_path.symlink_to(target)
    with cache.lock():
        cache.store(entry())
    assert not target.exists(), "the lock must not create the file a symlink points to"
    assert cache.load() is not None


def test_a_planted_entry_symlink_is_not_read(tmp_path: Path):
    directory = tmp_path / "cache"
    writer = FileCredentialCache(settings(), tmp_path / "elsewhere")
    writer.store(entry())
    cache = FileCredentialCache(settings(), directory)
    directory.mkdir(mode=0o700)
    cache.path.symlink_to(writer.path)  # a valid entry, but reached through a link
    assert cache.load() is None


def test_a_directory_owned_by_someone_else_is_refused(tmp_path: Path, caplog):
    if os.getuid() != 0:
        pytest.skip("needs root to give the directory to another user")
    directory = tmp_path / "theirs"
    directory.mkdir(mode=0o777)
    os.chown(directory, 65534, 65534)
    cache = FileCredentialCache(settings(), directory)
    cache.store(entry())
    with cache.lock():
        pass
    assert cache.load() is None
    assert list(directory.iterdir()) == []
    assert "owned by uid 65534" in caplog.text


def test_another_password_cannot_read_the_entry(tmp_path: Path):
    FileCredentialCache(settings(), tmp_path).store(entry())
    assert FileCredentialCache(settings(password="Another-Passw0rd"), tmp_path).load() is None
    assert FileCredentialCache(settings(client_secret="other-client-secret"), tmp_path).load() is None


def test_corrupt_or_truncated_file_is_a_miss(tmp_path: Path):
    cache = FileCredentialCache(settings(), tmp_path)
    cache.store(entry())
    blob = cache.path.read_bytes()
    cache.path.write_bytes(blob[: len(blob) // 2])
    assert cache.load() is None
    cache.path.write_bytes(b"not even base64 \x00\xff")
    assert cache.load() is None
    cache.store(entry())  # a miss is followed by a normal write that repairs the entry
    assert cache.load() == entry()


def test_entry_copied_to_another_connections_file_is_a_miss(tmp_path: Path):
    mine = FileCredentialCache(settings(), tmp_path)
    mine.store(entry())
    other = FileCredentialCache(settings(login="bob"), tmp_path)
    other.path.write_bytes(mine.path.read_bytes())
    assert other.load() is None


def test_unusable_directory_only_costs_a_miss(tmp_path: Path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")  # fails for root too, unlike a chmod
    cache = FileCredentialCache(settings(), blocker / "sub")
    cache.store(entry())  # logs a warning, does not raise
    assert cache.load() is None
    with cache.lock():  # and the lock degrades to no lock rather than failing the task
        pass


def test_memory_cache_is_shared_by_equal_settings_only():
    MemoryCredentialCache(settings()).store(entry())
    assert MemoryCredentialCache(settings()).load() == entry()
    assert MemoryCredentialCache(settings(password="Another-Passw0rd")).load() is None
    assert MemoryCredentialCache(settings(login="bob")).load() is None


def test_shared_cache_prefers_the_entry_that_lives_longer(tmp_path: Path):
    shared = SharedCredentialCache(settings(), tmp_path)
    old = entry()
    assert old.credentials is not None
    newer = dataclasses.replace(
        old, credentials=dataclasses.replace(old.credentials, expiration=NOW + timedelta(hours=2))
    )
    shared.memory.store(old)
    shared.file.store(newer)  # another process refreshed meanwhile
    assert shared.load() == newer


def test_file_lock_serialises_threads_of_different_cache_objects(tmp_path: Path):
    inside, overlaps = [], []

    def work() -> None:
        with FileCredentialCache(settings(), tmp_path).lock():
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(1)
            threading.Event().wait(0.01)
            inside.pop()

    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not overlaps


def test_cache_for_follows_the_credential_cache_extra():
    assert cache_for(settings(credential_cache="none")) is None
    assert isinstance(cache_for(settings(credential_cache="memory")), MemoryCredentialCache)
    assert isinstance(cache_for(settings()), SharedCredentialCache)


def test_default_directory_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("AIRFLOW_COGNITO_IAM_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("AIRFLOW_COGNITO_IAM_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "airflow-cognito-iam"


def test_repr_of_entry_shows_no_secret():
    text = repr(entry())
    for secret in SECRETS:
        assert secret not in text
