"""CognitoIamHook: a ``cognito_iam`` connection → signed, retried requests to an IAM-protected API.

Thin on purpose: sign-in, exchange, refresh, caching, signing and retry policy live in
``airflow_cognito_iam.auth`` (no Airflow there); this class reads the Connection, masks secrets,
and wires the pieces together for operators, sensors and users' own tasks.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cached_property
from types import FrameType
from typing import Any, Literal
from urllib.parse import urlsplit

import boto3
import botocore.session
import requests
from airflow.sdk import BaseHook
from botocore.credentials import CredentialProvider, RefreshableCredentials

from airflow_cognito_iam.auth.cache import cache_for
from airflow_cognito_iam.auth.credentials import CognitoCredentialProvider, FrozenCredentials
from airflow_cognito_iam.auth.errors import (
    ApiRefusalError,
    CognitoIamError,
    ConfigurationError,
    HostNotAllowedError,
    TransientError,
)
from airflow_cognito_iam.auth.models import CognitoTokens
from airflow_cognito_iam.auth.retry import (
    TRANSIENT_HTTP_STATUSES,
    RetryPolicy,
    describe_exception,
    is_transient_api,
    is_transient_api_before_send,
    retry_after_of,
)
from airflow_cognito_iam.auth.settings import CognitoSettings
from airflow_cognito_iam.auth.signing import BearerTokenAuth, CognitoSigV4Auth, canonical_netloc, host_allowed
from airflow_cognito_iam.auth.user_pool import redact_botocore_debug_logs

log = logging.getLogger(__name__)

AuthMode = Literal["iam", "id_token", "access_token"]
_MODES = ("iam", "id_token", "access_token")
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_SECRET_EXTRAS = ("client_secret", "totp_secret")
# API Gateway's IAM refusal:
# "User: arn:...:assumed-role/ROLE/SESSION is not authorized to perform: ACTION on resource: ARN"
_NOT_AUTHORIZED = re.compile(
    r"User: (?P<principal>\S+) is not authorized to perform: (?P<action>\S+?)(?: on resource: (?P<resource>\S+?))?"
    r"(?:[\s\"',}]|$)"
)
# "Signature expired" is clock skew, not stale credentials: a refresh would not help.
_EXPIRED = re.compile(r"token\b.*\bexpired|ExpiredToken", re.IGNORECASE)
# Signature-mismatch answers quote the canonical request, headers (session token) included.
_ECHO = re.compile(r"(The Canonical String|The String-to-Sign|Canonical String for this request).*", re.DOTALL)


def _mask(value: str | None) -> None:
    """Register a secret with Airflow's masker; never fails (outside a task there is no supervisor)."""
    if not value:
        return
    try:
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
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cognito_iam_conn_id = cognito_iam_conn_id
        self._extra_hosts = tuple(allowed_hosts)
        self._retry_policy = retry_policy
        self._sessions: dict[str, requests.Session] = {}

    # -- configuration ----------------------------------------------------------------------

    @cached_property
    def settings(self) -> CognitoSettings:
        """The validated connection (built once); ConfigurationError names every bad field."""
        conn = self.get_connection(self.cognito_iam_conn_id)
        extra = conn.extra_dejson
        _mask(conn.password)
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
        return CognitoCredentialProvider(self.settings, cache=cache_for(self.settings), on_secret=_mask)

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        """Hosts signed requests may go to: the connection's host, its allowed_hosts, and ours."""
        own = (self.settings.api_host,) if self.settings.api_host else ()
        return (*own, *self.settings.allowed_hosts, *self._extra_hosts)

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
        if mode == "iam":
            return CognitoSigV4Auth(
                self.provider.get_refreshable_credentials(),
                region or self.settings.signing_region,
                service or self.settings.api_service,
                allowed_hosts=self.allowed_hosts,
            )
        if mode == "id_token":
            return BearerTokenAuth(lambda: self.provider.get_tokens().id_token, allowed_hosts=self.allowed_hosts)
        if mode == "access_token":
            return BearerTokenAuth(lambda: self.provider.get_tokens().access_token, allowed_hosts=self.allowed_hosts)
        problem = f"must be one of {', '.join(_MODES)}; got {mode!r}"
        raise ConfigurationError({"mode": problem}, self.cognito_iam_conn_id)

    def get_session(self, mode: AuthMode = "iam") -> requests.Session:
        """A keep-alive ``requests.Session`` with auth attached, reused by every request of this hook."""
        if mode not in self._sessions:
            session = requests.Session()
            session.auth = self.get_auth(mode=mode)
            session.verify = self.settings.verify
            self._sessions[mode] = session
        return self._sessions[mode]

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
        """The connection host joined with ``endpoint``; an absolute URL must be an allowed host."""
        parts = urlsplit(endpoint)
        if parts.scheme.lower() in ("http", "https") and parts.netloc:  # "orders:search" stays relative
            if not host_allowed(endpoint, self.allowed_hosts):
                raise HostNotAllowedError(canonical_netloc(endpoint), list(self.allowed_hosts))
            return endpoint
        base = self.settings.api_base_url
        if not base:
            raise ConfigurationError(
                {"host": "the API base URL is required for relative endpoints, e.g. https://abc.execute-api.eu-west-1.amazonaws.com/prod"},
                self.cognito_iam_conn_id,
            )
        return f"{base.rstrip('/')}/{endpoint.lstrip('/')}" if endpoint else base

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

        429/502/503/504 and connection errors are retried with full-jitter backoff honouring
        Retry-After. POST/PATCH are retried only when the request surely never reached the server
        (or on 429), unless ``retry_non_idempotent``. Other 4xx raise ApiRefusalError when
        ``check_response``. ``stream=True`` is passed through.
        """
        method = method.upper()
        url = self.url_for(endpoint)
        session = self.get_session(mode)
        requests_kwargs.setdefault("timeout", self.settings.timeout)
        policy = retry_policy or self.retry_policy
        repeatable = is_transient_api if method in _IDEMPOTENT or retry_non_idempotent else _safe_to_repeat
        classifier = _not_from_cognito(repeatable)
        where = _loggable(url)
        state = {"attempt": 0, "refreshed": False}

        def attempt() -> requests.Response:
            while True:
                state["attempt"] += 1
                response = self._send(session, method, url, where, state["attempt"], requests_kwargs)
                if response.status_code in TRANSIENT_HTTP_STATUSES:
                    response.close()
                    raise requests.HTTPError(f"HTTP {response.status_code}", response=response)
                if not state["refreshed"] and self._expired(response, mode):
                    state["refreshed"] = True
                    response.close()
                    log.info("%s %s: credentials expired; refreshing once and retrying", method, where)
                    self._refresh(mode)
                    continue
                return response

        try:
            response: requests.Response = policy.retrying(classifier, what=f"{method} {where}")(attempt)
        except requests.RequestException as exc:
            # Only reached when the classifier declined to repeat (e.g. a POST that may have landed).
            hint = "" if repeatable is is_transient_api else "; not repeated (pass retry_non_idempotent=True if safe)"
            raise TransientError(f"{method} {where} failed: {describe_exception(exc)}{hint}",
                                 retry_after=retry_after_of(exc)) from exc
        if check_response and response.status_code >= 400:
            raise self._refusal(method, where, response)
        return response

    def _send(
        self, session: requests.Session, method: str, url: str, where: str, attempt: int, kwargs: dict[str, Any]
    ) -> requests.Response:
        started = time.monotonic()
        try:
            response = session.request(method, url, **kwargs)
        except requests.RequestException as exc:
            elapsed = (time.monotonic() - started) * 1000
            log.info("%s %s -> %s (%.0f ms, attempt %d)", method, where, describe_exception(exc), elapsed, attempt)
            raise
        elapsed = (time.monotonic() - started) * 1000
        size = response.headers.get("Content-Length", "?")
        if response.request is not None and response.request.url:
            where = _loggable(str(response.request.url))  # with the names of params= keys too
        log.info(
            "%s %s -> %d, %s bytes, %.0f ms, attempt %d", method, where, response.status_code, size, elapsed, attempt
        )
        return response

    @staticmethod
    def _expired(response: requests.Response, mode: AuthMode) -> bool:
        # API Gateway: 403 + x-amzn-ErrorType ExpiredTokenException / "security token ... expired";
        # user pool authorizers answer 401 "The incoming token has expired".
        if response.status_code not in (401, 403):
            return False
        if mode == "iam" and response.status_code != 403:
            return False
        kind = response.headers.get("x-amzn-ErrorType", "")
        return "ExpiredToken" in kind or bool(_EXPIRED.search(_api_message(response)))

    def _refresh(self, mode: AuthMode) -> None:
        if mode == "iam":
            self.provider.force_refresh()
        else:
            self.provider.force_refresh_tokens()

    def _refusal(self, method: str, where: str, response: requests.Response) -> ApiRefusalError:
        message = self._scrub(_api_message(response))
        status = response.status_code
        hint = ""
        if match := _NOT_AUTHORIZED.search(message):
            principal, action = match["principal"], match["action"]
            role = _role_name(principal)
            resource = f" on {match['resource']}" if match["resource"] else ""
            hint = (
                f" Role {role} may not {action}{resource}: an administrator must allow it in the role's "
                "policy (or the API's resource policy), or set custom_role_arn to a role that may."
            )
        text = f"{method} {where} refused by the API (HTTP {status}): {message or response.reason}.{hint}"
        return ApiRefusalError(text, status_code=status)

    def _scrub(self, text: str) -> str:
        text = _ECHO.sub("(canonical request omitted)", text)
        for value in self.provider.known_secrets():
            if len(value) >= 4:
                text = text.replace(value, "***")
        return text[:500]

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
            values = _ConnValues.of(form)
            conn_id = self.cognito_iam_conn_id
            tested = _connection_under_test(self.cognito_iam_conn_id)
            if tested is not None:
                conn_id, stored = tested
                if stored is not None:
                    stored_values = _ConnValues.of(stored)
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
            return True, message + _changes_note(changed)
        except CognitoIamError as exc:
            return False, str(exc) + _changes_note(changed)
        except Exception as exc:
            return False, describe_exception(exc) + _changes_note(changed)


# -- test_connection helpers: the API server's Test route -------------------------------------------

_TEST_ROUTE_MODULE = "airflow.api_fastapi.core_api.routes.public.connections"
_MASKED = "***"
#: Where a sign-in goes and as whom: stored secrets are reused only while none of these changed,
#: as the API server reuses stored credentials only for the stored host and port.
_SIGN_IN_TARGET = (
    "login",
    "user_pool_id",
    "client_id",
    "region",
    "cognito_idp_endpoint_url",
    "oauth_token_url",
)


def _same(name: str, new: Any, old: Any) -> bool:
    """Equal, or both unset; for the port, 0 is what the UI sends for "none"."""
    unset: tuple[Any, ...] = (None, "", 0) if name == "port" else (None, "")
    return new == old or (new in unset and old in unset and not isinstance(new, bool) and not isinstance(old, bool))


@dataclass
class _ConnValues:
    """The connection values a test uses, with extras decoded."""

    host: str | None
    login: str | None
    password: str | None
    port: int | None
    extra: dict[str, Any]

    @classmethod
    def of(cls, conn: Any) -> _ConnValues:
        extra = conn.extra_dejson if conn.extra else {}
        return cls(conn.host, conn.login, conn.password, conn.port, dict(extra) if isinstance(extra, dict) else {})

    def _fields(self) -> dict[str, Any]:
        return {"host": self.host, "login": self.login, "password": self.password, "port": self.port, **self.extra}

    def changed_from(self, stored: _ConnValues) -> list[str]:
        """Fields whose form value differs from the stored one; a masked secret counts as unchanged."""
        mine, theirs = self._fields(), stored._fields()
        changed = []
        for name in sorted(set(mine) | set(theirs)):
            new = mine.get(name)
            if new != _MASKED and not _same(name, new, theirs.get(name)):
                changed.append(name)
        return changed

    def restore_masked(self, stored: _ConnValues, changed: list[str]) -> str | None:
        """Put the stored secrets in place of masked ones; or say why they may not be used."""
        masked = self.masked()
        if not masked:
            return None
        moved = [name for name in changed if name in _SIGN_IN_TARGET]
        if moved:
            return (
                f"{' and '.join(masked)} arrived masked (***) while the form changed {', '.join(moved)}: "
                "stored secrets are only reused for the stored sign-in target; type them to test"
            )
        if self.password == _MASKED:
            self.password = stored.password
        for name in _SECRET_EXTRAS:
            if self.extra.get(name) == _MASKED:
                self.extra[name] = stored.extra.get(name)
        return None

    def masked(self) -> list[str]:
        names = ["password"] if self.password == _MASKED else []
        return names + [name for name in _SECRET_EXTRAS if self.extra.get(name) == _MASKED]


def _changes_note(changed: list[str]) -> str:
    return f" (tested with the form's changes to {', '.join(changed)})" if changed else ""


def _connection_under_test(transient_conn_id: str) -> tuple[str, Any] | None:
    """``(connection id, stored Connection or None)`` when the API server's Test route called us.

    That route stores the form under a random id and keeps the real one only in its own frame,
    so we read it there. The stored connection is loaded only if the caller may read it, as the
    route itself does; anything unexpected means "not under test", never an error.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "test_connection" and frame.f_globals.get("__name__") == _TEST_ROUTE_MODULE:
            break
        frame = frame.f_back
    if frame is None:
        return None
    local = frame.f_locals
    body = local.get("test_body")
    conn_id = getattr(body, "connection_id", None)
    if local.get("transient_conn_id") != transient_conn_id or not isinstance(conn_id, str):
        return None
    try:
        from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails
        from airflow.models.connection import Connection

        team_name = local.get("team_name")
        allowed = local["auth_manager"].is_authorized_connection(
            method="GET", details=ConnectionDetails(conn_id=conn_id, team_name=team_name), user=local["user"]
        )
        stored = Connection.get_connection_from_secrets(conn_id, team_name=team_name) if allowed else None
    except Exception:  # not found, or an Airflow whose route looks different: test the form as sent
        log.debug("stored connection %s not readable for the test", conn_id, exc_info=True)
        stored = None
    return conn_id, stored


