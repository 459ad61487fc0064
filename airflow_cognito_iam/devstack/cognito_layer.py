"""WSGI middleware in front of moto that enforces what real Cognito enforces and moto does not.

Requests for cognito-idp and cognito-identity are recognised by their ``X-Amz-Target``; everything
else (S3, the JWKS document) goes straight to moto. A handler either answers itself or returns None
to let moto answer. moto runs in this process, so handlers read its backends directly for passwords,
client secrets and refresh tokens instead of keeping a second copy that could drift.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import io
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from airflow_cognito_iam.devstack import m2m
from airflow_cognito_iam.devstack.devices import Device, DeviceConfig, DeviceRegistry, new_device_metadata
from airflow_cognito_iam.devstack.errors import CognitoError
from airflow_cognito_iam.devstack.refresh import RefreshTokens, Rotation, validate_rotation
from airflow_cognito_iam.devstack.srp import SrpError, SrpServerSession
from airflow_cognito_iam.devstack.state import CognitoFaults, CredentialRegistry, Stats
from airflow_cognito_iam.devstack.tokens import TokenError, verify_id_token

logger = logging.getLogger(__name__)

__all__ = ["CognitoError", "StrictCognitoLayer", "secret_hash"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

IDP_PREFIX = "AWSCognitoIdentityProviderService"
IDENTITY_PREFIX = "AWSCognitoIdentityService"

# Which ExplicitAuthFlows value lets a client use an AuthFlow (legacy names included).
_FLOW_PERMISSIONS = {
    "USER_SRP_AUTH": {"ALLOW_USER_SRP_AUTH"},
    "USER_PASSWORD_AUTH": {"ALLOW_USER_PASSWORD_AUTH", "USER_PASSWORD_AUTH"},
    "REFRESH_TOKEN_AUTH": {"ALLOW_REFRESH_TOKEN_AUTH"},
    "REFRESH_TOKEN": {"ALLOW_REFRESH_TOKEN_AUTH"},
    "CUSTOM_AUTH": {"ALLOW_CUSTOM_AUTH", "CUSTOM_AUTH_FLOW_ONLY"},
    "USER_AUTH": {"ALLOW_USER_AUTH"},
}
# Public APIs that carry the client's SECRET_HASH as a top-level SecretHash parameter.
_SECRET_HASH_ACTIONS = ("SignUp", "ConfirmSignUp", "ForgotPassword", "ConfirmForgotPassword", "ResendConfirmationCode")
# Cognito's default when a client was created without ExplicitAuthFlows.
_DEFAULT_FLOWS = ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_CUSTOM_AUTH"]
_PROVIDER = re.compile(r"^cognito-idp\.(?P<region>[a-z0-9-]+)\.amazonaws\.com/(?P<pool>(?P=region)_[0-9A-Za-z]+)$")
#: Cognito keeps an SRP challenge open for three minutes.
SRP_SESSION_SECONDS = 180.0


def secret_hash(client_secret: str, username: str, client_id: str) -> str:
    """base64(HMAC-SHA256(client_secret, username + client_id)), Cognito's SECRET_HASH."""
    digest = hmac.new(client_secret.encode(), (username + client_id).encode(), hashlib.sha256).digest()
    return base64.standard_b64encode(digest).decode()


@dataclass
class _ChoiceSession:
    """An open USER_AUTH exchange: which user, for which client, until when (AuthSessionValidity)."""

    pool_id: str
    client_id: str
    username: str
    expires_at: float


def _mask_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain[:1]}***"


