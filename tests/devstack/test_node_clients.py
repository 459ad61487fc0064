"""Clients we did not write, in Node: Amplify's SRP (amazon-cognito-identity-js) and aws4fetch's SigV4.

Our own SRP server and our own signer could share a misreading of the protocol with pycognito and
botocore; these two libraries are what browser and edge code actually runs. ``.ci/run`` installs
them with ``npm ci`` from ``tests/node/package-lock.json``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from airflow_cognito_iam.devstack.stack import DevStack

pytestmark = pytest.mark.integration

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
#: Cognito's old salt bug hit about 1 sign-in in 512, so 500 sign-ins catch it more often than not.
SIGN_INS = 500


def _run_node_clients(stack: DevStack, sign_ins: int = SIGN_INS) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed; CI machines have Node 20")
    if not (NODE_DIR / "node_modules" / "amazon-cognito-identity-js").is_dir():
        pytest.fail(f"npm packages missing: run `npm ci --prefix {NODE_DIR}` (.ci/run does)")
    env = dict(os.environ, DEVSTACK_JSON=json.dumps(stack.describe()), SIGNINS=str(sign_ins))
    done = subprocess.run(
        [node, str(NODE_DIR / "clients.mjs")], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_amplify_srp_sign_ins_and_aws4fetch_signed_calls_are_accepted(stack: DevStack) -> None:
    result = _run_node_clients(stack)

    assert result["signIns"] >= SIGN_INS
    assert (result["refused"], result["refusals"]) == (0, [])
    assert result["distinctSalts"] == result["signIns"]  # every sign-in hashed a fresh salt
    assert result["leadingZeroSalts"] == 0
    assert [(call["path"], call["status"]) for call in result["signed"]] == [
        (call["path"], 200) for call in result["signed"]
    ]
    echoed = json.loads(next(c for c in result["signed"] if c["method"] == "POST")["body"])
    assert echoed["identity_id"] == result["identityId"]
    assert result["unsignedStatus"] == 403
    stats = stack.stats()
    assert stats["cognito"]["RespondToAuthChallenge"] >= SIGN_INS
    assert stats["api"]["routes"]["GET /whoami"] == {"200": 1, "403": 1}


def test_amplify_refuses_a_correct_password_when_the_salt_has_leading_zeros(
    stack: DevStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The harness is sensitive to the bug it guards: a salt sent as ``005...`` (as the old stack could)."""
    from airflow_cognito_iam.devstack import srp

    monkeypatch.setattr(srp, "new_salt_hex", lambda: "005" + "a1" * 14 + "f")

    result = _run_node_clients(stack, sign_ins=4)

    assert result["refused"] == 4
    assert all("NotAuthorizedException" in refusal for refusal in result["refusals"])
