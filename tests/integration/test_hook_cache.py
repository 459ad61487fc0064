"""The shared credential cache across task processes: one sign-in, encrypted 0600 files, safe misses."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from airflow_cognito_iam.auth.cache import FileCredentialCache, SharedCredentialCache, clear_memory_cache
from airflow_cognito_iam.auth.credentials import CognitoCredentialProvider
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

pytestmark = pytest.mark.integration

TASK = """
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
hook = CognitoIamHook()
print(hook.request("GET", "/whoami").json()["identity_id"])
"""


@pytest.fixture
def stack(cognito_iam_conn):
    clear_memory_cache()
    yield cognito_iam_conn
    clear_memory_cache()


def cache_dir() -> Path:
    return Path(os.environ["AIRFLOW_COGNITO_IAM_CACHE_DIR"])


def test_two_task_processes_started_together_sign_in_once(stack):
    stack.reset_stats()
    processes = [
        subprocess.Popen([sys.executable, "-c", TASK], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=240) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-2000:]
    identities = {out.strip().splitlines()[-1] for out, _ in outputs}
    assert len(identities) == 1
    calls = stack.stats()["cognito"]
    assert calls["InitiateAuth"] == 1  # one SRP sign-in (InitiateAuth + RespondToAuthChallenge)
    assert calls["GetCredentialsForIdentity"] == 1


def test_cache_file_is_private_and_holds_no_plaintext_secret(stack):
    hook = CognitoIamHook()
    hook.request("GET", "/whoami")
    tokens, creds = hook.get_tokens(), hook.get_credentials()
    files = list(cache_dir().glob("*.bin"))
    assert len(files) == 1
    assert stat.S_IMODE(cache_dir().stat().st_mode) == 0o700
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    blob = files[0].read_bytes()
    for secret in (stack.password, stack.client_secret, stack.username, tokens.id_token, tokens.access_token,
                   tokens.refresh_token, creds.access_key, creds.secret_key, creds.token):
        assert secret
        assert secret.encode() not in blob


def test_corrupt_cache_file_is_a_miss_then_repaired(stack):
    CognitoIamHook().get_credentials()
    [path] = cache_dir().glob("*.bin")
    path.write_bytes(b"gAAAAAB-this-is-not-a-valid-token")
    clear_memory_cache()
    stack.reset_stats()
    hook = CognitoIamHook()
    assert hook.request("GET", "/whoami").status_code == 200
    assert stack.stats()["cognito"]["InitiateAuth"] == 1
    assert FileCredentialCache(hook.settings).load() is not None


def test_entry_written_with_another_password_is_not_used(stack, monkeypatch):
    import json

    CognitoIamHook().get_credentials()
    clear_memory_cache()
    monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(stack.conn_dict(password="Wrong-Passw0rd-1!")))
    ok, _ = CognitoIamHook().test_connection()
    assert not ok
    with pytest.raises(Exception, match=stack.username):
        CognitoIamHook().get_credentials()


def test_expired_cached_credentials_reuse_cached_tokens_instead_of_signing_in(stack):
    stack.set_credential_lifetime(90)
    settings = CognitoIamHook().settings
    CognitoCredentialProvider(settings, cache=SharedCredentialCache(settings)).get_refreshable_credentials()
    clear_memory_cache()  # a later task process
    stack.reset_stats()
    later = CognitoCredentialProvider(
        settings, cache=SharedCredentialCache(settings), time_fetcher=lambda: datetime.now(UTC) + timedelta(seconds=70)
    )
    later.get_refreshable_credentials()
    calls = stack.stats()["cognito"]
    assert "InitiateAuth" not in calls
    assert calls["GetCredentialsForIdentity"] == 1


def test_credential_cache_none_signs_in_every_time(stack, monkeypatch):
    import json

    monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(stack.conn_dict(credential_cache="none")))
    stack.reset_stats()
    CognitoIamHook().get_credentials()
    CognitoIamHook().get_credentials()
    assert stack.stats()["cognito"]["InitiateAuth"] == 2
    assert not list(cache_dir().glob("*.bin"))
