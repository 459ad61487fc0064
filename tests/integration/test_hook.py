"""CognitoIamHook against the devstack: sign-in, exchange, refresh, retries, refusals and secrecy."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime, timedelta

import pytest

from airflow_cognito_iam.auth.cache import clear_memory_cache
from airflow_cognito_iam.auth.credentials import CognitoCredentialProvider
from airflow_cognito_iam.auth.errors import ApiRefusalError, ConfigurationError, TransientError
from airflow_cognito_iam.auth.retry import RetryPolicy
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

pytestmark = pytest.mark.integration

FAST = RetryPolicy(max_attempts=4, max_seconds=20, initial=0.01, cap=0.05)


@pytest.fixture
def stack(cognito_iam_conn):
    clear_memory_cache()
    yield cognito_iam_conn
    clear_memory_cache()


def cognito_calls(stack) -> dict[str, int]:
    return dict(stack.stats()["cognito"])


def set_conn(monkeypatch, stack, conn_id: str = "cognito_iam_default", **overrides) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(stack.conn_dict(**overrides)))


class Clock:
    """Real time plus an offset the test moves forward, so nothing sleeps."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def test_hook_signs_in_exchanges_and_calls_the_api(stack):
    hook = CognitoIamHook()
    whoami = hook.request("GET", "/whoami").json()
    creds = hook.get_credentials()
    assert whoami["access_key_id"] == creds.access_key
    assert whoami["identity_id"] == creds.identity_id
    assert hook.get_tokens().id_token.count(".") == 2
    assert hook.get_conn() is hook.get_session()


def test_second_hook_for_the_same_connection_makes_no_cognito_call(stack):
    CognitoIamHook().request("GET", "/whoami")
    stack.reset_stats()
    second = CognitoIamHook()
    assert second.request("GET", "/whoami").status_code == 200
    assert cognito_calls(stack) == {}


def test_new_process_with_the_shared_file_cache_makes_no_cognito_call(stack):
    first = CognitoIamHook()
    first.request("GET", "/whoami")
    clear_memory_cache()  # what a new task process starts with
    stack.reset_stats()
    assert CognitoIamHook().request("GET", "/whoami").status_code == 200
    assert cognito_calls(stack) == {}


def test_credentials_are_refreshed_near_expiry_without_a_new_sign_in(stack):
    stack.set_credential_lifetime(90)  # moto's real lifetime: a 30 s refresh window, not 5 min
    clock = Clock()
    hook = CognitoIamHook()
    provider = CognitoCredentialProvider(hook.settings, time_fetcher=clock)
    creds = provider.get_refreshable_credentials()
    first = creds.get_frozen_credentials().access_key
    stack.reset_stats()
    clock.offset = timedelta(seconds=50)  # 40 s left: outside the window, reused
    assert creds.get_frozen_credentials().access_key == first
    assert cognito_calls(stack) == {}
    clock.offset = timedelta(seconds=75)  # 15 s left: inside the mandatory window
    assert creds.get_frozen_credentials().access_key != first
    assert cognito_calls(stack) == {"GetCredentialsForIdentity": 1}


def test_concurrent_callers_trigger_one_refresh(stack):
    stack.set_credential_lifetime(90)
    clock = Clock()
    provider = CognitoCredentialProvider(CognitoIamHook().settings, time_fetcher=clock)
    creds = provider.get_refreshable_credentials()
    stack.reset_stats()
    clock.offset = timedelta(seconds=80)
    start, keys = threading.Barrier(8), []

    def call() -> None:
        start.wait(timeout=30)
        keys.append(creds.get_frozen_credentials().access_key)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(set(keys)) == 1
    assert len(keys) == 8
    assert cognito_calls(stack) == {"GetCredentialsForIdentity": 1}


def test_two_hooks_refreshing_together_in_one_process_share_one_refresh(stack):
    stack.set_credential_lifetime(90)
    clock = Clock()
    settings = CognitoIamHook().settings
    providers = [CognitoCredentialProvider(settings, time_fetcher=clock, cache=_memory(settings)) for _ in range(4)]
    creds = [p.get_refreshable_credentials() for p in providers]
    stack.reset_stats()
    clock.offset = timedelta(seconds=80)
    threads = [threading.Thread(target=c.get_frozen_credentials) for c in creds]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert cognito_calls(stack) == {"GetCredentialsForIdentity": 1}


def _memory(settings):
    from airflow_cognito_iam.auth.cache import MemoryCredentialCache

    return MemoryCredentialCache(settings)


