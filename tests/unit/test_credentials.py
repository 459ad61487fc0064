"""Refresh windows: short-lived credentials do not refresh per request; expired ones are never handed out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_cognito_iam.auth.credentials import CognitoRefreshableCredentials, FrozenCredentials, refresh_windows

START = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


def test_configured_margin_applies_to_hour_long_credentials():
    advisory, mandatory = refresh_windows(300, 3600)
    assert advisory == 300
    assert 0 < mandatory < advisory


def test_ninety_second_credentials_get_a_third_of_their_lifetime():
    advisory, mandatory = refresh_windows(300, 90)
    assert advisory == pytest.approx(30)
    assert mandatory == pytest.approx(20)


def test_zero_margin_is_allowed_and_never_negative():
    assert refresh_windows(0, 90) == (0, 0)
    assert refresh_windows(300, -5) == (0, 0)


def make(clock: Clock, lifetime: float, margin: float, calls: list[int]) -> CognitoRefreshableCredentials:
    def refresh() -> dict[str, str]:
        calls.append(1)
        return {"access_key": f"AKIA{len(calls)}", "secret_key": "s", "token": "t",
                "expiry_time": (clock.now + timedelta(seconds=lifetime)).isoformat()}

    creds = CognitoRefreshableCredentials("AKIA0", "s", "t", clock.now + timedelta(seconds=lifetime), refresh,
                                          "test", time_fetcher=clock)
    creds.set_windows(*refresh_windows(margin, lifetime))
    return creds


def test_short_lived_credentials_are_reused_until_the_window_then_refreshed_once():
    clock, calls = Clock(), []
    creds = make(clock, 90, 300, calls)
    for second in range(0, 60, 5):  # 12 "requests" in the first minute: outside the 30 s window
        clock.now = START + timedelta(seconds=second)
        assert creds.get_frozen_credentials().access_key == "AKIA0"
    assert calls == []
    clock.now = START + timedelta(seconds=65)  # inside the window
    assert creds.get_frozen_credentials().access_key == "AKIA1"
    assert creds.get_frozen_credentials().access_key == "AKIA1"
    assert calls == [1]


def test_expired_credentials_are_never_handed_out_even_with_zero_margin():
    clock, calls = Clock(), []
    creds = make(clock, 90, 0, calls)
    clock.now = START + timedelta(seconds=91)
    assert creds.get_frozen_credentials().access_key == "AKIA1"


def test_force_refresh_replaces_valid_credentials():
    clock, calls = Clock(), []
    creds = make(clock, 3600, 300, calls)
    creds.force_refresh()
    assert creds.get_frozen_credentials().access_key == "AKIA1"
    assert calls == [1]


def test_failed_refresh_inside_mandatory_window_raises_instead_of_serving_stale_keys():
    clock = Clock()

    def broken() -> dict[str, str]:
        raise RuntimeError("Cognito unreachable")

    creds = CognitoRefreshableCredentials("AKIA0", "s", "t", START + timedelta(seconds=90), broken, "test",
                                          time_fetcher=clock)
    creds.set_windows(*refresh_windows(300, 90))
    clock.now = START + timedelta(seconds=62)  # advisory (30 s) but not mandatory (20 s): keep old ones
    assert creds.get_frozen_credentials().access_key == "AKIA0"
    clock.now = START + timedelta(seconds=80)  # mandatory: must not carry on with nearly expired keys
    with pytest.raises(RuntimeError):
        creds.get_frozen_credentials()


def test_frozen_credentials_repr_has_no_secret():
    frozen = FrozenCredentials("ASIAKEY123", "secret-value", "token-value", "eu-west-1:id")
    for secret in ("ASIAKEY123", "secret-value", "token-value"):
        assert secret not in repr(frozen)
    assert "eu-west-1:id" in repr(frozen)
