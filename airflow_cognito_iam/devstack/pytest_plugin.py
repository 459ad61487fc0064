"""pytest plugin (entry point ``cognito_iam_devstack``): fixtures giving a running DevStack.

Nothing heavy is imported until a test asks for a fixture, so the plugin costs nothing to load and
works where moto is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from airflow_cognito_iam.devstack.stack import DevStack


@pytest.fixture(scope="session")
def cognito_devstack() -> Iterator[DevStack]:
    """One DevStack for the whole test session (moto + strict Cognito layer + SigV4 API)."""
    try:
        from airflow_cognito_iam.devstack.stack import DevStack
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.skip(f"the devstack needs the 'devstack' extra (moto[server], pyjwt): {exc}")
    with DevStack() as stack:
        yield stack


@pytest.fixture
def cognito_iam_conn(cognito_devstack: DevStack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[DevStack]:
    """The stack, reset (faults, lifetimes, counters, in-process credential cache), connections in env.

    Sets ``AIRFLOW_CONN_COGNITO_IAM_DEFAULT`` and ``AIRFLOW_CONN_AWS_DEFAULT`` and gives the test its
    own shared-credential cache directory, so cached credentials never leak between tests.
    """
    from airflow_cognito_iam.auth.cache import clear_memory_cache

    cognito_devstack.reset()
    clear_memory_cache()
    for name, value in cognito_devstack.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AIRFLOW_COGNITO_IAM_CACHE_DIR", str(tmp_path / "cognito-iam-cache"))
    yield cognito_devstack
    cognito_devstack.reset()
    clear_memory_cache()
