"""CognitoIamHook: a ``cognito_iam`` connection → signed, retried requests to an IAM-protected API.

Thin on purpose: sign-in, exchange, refresh, caching, signing, origin pinning and the request
rules (retries, replayed bodies, redirects, deadlines) live in ``airflow_cognito_iam.auth`` (no
Airflow there); this class reads the Connection, masks secrets, and wires the pieces together for
operators, sensors and users' own tasks.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import botocore.session
import requests
from airflow.sdk import BaseHook
from botocore.credentials import CredentialProvider, RefreshableCredentials

from airflow_cognito_iam import metrics as airflow_metrics
from airflow_cognito_iam.auth.cache import cache_for
from airflow_cognito_iam.auth.cognito_client import redact_botocore_debug_logs
from airflow_cognito_iam.auth.credentials import CognitoCredentialProvider, FrozenCredentials
from airflow_cognito_iam.auth.deadline import DeadlineHTTPAdapter
from airflow_cognito_iam.auth.errors import CognitoIamError, ConfigurationError
from airflow_cognito_iam.auth.models import CognitoTokens
from airflow_cognito_iam.auth.origins import OriginPin
from airflow_cognito_iam.auth.retry import RetryPolicy, describe_exception
from airflow_cognito_iam.auth.sessions import EnvironmentOnceSession
from airflow_cognito_iam.auth.settings import CognitoSettings
from airflow_cognito_iam.auth.signing import BearerTokenAuth, CognitoSigV4Auth
from airflow_cognito_iam.auth.transport import AUTH_MODES, ApiTransport, AuthMode
from airflow_cognito_iam.hooks.connection_test import ConnValues, changes_note, connection_under_test

if TYPE_CHECKING:
    from airflow.sdk import Connection

    from airflow_cognito_iam.auth.async_transport import AsyncApiTransport

log = logging.getLogger(__name__)

airflow_metrics.install()

__all__ = ["AuthMode", "CognitoIamHook"]

_SECRET_EXTRAS = ("client_secret", "totp_secret")
_CREDENTIAL = re.compile(r"Credential=(?P<key>[A-Z0-9]+)/")


def _mask(value: str | None) -> None:
    """Register a secret with Airflow's masker; never fails (outside a task there is no supervisor).

    Under ``airflow dags test`` the "supervisor" is this very process, and its comms log every
    message at DEBUG, ``MaskSecret(value=...)`` included: there the value is only added to this
    process's masker, so tokens and AWS keys do not reach that DEBUG line.
    """
    if not value:
        return
    try:
        from airflow.sdk.execution_time import task_runner

        if type(getattr(task_runner, "SUPERVISOR_COMMS", None)).__name__ == "InProcessSupervisorComms":
            from airflow.sdk._shared.secrets_masker import _secrets_masker

            _secrets_masker().add_mask(value)
            return
        from airflow.sdk.log import mask_secret

        mask_secret(value)
    except Exception:
        log.debug("mask_secret unavailable")


class _StaticProvider(CredentialProvider):
    """Puts our refreshing credentials first in a botocore session's resolver chain."""

    METHOD = "cognito-iam"
    CANONICAL_NAME = "CognitoIam"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


