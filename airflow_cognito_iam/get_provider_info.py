"""Provider metadata: the Airflow 3.3 UI builds the `cognito_iam` connection form only from this.

How the 3.3.2 form reads it (airflow/ui, "flexible form" of extra fields):
* A field is required when its schema ``type`` lacks ``"null"``; so every optional field allows
  null, and a blank field means "the default" (settings treat null and "" as unset).
* An ``enum`` is offered as it is: ``None`` in it shows up as a literal "null" option, so the
  enums below hold only real values; clearing the select stores null (= the default).
* Extra fields have no placeholder of their own: the form shows ``schema.examples`` as suggestions
  (a datalist) instead. ``placeholders`` in ``ui-field-behaviour`` reach the standard fields only.
* Booleans render as a switch showing ``!!value``: a null ``verify`` would look "off" while it
  means on, so ``verify`` is a plain (required) boolean; ``allow_http`` (default off) may be null.
* ``schema.section`` groups fields into their own collapsible part of the form.
* The edit form shows only the keys present in the stored extra: store every key (see
  ``FORM_DEFAULTS``) for a connection to show all of its fields.
"""

from __future__ import annotations

from typing import Any

from airflow_cognito_iam import __version__

ADVANCED = "Advanced: API signing, endpoints, retries, cache"


def _field(label: str, description: str, schema: dict[str, Any], section: str | None) -> dict[str, Any]:
    if section:
        schema = {**schema, "section": section}
    return {"label": label, "description": description, "schema": schema}