class StrictCognitoLayer:
    """The strict layer: SRP proof, SECRET_HASH, ExplicitAuthFlows, Logins, unique credentials."""

    def __init__(
        self,
        app: WsgiApp,
        *,
        account_id: str,
        registry: CredentialRegistry,
        stats: Stats,
        faults: CognitoFaults,
        allowed_role_arns: Callable[[], set[str]],
        default_role_arn: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app = app
        self.account_id = account_id
        self.registry = registry
        self.stats = stats
        self.faults = faults
        self._allowed_role_arns = allowed_role_arns
        self._default_role_arn = default_role_arn
        self._clock = clock
        self._lock = threading.Lock()
        self._srp_sessions: dict[str, tuple[SrpServerSession, float]] = {}
        # Real identity pools give a user the same identity id every time; moto makes a new one per GetId.
        self._identity_by_login: dict[tuple[str, str, str], str] = {}
        self._login_by_identity: dict[str, tuple[str, str, str]] = {}
        self.refresh_tokens = RefreshTokens(clock)
        self.devices = DeviceRegistry(clock)
        self._device_sessions: dict[str, tuple[_ChoiceSession, str]] = {}
        self._choice_sessions: dict[str, _ChoiceSession] = {}
        self._email_codes: dict[str, str] = {}
        #: The last EMAIL_OTP code "sent" per username (the devstack delivers no e-mail).
        self.last_email_otp: dict[str, str] = {}
        self._handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any] | bytes | None]] = {
            f"{IDP_PREFIX}.InitiateAuth": self._initiate_auth,
            f"{IDP_PREFIX}.RespondToAuthChallenge": self._respond_to_auth_challenge,
            f"{IDP_PREFIX}.GetTokensFromRefreshToken": self._get_tokens_from_refresh_token,
            f"{IDP_PREFIX}.RevokeToken": self._revoke_token,
            f"{IDP_PREFIX}.GetClientToken": self._get_client_token,
            f"{IDP_PREFIX}.ConfirmDevice": self._confirm_device,
            f"{IDP_PREFIX}.ListDevices": self._list_devices,
            f"{IDP_PREFIX}.GetDevice": self._get_device,
            f"{IDP_PREFIX}.ForgetDevice": self._forget_device,
            f"{IDP_PREFIX}.UpdateDeviceStatus": self._update_device_status,
            f"{IDP_PREFIX}.CreateUserPoolClient": self._check_client_config,
            f"{IDP_PREFIX}.UpdateUserPoolClient": self._check_client_config,
            **{f"{IDP_PREFIX}.{action}": self._check_top_level_secret_hash for action in _SECRET_HASH_ACTIONS},
            f"{IDENTITY_PREFIX}.GetId": self._get_id,
            f"{IDENTITY_PREFIX}.GetCredentialsForIdentity": self._get_credentials_for_identity,
        }

    # -- WSGI -------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET") or ""
        prefix, _, action = target.partition(".")
        if not target and environ.get("PATH_INFO") == "/oauth2/token" and environ.get("REQUEST_METHOD") == "POST":
            return self._oauth2_token(environ, start_response)
        if prefix not in (IDP_PREFIX, IDENTITY_PREFIX):
            if "/s3/aws4_request" in (environ.get("HTTP_AUTHORIZATION") or ""):
                self.stats.s3_call(environ.get("REQUEST_METHOD", "GET"))
            return self.app(environ, start_response)

        body = _read_body(environ)
        self.stats.cognito_call(action)
        fault = self.faults.pick(action)
        if fault is not None:
            self.stats.cognito_rejected(action)
            message = "Rate exceeded" if fault[0] == "TooManyRequestsException" else f"{fault[0]} (injected fault)"
            return _error(start_response, CognitoError(fault[0], message, fault[1]))
        handler = self._handlers.get(target)
        if handler is not None:
            try:
                params = json.loads(body or b"{}")
                if not isinstance(params, dict):
                    raise CognitoError("SerializationException", "request body must be a JSON object")
                result = handler(params)
            except CognitoError as exc:
                self.stats.cognito_rejected(action)
                return _error(start_response, exc)
            except ValueError:
                self.stats.cognito_rejected(action)
                return _error(start_response, CognitoError("SerializationException", "malformed JSON body"))
            except Exception:  # a bug here must look like a Cognito 500, never an HTML page
                logger.exception("devstack strict layer failed on %s", action)
                self.stats.cognito_rejected(action)
                return _error(start_response, CognitoError("InternalErrorException", "devstack internal error", 500))
            if isinstance(result, bytes):
                body = result
            elif result is not None:
                payload = json.dumps(result).encode()
                start_response(
                    "200 OK",
                    [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(payload)))],
                )
                return [payload]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return self._forward_scrubbed(environ, start_response, body)

    def _forward_scrubbed(
        self, environ: dict[str, Any], start_response: Callable[..., Any], body: bytes
    ) -> Iterable[bytes]:
        """Let moto answer, but never echo a token, session or hash from the request in an error.

        moto puts the offending value in some messages (e.g. an unknown session or access token);
        Cognito does not, and clients log error messages.
        """
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., Any]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self.app(environ, capture)
        try:
            payload = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
        status = str(captured.get("status", "500 Internal Server Error"))
        headers = [(k, v) for k, v in captured.get("headers", []) if k.lower() != "content-length"]
        if not status.startswith(("2", "3")):
            payload = _scrub(payload, body)
        start_response(status, [*headers, ("Content-Length", str(len(payload)))])
        return [payload]

    # -- moto lookups -----------------------------------------------------------------------------

    def _idp_backends(self) -> list[Any]:
        from moto.cognitoidp.models import cognitoidp_backends

        return [b for region, b in cognitoidp_backends[self.account_id].items() if region != "global"]

    def _find_client(self, client_id: Any) -> tuple[Any, Any, Any]:
        """(backend, user pool, client) owning this app client id."""
        if isinstance(client_id, str) and client_id:
            for backend in self._idp_backends():
                for pool in backend.user_pools.values():
                    client = pool.clients.get(client_id)
                    if client is not None:
                        return backend, pool, client
        raise CognitoError("ResourceNotFoundException", f"User pool client {client_id} does not exist.")

    def _identity_pool(self, identity_pool_id: Any) -> Any:
        from moto.cognitoidentity.models import cognitoidentity_backends

        if isinstance(identity_pool_id, str) and ":" in identity_pool_id:
            region = identity_pool_id.split(":", 1)[0]
            pool = cognitoidentity_backends[self.account_id][region].identity_pools.get(identity_pool_id)
            if pool is not None:
                return pool
        raise CognitoError("ResourceNotFoundException", f"IdentityPool '{identity_pool_id}' not found.")

    # -- user pool --------------------------------------------------------------------------------

    @staticmethod
    def _check_flow(client: Any, flow: str) -> None:
        permissions = _FLOW_PERMISSIONS.get(flow)
        if permissions is None:
            return  # not an InitiateAuth flow; moto answers with InvalidParameterException
        allowed = client.extended_config.get("ExplicitAuthFlows") or _DEFAULT_FLOWS
        if not permissions.intersection(allowed):
            raise CognitoError("InvalidParameterException", f"{flow} flow not enabled for this client")

    @staticmethod
    def _check_secret_hash(client: Any, given: Any, usernames: Iterable[str]) -> None:
        if not client.generate_secret:
            return
        if not isinstance(given, str) or not given:
            raise CognitoError(
                "NotAuthorizedException",
                f"Client {client.id} is configured with secret but SECRET_HASH was not received",
            )
        for name in usernames:
            if hmac.compare_digest(secret_hash(client.secret, name, client.id).encode(), given.encode()):
                return
        raise CognitoError("NotAuthorizedException", f"Unable to verify secret hash for client {client.id}")

    def _check_top_level_secret_hash(self, params: dict[str, Any]) -> None:
        _, _, client = self._find_client(params.get("ClientId"))
        self._check_secret_hash(client, params.get("SecretHash"), [str(params.get("Username") or "")])

    def _initiate_auth(self, params: dict[str, Any]) -> dict[str, Any] | bytes | None:
        _, pool, client = self._find_client(params.get("ClientId"))
        flow = str(params.get("AuthFlow") or "")
        auth = params.get("AuthParameters") or {}
        if flow in ("REFRESH_TOKEN_AUTH", "REFRESH_TOKEN") and Rotation.of_client(client).enabled:
            raise CognitoError(
                "InvalidParameterException",
                f"{flow} is not supported for app clients with refresh token rotation enabled. "
                "Use GetTokensFromRefreshToken.",
            )
        self._check_flow(client, flow)
        if flow in ("REFRESH_TOKEN_AUTH", "REFRESH_TOKEN"):
            return self._refresh_token_auth(pool, client, auth)
        if flow in ("USER_SRP_AUTH", "USER_PASSWORD_AUTH", "CUSTOM_AUTH", "USER_AUTH"):
            self._check_secret_hash(client, auth.get("SECRET_HASH"), [str(auth.get("USERNAME") or "")])
        if flow == "USER_AUTH":
            return self._user_auth(pool, client, auth)
        if flow == "USER_PASSWORD_AUTH":
            user = self._active_user(pool, auth.get("USERNAME"))
            password = auth.get("PASSWORD")
            if not isinstance(password, str) or not password:
                raise CognitoError("InvalidParameterException", "Missing required parameter PASSWORD")
            return self._after_first_factor(pool, client, user, password, device_key=auth.get("DEVICE_KEY"))
        if flow != "USER_SRP_AUTH":
            return None
        user = self._active_user(pool, auth.get("USERNAME"))
        answer = self._start_srp(pool, client, user, auth.get("SRP_A"))
        device_key = auth.get("DEVICE_KEY")
        if isinstance(device_key, str):
            with self._lock:
                entry = self._srp_sessions.get(answer["ChallengeParameters"]["SECRET_BLOCK"])
            if entry is not None:
                entry[0].sign_in_device_key = device_key
        return answer

    def _start_srp(
        self, pool: Any, client: Any, user: Any, srp_a: Any, session_id: str | None = None
    ) -> dict[str, Any]:
        """The PASSWORD_VERIFIER challenge with a real B; ``session_id`` when it came through USER_AUTH."""
        if not isinstance(srp_a, str) or not srp_a:
            raise CognitoError("InvalidParameterException", "Missing required parameter SRP_A")
        try:
            session = SrpServerSession.start(
                pool_id=pool.id, username=user.username, password=user.password, client_id=client.id, srp_a_hex=srp_a
            )
        except SrpError as exc:
            raise CognitoError("InvalidParameterException", str(exc)) from exc
        session.auth_session = session_id
        now = self._clock()
        with self._lock:
            for block, (_, started) in list(self._srp_sessions.items()):
                if now - started > SRP_SESSION_SECONDS:
                    del self._srp_sessions[block]
            self._srp_sessions[session.secret_block_b64] = (session, now)
        answer: dict[str, Any] = {
            "ChallengeName": "PASSWORD_VERIFIER",
            "ChallengeParameters": {
                "SALT": session.salt_hex,
                "SRP_B": session.srp_b_hex,
                "SECRET_BLOCK": session.secret_block_b64,
                "USERNAME": user.username,
                "USER_ID_FOR_SRP": user.username,
            },
        }
        if session_id is not None:
            answer["Session"] = session_id
        return answer

    # -- USER_AUTH (choice-based sign-in) ---------------------------------------------------------

    def _user_auth(self, pool: Any, client: Any, auth: dict[str, Any]) -> dict[str, Any]:
        """USER_AUTH: the PREFERRED_CHALLENGE if the user has it, else SELECT_CHALLENGE with AvailableChallenges."""
        user = self._active_user(pool, auth.get("USERNAME"))
        available = self._available_challenges(pool, user)
        session_id = self._open_choice_session(pool, client, user)
        preferred = auth.get("PREFERRED_CHALLENGE")
        if isinstance(preferred, str) and preferred in available:
            return self._answer_choice(pool, client, user, preferred, auth, session_id)
        return {
            "ChallengeName": "SELECT_CHALLENGE",
            "Session": session_id,
            "ChallengeParameters": {},
            "AvailableChallenges": available,
        }

    @staticmethod
    def _available_challenges(pool: Any, user: Any) -> list[str]:
        """What the pool's SignInPolicy allows and the user can do (EMAIL_OTP needs a verified e-mail)."""
        policy = (pool.extended_config.get("Policies") or {}).get("SignInPolicy") or {}
        factors = policy.get("AllowedFirstAuthFactors") or ["PASSWORD"]
        attributes = {a["Name"]: a["Value"] for a in user.attributes}
        available = ["PASSWORD", "PASSWORD_SRP"] if "PASSWORD" in factors else []
        if "EMAIL_OTP" in factors and attributes.get("email") and attributes.get("email_verified") == "true":
            available.append("EMAIL_OTP")
        return available

    def _open_choice_session(self, pool: Any, client: Any, user: Any) -> str:
        session_id = "AYABe" + secrets.token_urlsafe(96)
        now = self._clock()
        with self._lock:
            for key, entry in list(self._choice_sessions.items()):
                if now > entry.expires_at:
                    del self._choice_sessions[key]
            minutes = float(client.extended_config.get("AuthSessionValidity") or 3)
            self._choice_sessions[session_id] = _ChoiceSession(pool.id, client.id, user.username, now + 60 * minutes)
        return session_id

    def _take_choice_session(self, pool: Any, client: Any, session_id: Any, username: str) -> Any:
        """The user of a live USER_AUTH session of this client; the session is used up."""
        with self._lock:
            entry = self._choice_sessions.pop(str(session_id or ""), None)
        if entry is None or self._clock() > entry.expires_at or entry.client_id != client.id:
            raise CognitoError("NotAuthorizedException", "Invalid session for the user, session is expired.")
        user = self._resolve_user(pool, username)
        if user is None or user.username != entry.username:
            raise CognitoError("NotAuthorizedException", "Invalid session for the user.")
        return user

    def _answer_choice(
        self, pool: Any, client: Any, user: Any, choice: str, values: dict[str, Any], session_id: str
    ) -> dict[str, Any]:
        if choice == "PASSWORD_SRP":
            return self._start_srp(pool, client, user, values.get("SRP_A"), session_id=session_id)
        if choice == "PASSWORD":
            password = values.get("PASSWORD")
            if not isinstance(password, str) or not password:
                raise CognitoError("InvalidParameterException", "Missing required parameter PASSWORD")
            return self._after_first_factor(pool, client, user, password)
        if choice == "EMAIL_OTP":
            code = f"{secrets.randbelow(10**8):08d}"
            next_session = self._open_choice_session(pool, client, user)
            with self._lock:
                self._email_codes[next_session] = code
                self.last_email_otp[user.username] = code
            email = next(a["Value"] for a in user.attributes if a["Name"] == "email")
            return {
                "ChallengeName": "EMAIL_OTP",
                "Session": next_session,
                "ChallengeParameters": {
                    "CODE_DELIVERY_DELIVERY_MEDIUM": "EMAIL",
                    "CODE_DELIVERY_DESTINATION": _mask_email(email),
                },
            }
        raise CognitoError("InvalidParameterException", f"{choice} is not an available challenge for this user")

    def _after_first_factor(
        self, pool: Any, client: Any, user: Any, password: str, device_key: Any = None
    ) -> dict[str, Any]:
        """Password checked by moto's admin flow, which then runs MFA, NEW_PASSWORD_REQUIRED or issues tokens.

        In a pool that remembers devices, a remembered DEVICE_KEY of this user turns what follows into
        DEVICE_SRP_AUTH instead of MFA (ChallengeRequiredOnNewDevice), as Cognito does.
        """
        if not hmac.compare_digest(str(password).encode(), str(user.password).encode()):
            raise CognitoError("NotAuthorizedException", "Incorrect username or password.")
        result = self._moto(
            pool.backend.admin_initiate_auth,
            pool.id,
            client.id,
            "ADMIN_USER_PASSWORD_AUTH",
            {"USERNAME": user.username, "PASSWORD": password},
            hide=[password],
        )
        config = DeviceConfig.of_pool(pool)
        device = self.devices.get(device_key, pool.id, user.username) if config else None
        if (
            config is not None
            and config.challenge_required_on_new_device
            and device is not None
            and device.confirmed
            and device.remembered
            and result.get("ChallengeName") != "NEW_PASSWORD_REQUIRED"
        ):
            return {
                "ChallengeName": "DEVICE_SRP_AUTH",
                "Session": self._open_device_session(pool, client, user, device),
                "ChallengeParameters": {"USERNAME": user.username},
            }
        if "ChallengeName" in result:
            challenge_params = dict(result.get("ChallengeParameters") or {})
            challenge_params.setdefault("USERNAME", user.username)
            challenge_params.setdefault("USER_ID_FOR_SRP", user.username)
            if result["ChallengeName"] == "NEW_PASSWORD_REQUIRED":
                challenge_params.setdefault("requiredAttributes", "[]")
                challenge_params.setdefault("userAttributes", json.dumps({"email_verified": "false"}))
            result["ChallengeParameters"] = challenge_params
        return self._finish(pool, user.username, result)

    def _finish(self, pool: Any, username: str, result: dict[str, Any], device: Device | None = None) -> dict[str, Any]:
        """Tokens issued: in a device pool, bind the refresh token to a device (a new one unless proven)."""
        tokens = result.get("AuthenticationResult")
        if not isinstance(tokens, dict) or not tokens.get("RefreshToken") or DeviceConfig.of_pool(pool) is None:
            return result
        if device is None:
            device = self.devices.new_device(pool, username)
            tokens["NewDeviceMetadata"] = new_device_metadata(device)
        else:
            self.devices.authenticated(device)
        self.devices.bind(tokens["RefreshToken"], device)
        return result

    @staticmethod
    def _moto(call: Callable[..., Any], *args: Any, hide: Iterable[Any] = ()) -> dict[str, Any]:
        """Call moto in-process; its errors become Cognito's, never echoing the ``hide`` values (moto's do)."""
        from moto.core.exceptions import JsonRESTError

        try:
            result: dict[str, Any] = call(*args)
        except JsonRESTError as exc:
            message = str(exc.message)
            if any(isinstance(v, str) and len(v) >= 6 and v in message for v in hide):
                message = "Invalid token, session or secret hash."
            raise CognitoError(exc.error_type, message, exc.code) from exc
        return result

    def _select_challenge(
        self, pool: Any, client: Any, params: dict[str, Any], responses: dict[str, Any]
    ) -> dict[str, Any]:
        """SELECT_CHALLENGE (ANSWER names the choice) or a direct PASSWORD / PASSWORD_SRP / EMAIL_OTP response."""
        name = params.get("ChallengeName")
        username = str(responses.get("USERNAME") or "")
        if name == "EMAIL_OTP":
            session_id = str(params.get("Session") or "")
            with self._lock:
                expected = self._email_codes.pop(session_id, None)
            user = self._take_choice_session(pool, client, session_id, username)
            given = str(responses.get("EMAIL_OTP_CODE") or "")
            if expected is None or not hmac.compare_digest(expected.encode(), given.encode()):
                raise CognitoError("CodeMismatchException", "Invalid code received for user")
            return self._finish(pool, user.username, pool.backend._log_user_in(pool, client, user.username))
        user = self._take_choice_session(pool, client, params.get("Session"), username)
        choice = str(responses.get("ANSWER") or "") if name == "SELECT_CHALLENGE" else str(name)
        if choice not in self._available_challenges(pool, user):
            raise CognitoError("InvalidParameterException", f"{choice} is not an available challenge for this user")
        next_session = self._open_choice_session(pool, client, user)
        return self._answer_choice(pool, client, user, choice, responses, next_session)

    # -- refresh tokens ---------------------------------------------------------------------------

    def _refresh_token_auth(self, pool: Any, client: Any, auth: dict[str, Any]) -> dict[str, Any]:
        """REFRESH_TOKEN_AUTH: SECRET_HASH over the owner's username or sub; ID and access tokens only."""
        token = auth.get("REFRESH_TOKEN")
        owner = self.refresh_tokens.owner(pool, client, token)
        user = pool._get_user(owner[1])
        self._check_secret_hash(client, auth.get("SECRET_HASH"), [owner[1]] + ([user.id] if user else []))
        if DeviceConfig.of_pool(pool) is not None:
            self.devices.check_refresh(str(token), auth.get("DEVICE_KEY"))
        return {"ChallengeParameters": {}, "AuthenticationResult": self._tokens_for(pool, owner)}

    def _get_tokens_from_refresh_token(self, params: dict[str, Any]) -> dict[str, Any]:
        """GetTokensFromRefreshToken: the raw ClientSecret, and a new refresh token when rotation is on."""
        _, pool, client = self._find_client(params.get("ClientId"))
        self._check_client_secret(client, params.get("ClientSecret"))
        token = params.get("RefreshToken")
        owner = self.refresh_tokens.owner(pool, client, token)
        if DeviceConfig.of_pool(pool) is not None:
            self.devices.check_refresh(str(token), params.get("DeviceKey"))
        result = self._tokens_for(pool, owner)
        rotation = Rotation.of_client(client)
        if rotation.enabled:
            result["RefreshToken"] = self.refresh_tokens.rotate(pool, client, str(token), rotation)
            self.devices.inherit(str(token), result["RefreshToken"])
        return {"AuthenticationResult": result}

    @staticmethod
    def _tokens_for(pool: Any, owner: tuple[str, str, str]) -> dict[str, Any]:
        client_id, username, family = owner
        if pool._get_user(username) is None:
            raise CognitoError("NotAuthorizedException", "User does not exist.")
        access_token, expires_in = pool.create_access_token(client_id, username, origin_jti=family)
        id_token, _ = pool.create_id_token(client_id, username, origin_jti=family)
        return {"AccessToken": access_token, "IdToken": id_token, "ExpiresIn": expires_in, "TokenType": "Bearer"}

    def _revoke_token(self, params: dict[str, Any]) -> dict[str, Any]:
        """RevokeToken ends the refresh token's whole family (every rotation of one sign-in)."""
        _, pool, client = self._find_client(params.get("ClientId"))
        self._check_client_secret(client, params.get("ClientSecret"), code="UnauthorizedException")
        if client.extended_config.get("EnableTokenRevocation") is False:
            raise CognitoError("UnsupportedOperationException", "Token revocation is not enabled for this app client.")
        token = params.get("Token")
        if isinstance(token, str) and token.count(".") == 2:
            raise CognitoError("UnsupportedTokenTypeException", "Only refresh tokens can be revoked.")
        owner = pool.refresh_tokens.get(token) if isinstance(token, str) else None
        if owner is not None and owner[0] == client.id:
            self.refresh_tokens.revoke_family(pool, owner[2])
        return {}

    @staticmethod
    def _check_client_secret(client: Any, given: Any, code: str = "NotAuthorizedException") -> None:
        """The raw client secret that GetTokensFromRefreshToken, RevokeToken and GetClientToken take."""
        if not client.generate_secret:
            return
        if not isinstance(given, str) or not given:
            raise CognitoError(code, f"Client {client.id} is configured with secret but ClientSecret was not received")
        if not hmac.compare_digest(given.encode(), str(client.secret).encode()):
            raise CognitoError(code, f"Unable to verify secret for client {client.id}")

    def _check_client_config(self, params: dict[str, Any]) -> None:
        """Refuse client settings Cognito refuses; moto stores anything, including these fields."""
        validate_rotation(params.get("RefreshTokenRotation"))
        existing = None
        if params.get("ClientId"):
            existing = self._find_client(params.get("ClientId"))[2]
        m2m.check_client_config(params, existing)

    def _get_client_token(self, params: dict[str, Any]) -> dict[str, Any]:
        _, pool, client = self._find_client(params.get("ClientId"))
        return m2m.get_client_token(pool, client, params)

    def _oauth2_token(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """The user pool domain's token endpoint (client_credentials grant), on the Cognito endpoint."""
        self.stats.cognito_call("oauth2/token")
        status, payload, headers = m2m.token_endpoint(
            _read_body(environ), str(environ.get("HTTP_AUTHORIZATION") or ""), self._find_client
        )
        if status != 200:
            self.stats.cognito_rejected("oauth2/token")
        body = json.dumps(payload).encode()
        reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized"}.get(status, "Error")
        start_response(
            f"{status} {reason}",
            [("Content-Type", "application/json;charset=UTF-8"), ("Content-Length", str(len(body))), *headers],
        )
        return [body]

    @staticmethod
    def _resolve_user(pool: Any, username: Any) -> Any:
        """The user a sign-in names: its username, a UsernameAttributes value, or a verified alias.

        moto knows the first two; in an AliasAttributes pool Cognito also signs a user in by a
        verified e-mail or phone number (or any preferred_username), and then names the user by
        the internal username in USERNAME and USER_ID_FOR_SRP.
        """
        if not isinstance(username, str) or not username:
            return None
        user = pool._get_user(username)
        aliases = pool.extended_config.get("AliasAttributes") or []
        if user is not None or not aliases:
            return user
        for candidate in pool.users.values():
            attributes = {a["Name"]: a["Value"] for a in candidate.attributes}
            for alias in aliases:
                if attributes.get(alias) != username:
                    continue
                if alias == "preferred_username" or attributes.get(f"{alias}_verified") == "true":
                    return candidate
        return None

    def _active_user(self, pool: Any, username: Any) -> Any:
        user = self._resolve_user(pool, username)
        if user is None:
            raise CognitoError("UserNotFoundException", "User does not exist.")
        if not user.enabled:
            raise CognitoError("NotAuthorizedException", "User is disabled.")
        if str(getattr(user.status, "value", user.status)) == "UNCONFIRMED":
            raise CognitoError("UserNotConfirmedException", "User is not confirmed.")
        return user

    def _respond_to_auth_challenge(self, params: dict[str, Any]) -> dict[str, Any] | bytes | None:
        _, pool, client = self._find_client(params.get("ClientId"))
        responses = params.get("ChallengeResponses") or {}
        username = str(responses.get("USERNAME") or "")
        self._check_secret_hash(client, responses.get("SECRET_HASH"), [username])
        name = params.get("ChallengeName")
        if name == "SOFTWARE_TOKEN_MFA":
            return self._software_token_mfa(pool, client, params, responses)
        if name == "DEVICE_SRP_AUTH":
            return self._device_srp_auth(pool, client, params, responses)
        if name == "DEVICE_PASSWORD_VERIFIER":
            return self._device_password_verifier(pool, client, params, responses)
        if name in ("SELECT_CHALLENGE", "PASSWORD", "PASSWORD_SRP", "EMAIL_OTP"):
            return self._select_challenge(pool, client, params, responses)
        if name != "PASSWORD_VERIFIER":
            return None
        block = str(responses.get("PASSWORD_CLAIM_SECRET_BLOCK") or "")
        with self._lock:
            entry = self._srp_sessions.pop(block, None)
        refused = CognitoError("NotAuthorizedException", "Incorrect username or password.")
        if entry is None or self._clock() - entry[1] > SRP_SESSION_SECONDS:
            raise refused
        session = entry[0]
        user = self._resolve_user(pool, username)
        if session.client_id != client.id or user is None or user.username != session.username or session.device_key:
            raise refused
        if session.auth_session is not None and params.get("Session") != session.auth_session:
            raise CognitoError("NotAuthorizedException", "Invalid session for the user.")
        try:
            session.verify(
                signature_b64=str(responses.get("PASSWORD_CLAIM_SIGNATURE") or ""),
                timestamp=str(responses.get("TIMESTAMP") or ""),
                now=dt.datetime.fromtimestamp(self._clock(), dt.UTC),
            )
        except SrpError as exc:
            raise refused from exc
        # The proof holds: let moto run the rest (MFA, NEW_PASSWORD_REQUIRED, tokens) as after a password check.
        device_key = responses.get("DEVICE_KEY") or session.sign_in_device_key
        return self._after_first_factor(pool, client, user, user.password, device_key=device_key)

    def _software_token_mfa(
        self, pool: Any, client: Any, params: dict[str, Any], responses: dict[str, Any]
    ) -> dict[str, Any]:
        """Accept a code from the previous, current or next 30 s step, as Cognito does; moto takes only the current."""
        import pyotp
        from moto.cognitoidp import models

        totp = pyotp.TOTP(models.COGNITO_TOTP_MFA_SECRET)
        code = str(responses.get("SOFTWARE_TOKEN_MFA_CODE") or "")
        if not code.isdigit() or not totp.verify(code, valid_window=1):
            raise CognitoError("CodeMismatchException", "Invalid code received for user")
        result = self._moto(
            pool.backend.respond_to_auth_challenge,
            str(params.get("Session") or ""),
            client.id,
            "SOFTWARE_TOKEN_MFA",
            dict(responses, SOFTWARE_TOKEN_MFA_CODE=totp.now()),
            hide=[params.get("Session"), *responses.values()],
        )
        username = str(responses.get("USERNAME") or "")
        user = self._resolve_user(pool, username)
        return self._finish(pool, user.username if user is not None else username, result)

    # -- remembered devices -----------------------------------------------------------------------

    def _open_device_session(self, pool: Any, client: Any, user: Any, device: Device) -> str:
        session_id = "AYABe" + secrets.token_urlsafe(96)
        now = self._clock()
        minutes = float(client.extended_config.get("AuthSessionValidity") or 3)
        with self._lock:
            for key, (entry, _) in list(self._device_sessions.items()):
                if now > entry.expires_at:
                    del self._device_sessions[key]
            self._device_sessions[session_id] = (
                _ChoiceSession(pool.id, client.id, user.username, now + 60 * minutes),
                device.key,
            )
        return session_id

    def _device_srp_auth(
        self, pool: Any, client: Any, params: dict[str, Any], responses: dict[str, Any]
    ) -> dict[str, Any]:
        """DEVICE_SRP_AUTH: SRP_A against the device's stored verifier; username = DeviceKey, pool = DeviceGroupKey."""
        with self._lock:
            found = self._device_sessions.pop(str(params.get("Session") or ""), None)
        invalid = CognitoError("NotAuthorizedException", "Invalid session for the user, session is expired.")
        if found is None or self._clock() > found[0].expires_at or found[0].client_id != client.id:
            raise invalid
        entry, device_key = found
        user = self._resolve_user(pool, responses.get("USERNAME"))
        device = self.devices.get(responses.get("DEVICE_KEY"), pool.id, entry.username)
        if user is None or user.username != entry.username or device is None or device.key != device_key:
            raise invalid
        if device.verifier is None or device.salt_hex is None:
            raise CognitoError("NotAuthorizedException", "Device is not confirmed.")
        srp_a = responses.get("SRP_A")
        if not isinstance(srp_a, str) or not srp_a:
            raise CognitoError("InvalidParameterException", "Missing required parameter SRP_A")
        try:
            session = SrpServerSession.start_with_verifier(
                pool_id=pool.id,
                pool_name=device.group_key,
                username=device.key,
                client_id=client.id,
                verifier=device.verifier,
                salt_hex=device.salt_hex,
                srp_a_hex=srp_a,
            )
        except SrpError as exc:
            raise CognitoError("InvalidParameterException", str(exc)) from exc
        session.device_key = device.key
        session.auth_session = self._open_device_session(pool, client, user, device)
        now = self._clock()
        with self._lock:
            self._srp_sessions[session.secret_block_b64] = (session, now)
        return {
            "ChallengeName": "DEVICE_PASSWORD_VERIFIER",
            "Session": session.auth_session,
            "ChallengeParameters": {
                "SALT": session.salt_hex,
                "SRP_B": session.srp_b_hex,
                "SECRET_BLOCK": session.secret_block_b64,
                "USERNAME": user.username,
            },
        }

    def _device_password_verifier(
        self, pool: Any, client: Any, params: dict[str, Any], responses: dict[str, Any]
    ) -> dict[str, Any]:
        """The device's proof holds: tokens, no MFA, no new device."""
        block = str(responses.get("PASSWORD_CLAIM_SECRET_BLOCK") or "")
        with self._lock:
            entry = self._srp_sessions.pop(block, None)
            if entry is not None:
                self._device_sessions.pop(str(entry[0].auth_session), None)
        refused = CognitoError("NotAuthorizedException", "Incorrect username or password.")
        if entry is None or self._clock() - entry[1] > SRP_SESSION_SECONDS:
            raise refused
        session = entry[0]
        user = self._resolve_user(pool, responses.get("USERNAME"))
        device = self.devices.get(session.device_key, pool.id, user.username if user is not None else "")
        if (
            session.device_key is None
            or session.client_id != client.id
            or params.get("Session") != session.auth_session
            or responses.get("DEVICE_KEY") != session.device_key
            or device is None
        ):
            raise refused
        try:
            session.verify(
                signature_b64=str(responses.get("PASSWORD_CLAIM_SIGNATURE") or ""),
                timestamp=str(responses.get("TIMESTAMP") or ""),
                now=dt.datetime.fromtimestamp(self._clock(), dt.UTC),
            )
        except SrpError as exc:
            raise refused from exc
        return self._finish(pool, device.username, pool.backend._log_user_in(pool, client, device.username), device)

    def _access_token_user(self, token: Any) -> tuple[Any, str]:
        """(pool, username) of a live user access token with aws.cognito.signin.user.admin."""
        import jwt

        invalid = CognitoError("NotAuthorizedException", "Invalid Access Token")
        try:
            issuer = str(jwt.decode(str(token), options={"verify_signature": False}).get("iss") or "")
        except jwt.PyJWTError as exc:
            raise invalid from exc
        pool_id = issuer.rsplit("/", 1)[-1]
        for backend in self._idp_backends():
            pool = backend.user_pools.get(pool_id)
            if pool is None:
                continue
            try:
                claims = verify_id_token(
                    str(token), region=pool.region, user_pool_id=pool.id, client_ids=None, token_use="access"
                )
            except TokenError as exc:
                raise invalid from exc
            if "aws.cognito.signin.user.admin" not in str(claims.get("scope") or "").split():
                raise CognitoError("NotAuthorizedException", "Access Token does not have required scopes")
            issued = pool.access_tokens.get(token)
            if issued is None:
                raise CognitoError("NotAuthorizedException", "Access Token has been revoked")
            return pool, str(issued[1])
        raise invalid

    def _user_device(self, params: dict[str, Any]) -> tuple[Any, str, Device]:
        pool, username = self._access_token_user(params.get("AccessToken"))
        device = self.devices.get(params.get("DeviceKey"), pool.id, username)
        if device is None:
            raise CognitoError("ResourceNotFoundException", "Device does not exist.")
        return pool, username, device

    def _confirm_device(self, params: dict[str, Any]) -> dict[str, Any]:
        """ConfirmDevice: keep the device's SRP verifier; remembered at once unless the pool asks the user."""
        pool, _, device = self._user_device(params)
        config = DeviceConfig.of_pool(pool)
        if config is None:
            raise CognitoError("InvalidParameterException", "Device tracking is not enabled for this user pool.")
        ask_user = config.only_remembered_on_user_prompt
        self.devices.confirm(
            device, params.get("DeviceSecretVerifierConfig"), params.get("DeviceName"), remember=not ask_user
        )
        return {"UserConfirmationNecessary": ask_user}

    def _update_device_status(self, params: dict[str, Any]) -> dict[str, Any]:
        _, _, device = self._user_device(params)
        status = params.get("DeviceRememberedStatus")
        if status not in ("remembered", "not_remembered"):
            raise CognitoError(
                "InvalidParameterException", "DeviceRememberedStatus must be remembered or not_remembered"
            )
        self.devices.update(device, remembered=status == "remembered")
        return {}

    def _list_devices(self, params: dict[str, Any]) -> dict[str, Any]:
        pool, username = self._access_token_user(params.get("AccessToken"))
        return {"Devices": [d.to_api() for d in self.devices.listed(pool.id, username)]}

    def _get_device(self, params: dict[str, Any]) -> dict[str, Any]:
        _, _, device = self._user_device(params)
        return {"Device": device.to_api()}

    def _forget_device(self, params: dict[str, Any]) -> dict[str, Any]:
        """ForgetDevice: the device key no longer signs in, and refresh tokens issued on it stop working."""
        _, _, device = self._user_device(params)
        self.devices.forget(device)
        return {}

    # -- identity pool ----------------------------------------------------------------------------

    def _verify_logins(self, identity_pool: Any, logins: Any) -> list[tuple[str, dict[str, Any]]]:
        if not isinstance(logins, dict):
            raise CognitoError("InvalidParameterException", "Logins must be a map")
        providers: dict[str, set[str]] = {}
        for entry in identity_pool.cognito_identity_providers or []:
            providers.setdefault(entry.get("ProviderName", ""), set()).add(entry.get("ClientId", ""))
        verified = []
        for provider, token in logins.items():
            match = _PROVIDER.match(str(provider))
            if match is None or provider not in providers:
                raise CognitoError(
                    "NotAuthorizedException",
                    f"Invalid login token. Login provider {provider!r} is not configured for identity pool "
                    f"{identity_pool.identity_pool_id}.",
                )
            try:
                claims = verify_id_token(
                    str(token), region=match["region"], user_pool_id=match["pool"], client_ids=providers[provider]
                )
            except TokenError as exc:
                raise CognitoError("NotAuthorizedException", f"Invalid login token. {str(exc).capitalize()}.") from exc
            verified.append((str(provider), claims))
        return verified

    def _get_id(self, params: dict[str, Any]) -> dict[str, Any] | None:
        identity_pool = self._identity_pool(params.get("IdentityPoolId"))
        logins = params.get("Logins") or {}
        if not logins:
            if identity_pool.allow_unauthenticated_identities:
                return None
            raise CognitoError(
                "NotAuthorizedException", "Unauthenticated access is not supported for this identity pool."
            )
        provider, claims = self._verify_logins(identity_pool, logins)[0]
        key = (identity_pool.identity_pool_id, provider, str(claims["sub"]))
        with self._lock:
            identity_id = self._identity_by_login.get(key)
        if identity_id is None:
            from moto.cognitoidentity.models import cognitoidentity_backends

            region = identity_pool.identity_pool_id.split(":", 1)[0]
            backend = cognitoidentity_backends[self.account_id][region]
            identity_id = json.loads(backend.get_id(identity_pool.identity_pool_id))["IdentityId"]
            with self._lock:
                identity_id = self._identity_by_login.setdefault(key, identity_id)
                self._login_by_identity[identity_id] = key
        return {"IdentityId": identity_id}

    def _get_credentials_for_identity(self, params: dict[str, Any]) -> dict[str, Any] | None:
        identity_id = str(params.get("IdentityId") or "")
        with self._lock:
            login = self._login_by_identity.get(identity_id)
        if login is None:
            raise CognitoError("ResourceNotFoundException", f"Identity '{identity_id}' not found.")
        pool_id, provider, subject = login
        logins = params.get("Logins") or {}
        if not logins:
            raise CognitoError("NotAuthorizedException", f"Access to Identity '{identity_id}' is forbidden.")
        verified = self._verify_logins(self._identity_pool(pool_id), logins)
        if not any(p == provider and str(c["sub"]) == subject for p, c in verified):
            raise CognitoError(
                "NotAuthorizedException",
                "Logins don't match. Please include at least one valid login for this identity or identity pool.",
            )
        role_arn = params.get("CustomRoleArn") or self._default_role_arn
        if role_arn not in self._allowed_role_arns():
            raise CognitoError(
                "InvalidParameterException", f"CustomRoleArn {role_arn} is not a role of identity pool {pool_id}."
            )
        creds = self.registry.issue(identity_id=identity_id, role_arn=str(role_arn), subject=subject)
        return {
            "IdentityId": identity_id,
            "Credentials": {
                "AccessKeyId": creds.access_key_id,
                "SecretKey": creds.secret_key,
                "SessionToken": creds.session_token,
                "Expiration": creds.expires_at,
            },
        }


_SECRET_KEY = re.compile(r"(?i)token|session|secret|password|code|srp_a|signature")


def _secret_like_values(value: Any, secret: bool = False) -> Iterable[str]:
    """Strings of the request held under secret-sounding keys (tokens, sessions, hashes, codes)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _secret_like_values(item, secret or bool(_SECRET_KEY.search(str(key))))
    elif isinstance(value, list):
        for item in value:
            yield from _secret_like_values(item, secret)
    elif secret and isinstance(value, str) and len(value) >= 6:
        yield value


def _scrub(payload: bytes, request_body: bytes) -> bytes:
    try:
        error = json.loads(payload)
        params = json.loads(request_body or b"{}")
    except ValueError:
        return payload
    if not isinstance(error, dict):
        return payload
    for key in ("message", "Message"):
        message = error.get(key)
        if isinstance(message, str) and any(v in message for v in _secret_like_values(params)):
            error[key] = "Invalid token, session or secret hash."
    return json.dumps(error).encode()


def _read_body(environ: dict[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    stream = environ["wsgi.input"]
    return bytes(stream.read(length)) if length > 0 else b""


def _error(start_response: Callable[..., Any], error: CognitoError) -> list[bytes]:
    payload = json.dumps({"__type": error.code, "message": error.message}).encode()
    reason = {400: "Bad Request", 500: "Internal Server Error", 503: "Service Unavailable"}.get(error.status, "Error")
    start_response(
        f"{error.status} {reason}",
        [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-ErrorType", error.code),
            ("Content-Length", str(len(payload))),
        ],
    )
    return [payload]
