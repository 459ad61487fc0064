"""Provider metadata: the Airflow 3.3 UI builds the `cognito_iam` connection form only from this."""

from __future__ import annotations

from typing import Any

from airflow_cognito_iam import __version__


def _text(label: str, description: str, *, secret: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": ["string", "null"]}
    if secret:
        schema["format"] = "password"
    return {"label": label, "description": description, "schema": schema}


def _choice(label: str, description: str, options: list[str], default: str) -> dict[str, Any]:
    return {
        "label": label,
        "description": description,
        "schema": {"type": ["string", "null"], "enum": [*options, None], "default": default},
    }


CONN_FIELDS: dict[str, dict[str, Any]] = {
    "user_pool_id": _text("User pool ID", "e.g. eu-west-1_AbC123xyz; its prefix is the default region."),
    "client_id": _text("App client ID", "The user pool app client the job signs in with."),
    "client_secret": _text(
        "App client secret", "Only if the app client has a secret (then SECRET_HASH is sent).", secret=True
    ),
    "identity_pool_id": _text(
        "Identity pool ID", "e.g. eu-west-1:0123abcd-...; needed to get AWS credentials (IAM mode)."
    ),
    "region": _text("Region", "Overrides the region taken from the user pool ID."),
    "auth_flow": _choice(
        "Auth flow",
        "USER_SRP_AUTH never sends the password (as Amplify); USER_PASSWORD_AUTH must be enabled on the client.",
        ["USER_SRP_AUTH", "USER_PASSWORD_AUTH"],
        "USER_SRP_AUTH",
    ),
    "totp_secret": _text(
        "TOTP secret", "Base32 secret of the user's authenticator app, to answer SOFTWARE_TOKEN_MFA.", secret=True
    ),
    "custom_role_arn": _text(
        "Custom role ARN", "Role to request from the identity pool (role-based access control)."
    ),
    "api_region": _text("API region", "SigV4 region of the API; default from an execute-api host, else Region."),
    "api_service": _text("API service", "SigV4 service name; default execute-api."),
    "cognito_idp_endpoint_url": _text(
        "Cognito user pool endpoint URL", "Override for a local stack or a VPC endpoint."
    ),
    "cognito_identity_endpoint_url": _text(
        "Cognito identity endpoint URL", "Override for a local stack or a VPC endpoint."
    ),
    "verify": {
        "label": "Verify TLS",
        "description": "Verify TLS certificates (a CA bundle path may be given in the Extra JSON).",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "timeout": {
        "label": "Timeout (seconds)",
        "description": "Timeout of each Cognito and API request.",
        "schema": {"type": ["number", "null"], "default": 30},
    },
    "credential_cache": _choice(
        "Credential cache",
        "shared: encrypted file cache shared by task processes on a worker; memory: per process; none.",
        ["shared", "memory", "none"],
        "shared",
    ),
    "allow_http": {
        "label": "Allow plain http",
        "description": "Allow http:// to non-loopback hosts (e.g. a devstack container). Never for real AWS.",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
}

UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["schema", "port"],
    "relabeling": {"host": "API base URL", "login": "Username", "password": "Password"},
    "placeholders": {
        "host": "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod",
        "login": "etl-bot@example.com",
        "password": "user pool password",
        "user_pool_id": "eu-west-1_AbC123xyz",
        "client_id": "1example23456789abcdefghij",
        "identity_pool_id": "eu-west-1:01234567-89ab-cdef-0123-456789abcdef",
        "custom_role_arn": "arn:aws:iam::123456789012:role/etl-api-reader",
        "cognito_idp_endpoint_url": "https://cognito-idp.eu-west-1.amazonaws.com",
        "cognito_identity_endpoint_url": "https://cognito-identity.eu-west-1.amazonaws.com",
        "extra": '{"user_pool_id": "eu-west-1_AbC123xyz", "client_id": "...", "identity_pool_id": "eu-west-1:..."}',
    },
}


def get_provider_info() -> dict[str, Any]:
    """Return what Airflow's ProvidersManager reads from the `apache_airflow_provider` entry point."""
    return {
        "package-name": "airflow-cognito-iam",
        "name": "Cognito IAM",
        "description": "Call AWS_IAM-protected APIs as an Amazon Cognito user pool user.",
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
