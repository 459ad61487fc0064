"""What a failed sign-in means, in words an administrator can act on (never a secret in them).

A mixin of ``UserPoolAuthenticator``: it needs ``self.settings`` and ``self._who(flow)``.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from airflow_cognito_iam.auth.cognito_client import scrub
from airflow_cognito_iam.auth.errors import AuthenticationError, CognitoIamError, ConfigurationError
from airflow_cognito_iam.auth.retry import describe_exception
from airflow_cognito_iam.auth.settings import CognitoSettings

#: The flow names refresh errors are reported under.
REFRESH_FLOWS = ("REFRESH_TOKEN_AUTH", "GetTokensFromRefreshToken")


class RefreshTokenRejectedError(AuthenticationError):
    """The refresh token expired, was revoked or already rotated: a full sign-in is needed."""


class TotpRejectedError(AuthenticationError):
    """The TOTP code was refused; one more try in the next time step may succeed."""


class SignInErrors:
    """Turns Cognito's answers into errors naming the pool, user, client, flow and the fix."""

    settings: CognitoSettings

    def _who(self, flow: str | None = None) -> str:
        raise NotImplementedError

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
        if code == "InvalidParameterException" and "refresh_token_auth" in low and "rotation" in low:
            return ConfigurationError(
                {
                    "cognito_idp_endpoint_url": f"app client {s.client_id} rotates refresh tokens, so only "
                    "GetTokensFromRefreshToken can refresh them, and this Cognito endpoint does not offer it"
                },
                conn_id=s.conn_id,
            )
        if flow in REFRESH_FLOWS and code in ("NotAuthorizedException", "RefreshTokenReuseException"):
            # Expired, revoked, already rotated (single-use), or bound to a forgotten device.
            return RefreshTokenRejectedError(f"refresh token refused for {who} ({code}): a full sign-in is needed")
        if code in ("CodeMismatchException", "ExpiredCodeException"):
            return TotpRejectedError(f"TOTP code refused for {who}")
        if code == "NotAuthorizedException":
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
        if name in ("EMAIL_OTP", "SMS_OTP", "WEB_AUTHN"):
            how = {"EMAIL_OTP": "an e-mailed code", "SMS_OTP": "a texted code", "WEB_AUTHN": "a passkey"}[name]
            return (
                f"{who} was asked for {how} ({name}), which an unattended job cannot give: an administrator must "
                "let this app client sign the user in with a password (ALLOW_USER_AUTH with PASSWORD or "
                "PASSWORD_SRP among the pool's allowed first factors, or ALLOW_USER_SRP_AUTH with auth_flow "
                "USER_SRP_AUTH), and use TOTP if MFA is required."
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
