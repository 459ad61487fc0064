"""The connection form: Airflow 3.3 builds it only from get_provider_info()."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import get_args

from airflow_cognito_iam.auth.settings import KNOWN_EXTRAS, AuthFlow, CacheMode, CognitoSettings, PreferredChallenge
from airflow_cognito_iam.get_provider_info import FORM_DEFAULTS, get_provider_info


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


def test_secrets_are_password_fields() -> None:
    fields = connection_type()["conn-fields"]
    secret = {name for name, spec in fields.items() if spec["schema"].get("format") == "password"}
    assert secret == {"client_secret", "totp_secret"}


def test_every_setting_is_a_typed_field() -> None:
    assert set(connection_type()["conn-fields"]) == set(KNOWN_EXTRAS)


def test_enumerations_offer_exactly_the_supported_values_and_no_null_choice() -> None:
    fields = connection_type()["conn-fields"]
    assert fields["auth_flow"]["schema"]["enum"] == list(get_args(AuthFlow))
    assert set(fields["credential_cache"]["schema"]["enum"]) == set(get_args(CacheMode))
    assert set(fields["preferred_challenge"]["schema"]["enum"]) == set(get_args(PreferredChallenge))
    for name, spec in fields.items():
        assert None not in spec["schema"].get("enum", []), f"{name}: the 3.3 form would offer a 'null' option"


def test_only_the_required_settings_are_required_and_blanks_mean_the_default() -> None:
    """The 3.3 form marks a field required when its type lacks "null"; a blank then disables Save."""
    fields = connection_type()["conn-fields"]
    required = {name for name, spec in fields.items() if "null" not in spec["schema"]["type"]}
    assert required == {"verify"}, "a nullable switch would show 'off' for a null verify (which means on)"
    assert fields["verify"]["schema"]["default"] is True


def test_defaults_in_the_form_are_the_settings_defaults() -> None:
    """A connection saved from the form unchanged behaves like one without the keys."""
    devstack_like = {"user_pool_id": "eu-west-1_AbC123xyz", "client_id": "abc"}
    bare = CognitoSettings.from_connection(host=None, login="u", password="p", extra=devstack_like)
    saved = CognitoSettings.from_connection(
        host=None, login="u", password="p", extra={**FORM_DEFAULTS, **devstack_like}, port=0
    )
    assert saved == bare


def test_descriptions_are_short_and_say_the_default() -> None:
    for name, spec in connection_type()["conn-fields"].items():
        assert len(spec["description"]) <= 110, name
        assert "Default" in spec["description"] or "Required" in spec["description"], name


def test_placeholders_use_what_the_3_3_form_reads() -> None:
    """Extra fields show schema.examples (a datalist); ui-field-behaviour placeholders reach only standard fields."""
    conn_type = connection_type()
    placeholders = conn_type["ui-field-behaviour"]["placeholders"]
    assert set(placeholders) <= {"host", "login", "password", "port", "schema", "description"}
    fields = conn_type["conn-fields"]
    assert fields["user_pool_id"]["schema"]["examples"] == ["eu-west-1_AbC123xyz"]
    for name, spec in fields.items():
        assert all(isinstance(e, str) for e in spec["schema"].get("examples", [])), name


def test_ui_behaviour_relabels_hides_schema_and_keeps_the_port() -> None:
    behaviour = connection_type()["ui-field-behaviour"]
    assert behaviour["relabeling"]["host"] == "API base URL"
    assert behaviour["relabeling"]["login"] == "Username"
    assert behaviour["hidden-fields"] == ["schema"]
    assert "0" in behaviour["relabeling"]["port"], "the Test button works only with a stored port (0 = none)"
    assert "execute-api" in behaviour["placeholders"]["host"]


def test_provider_description_survives_the_providers_page() -> None:
    """The Providers page strips `_<>` and backticks as RST syntax (AWS_IAM became AWSIAM)."""
    from airflow.api_fastapi.core_api.services.public.providers import _remove_rst_syntax

    description = get_provider_info()["description"]
    assert _remove_rst_syntax(description) == description.rstrip(".")


def test_the_providers_page_links_our_own_docs() -> None:
    from airflow.providers_manager import ProvidersManager

    info = ProvidersManager().providers["airflow-cognito-iam"].data
    assert info["documentation-url"]
    assert "airflow.apache.org" not in info["documentation-url"]


def test_airflow_providers_manager_registers_the_form() -> None:
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    widgets = manager.connection_form_widgets
    assert "extra__cognito_iam__user_pool_id" in widgets
    assert widgets["extra__cognito_iam__client_secret"].is_sensitive
    assert manager.field_behaviours["cognito_iam"]["relabeling"]["host"] == "API base URL"
