"""The connection form: Airflow 3.3 builds it only from get_provider_info()."""

from __future__ import annotations

from importlib.metadata import entry_points

from airflow_cognito_iam.auth.settings import KNOWN_EXTRAS
from airflow_cognito_iam.get_provider_info import get_provider_info


def connection_type() -> dict:
    (conn_type,) = get_provider_info()["connection-types"]
    return conn_type


def test_entry_point_points_at_get_provider_info() -> None:
    (ep,) = [ep for ep in entry_points(group="apache_airflow_provider") if ep.value.startswith("airflow_cognito_iam")]
    assert ep.load() is get_provider_info


def test_connection_type_names_our_hook() -> None:
    conn_type = connection_type()
    assert conn_type["connection-type"] == "cognito_iam"
    assert conn_type["hook-class-name"] == "airflow_cognito_iam.hooks.cognito_iam.CognitoIamHook"


def test_every_form_field_is_a_known_extra() -> None:
    assert set(connection_type()["conn-fields"]) <= set(KNOWN_EXTRAS)


def test_secrets_are_password_fields() -> None:
    fields = connection_type()["conn-fields"]
    secret = {name for name, spec in fields.items() if spec["schema"].get("format") == "password"}
    assert secret == {"client_secret", "totp_secret"}


def test_enumerations_offer_exactly_the_supported_values() -> None:
    fields = connection_type()["conn-fields"]
    assert set(fields["auth_flow"]["schema"]["enum"]) - {None} == {"USER_SRP_AUTH", "USER_PASSWORD_AUTH"}
    assert set(fields["credential_cache"]["schema"]["enum"]) - {None} == {"memory", "shared", "none"}


def test_ui_behaviour_relabels_and_hides() -> None:
    behaviour = connection_type()["ui-field-behaviour"]
    assert behaviour["relabeling"]["host"] == "API base URL"
    assert behaviour["relabeling"]["login"] == "Username"
    assert set(behaviour["hidden-fields"]) == {"schema", "port"}
    assert "execute-api" in behaviour["placeholders"]["host"]


def test_airflow_providers_manager_registers_the_form() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = manager.connection_form_widgets
    assert "extra__cognito_iam__user_pool_id" in widgets
    assert widgets["extra__cognito_iam__client_secret"].is_sensitive
    assert manager.field_behaviours["cognito_iam"]["relabeling"]["host"] == "API base URL"
