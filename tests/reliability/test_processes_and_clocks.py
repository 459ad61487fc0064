"""Many task processes, one refresh; and a worker whose clock is wrong is told so.

Real processes share the real file cache; the clock of a process is moved with libfaketime
(Debian's ``faketime``, installed by ``.ci/run``), so nothing in our code is patched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_cognito_iam.auth.cache import clear_memory_cache
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
from tests.support.processes import run_released_together

pytestmark = pytest.mark.integration

TASK = """
import sys
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
from tests.support.processes import run_released_together
hook = CognitoIamHook()
hook.get_credentials()  # every process holds the (now revoked) cached credentials...
print("ready", flush=True)
sys.stdin.readline()  # ...before any of them calls the API
print(hook.request("GET", "/whoami").json()["access_key_id"])
"""

_LIBS = ("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1")
FAKETIME = next((p for p in _LIBS if Path(p).exists()), None)


def test_revoked_credentials_seen_by_8_processes_are_refreshed_once(cognito_iam_conn: Any) -> None:
    stack = cognito_iam_conn
    CognitoIamHook().request("GET", "/whoami")  # a warm shared cache, as after earlier tasks
    stack.expire_credentials()  # revoked server-side: every process still holds them locally
    clear_memory_cache()
    stack.reset_stats()
    outputs = run_released_together(TASK, 8)
    keys = {out.strip().splitlines()[-1] for out in outputs}
    calls = stack.stats()["cognito"]
    assert len(keys) == 1, "every process ends on the one refreshed set of credentials"
    assert calls.get("GetCredentialsForIdentity") == 1, calls
    assert "GetId" not in calls, "the cached identity id is reused"
    assert "InitiateAuth" not in calls, "the cached ID token is still good"


def test_a_new_process_with_a_cached_identity_skips_get_id(cognito_iam_conn: Any) -> None:
    stack = cognito_iam_conn
    stack.set_credential_lifetime(90)
    CognitoIamHook().get_credentials()
    stack.expire_credentials()
    clear_memory_cache()
    stack.reset_stats()
    done = subprocess.run([sys.executable, "-c", TASK], input="go\n", capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    calls = stack.stats()["cognito"]
    assert calls.get("GetCredentialsForIdentity") == 1
    assert "GetId" not in calls


SKEWED = """
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook
from tests.support.processes import run_released_together
from airflow_cognito_iam.auth.errors import ClockSkewError
try:
    CognitoIamHook().request("GET", "/whoami")
except ClockSkewError as exc:
    print("SKEW", exc)
except Exception as exc:
    print("OTHER", type(exc).__name__, exc)
else:
    print("OK")
"""


@pytest.mark.skipif(FAKETIME is None, reason="Debian's faketime is not installed (.ci/run installs it)")
@pytest.mark.parametrize(("offset", "seconds"), [("+10m", 600), ("-10m", 600), ("+2h", 7200)])
def test_a_skewed_worker_clock_is_named_as_the_cause(
    cognito_iam_conn: Any, monkeypatch: pytest.MonkeyPatch, offset: str, seconds: int
) -> None:
    stack = cognito_iam_conn
    conn = stack.conn_dict(credential_cache="none")
    env = {**os.environ, "AIRFLOW_CONN_COGNITO_IAM_DEFAULT": json.dumps(conn), "LD_PRELOAD": str(FAKETIME),
           "FAKETIME": offset, "FAKETIME_DONT_FAKE_MONOTONIC": "1"}
    done = subprocess.run([sys.executable, "-c", SKEWED], env=env, capture_output=True, text=True, timeout=300)
    out = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]
    assert out.startswith("SKEW"), out
    assert "clock is" in out
    reported = int(out.split("clock is ", 1)[1].split(" s", 1)[0])
    assert abs(reported - seconds) < 120, out
    assert stack.password not in done.stdout + done.stderr
