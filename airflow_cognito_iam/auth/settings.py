"""CognitoSettings: a typed, validated view of a `cognito_iam` connection.

Validation happens here, once, before any network call, and reports every bad field together so a
user fixes the connection in one go instead of one error per task run.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args
from urllib.parse import urlsplit

from airflow_cognito_iam.auth.errors import ConfigurationError
from airflow_cognito_iam.auth.origins import entry_origins, is_loopback_host

AuthFlow = Literal["USER_SRP_AUTH", "USER_PASSWORD_AUTH", "USER_AUTH", "CLIENT_CREDENTIALS"]
#: USER_AUTH's first factor: SRP (the password never leaves the worker), the password itself, or NONE
#: (no preference: Cognito offers SELECT_CHALLENGE and SRP is chosen when offered).
PreferredChallenge = Literal["PASSWORD_SRP", "PASSWORD", "NONE"]
CacheMode = Literal["memory", "shared", "redis", "none"]

_REGION = r"[a-z]{2}(?:-[a-z]+)+-\d+"
_USER_POOL_ID = re.compile(rf"^(?P<region>{_REGION})_[0-9A-Za-z]+$")
_IDENTITY_POOL_ID = re.compile(rf"^(?P<region>{_REGION}):[0-9a-fA-F-]+$")
_REGION_RE = re.compile(rf"^{_REGION}$")
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9-]+\.execute-api\.(?P<region>[a-z0-9-]+)\.(?:vpce\.)?amazonaws\.com(?:\.cn)?$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$")

#: Extras a connection may carry; anything close to one of these but not equal is a typo.
KNOWN_EXTRAS = (
    "user_pool_id",
    "client_id",
    "client_secret",
    "identity_pool_id",
    "region",
    "auth_flow",
    "totp_secret",
    "custom_role_arn",
    "api_region",
    "api_service",
    "cognito_idp_endpoint_url",
    "cognito_identity_endpoint_url",
    "verify",
    "timeout",
    "credential_cache",
    "allow_http",
    "allowed_hosts",
    "refresh_margin_seconds",
    "max_attempts",
    "max_retry_seconds",
    "preferred_challenge",
    "scopes",
    "oauth_token_url",
    "cache_conn_id",
)

#: Upper bounds: anything above is a typo or a unit mix-up (milliseconds for seconds), not a wish.
MAX_TIMEOUT_SECONDS = 3600.0
MAX_RETRY_SECONDS = 6 * 3600.0

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_number(
    value: Any,
    name: str,
    minimum: float,
    maximum: float,
    problems: dict[str, str],
    *,
    integral: bool = False,
) -> float | None:
    """A finite number in ``[minimum, maximum]`` from a number or numeric string, else a problem.

    Booleans are refused (``true`` would silently mean 1), as are NaN and infinity (a NaN budget
    compares false with everything, so bounds built on it never trigger).
    """
    kind = "a whole number" if integral else "a number"
    allowed = f"{kind} from {minimum:g} to {maximum:g}"
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        problems[name] = f"must be {allowed}, got {value!r}"
        return None
    try:
        number = float(value)
    except ValueError:
        problems[name] = f"must be {allowed}, got {value!r}"
        return None
    if not math.isfinite(number) or not minimum <= number <= maximum or (integral and not number.is_integer()):
        problems[name] = f"must be {allowed}, got {value!r}"
        return None
    return number


def _is_base32(secret: str) -> bool:
    text = secret.replace(" ", "").upper()
    if not text or not set(text.rstrip("=")) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"):
        return False
    try:
        base64.b32decode(text + "=" * (-len(text) % 8))
    except (binascii.Error, ValueError):
        return False
    return True


@dataclass(frozen=True)
class CognitoSettings:
    """Everything needed to sign in, exchange and sign; secrets are kept out of ``repr``."""

    username: str
    password: str = field(repr=False)
    user_pool_id: str
    client_id: str
    region: str
    client_secret: str | None = field(default=None, repr=False)
    identity_pool_id: str | None = None
    auth_flow: AuthFlow = "USER_SRP_AUTH"
    totp_secret: str | None = field(default=None, repr=False)
    custom_role_arn: str | None = None
    api_base_url: str | None = None
    api_region: str | None = None
    api_service: str = "execute-api"
    cognito_idp_endpoint_url: str | None = None
    cognito_identity_endpoint_url: str | None = None
    verify: bool | str = True
    timeout: float = 30.0
    credential_cache: CacheMode = "shared"
    allow_http: bool = False
    allowed_hosts: tuple[str, ...] = ()
    refresh_margin_seconds: float = 300.0
    max_attempts: int = 5
    max_retry_seconds: float = 60.0
    preferred_challenge: PreferredChallenge = "PASSWORD_SRP"
    scopes: tuple[str, ...] = ()
    oauth_token_url: str | None = None
    cache_conn_id: str = "redis_default"
    conn_id: str | None = None

    @property
    def is_machine(self) -> bool:
        """True for CLIENT_CREDENTIALS: an app client, no user, access tokens only."""
        return self.auth_flow == "CLIENT_CREDENTIALS"

    @property
    def principal(self) -> str:
        """Who signs in, for messages and cache keys: the user, or the app client in M2M."""
        return self.username or f"app client {self.client_id}"

    @property
    def provider_name(self) -> str:
        """The identity-pool Logins key: always the pool's own region, whatever ``region`` says."""
        pool_region = self.user_pool_id.split("_", 1)[0]
        suffix = ".amazonaws.com.cn" if pool_region.startswith("cn-") else ".amazonaws.com"
        return f"cognito-idp.{pool_region}{suffix}/{self.user_pool_id}"

    @property
    def api_host(self) -> str | None:
        """``host[:port]`` of the API base URL: the only host signed requests may go to by default."""
        return urlsplit(self.api_base_url).netloc if self.api_base_url else None

    @property
    def signing_region(self) -> str:
        """SigV4 region for API calls: explicit, else from an execute-api host, else the pool region."""
        return self.api_region or self.region

    def cache_key(self) -> str:
        """Stable, secret-free key naming whose credentials these are (user, pools, role, endpoints)."""
        parts: tuple[str, ...] = (
            self.user_pool_id,
            self.client_id,
            self.username,
            self.identity_pool_id or "",
            self.custom_role_arn or "",
            self.cognito_idp_endpoint_url or "",
            self.cognito_identity_endpoint_url or "",
        )
        if self.is_machine:  # scopes and token endpoint change what an M2M token may do
            parts += (self.auth_flow, " ".join(sorted(self.scopes)), self.oauth_token_url or "")
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    @classmethod
    def from_connection(
        cls,
        *,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: Any,
        port: int | None = None,
        conn_id: str | None = None,
    ) -> CognitoSettings:
        """Validate connection values; raise one ConfigurationError naming every problem."""
        if extra is not None and not isinstance(extra, Mapping):
            raise ConfigurationError(
                {"extra": f"must be a JSON object of settings, got {_json_kind(extra)}"}, conn_id=conn_id
            )
        return _Parser(host, login, password, dict(extra or {}), port, conn_id).parse()


