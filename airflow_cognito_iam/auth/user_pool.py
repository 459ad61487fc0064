"""User pool sign-in and refresh, as Cognito is configured in 2026.

Flows: USER_SRP_AUTH (default, as Amplify), USER_PASSWORD_AUTH, and USER_AUTH (choice-based:
PASSWORD_SRP or PASSWORD, answering SELECT_CHALLENGE). Challenges answered unattended: TOTP
(SOFTWARE_TOKEN_MFA, SELECT_MFA_TYPE) and remembered devices (DEVICE_SRP_AUTH,
DEVICE_PASSWORD_VERIFIER). Refresh uses GetTokensFromRefreshToken, which works with refresh-token
rotation on or off and returns the rotated token; REFRESH_TOKEN_AUTH is only the fallback for
endpoints that lack the operation.

pycognito supplies only the SRP arithmetic; every call goes through ``cognito_client.call_cognito``
(retries, deadline). Errors say which pool, user, client and flow failed and what an administrator
must do; no password, secret, code or token ever reaches a message or a log line.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from airflow_cognito_iam.auth import metrics
from airflow_cognito_iam.auth.cognito_client import (
    CLOCK_SKEW_SECONDS,
    build_cognito_client,
    call_cognito,
    redact_botocore_debug_logs,
    scrub,
    server_clock_offset,
)
from airflow_cognito_iam.auth.errors import AuthenticationError, ClockSkewError, ConfigurationError
from airflow_cognito_iam.auth.models import CognitoTokens, DeviceInfo
from airflow_cognito_iam.auth.retry import RetryPolicy
from airflow_cognito_iam.auth.settings import CognitoSettings
from airflow_cognito_iam.auth.srp_math import AWSSRP, generate_hash_device, long_to_hex
from airflow_cognito_iam.auth.totp import SHARED_TOTP_LEDGER, TOTP_STEP_SECONDS, TotpStepLedger, totp_code
from airflow_cognito_iam.auth.user_pool_errors import RefreshTokenRejectedError, SignInErrors, TotpRejectedError

log = logging.getLogger(__name__)

__all__ = [
    "CLOCK_SKEW_SECONDS",
    "RefreshTokenRejectedError",
    "TotpStepLedger",
    "UserPoolAuthenticator",
    "build_cognito_client",
    "redact_botocore_debug_logs",
    "scrub",
    "secret_hash",
    "totp_code",
    "unverified_claims",
]

_MAX_CHALLENGES = 6
#: Signs that an endpoint (moto, an old local stack) has no GetTokensFromRefreshToken at all.
_UNKNOWN_OPERATION_CODES = frozenset(
    {"UnknownOperationException", "InvalidAction", "NotImplemented", "NotImplementedException", "501", "404"}
)
# Endpoints known to lack GetTokensFromRefreshToken in this process: asked once, then skipped.
_LEGACY_REFRESH_ENDPOINTS: set[str] = set()


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


class UserPoolAuthenticator(SignInErrors):
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
        self.totp_ledger = totp_ledger or SHARED_TOTP_LEDGER
        #: "refresh" or "sign-in": how get_valid_tokens last renewed the tokens.
        self.last_method: str | None = None

    # -- public API -------------------------------------------------------------------------

    @property
    def totp_key(self) -> tuple[str, str]:
        """Whose TOTP steps the ledger tracks."""
        return self.settings.user_pool_id, self.settings.username

    def sign_in(self, device: DeviceInfo | None = None) -> CognitoTokens:
        """Full sign-in with the connection's flow (as ``device`` if Cognito remembers one)."""
        with metrics.timed("sign_in.duration", flow=self.settings.auth_flow):
            try:
                tokens = self._sign_in_retrying_totp(device)
            except RefreshTokenRejectedError:
                raise
            except AuthenticationError as exc:
                if device is None or "device" not in str(exc).lower():
                    raise
                # The pool forgot the device (an admin, or ForgetDevice): sign in as a new one.
                log.info("Cognito no longer knows this worker's device for %s; signing in without it", self._user)
                tokens = self._sign_in_retrying_totp(None)
        metrics.incr("sign_in", flow=self.settings.auth_flow)
        return tokens

    def refresh(self, tokens: CognitoTokens) -> CognitoTokens:
        """New tokens from the refresh token; a rotated refresh token replaces the old one."""
        if not tokens.refresh_token:
            raise RefreshTokenRejectedError(f"no refresh token to refresh {self._who('GetTokensFromRefreshToken')}")
        endpoint = self.settings.cognito_idp_endpoint_url or self.settings.region
        if endpoint not in _LEGACY_REFRESH_ENDPOINTS:
            try:
                return self._refresh_with_operation(tokens)
            except ClientError as exc:
                if not _unknown_operation(exc):
                    raise self._map_error(exc, "GetTokensFromRefreshToken", {}) from None
                _LEGACY_REFRESH_ENDPOINTS.add(endpoint)
                log.info("This Cognito endpoint has no GetTokensFromRefreshToken; using REFRESH_TOKEN_AUTH")
        return self._refresh_token_auth(tokens)

    def get_valid_tokens(self, current: CognitoTokens | None, now: datetime, margin: float) -> CognitoTokens:
        """``current`` if valid beyond ``margin`` seconds, else refreshed, else one fresh sign-in."""
        if current is not None and current.expires_at - timedelta(seconds=margin) > now:
            return current
        if current is not None and current.refresh_token:
            try:
                tokens = self.refresh(current)
                self.last_method = "refresh"
                return tokens
            except (AuthenticationError, ConfigurationError) as exc:
                # Refresh tokens expire (30 days by default), get revoked or were rotated by another
                # process; one full sign-in either works or raises its own, clearer error. Never a
                # loop: the sign-in does not refresh. Transient errors propagate: no hammering.
                log.info("Refresh failed for user %s (%s); signing in again", self._user, type(exc).__name__)
        tokens = self.sign_in(current.device if current is not None else None)
        self.last_method = "sign-in"
        return tokens

    # -- refresh ----------------------------------------------------------------------------

    def _refresh_with_operation(self, tokens: CognitoTokens) -> CognitoTokens:
        s = self.settings
        request: dict[str, Any] = {"RefreshToken": tokens.refresh_token, "ClientId": s.client_id}
        if s.client_secret:
            request["ClientSecret"] = s.client_secret  # raw, not a SECRET_HASH, for this operation
        if tokens.device is not None:
            request["DeviceKey"] = tokens.device.device_key
        started = self._clock()
        what = f"Cognito GetTokensFromRefreshToken for {self._who('GetTokensFromRefreshToken')}"
        response = call_cognito(self._client, "get_tokens_from_refresh_token", self._policy, what, s.timeout, **request)
        result = response.get("AuthenticationResult")
        if not result:
            raise AuthenticationError(f"Cognito answered GetTokensFromRefreshToken with no tokens for {self._who()}")
        rotated = bool(result.get("RefreshToken")) and result.get("RefreshToken") != tokens.refresh_token
        metrics.incr("token_refresh", operation="GetTokensFromRefreshToken")
        log.info(
            "Refreshed Cognito tokens for user %s in pool %s%s",
            self._user,
            s.user_pool_id,
            " (refresh token rotated)" if rotated else "",
        )
        internal = tokens.secret_hash_username or s.username
        return self._tokens(result, started, internal, previous=tokens)

    def _refresh_token_auth(self, tokens: CognitoTokens) -> CognitoTokens:
        s = self.settings
        params = {"REFRESH_TOKEN": str(tokens.refresh_token)}
        internal = tokens.secret_hash_username or s.username
        if s.client_secret:
            # Cognito checks this hash against the internal username (the `sub` for alias sign-in).
            params["SECRET_HASH"] = secret_hash(internal, s.client_id, s.client_secret)
        if tokens.device is not None:
            params["DEVICE_KEY"] = tokens.device.device_key
        started = self._clock()
        response = self._call(
            "initiate_auth",
            "REFRESH_TOKEN_AUTH",
            AuthFlow="REFRESH_TOKEN_AUTH",
            ClientId=s.client_id,
            AuthParameters=params,
        )
        result = response.get("AuthenticationResult")
        if not result:
            raise AuthenticationError(
                f"Cognito answered REFRESH_TOKEN_AUTH with a challenge for {self._who('REFRESH_TOKEN_AUTH')}"
            )
        log.info("Refreshed Cognito tokens for user %s in pool %s", self._user, s.user_pool_id)
        metrics.incr("token_refresh", operation="REFRESH_TOKEN_AUTH")
        return self._tokens(result, started, internal, previous=tokens)

    # -- sign-in flows ----------------------------------------------------------------------

    @property
    def _user(self) -> str:
        return self.settings.username

    def _who(self, flow: str | None = None) -> str:
        s = self.settings
        return (
            f"user {s.username!r} in user pool {s.user_pool_id} (app client {s.client_id}, flow {flow or s.auth_flow})"
        )

    def _sign_in_retrying_totp(self, device: DeviceInfo | None) -> CognitoTokens:
        try:
            return self._sign_in_once(device)
        except TotpRejectedError:
            # Refused codes are either already used (another task of this user won the step) or
            # sent across a step boundary. The ledger now marks that step used, so the next try
            # waits for a fresh step: at most one more sign-in and one step of waiting.
            log.info("TOTP code refused for user %s; retrying once with the next time step", self._user)
        try:
            return self._sign_in_once(device)
        except TotpRejectedError:
            raise AuthenticationError(
                f"Cognito refused two consecutive TOTP codes for {self._who()}. Check that extra "
                "totp_secret is the secret registered for this user (an administrator can register a "
                "new one with associate-software-token/verify-software-token) and that the worker's "
                "clock is synchronised (NTP)."
            ) from None

    def _srp(self, device: DeviceInfo | None) -> AWSSRP:
        s = self.settings
        return AWSSRP(
            username=s.username,
            password=s.password,
            pool_id=s.user_pool_id,
            client_id=s.client_id,
            client=self._client,
            client_secret=s.client_secret,
            device_key=device.device_key if device else None,
            device_group_key=device.device_group_key if device else None,
            device_password=device.device_password if device else None,
        )

    def _sign_in_once(self, device: DeviceInfo | None) -> CognitoTokens:
        s = self.settings
        flow = s.auth_flow
        started = self._clock()
        srp = self._srp(device)
        if flow == "USER_SRP_AUTH":
            params: dict[str, str] = srp.get_auth_params()
        elif flow == "USER_AUTH":
            params = self._user_auth_params(srp)
        else:
            params = {"USERNAME": s.username, "PASSWORD": s.password}
            if s.client_secret:
                params["SECRET_HASH"] = secret_hash(s.username, s.client_id, s.client_secret)
            if device is not None:
                params["DEVICE_KEY"] = device.device_key
        response = self._call("initiate_auth", flow, AuthFlow=flow, ClientId=s.client_id, AuthParameters=params)
        return self._finish(response, started, s.username, srp, params, device)

    def _user_auth_params(self, srp: AWSSRP) -> dict[str, str]:
        s = self.settings
        params = {"USERNAME": s.username}
        if s.client_secret:
            params["SECRET_HASH"] = secret_hash(s.username, s.client_id, s.client_secret)
        if srp.device_key:
            params["DEVICE_KEY"] = srp.device_key
        if s.preferred_challenge == "PASSWORD_SRP":
            params.update({"PREFERRED_CHALLENGE": "PASSWORD_SRP", "SRP_A": long_to_hex(srp.large_a_value)})
        elif s.preferred_challenge == "PASSWORD":
            params.update({"PREFERRED_CHALLENGE": "PASSWORD", "PASSWORD": s.password})
        return params

    def _finish(
        self,
        response: dict[str, Any],
        started: datetime,
        internal: str,
        srp: AWSSRP,
        auth_params: dict[str, str],
        device: DeviceInfo | None,
    ) -> CognitoTokens:
        """Answer the challenges we can until Cognito hands out tokens."""
        for _ in range(_MAX_CHALLENGES):
            result = response.get("AuthenticationResult")
            if result:
                log.info(
                    "Signed in to Cognito user pool %s as %s (%s)",
                    self.settings.user_pool_id,
                    self._user,
                    self.settings.auth_flow,
                )
                tokens = self._tokens(result, started, internal, device=device)
                if result.get("NewDeviceMetadata"):
                    tokens = self._remember_device(tokens, result["NewDeviceMetadata"])
                return tokens
            name = response.get("ChallengeName") or "no tokens and no challenge"
            params = response.get("ChallengeParameters") or {}
            internal = params.get("USERNAME") or params.get("USER_ID_FOR_SRP") or internal
            response = self._answer(name, params, response, internal, srp, auth_params)
        raise AuthenticationError(f"Cognito kept issuing challenges to {self._who()}; giving up")

    def _answer(
        self,
        name: str,
        params: dict[str, Any],
        response: dict[str, Any],
        internal: str,
        srp: AWSSRP,
        auth_params: dict[str, str],
    ) -> dict[str, Any]:
        s = self.settings
        if name == "PASSWORD_VERIFIER":
            answers: dict[str, str] = srp.process_challenge(params, auth_params)
            return self._respond(name, response, internal, raw=answers)
        if name == "SELECT_CHALLENGE":
            return self._select_challenge(response, internal, srp)
        if name == "SOFTWARE_TOKEN_MFA" and s.totp_secret:
            return self._respond(name, response, internal, SOFTWARE_TOKEN_MFA_CODE=self._totp_code())
        if name == "SELECT_MFA_TYPE" and s.totp_secret:
            return self._respond(name, response, internal, ANSWER="SOFTWARE_TOKEN_MFA")
        if name == "DEVICE_SRP_AUTH" and srp.device_key:
            return self._respond(
                name, response, internal, DEVICE_KEY=srp.device_key, SRP_A=long_to_hex(srp.large_a_value)
            )
        if name == "DEVICE_PASSWORD_VERIFIER" and srp.device_key:
            return self._respond(name, response, internal, raw=srp.process_device_challenge(params))
        raise AuthenticationError(self._challenge_message(name, params))

    def _select_challenge(self, response: dict[str, Any], internal: str, srp: AWSSRP) -> dict[str, Any]:
        available = list(response.get("AvailableChallenges") or [])
        preferred = self.settings.preferred_challenge
        order = ["PASSWORD", "PASSWORD_SRP"] if preferred == "PASSWORD" else ["PASSWORD_SRP", "PASSWORD"]
        choice = next((c for c in order if c in available), None)
        if choice is None:
            first = available[0] if available else "none"
            raise AuthenticationError(self._challenge_message(first, {"AvailableChallenges": available}))
        if choice == "PASSWORD_SRP":
            return self._respond(
                "SELECT_CHALLENGE", response, internal, ANSWER="PASSWORD_SRP", SRP_A=long_to_hex(srp.large_a_value)
            )
        return self._respond("SELECT_CHALLENGE", response, internal, ANSWER="PASSWORD", PASSWORD=self.settings.password)

    def _respond(
        self, name: str, response: dict[str, Any], internal: str, *, raw: dict[str, str] | None = None, **answers: str
    ) -> dict[str, Any]:
        s = self.settings
        challenge_responses = dict(raw) if raw is not None else {"USERNAME": internal, **answers}
        if s.client_secret and "SECRET_HASH" not in challenge_responses:
            challenge_responses["SECRET_HASH"] = secret_hash(
                challenge_responses.get("USERNAME", internal), s.client_id, s.client_secret
            )
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

    def _remember_device(self, tokens: CognitoTokens, metadata: dict[str, Any]) -> CognitoTokens:
        """Confirm the device Cognito just issued, so later sign-ins and refreshes can name it."""
        key, group = str(metadata.get("DeviceKey", "")), str(metadata.get("DeviceGroupKey", ""))
        if not key or not group:
            return tokens
        password, verifier = generate_hash_device(group, key)
        answer = self._call(
            "confirm_device",
            "ConfirmDevice",
            AccessToken=tokens.access_token,
            DeviceKey=key,
            DeviceSecretVerifierConfig=verifier,
            DeviceName=f"airflow-cognito-iam@{socket.gethostname()}"[:1024],
        )
        if answer.get("UserConfirmationNecessary"):
            # "Remember on user prompt" pools: the job is the user, and it says yes.
            self._call(
                "update_device_status",
                "UpdateDeviceStatus",
                AccessToken=tokens.access_token,
                DeviceKey=key,
                DeviceRememberedStatus="remembered",
            )
        log.info("Cognito now remembers this worker's device for user %s", self._user)
        return dataclasses.replace(tokens, device=DeviceInfo(key, group, password))

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
        step = self.totp_ledger.claim(self.totp_key, now)
        start = step * TOTP_STEP_SECONDS
        if start > now:
            self._sleep(start - now + 0.5)
        return totp_code(secret, start)

    def _tokens(
        self,
        result: dict[str, Any],
        started: datetime,
        internal: str,
        *,
        previous: CognitoTokens | None = None,
        device: DeviceInfo | None = None,
    ) -> CognitoTokens:
        claims = unverified_claims(result.get("IdToken", ""))
        # cognito:username is the internal username Cognito wants in SECRET_HASH on refresh.
        hash_user = claims.get("cognito:username") or internal or claims.get("sub")
        return CognitoTokens(
            id_token=result["IdToken"],
            access_token=result["AccessToken"],
            # With rotation Cognito returns a new one; otherwise the old one stays valid.
            refresh_token=result.get("RefreshToken") or (previous.refresh_token if previous else None),
            # Measured from before the request: errs on the early side.
            expires_at=started + timedelta(seconds=int(result.get("ExpiresIn", 3600))),
            secret_hash_username=str(hash_user) if hash_user else None,
            device=device or (previous.device if previous else None),
        )

    # -- calls --------------------------------------------------------------------------------

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


def _unknown_operation(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
    message = str(error.get("Message", "")).lower()
    return (
        error.get("Code") in _UNKNOWN_OPERATION_CODES
        or status in ("404", "501")
        or "not been implemented" in message
        or "not implemented" in message
        or "unknown operation" in message
    )