def _text(
    label: str,
    description: str,
    *,
    examples: list[str] | None = None,
    default: str | None = None,
    secret: bool = False,
    section: str | None = None,
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if secret:
        schema["format"] = "password"
    if examples:
        schema["examples"] = examples
    if default is not None:
        schema["default"] = default
    return _field(label, description, schema, section)


def _choice(
    label: str, description: str, options: list[str], *, default: str | None = None, section: str | None = None
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"], "enum": options}
    if default is not None:
        schema["default"] = default
    return _field(label, description, schema, section)


def _number(
    label: str,
    description: str,
    default: float,
    minimum: float,
    maximum: float,
    *,
    integer: bool = False,
    section: str | None = None,
) -> dict[str, Any]:
    schema = {
        "type": ["integer" if integer else "number", "null"],
        "default": default,
        "minimum": minimum,
        "maximum": maximum,
    }
    return _field(label, description, schema, section)


def _switch(label: str, description: str, default: bool, *, section: str | None = None) -> dict[str, Any]:
    # The switch shows a null as "off": nullable only where off is the default, so blank = shown.
    schema = {"type": "boolean" if default else ["boolean", "null"], "default": default}
    return _field(label, description, schema, section)


CONN_FIELDS: dict[str, dict[str, Any]] = {
    "user_pool_id": _text(
        "User pool ID",
        "Required, e.g. eu-west-1_AbC123xyz. Its prefix is the default region.",
        examples=["eu-west-1_AbC123xyz"],
    ),
    "client_id": _text("App client ID", "Required: the user pool app client to sign in with."),
    "client_secret": _text(
        "App client secret",
        "Only if the app client has a secret (then SECRET_HASH is sent). Default: none.",
        secret=True,
    ),
    "identity_pool_id": _text(
        "Identity pool ID",
        "Needed for AWS credentials (SigV4), e.g. eu-west-1:0123abcd-... Default: none (bearer modes only).",
        examples=["eu-west-1:01234567-89ab-cdef-0123-456789abcdef"],
    ),
    "region": _text(
        "Region", "Region of the user pool endpoint. Default: the user pool ID's prefix.", examples=["eu-west-1"]
    ),
    "auth_flow": _choice(
        "Auth flow",
        "Default USER_SRP_AUTH (password never sent). CLIENT_CREDENTIALS: the app client itself, bearer only.",
        ["USER_SRP_AUTH", "USER_PASSWORD_AUTH", "USER_AUTH", "CLIENT_CREDENTIALS"],
        default="USER_SRP_AUTH",
    ),
    "preferred_challenge": _choice(
        "USER_AUTH first factor",
        "USER_AUTH only. Default PASSWORD_SRP (password never sent); NONE answers Cognito's SELECT_CHALLENGE.",
        ["PASSWORD_SRP", "PASSWORD", "NONE"],
    ),
    "totp_secret": _text(
        "TOTP secret",
        "Base32 secret of the user's authenticator app, to answer SOFTWARE_TOKEN_MFA. Default: none.",
        secret=True,
    ),
    "custom_role_arn": _text(
        "Custom role ARN",
        "Role to request from the identity pool. Default: the pool's authenticated role.",
        examples=["arn:aws:iam::123456789012:role/etl-api-reader"],
    ),
    "scopes": _text(
        "Scopes (CLIENT_CREDENTIALS)",
        "CLIENT_CREDENTIALS only: space-separated scopes. Default: the app client's allowed scopes.",
        examples=["orders/read"],
    ),
    "oauth_token_url": _text(
        "Token URL (CLIENT_CREDENTIALS)",
        "CLIENT_CREDENTIALS only: the user pool domain's /oauth2/token URL. Default: Cognito's GetClientToken.",
        examples=["https://my-domain.auth.eu-west-1.amazoncognito.com/oauth2/token"],
    ),
    "api_region": _text(
        "API region",
        "SigV4 region of the API. Default: from an execute-api host, else Region.",
        examples=["eu-west-1"],
        section=ADVANCED,
    ),
    "api_service": _text(
        "API service", "SigV4 service name. Default execute-api.", examples=["execute-api"], section=ADVANCED
    ),
    "allowed_hosts": _text(
        "Allowed hosts",
        "More host[:port] names signed requests may go to, comma-separated. Default: only the API host.",
        examples=["files.example.com"],
        section=ADVANCED,
    ),
    "cognito_idp_endpoint_url": _text(
        "Cognito user pool endpoint URL",
        "Override for a VPC endpoint or a local stack. Default: the public AWS endpoint.",
        examples=["https://cognito-idp.eu-west-1.amazonaws.com"],
        section=ADVANCED,
    ),
    "cognito_identity_endpoint_url": _text(
        "Cognito identity endpoint URL",
        "Override for a VPC endpoint or a local stack. Default: the public AWS endpoint.",
        examples=["https://cognito-identity.eu-west-1.amazonaws.com"],
        section=ADVANCED,
    ),
    "verify": _switch(
        "Verify TLS",
        "Default on. A CA bundle path may be set in the Extra Fields JSON instead.",
        True,
        section=ADVANCED,
    ),
    "allow_http": _switch(
        "Allow plain http",
        "http:// to non-loopback hosts (a devstack container). Default off; never for real AWS.",
        False,
        section=ADVANCED,
    ),
    "timeout": _number(
        "Timeout (seconds)", "Timeout of each Cognito and API request. Default 30.", 30, 0.1, 3600, section=ADVANCED
    ),
    "max_attempts": _number(
        "Max attempts",
        "Per request, for throttling, 5xx and connection errors. Default 5.",
        5,
        1,
        100,
        integer=True,
        section=ADVANCED,
    ),
    "max_retry_seconds": _number(
        "Retry budget (seconds)", "Time budget for those attempts. Default 60.", 60, 0, 21600, section=ADVANCED
    ),
    "credential_cache": _choice(
        "Credential cache",
        "Default shared (encrypted file per worker); memory, redis (whole deployment) or none.",
        ["shared", "memory", "redis", "none"],
        default="shared",
        section=ADVANCED,
    ),
    "cache_conn_id": _text(
        "Redis connection ID",
        "Airflow Redis connection for the redis cache. Default redis_default.",
        examples=["redis_default"],
        section=ADVANCED,
    ),
    "refresh_margin_seconds": _number(
        "Refresh margin (seconds)",
        "Renew AWS credentials this long before they expire. Default 300.",
        300,
        0,
        3600,
        section=ADVANCED,
    ),
}

#: What the add form stores for a field left as it is: the schema's default, else null (= default).
#: A connection written with every one of these keys shows every typed field in the edit form.
FORM_DEFAULTS: dict[str, Any] = {name: spec["schema"].get("default") for name, spec in CONN_FIELDS.items()}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema"],
    "relabeling": {
        "host": "API base URL",
        "login": "Username",
        "password": "Password",
        # Airflow 3.3.2's Test button sends port 0 for an empty port and the API server then refuses
        # the stored secrets (400): a stored 0 is what makes Test work. 0 means "no port".
        "port": "Port (0 = none)",
    },
    "placeholders": {
        "host": "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod",
        "login": "etl-bot@example.com",
        "password": "user pool password",
        "port": "enter 0 unless the API needs a port not in its URL",
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return what Airflow's ProvidersManager reads from the `apache_airflow_provider` entry point."""
    # No underscores, backticks or angle brackets: the Providers page strips them as RST syntax.
    return {
        "package-name": "airflow-cognito-iam",
        "name": "Cognito IAM",
        "description": "Call APIs behind API Gateway IAM authorization as an Amazon Cognito user pool user.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Amazon Cognito IAM",
                "external-doc-url": "https://docs.aws.amazon.com/cognito/latest/developerguide/",
                "tags": ["aws"],
            }
        ],
        "hooks": [
            {
                "integration-name": "Amazon Cognito IAM",
                "python-modules": ["airflow_cognito_iam.hooks.cognito_iam"],
            }
        ],
        "operators": [
            {
                "integration-name": "Amazon Cognito IAM",
                "python-modules": ["airflow_cognito_iam.operators.api"],
            }
        ],
        "sensors": [
            {
                "integration-name": "Amazon Cognito IAM",
                "python-modules": ["airflow_cognito_iam.sensors.api"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Amazon Cognito IAM",
                "python-modules": ["airflow_cognito_iam.triggers.api"],
            }
        ],
        "connection-types": [
            {
                "hook-class-name": "airflow_cognito_iam.hooks.cognito_iam.CognitoIamHook",
                "hook-name": "Amazon Cognito IAM",
                "connection-type": "cognito_iam",
                "conn-fields": CONN_FIELDS,
                "ui-field-behaviour": UI_FIELD_BEHAVIOUR,
            }
        ],
    }