def _not_from_cognito(classifier: Callable[[BaseException], bool]) -> Callable[[BaseException], bool]:
    """``classifier``, except for our own errors raised while getting credentials or tokens.

    Those come from the sign-in/exchange layer, which already spent its own retry budget;
    repeating the request on top would multiply calls to a throttled Cognito.
    """

    def classify(exc: BaseException) -> bool:
        return not isinstance(exc, CognitoIamError) and classifier(exc)

    return classify


def _safe_to_repeat(exc: BaseException) -> bool:
    """For POST/PATCH: the request never reached the server, or the API said 429 (not processed)."""
    if is_transient_api_before_send(exc):
        return True
    return isinstance(exc, requests.HTTPError) and exc.response is not None and exc.response.status_code == 429


def _loggable(url: str) -> str:
    """Path plus query *names* only: values can be personal data or tokens."""
    parts = urlsplit(url)
    names = [pair.partition("=")[0] for pair in parts.query.split("&") if pair]
    return parts.path + (f"?{'&'.join(names)}" if names else "")


def _api_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        try:
            return response.text.strip()[:500]
        except Exception:
            return ""
    if isinstance(body, dict):
        for key in ("message", "Message", "error", "errorMessage"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return str(body)[:500]


def _role_name(principal: str) -> str:
    # arn:aws:sts::123456789012:assumed-role/Cognito_PoolAuth_Role/CognitoIdentityCredentials
    if ":assumed-role/" in principal:
        return principal.split(":assumed-role/", 1)[1].split("/", 1)[0]
    return principal
