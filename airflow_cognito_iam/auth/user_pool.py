"""User pool sign-in: USER_SRP_AUTH (default), USER_PASSWORD_AUTH, REFRESH_TOKEN_AUTH, SECRET_HASH, TOTP.

Every Cognito call goes through our own boto3 client (unsigned, endpoint override, timeouts) and the
``transient_cognito`` retry policy. pycognito supplies only the SRP arithmetic. Cognito errors are
turned into errors that say which pool, user, client and flow failed and what an administrator must
do; no password, secret, code or token ever reaches a message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Literal

import boto3
import pyotp
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError
from pycognito.aws_srp import AWSSRP

from airflow_cognito_iam import __version__
from airflow_cognito_iam.auth.deadline import AttemptDeadline, install_on_boto3_client
from airflow_cognito_iam.auth.errors import (
    AuthenticationError,
    ClockSkewError,
    CognitoIamError,
    ConfigurationError,
)
from airflow_cognito_iam.auth.models import CognitoTokens
from airflow_cognito_iam.auth.retry import RetryPolicy, describe_exception, is_transient_cognito
from airflow_cognito_iam.auth.settings import CognitoSettings

log = logging.getLogger(__name__)

CognitoService = Literal["cognito-idp", "cognito-identity"]

#: Cognito refuses SRP timestamps about 5 minutes off; past this the clock is the likely cause.
CLOCK_SKEW_SECONDS = 240.0
#: TOTP step Cognito uses (RFC 6238 default).
TOTP_STEP_SECONDS = 30
_MAX_CHALLENGES = 4


class TotpStepLedger:
    """The last TOTP time step used per (pool, user) in this process.

    TOTP codes are single-use (RFC 6238 5.2: a verifier must not accept a code twice), so two tasks
    of one worker signing in as the same user within 30 s must not send the same code.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], int] = {}

    def claim(self, key: tuple[str, str], now: float) -> int:
        """The step to answer with (the current one, or the one after the last used) and mark it used."""
        with self._lock:
            step = max(int(now // TOTP_STEP_SECONDS), self._last.get(key, -1) + 1)
            self._last[key] = step
            return step


_SHARED_TOTP_LEDGER = TotpStepLedger()


class RefreshTokenRejectedError(AuthenticationError):
    """The refresh token expired or was revoked: a full sign-in is needed."""


class _TotpRejectedError(AuthenticationError):
    """The TOTP code was refused; one more try in the next time step may succeed."""


class _RedactCognitoBodies(logging.Filter):
    """Blanks botocore DEBUG records that carry Cognito bodies or a session token.

    botocore logs every request's parameters and every response body at DEBUG; for Cognito that is
    the password, refresh token, ID token and AWS secret key, and Airflow's DEBUG level turns it on.
    Clients of ``CognitoIamHook.get_boto3_session()`` sign with the identity's session token, which
    botocore logs in the canonical request and in the sent headers.
    """

    MARKERS = (
        "PASSWORD",
        "SECRET_HASH",
        "REFRESH_TOKEN",
        "SOFTWARE_TOKEN_MFA_CODE",
        "PASSWORD_CLAIM_SIGNATURE",
        "Logins",
        "IdToken",
        "AccessToken",
        "RefreshToken",
        "SessionToken",
        "SecretKey",
        "Session",
        "X-Amz-Security-Token",
        "x-amz-security-token",
    )

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a malformed record is botocore's problem, not a reason to leak
            return True
        if any(marker in text for marker in self.MARKERS):
            record.msg, record.args = "[body redacted by airflow-cognito-iam: may contain secrets]", ()
        return True


_REDACTOR = _RedactCognitoBodies()


def redact_botocore_debug_logs() -> None:
    """Install the filter on the botocore loggers that print bodies, headers and canonical requests."""
    for name in ("botocore.endpoint", "botocore.parsers", "botocore.auth"):
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


def build_cognito_client(service: CognitoService, settings: CognitoSettings, *, max_attempts: int = 1) -> Any:
    """A boto3 client for ``cognito-idp`` or ``cognito-identity`` that needs no AWS credentials.

    Sign-in and the identity exchange are public operations, so requests are unsigned. botocore's
    retries stay in standard mode but with one attempt by default: ``auth.retry`` owns the budget.
    """
    if service == "cognito-identity":
        endpoint = settings.cognito_identity_endpoint_url
        # An identity pool may live in another region than the user pool; its id says which.
        region = settings.identity_pool_id.split(":", 1)[0] if settings.identity_pool_id else settings.region
    else:
        endpoint = settings.cognito_idp_endpoint_url
        region = settings.region
    config = Config(
        signature_version=UNSIGNED,
        retries={"mode": "standard", "total_max_attempts": max_attempts},
        connect_timeout=settings.timeout,
        read_timeout=settings.timeout,
        user_agent_extra=f"airflow-cognito-iam/{__version__}",
    )
    redact_botocore_debug_logs()
    # A private session: boto3's default session is not thread-safe and may hold a user's profile.
    session = boto3.session.Session()
    client = session.client(service, region_name=region, endpoint_url=endpoint, verify=settings.verify, config=config)
    install_on_boto3_client(client)  # so `timeout` bounds each whole call, not each socket read
    return client


def call_cognito(
    client: Any, operation: str, policy: RetryPolicy, what: str, timeout: float, **kwargs: Any
) -> dict[str, Any]:
    """One Cognito call: retried per ``policy``, each attempt under a total deadline of ``timeout``."""

    def attempt() -> dict[str, Any]:
        with AttemptDeadline(timeout, what) as watch:
            try:
                result: dict[str, Any] = getattr(client, operation)(**kwargs)
                return result
            except (BotoCoreError, OSError):
                if watch.fired:
                    raise ReadTimeoutError(endpoint_url=f"{what} (no complete answer within {timeout:g} s)") from None
                raise

    response: dict[str, Any] = policy.retrying(is_transient_cognito, what=what)(attempt)
    return response


def server_clock_offset(exc_or_response: ClientError | dict[str, Any]) -> float | None:
    """Server time minus local time, from the Date header of a Cognito answer (None if absent)."""
    response = exc_or_response.response if isinstance(exc_or_response, ClientError) else exc_or_response
    date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if not date:
        return None
    try:
        return parsedate_to_datetime(date).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


def secret_hash(username: str, client_id: str, client_secret: str) -> str:
    """Base64(HMAC-SHA256(client_secret, username + client_id)), as Cognito requires with a client secret."""
    return str(AWSSRP.get_secret_hash(username, client_id, client_secret))


def unverified_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, not verified: only used to learn our own user's internal username."""
    try:
        payload = token.split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError, binascii.Error):
        return {}
    return decoded if isinstance(decoded, dict) else {}


class _IssuedTotp(pyotp.TOTP):
    # The pool chose the secret; refusing a short one (pyotp's NIST floor) would only lock the job
    # out. Cognito issues 160-bit secrets; local stacks such as moto issue shorter ones.
    min_secret_length_bits = 0


def totp_code(secret: str, at: float) -> str:
    """The 6-digit TOTP code for base32 ``secret`` at Unix time ``at`` (30 s steps, SHA-1)."""
    return str(_IssuedTotp(secret.replace(" ", ""), interval=TOTP_STEP_SECONDS).at(at))


_JWT = re.compile(r"eyJ[\w-]*\.[\w-]*\.?[\w-]*")
_LONG_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{40,}")


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with known secret values, JWTs and long token-like strings removed; at most 300 chars."""
    for value in secrets:
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    text = _LONG_TOKEN.sub("<redacted>", _JWT.sub("<jwt>", text))
    return text[:300]


class UserPoolAuthenticator:
    """Signs one user in to a user pool and keeps their tokens fresh."""

    def __init__(
        self,
        settings: CognitoSettings,
        client: Any = None,
        *,
        retry_policy: RetryPolicy | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        wall_time: Callable[[], float] = time.time,
        totp_ledger: TotpStepLedger | None = None,
    ) -> None:
        self.settings = settings
        self._client = client if client is not None else build_cognito_client("cognito-idp", settings)
        self._policy = retry_policy or RetryPolicy.from_settings(settings)
        self._clock = clock
        self._sleep = sleep
        self._wall_time = wall_time
        self._totp_ledger = totp_ledger or _SHARED_TOTP_LEDGER
        #: "refresh" or "sign-in": how get_valid_tokens last renewed the tokens.
        self.last_method: str | None = None

    # -- public API -------------------------------------------------------------------------

    def sign_in(self) -> CognitoTokens:
        """Full sign-in with the connection's flow, answering a TOTP challenge if configured."""
        try:
            return self._sign_in_once()
        except _TotpRejectedError:
            # Refused codes are either already used (another task of this user won the step) or
            # sent across a step boundary. The ledger now marks that step used, so the next try
            # waits for a fresh step: at most one more sign-in and one step of waiting.
            log.info("TOTP code refused for user %s; retrying once with the next time step", self._user)
        try:
            return self._sign_in_once()
        except _TotpRejectedError:
            raise AuthenticationError(
                f"Cognito refused two consecutive TOTP codes for {self._who()}. Check that extra "
                "totp_secret is the secret registered for this user (an administrator can register a "
                "new one with associate-software-token/verify-software-token) and that the worker's "
                "clock is synchronised (NTP)."
            ) from None

    def refresh(self, tokens: CognitoTokens) -> CognitoTokens:
        """New ID/access tokens from the refresh token (REFRESH_TOKEN_AUTH); keeps the refresh token."""
        if not tokens.refresh_token:
            raise RefreshTokenRejectedError(f"no refresh token to refresh {self._who('REFRESH_TOKEN_AUTH')}")
        params = {"REFRESH_TOKEN": tokens.refresh_token}
        internal = tokens.secret_hash_username or self.settings.username
        if self.settings.client_secret:
            # Cognito checks this hash against the internal username (the `sub` for alias sign-in).
            params["SECRET_HASH"] = secret_hash(internal, self.settings.client_id, self.settings.client_secret)
        started = self._clock()
        response = self._call(
            "initiate_auth",
            "REFRESH_TOKEN_AUTH",
            AuthFlow="REFRESH_TOKEN_AUTH",
            ClientId=self.settings.client_id,
            AuthParameters=params,
        )
        result = response.get("AuthenticationResult")
        if not result:
            raise AuthenticationError(
                f"Cognito answered REFRESH_TOKEN_AUTH with a challenge for {self._who('REFRESH_TOKEN_AUTH')}"
            )
        log.info("Refreshed Cognito tokens for user %s in pool %s", self._user, self.settings.user_pool_id)
        # With refresh-token rotation Cognito returns a new one; otherwise the old one stays valid.
        return self._tokens(result, started, internal, fallback_refresh=tokens.refresh_token)

    def get_valid_tokens(self, current: CognitoTokens | None, now: datetime, margin: float) -> CognitoTokens:
        """``current`` if valid beyond ``margin`` seconds, else refreshed, else a fresh sign-in."""
        if current is not None and current.expires_at - timedelta(seconds=margin) > now:
            return current
        if current is not None and current.refresh_token:
            try:
                tokens = self.refresh(current)
                self.last_method = "refresh"
                return tokens
            except (AuthenticationError, ConfigurationError) as exc:
                # Refresh tokens expire (30 days by default) or get revoked; a full sign-in either
                # works or raises its own, clearer error. Transient errors propagate: no hammering.
                log.info("Refresh failed for user %s (%s); signing in again", self._user, type(exc).__name__)
        tokens = self.sign_in()
        self.last_method = "sign-in"
        return tokens

    # -- flows ------------------------------------------------------------------------------

    @property
    def _user(self) -> str:
        return self.settings.username

    def _who(self, flow: str | None = None) -> str:
        s = self.settings
        return (
            f"user {s.username!r} in user pool {s.user_pool_id} (app client {s.client_id}, flow {flow or s.auth_flow})"
        )

    def _sign_in_once(self) -> CognitoTokens:
        s = self.settings
        flow = s.auth_flow
        started = self._clock()
        if flow == "USER_SRP_AUTH":
            srp = AWSSRP(
                username=s.username,
                password=s.password,
                pool_id=s.user_pool_id,
                client_id=s.client_id,
                client=self._client,
                client_secret=s.client_secret,
            )
            auth_params: dict[str, str] = srp.get_auth_params()
            response = self._call(
                "initiate_auth", flow, AuthFlow=flow, ClientId=s.client_id, AuthParameters=auth_params
            )
            if response.get("ChallengeName") != "PASSWORD_VERIFIER":
                return self._finish(response, started, s.username)
            challenge = response.get("ChallengeParameters", {})
            internal = challenge.get("USERNAME") or challenge.get("USER_ID_FOR_SRP") or s.username
            answers: dict[str, str] = srp.process_challenge(challenge, auth_params)
            extra = {"Session": response["Session"]} if response.get("Session") else {}
            response = self._call(
                "respond_to_auth_challenge",
                flow,
                ClientId=s.client_id,
                ChallengeName="PASSWORD_VERIFIER",
                ChallengeResponses=answers,
                **extra,
            )
            return self._finish(response, started, internal)

        params = {"USERNAME": s.username, "PASSWORD": s.password}
        if s.client_secret:
            params["SECRET_HASH"] = secret_hash(s.username, s.client_id, s.client_secret)
        response = self._call("initiate_auth", flow, AuthFlow=flow, ClientId=s.client_id, AuthParameters=params)
        return self._finish(response, started, s.username)

    def _finish(self, response: dict[str, Any], started: datetime, internal: str) -> CognitoTokens:
        """Answer the challenges we can (TOTP, MFA type selection) until Cognito hands out tokens."""
        for _ in range(_MAX_CHALLENGES):
            result = response.get("AuthenticationResult")
            if result:
                log.info(
                    "Signed in to Cognito user pool %s as %s (%s)",
                    self.settings.user_pool_id,
                    self._user,
                    self.settings.auth_flow,
                )
                return self._tokens(result, started, internal)
            name = response.get("ChallengeName") or "no tokens and no challenge"
            params = response.get("ChallengeParameters") or {}
            internal = params.get("USERNAME") or params.get("USER_ID_FOR_SRP") or internal
            if name == "SOFTWARE_TOKEN_MFA" and self.settings.totp_secret:
                response = self._respond(name, response, internal, SOFTWARE_TOKEN_MFA_CODE=self._totp_code())
            elif name == "SELECT_MFA_TYPE" and self.settings.totp_secret:
                response = self._respond(name, response, internal, ANSWER="SOFTWARE_TOKEN_MFA")
            else:
                raise AuthenticationError(self._challenge_message(name, params))
        raise AuthenticationError(f"Cognito kept issuing challenges to {self._who()}; giving up")

    def _respond(self, name: str, response: dict[str, Any], internal: str, **answers: str) -> dict[str, Any]:
        s = self.settings
        challenge_responses = {"USERNAME": internal, **answers}
        if s.client_secret:
            challenge_responses["SECRET_HASH"] = secret_hash(internal, s.client_id, s.client_secret)
        extra = {"Session": response["Session"]} if response.get("Session") else {}
        result: dict[str, Any] = self._call(
            "respond_to_auth_challenge",
            s.auth_flow,
            ClientId=s.client_id,
            ChallengeName=name,
            ChallengeResponses=challenge_responses,
            **extra,
        )
        return result

    def _totp_code(self) -> str:
        secret = self.settings.totp_secret or ""
        try:
            totp_code(secret, 0)  # validate before claiming a step or sleeping
        except (binascii.Error, ValueError):
            raise ConfigurationError(
                {"totp_secret": "is not a base32 string (the secret shown when TOTP was registered)"},
                conn_id=self.settings.conn_id,
            ) from None
        now = self._wall_time()
        step = self._totp_ledger.claim((self.settings.user_pool_id, self.settings.username), now)
        start = step * TOTP_STEP_SECONDS
        if start > now:
            self._sleep(start - now + 0.5)
        return totp_code(secret, start)

    def _tokens(
        self, result: dict[str, Any], started: datetime, internal: str, fallback_refresh: str | None = None
    ) -> CognitoTokens:
        claims = unverified_claims(result.get("IdToken", ""))
        # cognito:username is the internal username Cognito wants in SECRET_HASH on refresh.
        hash_user = claims.get("cognito:username") or internal or claims.get("sub")
        return CognitoTokens(
            id_token=result["IdToken"],
            access_token=result["AccessToken"],
            refresh_token=result.get("RefreshToken") or fallback_refresh,
            # Measured from before the request: errs on the early side.
            expires_at=started + timedelta(seconds=int(result.get("ExpiresIn", 3600))),
            secret_hash_username=str(hash_user) if hash_user else None,
        )

    # -- calls and errors ---------------------------------------------------------------------

    def _call(self, operation: str, flow: str, **kwargs: Any) -> dict[str, Any]:
        what = f"Cognito {operation} for {self._who(flow)}"
        try:
            return call_cognito(self._client, operation, self._policy, what, self.settings.timeout, **kwargs)
        except ClientError as exc:
            offset = server_clock_offset(exc)
            code = exc.response.get("Error", {}).get("Code", "")
            if code == "NotAuthorizedException" and offset is not None and abs(offset) > CLOCK_SKEW_SECONDS:
                # SRP proofs carry a timestamp Cognito checks; a skewed clock reads as a wrong password.
                raise ClockSkewError(offset, f"Cognito refused {self._who(flow)}") from None
            raise self._map_error(exc, flow, kwargs) from None

    def _map_error(self, exc: ClientError, flow: str, request: dict[str, Any]) -> CognitoIamError:
        s = self.settings
        code = exc.response.get("Error", {}).get("Code", "")
        raw = exc.response.get("Error", {}).get("Message", "") or ""
        low = raw.lower()
        who = self._who(flow)
        sent = [*request.get("AuthParameters", {}).values(), *request.get("ChallengeResponses", {}).values()]
        message = scrub(raw, [s.password, s.client_secret, s.totp_secret, request.get("Session"), *sent])
        problems: dict[str, str]

        if "secret hash" in low or "secret_hash" in low or "configured for secret" in low:
            if s.client_secret:
                problems = {
                    "client_secret": "Cognito could not verify SECRET_HASH: "
                    f"it is not the secret of app client {s.client_id}"
                }
            else:
                problems = {"client_secret": f"app client {s.client_id} has a client secret: set extra client_secret"}
            return ConfigurationError(problems, conn_id=s.conn_id)
        if "flow not enabled" in low or "not enabled for this client" in low or "auth flow not" in low:
            other = "USER_SRP_AUTH" if flow == "USER_PASSWORD_AUTH" else "USER_PASSWORD_AUTH"
            return ConfigurationError(
                {
                    "auth_flow": f"app client {s.client_id} does not allow {flow}: an administrator must add "
                    f"ALLOW_{flow} to the client's ExplicitAuthFlows, or set auth_flow to {other}"
                },
                conn_id=s.conn_id,
            )
        if code in ("CodeMismatchException", "ExpiredCodeException"):
            return _TotpRejectedError(f"TOTP code refused for {who}")
        if code == "NotAuthorizedException":
            if flow == "REFRESH_TOKEN_AUTH":
                return RefreshTokenRejectedError(f"refresh token refused for {who} (expired or revoked)")
            if "disabled" in low:
                return AuthenticationError(f"{who} is disabled: an administrator must enable it (admin-enable-user)")
            if "attempts exceeded" in low or "attempt limit" in low:
                return AuthenticationError(
                    f"too many failed sign-ins for {who}: Cognito locks the user out for a while; fix the "
                    "password, then wait before the next try"
                )
            if "session" in low:
                return AuthenticationError(f"the sign-in session for {who} expired before the challenge was answered")
            return AuthenticationError(
                f"Cognito rejected the credentials of {who}: incorrect username or password. Check the "
                "connection's login and password; an administrator can set a new password with "
                "`aws cognito-idp admin-set-user-password --permanent`."
                + (
                    " If the password is right, check that the app client allows USER_PASSWORD_AUTH."
                    if flow == "USER_PASSWORD_AUTH"
                    else ""
                )
            )
        if code == "UserNotFoundException":
            return AuthenticationError(
                f"{who} does not exist: check the connection login (an administrator can create the "
                "user with admin-create-user)"
            )
        if code == "UserNotConfirmedException":
            return AuthenticationError(
                f"{who} has not confirmed sign-up: an administrator must confirm it (admin-confirm-sign-up)"
            )
        if code == "PasswordResetRequiredException":
            return AuthenticationError(
                f"{who} must reset the password: an administrator must set one with "
                "`aws cognito-idp admin-set-user-password --permanent` and update the connection password"
            )
        if code == "ResourceNotFoundException":
            where = s.cognito_idp_endpoint_url or f"region {s.region}"
            return ConfigurationError(
                {
                    "user_pool_id/client_id": f"Cognito ({where}) has no user pool {s.user_pool_id} with app "
                    f"client {s.client_id}: check user_pool_id, client_id and region"
                },
                conn_id=s.conn_id,
            )
        if code == "InvalidUserPoolConfigurationException":
            return ConfigurationError(
                {"user_pool_id": f"user pool {s.user_pool_id} is not configured for {flow}: {message}"},
                conn_id=s.conn_id,
            )
        if code == "InvalidParameterException":
            return ConfigurationError(
                {"cognito": f"Cognito rejected the {flow} request for {who}: {message}"}, conn_id=s.conn_id
            )
        if code == "UserLambdaValidationException":
            return AuthenticationError(f"a Lambda trigger of user pool {s.user_pool_id} refused {who}: {message}")
        if code in ("TooManyFailedAttemptsException", "LimitExceededException"):
            return AuthenticationError(
                f"Cognito refused {who} after too many attempts ({code}); wait before trying again"
            )
        return AuthenticationError(f"Cognito refused {who}: {describe_exception(exc)}")

    def _challenge_message(self, name: str, params: dict[str, Any]) -> str:
        s = self.settings
        who = self._who()
        admin = f"--user-pool-id {s.user_pool_id} --username {s.username}"
        if name == "NEW_PASSWORD_REQUIRED":
            return (
                f"{who} must choose a new password (status FORCE_CHANGE_PASSWORD) and a scheduled job "
                "cannot: an administrator must run `aws cognito-idp admin-set-user-password "
                f"{admin} --password <new> --permanent` and put the new password in the connection."
            )
        if name == "SOFTWARE_TOKEN_MFA":
            return (
                f"{who} has TOTP MFA enabled but the connection has no totp_secret: set extra totp_secret "
                "to the base32 secret registered for this user, or an administrator can turn MFA off for "
                f"this service user (admin-set-user-mfa-preference {admin})."
            )
        if name == "SMS_MFA":
            return (
                f"{who} must answer an SMS code, which an unattended job cannot receive: an administrator "
                "must switch the user to TOTP MFA (associate-software-token, then "
                f"admin-set-user-mfa-preference {admin} --software-token-mfa-settings "
                "Enabled=true,PreferredMfa=true) and put the TOTP secret in extra totp_secret."
            )
        if name == "EMAIL_OTP":
            return (
                f"{who} must answer an e-mailed code, which an unattended job cannot read: an administrator "
                "must switch the user to TOTP MFA and put the secret in extra totp_secret."
            )
        if name == "SELECT_MFA_TYPE":
            return (
                f"{who} must pick an MFA method: set extra totp_secret so the job answers with TOTP, or an "
                f"administrator can make TOTP preferred (admin-set-user-mfa-preference {admin})."
            )
        if name == "MFA_SETUP":
            return (
                f"{who} must register an MFA device before signing in (the pool requires MFA): an "
                "administrator must register TOTP for the user (associate-software-token + "
                "verify-software-token) and put the secret in extra totp_secret."
            )
        if name == "CUSTOM_CHALLENGE":
            return (
                f"user pool {s.user_pool_id} issues a CUSTOM_CHALLENGE from its custom-auth Lambda triggers, "
                f"which this provider cannot answer for {who}: an administrator must exempt this service "
                "user from the custom challenge or give it an app client without custom auth."
            )
        if name in ("DEVICE_SRP_AUTH", "DEVICE_PASSWORD_VERIFIER"):
            return (
                f"user pool {s.user_pool_id} asks {who} for device authentication: an administrator must "
                "set device tracking to off or 'user opt-in' for this pool."
            )
        return f"Cognito issued challenge {name!r} to {who}, which this provider cannot answer"