def _json_kind(value: Any) -> str:
    names = {list: "a JSON list", str: "a JSON string", bool: "a JSON boolean", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


class _Parser:
    """Collects every problem instead of stopping at the first."""

    def __init__(
        self,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: dict[str, Any],
        port: int | None,
        conn_id: str | None,
    ) -> None:
        self.host, self.login, self.password, self.port = host, login, password, port
        self.extra = {k: v for k, v in extra.items() if v is not None and v != ""}
        self.conn_id = conn_id
        self.problems: dict[str, str] = {}

    def text(self, name: str) -> str | None:
        value = self.extra.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.problems[name] = f"must be a string, got {type(value).__name__}"
            return None
        return value.strip() or None

    def boolean(self, name: str, default: bool) -> bool:
        value = self.extra.get(name, default)
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        self.problems[name] = "must be true or false"
        return default

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        value = self.extra.get(name, default)
        number = parse_number(value, name, minimum, maximum, self.problems)
        return default if number is None else number

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        value = self.extra.get(name, default)
        number = parse_number(value, name, minimum, maximum, self.problems, integral=True)
        return default if number is None else int(number)

    def choice(self, name: str, options: tuple[str, ...], default: str) -> str:
        value = self.text(name) or default
        if value not in options:
            self.problems[name] = f"must be one of {', '.join(options)}; got {value!r}"
            return default
        return value

    def url(self, name: str, value: str | None, allow_http: bool) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            _ = parts.port  # raises for a port that is not a number in 0-65535
        except ValueError as exc:
            self.problems[name] = f"not a valid URL ({exc}): {value!r}"
            return None
        if parts.port == 0:
            self.problems[name] = f"port must be 1-65535: {value!r}"
            return None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.problems[name] = f"must be an http(s) URL with a host, got {value!r}"
            return None
        if parts.scheme == "http" and not allow_http and not is_loopback_host(parts.hostname):
            self.problems[name] = (
                "plain http to a non-loopback host would expose credentials; use https or set extra allow_http=true"
            )
            return None
        return value.rstrip("/")

    def api_base_url(self, allow_http: bool) -> str | None:
        host = (self.host or "").strip()
        if not host:
            return None
        if "://" not in host:
            host = f"https://{host}"
        port = self.port
        if port is not None and (isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535):
            self.problems["port"] = f"must be a port number 1-65535, got {port!r}"
            port = None
        try:
            has_port = urlsplit(host).port is not None
        except ValueError:
            has_port = True  # url() reports it
        if port and not has_port:  # 0 is what the UI sends for a hidden port field: no port
            parts = urlsplit(host)
            host = parts._replace(netloc=f"{parts.netloc}:{port}").geturl()
        return self.url("host", host, allow_http)

    def scopes(self) -> tuple[str, ...]:
        value = self.extra.get("scopes", ())
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) and v.strip() for v in value):
            self.problems["scopes"] = "must be a list of scope names or one space-separated string"
            return ()
        return tuple(v.strip() for v in value)

    def typos(self) -> None:
        for key in self.extra:
            if key in KNOWN_EXTRAS:
                continue
            close = difflib.get_close_matches(key, KNOWN_EXTRAS, n=1, cutoff=0.8)
            if close:
                self.problems[key] = f"unknown extra; did you mean {close[0]!r}?"

    def parse(self) -> CognitoSettings:
        self.typos()
        auth_flow = self.choice("auth_flow", get_args(AuthFlow), "USER_SRP_AUTH")
        machine = auth_flow == "CLIENT_CREDENTIALS"
        if not machine and not (self.login or "").strip():
            self.problems["login"] = "the user pool username is required"
        if not machine and not self.password:
            self.problems["password"] = "the user pool password is required"

        user_pool_id = self.text("user_pool_id")
        pool_region = None
        if user_pool_id is None:
            if "user_pool_id" not in self.problems:
                self.problems["user_pool_id"] = "required, e.g. 'eu-west-1_AbC123xyz'"
        elif match := _USER_POOL_ID.match(user_pool_id):
            pool_region = match["region"]
        else:
            self.problems["user_pool_id"] = (
                f"expected '<region>_<id>', e.g. 'eu-west-1_AbC123xyz'; got {user_pool_id!r}"
            )

        client_id = self.text("client_id")
        if client_id is None and "client_id" not in self.problems:
            self.problems["client_id"] = "the app client id is required"

        region = self.text("region") or pool_region
        if region is not None and not _REGION_RE.match(region):
            self.problems["region"] = f"not an AWS region name: {region!r}"

        identity_pool_id = self.text("identity_pool_id")
        if identity_pool_id is not None and not _IDENTITY_POOL_ID.match(identity_pool_id):
            self.problems["identity_pool_id"] = (
                f"expected '<region>:<uuid>', e.g. 'eu-west-1:0123abcd-...'; got {identity_pool_id!r}"
            )

        custom_role_arn = self.text("custom_role_arn")
        if custom_role_arn is not None and not _ROLE_ARN.match(custom_role_arn):
            self.problems["custom_role_arn"] = "expected an IAM role ARN, arn:aws:iam::<account>:role/<name>"

        allow_http = self.boolean("allow_http", False)
        api_base_url = self.api_base_url(allow_http)
        api_region = self.text("api_region")
        if api_region is None and api_base_url:
            hostname = urlsplit(api_base_url).hostname or ""
            if match := _EXECUTE_API_HOST.match(hostname):
                api_region = match["region"]
        if api_region is not None and not _REGION_RE.match(api_region):
            self.problems["api_region"] = f"not an AWS region name: {api_region!r}"

        verify: bool | str
        raw_verify = self.extra.get("verify", True)
        if isinstance(raw_verify, str) and raw_verify.strip().lower() not in _TRUE | _FALSE:
            verify = raw_verify.strip()  # a CA bundle path, as requests accepts
        else:
            verify = self.boolean("verify", True)

        allowed = self.extra.get("allowed_hosts", ())
        if isinstance(allowed, str):
            allowed = [h.strip() for h in allowed.split(",") if h.strip()]
        if not isinstance(allowed, list | tuple) or not all(isinstance(h, str) for h in allowed):
            self.problems["allowed_hosts"] = "must be a list of host[:port] names or a comma-separated string"
            allowed = ()
        refused = [h for h in allowed if h.strip() and not entry_origins(h, allow_http=allow_http)]
        if refused:
            self.problems["allowed_hosts"] = (
                f"not a host[:port] or https:// origin: {refused} (http:// only for loopback hosts or with "
                "allow_http=true)"
            )

        client_secret = self.text("client_secret")
        totp_secret = self.text("totp_secret")
        if totp_secret is not None and not _is_base32(totp_secret):
            self.problems["totp_secret"] = "must be the base32 secret (letters A-Z and digits 2-7) the user registered"
        if machine:
            if client_secret is None and "client_secret" not in self.problems:
                self.problems["client_secret"] = "CLIENT_CREDENTIALS needs the app client's secret"
            if identity_pool_id is not None:
                self.problems["identity_pool_id"] = (
                    "an identity pool needs a user's ID token; CLIENT_CREDENTIALS gets only an access token. "
                    "Remove identity_pool_id and call the API with auth='access_token'"
                )
            if totp_secret is not None:
                self.problems["totp_secret"] = "CLIENT_CREDENTIALS has no user, so no MFA"
        scopes = self.scopes()
        oauth_token_url = self.url("oauth_token_url", self.text("oauth_token_url"), allow_http)
        if (scopes or oauth_token_url) and not machine:
            key = "scopes" if scopes else "oauth_token_url"
            self.problems[key] = "only used with auth_flow CLIENT_CREDENTIALS"

        settings = dict(
            auth_flow=auth_flow,
            credential_cache=self.choice("credential_cache", get_args(CacheMode), "shared"),
            preferred_challenge=self.choice("preferred_challenge", get_args(PreferredChallenge), "PASSWORD_SRP"),
            cache_conn_id=self.text("cache_conn_id") or "redis_default",
            scopes=scopes,
            oauth_token_url=oauth_token_url,
            client_secret=client_secret,
            totp_secret=totp_secret,
            api_service=self.text("api_service") or "execute-api",
            cognito_idp_endpoint_url=self.url(
                "cognito_idp_endpoint_url", self.text("cognito_idp_endpoint_url"), allow_http
            ),
            cognito_identity_endpoint_url=self.url(
                "cognito_identity_endpoint_url", self.text("cognito_identity_endpoint_url"), allow_http
            ),
            timeout=self.number("timeout", 30.0, 0.1, MAX_TIMEOUT_SECONDS),
            refresh_margin_seconds=self.number("refresh_margin_seconds", 300.0, 0, 3600),
            max_attempts=self.integer("max_attempts", 5, 1, 100),
            max_retry_seconds=self.number("max_retry_seconds", 60.0, 0, MAX_RETRY_SECONDS),
        )
        if self.problems:
            raise ConfigurationError(self.problems, conn_id=self.conn_id)
        return CognitoSettings(
            username=(self.login or "").strip(),
            password=self.password or "",
            user_pool_id=cast(str, user_pool_id),
            client_id=cast(str, client_id),
            region=cast(str, region),
            identity_pool_id=identity_pool_id,
            custom_role_arn=custom_role_arn,
            api_base_url=api_base_url,
            api_region=api_region,
            verify=verify,
            allow_http=allow_http,
            allowed_hosts=tuple(allowed),
            conn_id=self.conn_id,
            **settings,  # type: ignore[arg-type]
        )
