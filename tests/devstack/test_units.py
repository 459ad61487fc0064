"""Pure logic of the devstack, no network: SRP server math, SigV4 checks, fault and credential state."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from pycognito.aws_srp import AWSSRP

from airflow_cognito_iam.devstack.api_server import EXPORT_LINE_BYTES, export_lines, orders_for
from airflow_cognito_iam.devstack.sigv4 import ApiGatewayError, IncomingRequest, verify_sigv4
from airflow_cognito_iam.devstack.srp import SrpError, SrpServerSession, parse_cognito_timestamp
from airflow_cognito_iam.devstack.state import ApiFaults, CognitoFaults, CredentialRegistry

POOL_ID = "us-east-1_Abc123"


def _client_and_session(password: str) -> tuple[AWSSRP, dict[str, str], SrpServerSession]:
    client = AWSSRP(username="alice", password=password, pool_id=POOL_ID, client_id="client", pool_region="us-east-1")
    auth_params = client.get_auth_params()
    session = SrpServerSession.start(
        pool_id=POOL_ID,
        username="alice",
        password="Correct-horse-1",
        client_id="client",
        srp_a_hex=auth_params["SRP_A"],
    )
    return client, auth_params, session


def _claim(client: AWSSRP, auth_params: dict[str, str], session: SrpServerSession) -> dict[str, str]:
    challenge = {
        "USERNAME": "alice",
        "USER_ID_FOR_SRP": "alice",
        "SALT": session.salt_hex,
        "SRP_B": session.srp_b_hex,
        "SECRET_BLOCK": session.secret_block_b64,
    }
    claim: dict[str, str] = client.process_challenge(challenge, auth_params)
    return claim


def test_srp_server_accepts_pycognito_proof_for_the_right_password() -> None:
    client, auth_params, session = _client_and_session("Correct-horse-1")
    claim = _claim(client, auth_params, session)

    session.verify(
        signature_b64=claim["PASSWORD_CLAIM_SIGNATURE"], timestamp=claim["TIMESTAMP"], now=dt.datetime.now(dt.UTC)
    )


def test_srp_server_refuses_proof_for_a_wrong_password() -> None:
    client, auth_params, session = _client_and_session("Wrong-horse-1")
    claim = _claim(client, auth_params, session)

    with pytest.raises(SrpError, match="does not match"):
        session.verify(
            signature_b64=claim["PASSWORD_CLAIM_SIGNATURE"], timestamp=claim["TIMESTAMP"], now=dt.datetime.now(dt.UTC)
        )


def test_srp_server_refuses_a_stale_timestamp() -> None:
    client, auth_params, session = _client_and_session("Correct-horse-1")
    claim = _claim(client, auth_params, session)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)

    with pytest.raises(SrpError, match="too far"):
        session.verify(signature_b64=claim["PASSWORD_CLAIM_SIGNATURE"], timestamp=claim["TIMESTAMP"], now=later)


def test_srp_server_refuses_a_zero_a() -> None:
    with pytest.raises(SrpError):
        SrpServerSession.start(pool_id=POOL_ID, username="a", password="p", client_id="c", srp_a_hex="0")


def test_cognito_timestamp_has_an_unpadded_day_and_a_matching_weekday() -> None:
    assert parse_cognito_timestamp("Tue Nov 3 09:05:01 UTC 2026") == dt.datetime(2026, 11, 3, 9, 5, 1, tzinfo=dt.UTC)
    for bad in ("Tue Nov 03 09:05:01 UTC 2026", "Wed Nov 3 09:05:01 UTC 2026", "2026-11-03T09:05:01Z"):
        with pytest.raises(SrpError):
            parse_cognito_timestamp(bad)


def _incoming(request: AWSRequest, body: bytes) -> IncomingRequest:
    path, _, query = str(request.url).split("://", 1)[1].partition("/")[2].partition("?")
    return IncomingRequest(
        method=str(request.method),
        host="api.example:8080",
        raw_path="/" + path,
        raw_query=query,
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
    )


def test_sigv4_refuses_a_body_that_does_not_match_the_signed_content_hash() -> None:
    registry = CredentialRegistry(3600)
    creds = registry.issue(identity_id="id", role_arn="arn:aws:iam::1:role/r", subject="s")
    request = AWSRequest(
        method="POST",
        url="http://api.example:8080/jobs?x=1",
        data=b"original",
        headers={"X-Amz-Content-SHA256": hashlib.sha256(b"original").hexdigest(), "Host": "api.example:8080"},
    )
    SigV4Auth(
        Credentials(creds.access_key_id, creds.secret_key, creds.session_token), "execute-api", "us-east-1"
    ).add_auth(request)
    now = dt.datetime.now(dt.UTC)

    accepted = verify_sigv4(
        _incoming(request, b"original"), lookup=registry.get, region="us-east-1", service="execute-api", now=now
    )
    with pytest.raises(ApiGatewayError) as refused:
        verify_sigv4(
            _incoming(request, b"tampered"), lookup=registry.get, region="us-east-1", service="execute-api", now=now
        )

    assert accepted.access_key_id == creds.access_key_id
    assert refused.value.error_type == "InvalidSignatureException"


def test_credential_registry_issues_unique_keys_and_expires_them_on_demand() -> None:
    clock = [1000.0]
    registry = CredentialRegistry(60, clock=lambda: clock[0])
    first = registry.issue(identity_id="i", role_arn="r", subject="s")
    second = registry.issue(identity_id="i", role_arn="r", subject="s")

    registry.expire_all()

    assert first.access_key_id != second.access_key_id
    assert first.expires_at == 1060.0
    stored = registry.get(first.access_key_id)
    assert stored is not None
    assert stored.expires_at < clock[0]
    with pytest.raises(ValueError, match="positive"):
        registry.set_lifetime(0)


def test_api_faults_fire_for_count_and_prefix_only() -> None:
    faults = ApiFaults()
    faults.add("503", count=2, path_prefix="/orders")

    fired = [faults.pick("/orders") for _ in range(3)]

    assert faults.pick("/whoami") is None
    assert [f.kind if f else None for f in fired] == ["503", "503", None]
    with pytest.raises(ValueError, match="kind"):
        faults.add("teapot")


def test_cognito_faults_apply_to_the_named_actions() -> None:
    faults = CognitoFaults()
    faults.add(count=1, actions=["GetId"], error="InternalErrorException", status=500)

    assert faults.pick("InitiateAuth") is None
    assert faults.pick("GetId") == ("InternalErrorException", 500)
    assert faults.pick("GetId") is None


def test_orders_are_deterministic_per_date_and_need_three_pages_of_fifty() -> None:
    assert orders_for("2026-01-31") == orders_for("2026-01-31")
    assert all(100 < len(orders_for(f"2026-02-{day:02d}")) < 150 for day in range(1, 29))


def test_export_lines_have_the_exact_size_without_building_it_at_once() -> None:
    chunks = list(export_lines(3 * EXPORT_LINE_BYTES * 64 + EXPORT_LINE_BYTES))

    assert sum(len(c) for c in chunks) == 3 * EXPORT_LINE_BYTES * 64 + EXPORT_LINE_BYTES
    assert max(len(c) for c in chunks) == 64 * EXPORT_LINE_BYTES


def test_connection_for_a_non_loopback_advertised_host_allows_plain_http() -> None:
    from airflow_cognito_iam.devstack.stack import DevStack

    compose = DevStack(host="0.0.0.0", advertised_host="devstack")
    local = DevStack()

    assert compose.conn_extra()["allow_http"] is True
    assert "allow_http" not in local.conn_extra()
    assert compose.conn_extra(allow_http=None) == {k: v for k, v in compose.conn_extra().items() if k != "allow_http"}


def _js_pad_hex(value: int) -> str:
    """amazon-cognito-identity-js ``padHex`` of a BigInteger: even length, a leading 00 if the top bit is set."""
    text = format(value, "x")
    text = "0" + text if len(text) % 2 else text
    return "00" + text if text[0] in "89abcdef" else text


def test_srp_salt_is_sent_as_the_hex_of_its_integer_so_clients_that_re_pad_it_agree() -> None:
    """Amplify parses SALT as an integer and pads it again; the server must have hashed those same bytes."""
    from pycognito.aws_srp import pad_hex

    from airflow_cognito_iam.devstack.srp import new_salt_hex

    sent = [
        SrpServerSession.start(
            pool_id=POOL_ID, username="alice", password="Correct-horse-1", client_id="c", srp_a_hex="ab" * 64
        ).salt_hex
        for _ in range(64)
    ]
    salts = sent + [new_salt_hex() for _ in range(20000)]

    assert all(not salt.startswith("0") for salt in salts)
    assert all(pad_hex(salt) == _js_pad_hex(int(salt, 16)) for salt in salts)
    assert len(set(salts)) == len(salts)


def test_token_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    from airflow_cognito_iam.devstack.state import RateLimits

    now = [100.0]
    limits = RateLimits(clock=lambda: now[0])
    limits.set(rate=2.0, burst=3, path_prefix="/orders")
    limits.set(rate=100.0, burst=100, path_prefix="/")

    assert [limits.take("/orders") for _ in range(3)] == [None, None, None]
    assert limits.take("/orders") == pytest.approx(0.5)
    assert limits.take("/whoami") is None  # the longest matching prefix's bucket only
    now[0] += 0.5
    assert limits.take("/orders") is None
    assert limits.take("/orders") == pytest.approx(0.5)
    now[0] += 60
    assert [limits.take("/orders") for _ in range(4)][-1] is not None  # refills up to the burst, no further


@pytest.mark.parametrize(("rate", "burst"), [(0, 1), (-1, 1), (float("nan"), 1), (1, 0), (1, 1.5), (1, True)])
def test_token_bucket_refuses_nonsense(rate: float, burst: int) -> None:
    from airflow_cognito_iam.devstack.state import RateLimits

    with pytest.raises(ValueError, match=r"rate|burst"):
        RateLimits().set(rate=rate, burst=burst)
