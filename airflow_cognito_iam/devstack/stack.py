"""DevStack: moto + the strict Cognito layer + the IAM-protected API, in this process, on free ports."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from airflow_cognito_iam.devstack.api_server import ApiApp, ApiConfig
from airflow_cognito_iam.devstack.keepalive import KeepAliveWSGIServer
from airflow_cognito_iam.devstack.state import ApiFaults, CognitoFaults, CredentialRegistry, Latency, RateLimits, Stats

ACCOUNT_ID = "123456789012"
DEFAULT_REGION = "us-east-1"
DEFAULT_CREDENTIAL_LIFETIME = 3600.0


class _ServerThread:
    """A threaded server on its own thread, stoppable from any thread."""

    def __init__(self, server: BaseWSGIServer | KeepAliveWSGIServer) -> None:
        self.server = server
        port = self.port
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"devstack-{port}", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@dataclass
class SeededClient:
    """One seeded app client and the user a connection for it signs in as; the secret stays out of repr."""

    name: str
    user_pool_id: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    auth_flow: str = "USER_SRP_AUTH"
    username: str = ""
    password: str = field(default="", repr=False)
    scopes: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "user_pool_id": self.user_pool_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "auth_flow": self.auth_flow,
            "username": self.username,
            "password": self.password,
            "scopes": list(self.scopes),
        }


@dataclass
class _Seed:
    """What seeding created; secrets stay out of repr."""

    user_pool_id: str = ""
    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    public_client_id: str = ""
    identity_pool_id: str = ""
    username: str = "devstack-user"
    password: str = field(default="", repr=False)
    mfa_username: str = "devstack-mfa-user"
    mfa_password: str = field(default="", repr=False)
    totp_secret: str = field(default="", repr=False)
    new_password_username: str = "devstack-new-user"
    new_password_password: str = field(default="", repr=False)
    bucket: str = "devstack-data"
    clients: dict[str, SeededClient] = field(default_factory=dict)


#: The seeded resource server and the scopes the seeded machine client may request.
M2M_RESOURCE_SERVER = "devstack-api"
M2M_SCOPES = (f"{M2M_RESOURCE_SERVER}/orders.read", f"{M2M_RESOURCE_SERVER}/orders.write")

#: Users of the device-remembering pool (the MFA one answers TOTP with ``totp_secret``, as moto shares it).
DEVICE_USERNAME = "devstack-device-user"
DEVICE_MFA_USERNAME = "devstack-device-mfa-user"

#: The AliasAttributes pool's internal username (its login is the verified e-mail) and the e-mail pool's login.
ALIAS_USERNAME = "devstack-alias-user"
EMAIL_LOGIN = "devstack-email-user@example.com"

#: RetryGracePeriodSeconds of the seeded rotation client after reset() (Cognito's: no grace).
DEFAULT_REFRESH_GRACE_SECONDS = 0


def _password() -> str:
    # Satisfies Cognito's default policy: upper, lower, digit, symbol, >= 8 chars.
    return f"Dv{secrets.token_urlsafe(12)}7!"


class DevStack:
    """Offline AWS for demos and tests: Cognito user + identity pools, S3 and a SigV4-protected API.

    ``with DevStack() as stack:`` starts everything on 127.0.0.1 (free ports unless given), seeds it
    and exposes the endpoints, ids and seeded credentials as attributes.
    """

    def __init__(
        self,
        *,
        region: str = DEFAULT_REGION,
        host: str = "127.0.0.1",
        moto_port: int = 0,
        api_port: int = 0,
        advertised_host: str | None = None,
        credential_lifetime: float = DEFAULT_CREDENTIAL_LIFETIME,
    ) -> None:
        self.region = region
        self.host = host
        self.advertised_host = advertised_host or ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host)  # noqa: S104
        self._requested_ports = (moto_port, api_port)
        self._default_lifetime = float(credential_lifetime)
        self.registry = CredentialRegistry(self._default_lifetime)
        self._stats = Stats()
        self._api_faults = ApiFaults()
        self._cognito_faults = CognitoFaults()
        self._latency = Latency()
        self._rate_limits = RateLimits()
        # Bucket names are global in S3 (and in moto's process-wide state): one per region.
        self._seed = _Seed(bucket="devstack-data" if region == DEFAULT_REGION else f"devstack-data-{region}")
        self._servers: list[_ServerThread] = []
        self.auth_role_arn = f"arn:aws:iam::{ACCOUNT_ID}:role/Cognito_DevstackAuth_Role"
        self.allowed_role_arns: set[str] = {self.auth_role_arn}
        self.api_url = ""
        self.moto_endpoint_url = ""
        self.raw_moto_endpoint_url = ""
        self._token_lifetime: int | None = None
        self._strict: Any = None
        self.started = False

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> DevStack:
        """Start moto, the strict layer and the API, then seed; returns self."""
        if self.started:
            return self
        # moto verifies SOFTWARE_TOKEN_MFA codes only with this set; it reads it on every call.
        os.environ["MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP"] = "true"
        _give_moto_a_real_totp_secret()
        _give_id_tokens_the_real_email()
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

        from airflow_cognito_iam.devstack.cognito_layer import StrictCognitoLayer

        class _QuietMotoHandler(MotoRequestHandler):
            """No access log: query strings of presigned S3 URLs carry credentials."""

            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                return None

        moto_app = DomainDispatcherApplication(create_backend_app)
        self._strict = strict = StrictCognitoLayer(
            moto_app,
            account_id=ACCOUNT_ID,
            registry=self.registry,
            stats=self._stats,
            faults=self._cognito_faults,
            allowed_role_arns=lambda: self.allowed_role_arns,
            default_role_arn=self.auth_role_arn,
        )
        try:
            moto_server = _ServerThread(
                make_server(
                    self.host, self._requested_ports[0], strict, threaded=True, request_handler=_QuietMotoHandler
                )
            )
            self._servers.append(moto_server)
            raw_server = _ServerThread(
                make_server("127.0.0.1", 0, moto_app, threaded=True, request_handler=_QuietMotoHandler)
            )
            self._servers.append(raw_server)
            for server in self._servers:
                server.start()
            self.moto_endpoint_url = f"http://{self.advertised_host}:{moto_server.port}"
            self.raw_moto_endpoint_url = f"http://127.0.0.1:{raw_server.port}"
            self._seed_all()
            api = ApiApp(
                ApiConfig(
                    region=self.region,
                    account_id=ACCOUNT_ID,
                    user_pool_id=self.user_pool_id,
                    client_ids=frozenset(
                        c.client_id
                        for c in self._seed.clients.values()
                        if c.username and c.user_pool_id == self.user_pool_id
                    ),
                    machine_client_ids=frozenset(
                        c.client_id for c in self._seed.clients.values() if c.auth_flow == "CLIENT_CREDENTIALS"
                    ),
                ),
                registry=self.registry,
                stats=self._stats,
                faults=self._api_faults,
                stats_snapshot=self.stats,
                control=self,
                latency=self._latency,
                rate_limits=self._rate_limits,
            )
            api_server = _ServerThread(KeepAliveWSGIServer((self.host, self._requested_ports[1]), api))
            self._servers.append(api_server)
            api_server.start()
            self.api_url = f"http://{self.advertised_host}:{api_server.port}"
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def stop(self) -> None:
        """Stop every server thread; safe to call twice."""
        servers, self._servers = self._servers, []
        for server in reversed(servers):
            if server.thread.is_alive():
                server.stop()
            else:
                server.server.server_close()
        self.started = False

    # -- seeding ----------------------------------------------------------------------------------

    def _admin_client(self, service: str) -> Any:
        """A boto3 client against moto itself (no strict layer), with dummy admin credentials."""
        import boto3

        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=self.region,
            endpoint_url=self.raw_moto_endpoint_url,
            aws_access_key_id="devstack-admin",
            aws_secret_access_key="devstack-admin",
        )

    def _seed_all(self) -> None:
        import pyotp

        idp = self._admin_client("cognito-idp")
        seed = self._seed
        pool = idp.create_user_pool(
            PoolName=f"devstack-{secrets.token_hex(3)}",
            MfaConfiguration="OPTIONAL",
            Policies={
                "PasswordPolicy": {"MinimumLength": 8},
                # USER_AUTH may offer passwords (PASSWORD, PASSWORD_SRP) and, to verified e-mails, EMAIL_OTP.
                "SignInPolicy": {"AllowedFirstAuthFactors": ["PASSWORD", "EMAIL_OTP"]},
            },
        )["UserPool"]
        seed.user_pool_id = pool["Id"]
        idp.set_user_pool_mfa_config(
            UserPoolId=seed.user_pool_id,
            SoftwareTokenMfaConfiguration={"Enabled": True},
            MfaConfiguration="OPTIONAL",
        )
        secret_client = idp.create_user_pool_client(
            UserPoolId=seed.user_pool_id,
            ClientName="devstack-confidential",
            GenerateSecret=True,
            ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]
        seed.client_id, seed.client_secret = secret_client["ClientId"], secret_client["ClientSecret"]
        seed.public_client_id = idp.create_user_pool_client(
            UserPoolId=seed.user_pool_id,
            ClientName="devstack-public",
            GenerateSecret=False,
            ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]["ClientId"]

        rotation = idp.create_user_pool_client(
            UserPoolId=seed.user_pool_id,
            ClientName="devstack-rotation",
            GenerateSecret=True,
            ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            EnableTokenRevocation=True,
            RefreshTokenRotation={"Feature": "ENABLED", "RetryGracePeriodSeconds": DEFAULT_REFRESH_GRACE_SECONDS},
        )["UserPoolClient"]

        user_auth = idp.create_user_pool_client(
            UserPoolId=seed.user_pool_id,
            ClientName="devstack-user-auth",
            GenerateSecret=True,
            ExplicitAuthFlows=["ALLOW_USER_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]

        idp.create_resource_server(
            UserPoolId=seed.user_pool_id,
            Identifier=M2M_RESOURCE_SERVER,
            Name="devstack API",
            Scopes=[
                {"ScopeName": "orders.read", "ScopeDescription": "read orders"},
                {"ScopeName": "orders.write", "ScopeDescription": "create orders"},
            ],
        )
        idp.create_user_pool_domain(
            Domain=f"devstack-{seed.user_pool_id.split('_', 1)[1].lower()}", UserPoolId=seed.user_pool_id
        )
        machine = idp.create_user_pool_client(
            UserPoolId=seed.user_pool_id,
            ClientName="devstack-m2m",
            GenerateSecret=True,
            ExplicitAuthFlows=["ALLOW_CLIENT_TOKEN_AUTH"],
            AllowedOAuthFlows=["client_credentials"],
            AllowedOAuthFlowsUserPoolClient=True,
            AllowedOAuthScopes=list(M2M_SCOPES),
        )["UserPoolClient"]
        seed.clients["m2m"] = SeededClient(
            "m2m",
            seed.user_pool_id,
            machine["ClientId"],
            machine["ClientSecret"],
            "CLIENT_CREDENTIALS",
            scopes=M2M_SCOPES,
        )

        seed.password, seed.mfa_password, seed.new_password_password = _password(), _password(), _password()
        seed.clients["default"] = SeededClient(
            "default",
            seed.user_pool_id,
            seed.client_id,
            seed.client_secret,
            username=seed.username,
            password=seed.password,
        )
        seed.clients["user_auth"] = SeededClient(
            "user_auth",
            seed.user_pool_id,
            user_auth["ClientId"],
            user_auth["ClientSecret"],
            "USER_AUTH",
            seed.username,
            seed.password,
        )
        seed.clients["public"] = SeededClient(
            "public", seed.user_pool_id, seed.public_client_id, "", "USER_SRP_AUTH", seed.username, seed.password
        )
        seed.clients["rotation"] = SeededClient(
            "rotation",
            seed.user_pool_id,
            rotation["ClientId"],
            rotation["ClientSecret"],
            "USER_SRP_AUTH",
            seed.username,
            seed.password,
        )
        for username, password, permanent in (
            (seed.username, seed.password, True),
            (seed.mfa_username, seed.mfa_password, True),
            (seed.new_password_username, seed.new_password_password, False),
        ):
            idp.admin_create_user(
                UserPoolId=seed.user_pool_id,
                Username=username,
                TemporaryPassword=password,
                MessageAction="SUPPRESS",
                UserAttributes=[
                    {"Name": "email", "Value": f"{username}@example.com"},
                    # Only the main user may receive EMAIL_OTP, so clients can see it offered and decline it.
                    {"Name": "email_verified", "Value": "true" if username == seed.username else "false"},
                ],
            )
            if permanent:
                idp.admin_set_user_password(
                    UserPoolId=seed.user_pool_id, Username=username, Password=password, Permanent=True
                )

        tokens = idp.admin_initiate_auth(
            UserPoolId=seed.user_pool_id,
            ClientId=seed.public_client_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": seed.mfa_username, "PASSWORD": seed.mfa_password},
        )["AuthenticationResult"]
        seed.totp_secret = idp.associate_software_token(AccessToken=tokens["AccessToken"])["SecretCode"]
        idp.verify_software_token(AccessToken=tokens["AccessToken"], UserCode=pyotp.TOTP(seed.totp_secret).now())
        idp.admin_set_user_mfa_preference(
            UserPoolId=seed.user_pool_id,
            Username=seed.mfa_username,
            SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True},
        )

        self._seed_device_pool(idp)
        self._seed_login_pools(idp)

        seed.identity_pool_id = self._admin_client("cognito-identity").create_identity_pool(
            IdentityPoolName="devstack_identities",
            AllowUnauthenticatedIdentities=False,
            # Every seeded client that signs in users may trade its ID tokens here.
            CognitoIdentityProviders=[
                {
                    "ProviderName": f"cognito-idp.{self.region}.amazonaws.com/{c.user_pool_id}",
                    "ClientId": c.client_id,
                    "ServerSideTokenCheck": False,
                }
                for c in seed.clients.values()
                if c.username
            ],
        )["IdentityPoolId"]

        s3 = self._admin_client("s3")
        # moto's state is per process: another stack here may have made the bucket already.
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            if self.region == "us-east-1":
                s3.create_bucket(Bucket=seed.bucket)
            else:
                s3.create_bucket(Bucket=seed.bucket, CreateBucketConfiguration={"LocationConstraint": self.region})

    def _seed_device_pool(self, idp: Any) -> None:
        """A second pool that remembers devices (ChallengeRequiredOnNewDevice, remembered without a prompt)."""
        import pyotp

        seed = self._seed
        pool_id = idp.create_user_pool(
            PoolName=f"devstack-devices-{secrets.token_hex(3)}",
            MfaConfiguration="OPTIONAL",
            Policies={"PasswordPolicy": {"MinimumLength": 8}},
            DeviceConfiguration={"ChallengeRequiredOnNewDevice": True, "DeviceOnlyRememberedOnUserPrompt": False},
        )["UserPool"]["Id"]
        idp.set_user_pool_mfa_config(
            UserPoolId=pool_id, SoftwareTokenMfaConfiguration={"Enabled": True}, MfaConfiguration="OPTIONAL"
        )
        client = idp.create_user_pool_client(
            UserPoolId=pool_id,
            ClientName="devstack-devices",
            GenerateSecret=True,
            ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        )["UserPoolClient"]
        for name, username in (("device", DEVICE_USERNAME), ("device_mfa", DEVICE_MFA_USERNAME)):
            password = _password()
            idp.admin_create_user(
                UserPoolId=pool_id,
                Username=username,
                TemporaryPassword=password,
                MessageAction="SUPPRESS",
                UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"}],
            )
            idp.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=password, Permanent=True)
            seed.clients[name] = SeededClient(
                name, pool_id, client["ClientId"], client["ClientSecret"], username=username, password=password
            )
        tokens = idp.admin_initiate_auth(
            UserPoolId=pool_id,
            ClientId=client["ClientId"],
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": DEVICE_MFA_USERNAME, "PASSWORD": seed.clients["device_mfa"].password},
        )["AuthenticationResult"]
        secret = idp.associate_software_token(AccessToken=tokens["AccessToken"])["SecretCode"]
        idp.verify_software_token(AccessToken=tokens["AccessToken"], UserCode=pyotp.TOTP(secret).now())
        idp.admin_set_user_mfa_preference(
            UserPoolId=pool_id,
            Username=DEVICE_MFA_USERNAME,
            SoftwareTokenMfaSettings={"Enabled": True, "PreferredMfa": True},
        )

    def _seed_login_pools(self, idp: Any) -> None:
        """Pools where the login is not the username: an e-mail alias, and e-mail as the username."""
        for name, pool_args, username, login in (
            ("alias", {"AliasAttributes": ["email"]}, ALIAS_USERNAME, f"{ALIAS_USERNAME}@example.com"),
            ("email", {"UsernameAttributes": ["email"]}, EMAIL_LOGIN, EMAIL_LOGIN),
        ):
            pool_id = idp.create_user_pool(
                PoolName=f"devstack-{name}-{secrets.token_hex(3)}",
                Policies={"PasswordPolicy": {"MinimumLength": 8}},
                **pool_args,
            )["UserPool"]["Id"]
            client = idp.create_user_pool_client(
                UserPoolId=pool_id,
                ClientName=f"devstack-{name}",
                GenerateSecret=True,
                ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            )["UserPoolClient"]
            password = _password()
            idp.admin_create_user(
                UserPoolId=pool_id,
                Username=username,
                TemporaryPassword=password,
                MessageAction="SUPPRESS",
                UserAttributes=[
                    {"Name": "email", "Value": login if "@" in login else f"{username}@example.com"},
                    {"Name": "email_verified", "Value": "true"},
                ],
            )
            idp.admin_set_user_password(UserPoolId=pool_id, Username=username, Password=password, Permanent=True)
            self._seed.clients[name] = SeededClient(
                name, pool_id, client["ClientId"], client["ClientSecret"], username=login, password=password
            )

    # -- seeded values ----------------------------------------------------------------------------

    @property
    def user_pool_id(self) -> str:
        return self._seed.user_pool_id

    @property
    def client_id(self) -> str:
        """The app client WITH a secret (SECRET_HASH required on every call)."""
        return self._seed.client_id

    @property
    def client_secret(self) -> str:
        return self._seed.client_secret

    @property
    def public_client_id(self) -> str:
        """The app client without a secret (SRP and refresh only)."""
        return self._seed.public_client_id

    @property
    def identity_pool_id(self) -> str:
        return self._seed.identity_pool_id

    @property
    def username(self) -> str:
        return self._seed.username

    @property
    def password(self) -> str:
        return self._seed.password

    @property
    def mfa_username(self) -> str:
        return self._seed.mfa_username

    @property
    def mfa_password(self) -> str:
        return self._seed.mfa_password

    @property
    def totp_secret(self) -> str:
        return self._seed.totp_secret

    @property
    def new_password_username(self) -> str:
        return self._seed.new_password_username

    @property
    def new_password_password(self) -> str:
        return self._seed.new_password_password

    @property
    def bucket(self) -> str:
        return self._seed.bucket

    @property
    def rotation_client_id(self) -> str:
        """App client with a secret and RefreshTokenRotation ENABLED (refresh via GetTokensFromRefreshToken)."""
        return self._seed.clients["rotation"].client_id

    @property
    def rotation_client_secret(self) -> str:
        return self._seed.clients["rotation"].client_secret

    @property
    def user_auth_client_id(self) -> str:
        """App client with a secret whose only sign-in flow is USER_AUTH (choice-based: PASSWORD, PASSWORD_SRP)."""
        return self._seed.clients["user_auth"].client_id

    @property
    def user_auth_client_secret(self) -> str:
        return self._seed.clients["user_auth"].client_secret

    @property
    def m2m_client_id(self) -> str:
        """App client with a secret whose only flow is ALLOW_CLIENT_TOKEN_AUTH (and OAuth client_credentials)."""
        return self._seed.clients["m2m"].client_id

    @property
    def m2m_client_secret(self) -> str:
        return self._seed.clients["m2m"].client_secret

    @property
    def m2m_scopes(self) -> tuple[str, ...]:
        """Custom scopes the machine client may ask for (``devstack-api/orders.read``, ``.write``)."""
        return M2M_SCOPES

    @property
    def oauth_token_url(self) -> str:
        """The user pool domain's token endpoint (client_credentials grant), served on the Cognito endpoint."""
        return f"{self.moto_endpoint_url}/oauth2/token"

    @property
    def device_user_pool_id(self) -> str:
        """The second user pool: DeviceConfiguration ChallengeRequiredOnNewDevice=true, no user prompt."""
        return self._seed.clients["device"].user_pool_id

    @property
    def device_client_id(self) -> str:
        """App client (with a secret: SRP, password, refresh) of the device pool."""
        return self._seed.clients["device"].client_id

    @property
    def device_client_secret(self) -> str:
        return self._seed.clients["device"].client_secret

    @property
    def device_username(self) -> str:
        return self._seed.clients["device"].username

    @property
    def device_password(self) -> str:
        return self._seed.clients["device"].password

    @property
    def device_mfa_username(self) -> str:
        """TOTP user of the device pool (code from ``totp_secret``): a remembered device replaces the MFA step."""
        return self._seed.clients["device_mfa"].username

    @property
    def device_mfa_password(self) -> str:
        return self._seed.clients["device_mfa"].password

    @property
    def device_provider_name(self) -> str:
        """The identity-pool Logins key of the device pool."""
        return f"cognito-idp.{self.region}.amazonaws.com/{self.device_user_pool_id}"

    @property
    def alias_user_pool_id(self) -> str:
        """A pool with AliasAttributes ["email"]: its user signs in with the verified e-mail ``alias_login``."""
        return self._seed.clients["alias"].user_pool_id

    @property
    def alias_client_id(self) -> str:
        return self._seed.clients["alias"].client_id

    @property
    def alias_client_secret(self) -> str:
        return self._seed.clients["alias"].client_secret

    @property
    def alias_login(self) -> str:
        """The e-mail alias to sign in with; challenges name the user ``alias_username``."""
        return self._seed.clients["alias"].username

    @property
    def alias_username(self) -> str:
        return ALIAS_USERNAME

    @property
    def alias_password(self) -> str:
        return self._seed.clients["alias"].password

    @property
    def email_user_pool_id(self) -> str:
        """A pool with UsernameAttributes ["email"]: the login is the e-mail, the username an internal UUID."""
        return self._seed.clients["email"].user_pool_id

    @property
    def email_client_id(self) -> str:
        return self._seed.clients["email"].client_id

    @property
    def email_client_secret(self) -> str:
        return self._seed.clients["email"].client_secret

    @property
    def email_login(self) -> str:
        return self._seed.clients["email"].username

    @property
    def email_password(self) -> str:
        return self._seed.clients["email"].password

    def last_email_otp(self, username: str) -> str | None:
        """The EMAIL_OTP code last "sent" to this user in a USER_AUTH sign-in (no e-mail leaves the stack)."""
        return self._strict.last_email_otp.get(username) if self._strict is not None else None

    @property
    def seeded_clients(self) -> dict[str, SeededClient]:
        """Every seeded app client by name (``default``, ``public``, ``rotation``, ...)."""
        return dict(self._seed.clients)

    @property
    def provider_name(self) -> str:
        """The identity-pool Logins key of the seeded user pool."""
        return f"cognito-idp.{self.region}.amazonaws.com/{self.user_pool_id}"

    def __repr__(self) -> str:
        return (
            f"DevStack(api_url={self.api_url!r}, moto_endpoint_url={self.moto_endpoint_url!r}, region={self.region!r})"
        )

    # -- connections ------------------------------------------------------------------------------

    def conn_extra(self, **overrides: Any) -> dict[str, Any]:
        """Extras of a ``cognito_iam`` connection for the seeded user; an override of None drops a key."""
        extra: dict[str, Any] = {
            "user_pool_id": self.user_pool_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "identity_pool_id": self.identity_pool_id,
            "region": self.region,
            "cognito_idp_endpoint_url": self.moto_endpoint_url,
            "cognito_identity_endpoint_url": self.moto_endpoint_url,
        }
        if not _is_loopback(self.advertised_host):
            extra["allow_http"] = True
        extra.update(overrides)
        return {key: value for key, value in extra.items() if value is not None}

    def conn_dict(self, **overrides: Any) -> dict[str, Any]:
        """A full connection dict; host/login/password/port/schema go top-level, the rest to extra."""
        top_level = {"conn_type", "host", "login", "password", "port", "schema", "description"}
        conn: dict[str, Any] = {
            "conn_type": "cognito_iam",
            "host": self.api_url,
            "login": self.username,
            "password": self.password,
        }
        extra_overrides = {}
        for key, value in overrides.items():
            if key in top_level:
                conn[key] = value
            else:
                extra_overrides[key] = value
        conn = {key: value for key, value in conn.items() if value is not None}
        conn["extra"] = self.conn_extra(**extra_overrides)
        return conn

    def conn_dict_for(self, name: str, **overrides: Any) -> dict[str, Any]:
        """A connection dict for the seeded client ``name`` (see ``seeded_clients``), then ``overrides``."""
        try:
            seeded = self._seed.clients[name]
        except KeyError:
            raise ValueError(f"no seeded client {name!r}; choose from {sorted(self._seed.clients)}") from None
        base: dict[str, Any] = {
            "user_pool_id": seeded.user_pool_id,
            "client_id": seeded.client_id,
            "client_secret": seeded.client_secret or None,
            "login": seeded.username or None,
            "password": seeded.password or None,
        }
        if seeded.auth_flow != "USER_SRP_AUTH":
            base["auth_flow"] = seeded.auth_flow
        if seeded.scopes:
            base["scopes"] = list(seeded.scopes)
        if not seeded.username:  # machine clients have no user, hence no identity pool
            base["identity_pool_id"] = None
        base.update(overrides)
        return self.conn_dict(**base)

    @property
    def conn_json(self) -> str:
        """JSON for ``AIRFLOW_CONN_COGNITO_IAM_DEFAULT``."""
        return json.dumps(self.conn_dict())

    def aws_conn_dict(self) -> dict[str, Any]:
        """An amazon-provider ``aws`` connection whose S3 calls go to the stack (dummy keys)."""
        # Airflow masks the password everywhere in logs: it must not be a word of bucket or user names.
        return {
            "conn_type": "aws",
            "login": "DEVSTACKDUMMYKEY0000",
            "password": "devstack-dummy-secret-access-key",
            "extra": {"endpoint_url": self.moto_endpoint_url, "region_name": self.region},
        }

    @property
    def aws_conn_json(self) -> str:
        """JSON for ``AIRFLOW_CONN_AWS_DEFAULT``."""
        return json.dumps(self.aws_conn_dict())

    def env(self) -> dict[str, str]:
        """Environment variables that point Airflow at the stack."""
        return {"AIRFLOW_CONN_COGNITO_IAM_DEFAULT": self.conn_json, "AIRFLOW_CONN_AWS_DEFAULT": self.aws_conn_json}

    def describe(self) -> dict[str, Any]:
        """Everything a user needs, as one JSON-ready document (secrets included: it is a local stack)."""
        return {
            "api_url": self.api_url,
            "moto_endpoint_url": self.moto_endpoint_url,
            "raw_moto_endpoint_url": self.raw_moto_endpoint_url,
            "region": self.region,
            "user_pool_id": self.user_pool_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "public_client_id": self.public_client_id,
            "identity_pool_id": self.identity_pool_id,
            "provider_name": self.provider_name,
            "username": self.username,
            "password": self.password,
            "mfa_username": self.mfa_username,
            "mfa_password": self.mfa_password,
            "totp_secret": self.totp_secret,
            "new_password_username": self.new_password_username,
            "new_password_password": self.new_password_password,
            "bucket": self.bucket,
            "rotation_client_id": self.rotation_client_id,
            "rotation_client_secret": self.rotation_client_secret,
            "user_auth_client_id": self.user_auth_client_id,
            "user_auth_client_secret": self.user_auth_client_secret,
            "m2m_client_id": self.m2m_client_id,
            "m2m_client_secret": self.m2m_client_secret,
            "m2m_scopes": list(self.m2m_scopes),
            "oauth_token_url": self.oauth_token_url,
            "device_user_pool_id": self.device_user_pool_id,
            "device_client_id": self.device_client_id,
            "device_client_secret": self.device_client_secret,
            "device_username": self.device_username,
            "device_password": self.device_password,
            "device_mfa_username": self.device_mfa_username,
            "device_mfa_password": self.device_mfa_password,
            "device_provider_name": self.device_provider_name,
            "alias_user_pool_id": self.alias_user_pool_id,
            "alias_client_id": self.alias_client_id,
            "alias_client_secret": self.alias_client_secret,
            "alias_login": self.alias_login,
            "alias_username": self.alias_username,
            "alias_password": self.alias_password,
            "email_user_pool_id": self.email_user_pool_id,
            "email_client_id": self.email_client_id,
            "email_client_secret": self.email_client_secret,
            "email_login": self.email_login,
            "email_password": self.email_password,
            "clients": {name: c.describe() for name, c in self._seed.clients.items()},
            "credential_lifetime_seconds": self.registry.lifetime_seconds,
            "conn_json": self.conn_json,
            "aws_conn_json": self.aws_conn_json,
        }

    # -- knobs ------------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters: ``cognito`` calls per action, ``cognito_rejected``, ``api`` per route/status, ``s3``,
        ``rate_limited`` (429s from rate limits), and the ``latency`` / ``rate_limits`` in force."""
        snapshot = self._stats.snapshot()
        snapshot["latency"] = self._latency.snapshot()
        snapshot["rate_limits"] = self._rate_limits.snapshot()
        snapshot["credentials_issued"] = len(self.registry)
        return snapshot

    def reset_stats(self) -> None:
        self._stats.reset()

    def set_credential_lifetime(self, seconds: float) -> None:
        """Lifetime of AWS credentials issued from now on (default 3600 s)."""
        self.registry.set_lifetime(seconds)

    def reset_credential_lifetime(self) -> None:
        self.registry.set_lifetime(self._default_lifetime)

    def set_token_lifetime(self, seconds: int) -> None:
        """Lifetime of ID and access tokens issued from now on (Cognito's default and ours: 3600 s).

        moto hard-codes one hour; the seeded pool's token factory is wrapped so refresh paths can be
        exercised with genuinely short-lived tokens.
        """
        if seconds <= 0:
            raise ValueError("token lifetime must be positive seconds")
        from moto.cognitoidp.models import cognitoidp_backends

        pool = cognitoidp_backends[ACCOUNT_ID][self.region].user_pools[self.user_pool_id]
        original = type(pool).create_jwt

        def create_jwt(
            client_id: str,
            username: str,
            token_use: str,
            expires_in: int = 3600,
            extra_data: dict[str, Any] | None = None,
        ) -> tuple[str, int]:
            result: tuple[str, int] = original(pool, client_id, username, token_use, int(seconds), extra_data)
            return result

        pool.create_jwt = create_jwt  # type: ignore[method-assign]
        pool.devstack_token_lifetime = int(seconds)  # type: ignore[attr-defined]  # machine (client-credentials) tokens read this
        self._token_lifetime = int(seconds)

    def reset_token_lifetime(self) -> None:
        """Back to moto's (and Cognito's default) one-hour tokens."""
        if self._token_lifetime is None or not self.user_pool_id:
            return
        from moto.cognitoidp.models import cognitoidp_backends

        pool = cognitoidp_backends[ACCOUNT_ID][self.region].user_pools[self.user_pool_id]
        vars(pool).pop("create_jwt", None)
        vars(pool).pop("devstack_token_lifetime", None)
        self._token_lifetime = None

    def expire_credentials(self) -> None:
        """Expire every AWS credential issued so far, so the next signed call gets ExpiredTokenException."""
        self.registry.expire_all()

    def set_faults(
        self,
        kind: str,
        *,
        rate: float = 1.0,
        count: int | None = None,
        retry_after: float = 1.0,
        delay_seconds: float = 2.0,
        path_prefix: str | None = None,
    ) -> None:
        """Add a global API fault: ``500``/``502``/``503``/``504``, ``429`` (with Retry-After), ``reset`` or ``slow``.

        ``rate`` is the chance per matching request; ``count`` limits the rule to the next N firings.
        """
        self._api_faults.add(
            kind, rate=rate, count=count, retry_after=retry_after, delay_seconds=delay_seconds, path_prefix=path_prefix
        )

    def clear_faults(self) -> None:
        self._api_faults.clear()

    def set_cognito_faults(
        self,
        *,
        count: int | None = 1,
        rate: float = 1.0,
        actions: Iterable[str] | None = None,
        error: str = "TooManyRequestsException",
        status: int = 400,
    ) -> None:
        """Fail the next ``count`` Cognito calls (None: every call, with ``rate``) of ``actions`` (default all)."""
        self._cognito_faults.add(count=count, rate=rate, actions=actions, error=error, status=status)

    def clear_cognito_faults(self) -> None:
        self._cognito_faults.clear()

    def _moto_client(self, name: str) -> Any:
        from moto.cognitoidp.models import cognitoidp_backends

        seeded = self._seed.clients[name]
        pool = cognitoidp_backends[ACCOUNT_ID][self.region].user_pools[seeded.user_pool_id]
        return pool.clients[seeded.client_id]

    def set_refresh_grace_period(self, seconds: int) -> None:
        """RetryGracePeriodSeconds (0-60) of the seeded rotation client: how long a rotated-out token still works."""
        from airflow_cognito_iam.devstack.refresh import MAX_GRACE_SECONDS

        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 0 <= seconds <= MAX_GRACE_SECONDS:
            raise ValueError(f"grace period must be whole seconds from 0 to {MAX_GRACE_SECONDS}, got {seconds!r}")
        spec = {"Feature": "ENABLED", "RetryGracePeriodSeconds": seconds}
        self._moto_client("rotation").extended_config["RefreshTokenRotation"] = spec

    def set_latency(self, seconds: float, path_prefix: str = "/") -> None:
        """Add ``seconds`` to each API request under ``path_prefix`` (longest prefix wins), without holding others."""
        self._latency.set(seconds, path_prefix)

    def clear_latency(self) -> None:
        self._latency.clear()

    def set_rate_limit(self, rate: float, burst: int, path_prefix: str = "/") -> None:
        """Throttle API requests under ``path_prefix`` with a token bucket: 429 and Retry-After past it."""
        self._rate_limits.set(rate, burst, path_prefix)

    def clear_rate_limits(self) -> None:
        self._rate_limits.clear()

    def reset(self) -> None:
        """Back to defaults between tests: no faults, latency or rate limits, default lifetimes and grace period,
        zeroed counters."""
        self.clear_latency()
        self.clear_rate_limits()
        if self._seed.clients:
            self.set_refresh_grace_period(DEFAULT_REFRESH_GRACE_SECONDS)
        self.clear_faults()
        self.clear_cognito_faults()
        self.reset_credential_lifetime()
        self.reset_token_lifetime()
        self.reset_stats()

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` against the strict endpoint (dummy keys unless given)."""
        import boto3

        kwargs.setdefault("region_name", self.region)
        kwargs.setdefault("endpoint_url", self.moto_endpoint_url)
        kwargs.setdefault("aws_access_key_id", "devstack")
        kwargs.setdefault("aws_secret_access_key", "devstack")
        return boto3.client(service, **kwargs)  # type: ignore[call-overload]

    def s3_client(self, **kwargs: Any) -> Any:
        """A boto3 S3 client against the stack."""
        return self.client("s3", **kwargs)