def test_expired_token_answer_refreshes_once_and_succeeds(stack):
    hook = CognitoIamHook()
    hook.request("GET", "/whoami")
    stack.expire_credentials()
    stack.reset_stats()
    assert hook.request("GET", "/whoami").status_code == 200
    assert cognito_calls(stack) == {"GetCredentialsForIdentity": 1}
    assert stack.stats()["api"]["routes"]["GET /whoami"] == {"403": 1, "200": 1}


def test_not_authorized_names_the_role_and_action(stack):
    hook = CognitoIamHook()
    with pytest.raises(ApiRefusalError) as info:
        hook.request("GET", "/admin/users")
    assert info.value.status_code == 403
    assert "Cognito_DevstackAuth_Role" in str(info.value)
    assert "execute-api:Invoke" in str(info.value)
    assert stack.stats()["api"]["routes"]["GET /admin/*"] == {"403": 1}  # not retried


def test_not_found_is_a_refusal_and_check_response_false_returns_it(stack):
    hook = CognitoIamHook()
    with pytest.raises(ApiRefusalError) as info:
        hook.request("GET", "/no-such-route")
    assert info.value.status_code == 404
    assert hook.request("GET", "/no-such-route", check_response=False).status_code == 404


def test_transient_503_and_429_are_retried(stack):
    hook = CognitoIamHook(retry_policy=FAST)
    stack.set_faults("503", count=2)
    assert hook.request("GET", "/whoami").status_code == 200
    stack.set_faults("429", count=1, retry_after=0.1)
    assert hook.request("GET", "/whoami").status_code == 200
    statuses = stack.stats()["api"]["routes"]["GET /whoami"]
    assert statuses == {"503": 2, "429": 1, "200": 2}


def test_retries_are_bounded_and_end_in_a_transient_error(stack):
    hook = CognitoIamHook(retry_policy=FAST)
    stack.set_faults("503")
    with pytest.raises(TransientError, match="4 attempt"):
        hook.request("GET", "/whoami")
    assert stack.stats()["api"]["routes"]["GET /whoami"] == {"503": 4}


def test_post_is_not_repeated_after_a_503_unless_allowed(stack):
    hook = CognitoIamHook(retry_policy=FAST)
    stack.set_faults("503", count=1)
    with pytest.raises(TransientError):
        hook.request("POST", "/jobs", json={"kind": "export"})
    assert stack.stats()["api"]["routes"]["POST /jobs"] == {"503": 1}
    stack.set_faults("503", count=1)
    response = hook.request("POST", "/jobs", json={"kind": "export"}, retry_non_idempotent=True)
    assert "job_id" in response.json()


def test_connection_reset_is_retried(stack):
    hook = CognitoIamHook(retry_policy=FAST)
    stack.set_faults("reset", count=1)
    assert hook.request("GET", "/whoami").status_code == 200


def test_stream_true_is_passed_through(stack):
    hook = CognitoIamHook()
    response = hook.request("GET", "/export", params={"size_mb": 1}, stream=True)
    received = sum(len(chunk) for chunk in response.iter_content(65536))
    assert received >= 1024 * 1024


def test_test_connection_reports_user_and_identity(stack):
    ok, message = CognitoIamHook().test_connection()
    assert ok, message
    assert message.startswith(f"Signed in as {stack.username}; identity {stack.region}:")


def test_test_connection_with_a_wrong_password_fails_without_revealing_it(stack, monkeypatch):
    wrong = "Wrong-Passw0rd-123!"
    set_conn(monkeypatch, stack, "cognito_iam_wrong", password=wrong)
    ok, message = CognitoIamHook("cognito_iam_wrong").test_connection()
    assert not ok
    assert stack.username in message
    assert stack.user_pool_id in message
    assert wrong not in message
    assert stack.client_secret not in message


def test_wrong_password_is_refused_even_when_good_credentials_are_cached(stack, monkeypatch):
    CognitoIamHook().get_credentials()  # the right password fills the caches
    set_conn(monkeypatch, stack, "cognito_iam_wrong", password="Wrong-Passw0rd-123!")
    ok, _ = CognitoIamHook("cognito_iam_wrong").test_connection()
    assert not ok
    with pytest.raises(Exception, match=stack.username):
        CognitoIamHook("cognito_iam_wrong").get_credentials()


def test_bad_connection_names_fields_and_conn_id_before_any_call(stack, monkeypatch):
    set_conn(monkeypatch, stack, "cognito_iam_bad", client_id=None, user_pool_id="not-a-pool")
    stack.reset_stats()
    with pytest.raises(ConfigurationError) as info:
        CognitoIamHook("cognito_iam_bad").get_credentials()
    text = str(info.value)
    assert "client_id" in text
    assert "user_pool_id" in text
    assert "cognito_iam_bad" in text
    assert cognito_calls(stack) == {}
    ok, message = CognitoIamHook("cognito_iam_bad").test_connection()
    assert not ok
    assert "client_id" in message