class CognitoIamHook(BaseHook):
    """Calls APIs behind API Gateway (AWS_IAM) as a Cognito user: sign-in → identity pool → SigV4.

    :param cognito_iam_conn_id: the ``cognito_iam`` connection.
    :param allowed_hosts: extra ``host[:port]`` names signed requests may go to, besides the
        connection's host and its ``allowed_hosts`` extra.
    :param retry_policy: overrides the connection's ``max_attempts``/``max_retry_seconds``.
    :param connection: the Connection, already fetched (the triggerer fetches it with
        ``aget_connection`` rather than block its event loop).
    """

    conn_name_attr = "cognito_iam_conn_id"
    default_conn_name = "cognito_iam_default"
    conn_type = "cognito_iam"
    hook_name = "Amazon Cognito IAM"

    def __init__(
        self,
        cognito_iam_conn_id: str = default_conn_name,
        *,
        allowed_hosts: Iterable[str] = (),
        retry_policy: RetryPolicy | None = None,
        connection: Connection | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cognito_iam_conn_id = cognito_iam_conn_id
        self._connection = connection
        self._extra_hosts = tuple(allowed_hosts)
        self._retry_policy = retry_policy
        self._sessions: dict[tuple[str, int], requests.Session] = {}

    # -- configuration ----------------------------------------------------------------------

    @cached_property
    def settings(self) -> CognitoSettings:
        """The validated connection (built once); ConfigurationError names every bad field."""
        conn = self._connection or self.get_connection(self.cognito_iam_conn_id)
        _mask(conn.password)
        extra = _parse_extra(conn.extra, self.cognito_iam_conn_id)
        if isinstance(extra, dict):
            extra = {**_deployment_defaults(), **extra}
            for name in _SECRET_EXTRAS:
                value = extra.get(name)
                if isinstance(value, str):
                    _mask(value)
        return CognitoSettings.from_connection(
            host=conn.host,
            login=conn.login,
            password=conn.password,
            extra=extra,
            port=conn.port,
            conn_id=self.cognito_iam_conn_id,
        )

    @cached_property
    def provider(self) -> CognitoCredentialProvider:
        """The credential provider; shares cached credentials with other hooks of this connection."""
        cache = cache_for(self.settings, redis_client=self._redis_client)
        return CognitoCredentialProvider(self.settings, cache=cache, on_secret=_mask)

    def _redis_client(self) -> Any:
        """The client of the ``cache_conn_id`` Redis connection (apache-airflow-providers-redis).

        Called by the Redis cache on first use; whatever it raises (no such connection, provider
        not installed) makes the cache fall back to the host's file cache with one warning.
        """
        from airflow.providers.redis.hooks.redis import RedisHook

        return RedisHook(redis_conn_id=self.settings.cache_conn_id).get_conn()  # type: ignore[no-untyped-call]

    @cached_property
    def pin(self) -> OriginPin:
        """Origins signed requests may go to: the connection's, its allowed_hosts, and ours."""
        s = self.settings
        return OriginPin(s.api_base_url, (*s.allowed_hosts, *self._extra_hosts), allow_http=s.allow_http)

    @property
    def allowed_hosts(self) -> list[str]:
        """The pinned origins, as written in messages (``https://host``, ``http://127.0.0.1:8080``)."""
        return self.pin.described()

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._retry_policy or RetryPolicy.from_settings(self.settings)

    # -- credentials ------------------------------------------------------------------------

    def get_tokens(self) -> CognitoTokens:
        """User pool tokens (id/access/refresh), refreshed when near expiry."""
        return self.provider.get_tokens()

    def get_credentials(self) -> FrozenCredentials:
        """AWS credentials valid now: ``access_key``, ``secret_key``, ``token`` (+ identity id)."""
        return self.provider.get_credentials()

    def get_boto3_session(self, region_name: str | None = None) -> boto3.session.Session:
        """A boto3 Session acting as the Cognito identity; its credentials refresh themselves."""
        # botocore's DEBUG lines would print the session token (even with cached credentials,
        # when no Cognito client, which installs the same filter, was built in this process).
        redact_botocore_debug_logs()
        core = botocore.session.Session()
        resolver = core.get_component("credential_provider")
        resolver.insert_before("env", _StaticProvider(self.provider.get_refreshable_credentials()))
        return boto3.session.Session(botocore_session=core, region_name=region_name or self.settings.signing_region)

    def get_auth(
        self, service: str | None = None, region: str | None = None, mode: AuthMode = "iam"
    ) -> requests.auth.AuthBase:
        """requests auth for the API: SigV4 (``iam``) or the raw ID/access token; pinned to our hosts."""
        if self.settings.is_machine and mode != "access_token":
            raise ConfigurationError(
                {
                    "auth": f"auth_flow CLIENT_CREDENTIALS gets an access token only (no user, no ID token, no "
                    f"identity pool): use auth='access_token' instead of {mode!r}"
                },
                self.cognito_iam_conn_id,
            )
        if mode == "iam":
            return CognitoSigV4Auth(
                self.provider.get_refreshable_credentials(),
                region or self.settings.signing_region,
                service or self.settings.api_service,
                allowed_hosts=self.pin,
            )
        if mode == "id_token":
            return BearerTokenAuth(lambda: self.provider.get_tokens().id_token, allowed_hosts=self.pin)
        if mode == "access_token":
            return BearerTokenAuth(lambda: self.provider.get_tokens().access_token, allowed_hosts=self.pin)
        problem = f"must be one of {', '.join(AUTH_MODES)}; got {mode!r}"
        raise ConfigurationError({"mode": problem}, self.cognito_iam_conn_id)

    def get_session(self, mode: AuthMode = "iam") -> requests.Session:
        """A keep-alive ``requests.Session`` with auth attached, reused by this hook's requests.

        One per thread: ``requests.Session`` is not documented as thread-safe, so the fan-out's
        workers (or a user's own threads) each get theirs, all signing with the same credentials.
        Proxy settings (HTTPS_PROXY, NO_PROXY, ...) are read once per origin, not per request.
        """
        key = (mode, threading.get_ident())
        if key not in self._sessions:
            session = EnvironmentOnceSession()
            # Sockets a per-attempt deadline can reach: `timeout` bounds the whole attempt.
            adapter = DeadlineHTTPAdapter()
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            session.auth = self.get_auth(mode=mode)
            session.verify = self.settings.verify
            self._sessions[key] = session
        return self._sessions[key]

    def get_conn(self) -> requests.Session:
        """Airflow convention: the signed session."""
        return self.get_session()

    def close(self) -> None:
        """Close the keep-alive connections."""
        for session in self._sessions.values():
            session.close()
        self._sessions.clear()

    # -- requests ---------------------------------------------------------------------------

    def url_for(self, endpoint: str) -> str:
        """The connection host joined with ``endpoint``; the result must be a pinned origin."""
        parts = urlsplit(endpoint)
        if parts.scheme.lower() in ("http", "https") and parts.netloc:  # "orders:search" stays relative
            self.pin.check(endpoint)
            return endpoint
        base = self.settings.api_base_url
        if not base:
            raise ConfigurationError(
                {
                    "host": "the API base URL is required for relative endpoints, e.g. https://abc.execute-api.eu-west-1.amazonaws.com/prod"
                },
                self.cognito_iam_conn_id,
            )
        url = f"{base.rstrip('/')}/{endpoint.lstrip('/')}" if endpoint else base
        self.pin.check(url)
        return url

    @cached_property
    def transport(self) -> ApiTransport:
        """The request rules for this connection (retries, bodies, redirects, deadlines, refusals)."""
        return ApiTransport(
            self.get_session,
            self.pin,
            timeout=self.settings.timeout,
            policy=self.retry_policy,
            refresh=self._refresh,
            secrets=self.provider.known_secrets,
        )

    @cached_property
    def async_transport(self) -> AsyncApiTransport:
        """The same rules on aiohttp, for triggers; shares this hook's credentials and pin."""
        from airflow_cognito_iam.auth.async_transport import AsyncApiTransport

        return AsyncApiTransport(self.transport, lambda mode: self.get_auth(mode=mode), verify=self.settings.verify)

    def request(
        self,
        method: str,
        endpoint: str,
        *,
        mode: AuthMode = "iam",
        retry_non_idempotent: bool = False,
        check_response: bool = True,
        retry_policy: RetryPolicy | None = None,
        **requests_kwargs: Any,
    ) -> requests.Response:
        """Send a signed request; retry transient failures, refresh expired credentials once.

        408/429/500/502/503/504 and connection errors are retried with full-jitter backoff honouring
        Retry-After. POST/PATCH are retried only when the request surely never reached the server
        (or on 429), unless ``retry_non_idempotent``. Other 4xx raise ApiRefusalError when
        ``check_response``. ``timeout`` is a total deadline per attempt. Every attempt sends the
        whole body (files are rewound, generators spooled). Redirects are followed on the same
        origin for GET/HEAD only. ``stream=True`` is passed through.
        """
        return self.transport.send(
            method,
            self.url_for(endpoint),
            mode=mode,
            retry_non_idempotent=retry_non_idempotent,
            check_response=check_response,
            retry_policy=retry_policy,
            **requests_kwargs,
        )

    def _refresh(self, mode: AuthMode, response: requests.Response) -> None:
        if mode == "iam":
            sent = response.request.headers.get("Authorization", "") if response.request is not None else ""
            match = _CREDENTIAL.search(str(sent))
            self.provider.force_refresh(match["key"] if match else None)
        else:
            self.provider.force_refresh_tokens()

    # -- connection test --------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Full sign-in and identity exchange (no cache): ``(True, "Signed in as …; identity …")``.

        The UI's Test button reaches us through the API server under a random connection id, with
        the form's values. Secrets the form left masked (``***``) are taken from the stored
        connection, and the message names that connection and the fields the form changed.
        """
        changed: list[str] = []
        try:
            form = self.get_connection(self.cognito_iam_conn_id)
            values = ConnValues.of(form)
            conn_id = self.cognito_iam_conn_id
            tested = connection_under_test(self.cognito_iam_conn_id)
            if tested is not None:
                conn_id, stored = tested
                if stored is not None:
                    stored_values = ConnValues.of(stored)
                    changed = values.changed_from(stored_values)
                    problem = values.restore_masked(stored_values, changed)
                    if problem:
                        return False, problem
            masked = values.masked()
            if masked:
                return False, (
                    f"{' and '.join(masked)} arrived masked (***) and no stored value can be used; "
                    "type the real value to test"
                )
            _mask(values.password)
            for name in _SECRET_EXTRAS:
                secret = values.extra.get(name)
                _mask(secret if isinstance(secret, str) else None)
            settings = CognitoSettings.from_connection(
                host=values.host,
                login=values.login,
                password=values.password,
                extra=values.extra,
                port=values.port,
                conn_id=conn_id,
            )
            provider = CognitoCredentialProvider(settings, cache=None, on_secret=_mask)
            if not settings.identity_pool_id:
                provider.get_tokens()
                message = f"Signed in as {settings.principal}; no identity pool configured (bearer modes only)"
            else:
                entry = provider.fetch()
                identity = entry.credentials.identity_id if entry.credentials else "?"
                message = f"Signed in as {settings.username}; identity {identity}"
            return True, message + changes_note(changed)
        except CognitoIamError as exc:
            return False, str(exc) + changes_note(changed)
        except Exception as exc:
            return False, describe_exception(exc) + changes_note(changed)


def _deployment_defaults() -> dict[str, str]:
    """Extras a connection may leave to the deployment: ``[cognito_iam] credential_cache``.

    ``AIRFLOW__COGNITO_IAM__CREDENTIAL_CACHE=redis`` makes every connection that sets no
    ``credential_cache`` of its own use Redis (docker-compose sets it); the connection's value wins.
    """
    from airflow.sdk import conf

    value = conf.get("cognito_iam", "credential_cache", fallback=None)
    return {"credential_cache": value} if value else {}


def _parse_extra(extra: str | None, conn_id: str) -> Any:
    """The extra JSON (any JSON value: settings say what is wrong with a non-object)."""
    if not extra:
        return {}
    try:
        return json.loads(extra)
    except ValueError as exc:
        # The position only: the text itself may hold a client secret.
        where = f"line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else "?"
        raise ConfigurationError({"extra": f"not valid JSON (at {where})"}, conn_id) from None
