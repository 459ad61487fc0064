"""Cold start: what a task process imports and keeps out of its first full garbage collection."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_PROBE = """
import gc, json, sys
import airflow.sdk
before = {name: name in sys.modules for name in ("jwt", "cryptography.x509", "pycognito")}
import airflow_cognito_iam.hooks.cognito_iam, airflow_cognito_iam.operators.api
from airflow_cognito_iam.auth import user_pool
from airflow_cognito_iam.auth.credentials import CognitoCredentialProvider
from airflow_cognito_iam.auth.settings import CognitoSettings
settings = CognitoSettings.from_connection(
    host="https://api.example.com", login="u", password="p" * 8,
    extra={
        "user_pool_id": "eu-west-1_abc",
        "client_id": "c",
        "identity_pool_id": "eu-west-1:0123abcd-0000-4000-8000-000000000000",
        "region": "eu-west-1",
    },
)
frozen_before = gc.get_freeze_count()
CognitoCredentialProvider(settings)
srp = user_pool.AWSSRP(username="u", password="p", pool_id="eu-west-1_abc", client_id="c", client=object())
print(json.dumps({
    "before": before,
    "after": {name: name in sys.modules for name in ("jwt", "cryptography.x509", "pycognito")},
    "frozen_before": frozen_before,
    "frozen_after": gc.get_freeze_count(),
    "srp_a": len(format(srp.large_a_value, "x")),
}))
"""


def _probe(**env: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def probed() -> dict[str, object]:
    return _probe()


def test_the_srp_flow_imports_neither_pyjwt_nor_x509_nor_the_pycognito_package(probed: dict[str, object]) -> None:
    assert probed["before"] == {"jwt": False, "cryptography.x509": False, "pycognito": False}
    assert probed["after"] == {"jwt": False, "cryptography.x509": False, "pycognito": False}
    assert probed["srp_a"] > 200  # pycognito's SRP arithmetic still there (a 3072-bit A)


def test_the_first_provider_freezes_the_import_heap_once(probed: dict[str, object]) -> None:
    assert probed["frozen_before"] == 0
    assert isinstance(probed["frozen_after"], int)
    assert probed["frozen_after"] > 50_000  # Airflow + boto3 + this package, out of full collections


def test_the_freeze_can_be_turned_off() -> None:
    assert _probe(AIRFLOW_COGNITO_IAM_GC_FREEZE="0")["frozen_after"] == 0