def test_unknown_mode_is_a_configuration_error(stack):
    with pytest.raises(ConfigurationError, match="mode"):
        CognitoIamHook().get_auth(mode="basic")  # type: ignore[arg-type]


def test_boto3_session_acts_as_the_cognito_identity(stack):
    hook = CognitoIamHook()
    session = hook.get_boto3_session()
    assert session.get_credentials().get_frozen_credentials().access_key == hook.get_credentials().access_key
    assert session.region_name == hook.settings.signing_region


def test_boto3_session_calls_at_debug_level_do_not_log_the_session_token(stack, caplog):
    # botocore.auth logs the canonical request and botocore.endpoint the sent headers at DEBUG,
    # both with X-Amz-Security-Token; a task reusing cached credentials built no Cognito client.
    CognitoIamHook().get_credentials()  # warm the cache as an earlier task would
    hook = CognitoIamHook()
    caplog.set_level(logging.DEBUG)
    s3 = hook.get_boto3_session().client("s3", endpoint_url=stack.moto_endpoint_url)
    listed = s3.list_objects_v2(Bucket=stack.bucket)
    creds = hook.get_credentials()
    assert listed["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert any(r.name == "botocore.auth" for r in caplog.records)  # botocore did log the signing
    assert creds.token not in caplog.text
    assert creds.secret_key not in caplog.text


def test_no_secret_reaches_logs_or_exception_text(stack, monkeypatch, caplog):
    # Everything at INFO (what a task logs by default) and our own loggers at DEBUG. botocore's own
    # DEBUG dumps raw responses; that is what mask_secret on every received token is for.
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="airflow_cognito_iam")
    hook = CognitoIamHook(retry_policy=FAST)
    hook.request("GET", "/orders", params={"date": "2024-01-02", "limit": 3})
    stack.set_faults("503", count=1)
    hook.request("GET", "/whoami")
    stack.expire_credentials()
    hook.request("GET", "/whoami")
    with pytest.raises(ApiRefusalError) as refused:
        hook.request("GET", "/admin/x")
    errors = [str(refused.value)]
    set_conn(monkeypatch, stack, "cognito_iam_wrong", password="Wrong-Passw0rd-123!")
    errors.append(CognitoIamHook("cognito_iam_wrong").test_connection()[1])
    tokens, creds = hook.get_tokens(), hook.get_credentials()
    secrets = [stack.password, stack.client_secret, "Wrong-Passw0rd-123!", tokens.id_token, tokens.access_token,
               tokens.refresh_token, creds.secret_key, creds.token, creds.access_key]
    text = caplog.text + "\n".join(errors) + repr(hook.settings) + repr(tokens) + repr(creds) + repr(hook.get_auth())
    for secret in secrets:
        assert secret
        assert secret not in text
    assert "GET /orders?date&limit -> 200" in caplog.text  # query names only, never values


def test_every_secret_is_registered_with_airflows_masker(stack):
    from airflow.sdk.log import redact

    hook = CognitoIamHook()
    hook.request("GET", "/whoami")
    tokens, creds = hook.get_tokens(), hook.get_credentials()
    for secret in (stack.password, stack.client_secret, tokens.id_token, tokens.access_token, tokens.refresh_token,
                   creds.secret_key, creds.token):
        assert secret not in str(redact(f"task printed {secret} by mistake"))


def test_forced_token_refresh_uses_the_refresh_token_not_a_sign_in(stack):
    hook = CognitoIamHook()
    hook.get_tokens()
    stack.reset_stats()
    hook.provider.force_refresh_tokens()  # what request() does when an authorizer says 401 expired
    assert cognito_calls(stack) == {"GetTokensFromRefreshToken": 1}  # no SRP challenge round
    assert hook.request("GET", "/bearer/whoami", mode="id_token").json()["username"] == stack.username


def test_cognito_throttling_during_a_request_is_not_retried_again_by_the_api_policy(stack, monkeypatch):
    # Bearer mode fetches tokens inside the request. The sign-in has its own retry budget
    # (max_attempts=2 here); repeating the whole request on top would multiply Cognito calls.
    set_conn(monkeypatch, stack, max_attempts=2, max_retry_seconds=5)
    stack.set_cognito_faults(count=None, actions=["InitiateAuth"])
    hook = CognitoIamHook(retry_policy=FAST)
    with pytest.raises(TransientError, match="InitiateAuth"):
        hook.request("GET", "/whoami", mode="id_token")
    assert cognito_calls(stack) == {"InitiateAuth": 2}