def _give_moto_a_real_totp_secret() -> None:
    """moto hands every user the same 60-bit TOTP secret, which pyotp (and authenticator apps) refuse.

    moto reads the module constant at call time, so a 160-bit secret, as Cognito issues, replaces it
    for this process. Every user still shares it, which is moto's model.
    """
    import pyotp
    from moto.cognitoidp import models

    if models.COGNITO_TOTP_MFA_SECRET == "asdfasdfasdf":
        models.COGNITO_TOTP_MFA_SECRET = pyotp.random_base32(32)  # type: ignore[misc]


def _give_id_tokens_the_real_email() -> None:
    """In an e-mail-as-username pool moto puts the internal username (a UUID) in the ID token's ``email``.

    Cognito puts the user's e-mail there. The pool's token factory is wrapped once per process to
    pass the attribute, which moto's claims then take over.
    """
    from moto.cognitoidp.models import CognitoIdpUserPool

    original = CognitoIdpUserPool.create_jwt
    if getattr(original, "devstack_email_claim", False):
        return

    def create_jwt(
        self: CognitoIdpUserPool,
        client_id: str,
        username: str,
        token_use: str,
        expires_in: int = 3600,
        extra_data: dict[str, Any] | None = None,
    ) -> tuple[str, int]:
        if token_use == "id" and "email" in (self.extended_config.get("UsernameAttributes") or []):
            user = self._get_user(username)
            email = next((a["Value"] for a in user.attributes if a["Name"] == "email"), None) if user else None
            if email:
                extra_data = {**(extra_data or {}), "email": email}
        return original(self, client_id, username, token_use, expires_in, extra_data)

    create_jwt.devstack_email_claim = True  # type: ignore[attr-defined]
    CognitoIdpUserPool.create_jwt = create_jwt  # type: ignore[method-assign]


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
