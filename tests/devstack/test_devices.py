"""Remembered devices, driven with boto3 and pycognito's device SRP (a port of amazon-cognito-identity-js)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyotp
import pytest
from botocore.exceptions import ClientError
from pycognito.aws_srp import AWSSRP, generate_hash_device, long_to_hex

from airflow_cognito_iam.devstack.cognito_layer import secret_hash
from airflow_cognito_iam.devstack.stack import DevStack

from .conftest import srp_sign_in

pytestmark = pytest.mark.integration


@dataclass
class RememberedDevice:
    key: str
    group_key: str
    password: str


def _code(exc_info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc_info.value.response["Error"]["Code"])


def _hash(stack: DevStack, username: str) -> str:
    return secret_hash(stack.device_client_secret, username, stack.device_client_id)


def _respond(stack: DevStack, idp: Any, name: str, responses: dict[str, str], session: str | None) -> dict[str, Any]:
    call: dict[str, Any] = {"ClientId": stack.device_client_id, "ChallengeName": name, "ChallengeResponses": responses}
    if session is not None:
        call["Session"] = session
    result: dict[str, Any] = idp.respond_to_auth_challenge(**call)
    return result


def _password_step(
    stack: DevStack, idp: Any, username: str, password: str, device: RememberedDevice | None
) -> tuple[AWSSRP, dict[str, Any]]:
    """USER_SRP_AUTH up to the answer to PASSWORD_VERIFIER, naming the device when there is one."""
    srp = AWSSRP(
        username=username,
        password=password,
        pool_id=stack.device_user_pool_id,
        client_id=stack.device_client_id,
        client_secret=stack.device_client_secret,
        client=idp,
        **({"device_key": device.key, "device_group_key": device.group_key, "device_password": device.password}
           if device else {}),
    )  # fmt: skip
    auth_params = srp.get_auth_params()
    challenge = idp.initiate_auth(ClientId=stack.device_client_id, AuthFlow="USER_SRP_AUTH", AuthParameters=auth_params)
    claim = srp.process_challenge(challenge["ChallengeParameters"], auth_params)
    return srp, _respond(stack, idp, "PASSWORD_VERIFIER", claim, None)


def _device_step(stack: DevStack, idp: Any, srp: AWSSRP, answer: dict[str, Any], username: str) -> dict[str, Any]:
    """DEVICE_SRP_AUTH then DEVICE_PASSWORD_VERIFIER, with the client math of the JS library."""
    assert answer["ChallengeName"] == "DEVICE_SRP_AUTH"
    challenge = _respond(
        stack,
        idp,
        "DEVICE_SRP_AUTH",
        {"USERNAME": username, "DEVICE_KEY": str(srp.device_key), "SRP_A": long_to_hex(srp.large_a_value),
         "SECRET_HASH": _hash(stack, username)},
        answer["Session"],
    )  # fmt: skip
    assert challenge["ChallengeName"] == "DEVICE_PASSWORD_VERIFIER"
    return _respond(
        stack, idp, "DEVICE_PASSWORD_VERIFIER", srp.process_device_challenge(challenge["ChallengeParameters"]),
        challenge["Session"],
    )  # fmt: skip


def _remember(idp: Any, tokens: dict[str, Any]) -> RememberedDevice:
    metadata = tokens["NewDeviceMetadata"]
    device_password, verifier = generate_hash_device(metadata["DeviceGroupKey"], metadata["DeviceKey"])
    confirmed = idp.confirm_device(
        AccessToken=tokens["AccessToken"],
        DeviceKey=metadata["DeviceKey"],
        DeviceSecretVerifierConfig=verifier,
        DeviceName="ci-runner",
    )
    assert confirmed["UserConfirmationNecessary"] is False
    return RememberedDevice(metadata["DeviceKey"], metadata["DeviceGroupKey"], device_password)


def _first_sign_in(stack: DevStack, idp: Any) -> dict[str, Any]:
    _, answer = _password_step(stack, idp, stack.device_username, stack.device_password, None)
    tokens: dict[str, Any] = answer["AuthenticationResult"]
    return tokens


def _refresh(stack: DevStack, idp: Any, token: str, device_key: str | None) -> dict[str, Any]:
    auth = {"REFRESH_TOKEN": token, "SECRET_HASH": _hash(stack, stack.device_username)}
    if device_key is not None:
        auth["DEVICE_KEY"] = device_key
    result: dict[str, Any] = idp.initiate_auth(
        ClientId=stack.device_client_id, AuthFlow="REFRESH_TOKEN_AUTH", AuthParameters=auth
    )
    return result


def test_sign_in_announces_a_new_device_which_is_confirmed_and_listed(stack: DevStack, idp: Any) -> None:
    tokens = _first_sign_in(stack, idp)
    metadata = tokens["NewDeviceMetadata"]
    assert metadata["DeviceKey"].startswith(f"{stack.region}_")
    assert metadata["DeviceGroupKey"]

    device = _remember(idp, tokens)
    listed = idp.list_devices(AccessToken=tokens["AccessToken"])["Devices"]

    mine = [d for d in listed if d["DeviceKey"] == device.key]
    assert len(mine) == 1
    assert {"Name": "device_name", "Value": "ci-runner"} in mine[0]["DeviceAttributes"]
    assert idp.get_device(AccessToken=tokens["AccessToken"], DeviceKey=device.key)["Device"]["DeviceKey"] == device.key


def test_remembered_device_signs_in_with_device_srp_and_gets_no_new_device(stack: DevStack, idp: Any) -> None:
    device = _remember(idp, _first_sign_in(stack, idp))

    srp, answer = _password_step(stack, idp, stack.device_username, stack.device_password, device)
    tokens = _device_step(stack, idp, srp, answer, stack.device_username)["AuthenticationResult"]

    assert tokens["IdToken"]
    assert "NewDeviceMetadata" not in tokens
    assert _refresh(stack, idp, tokens["RefreshToken"], device.key)["AuthenticationResult"]["IdToken"]


def test_a_wrong_device_password_is_refused(stack: DevStack, idp: Any) -> None:
    device = _remember(idp, _first_sign_in(stack, idp))
    impostor = RememberedDevice(device.key, device.group_key, device.password[:-4] + "AAAA")

    srp, answer = _password_step(stack, idp, stack.device_username, stack.device_password, impostor)
    with pytest.raises(ClientError) as refused:
        _device_step(stack, idp, srp, answer, stack.device_username)

    assert _code(refused) == "NotAuthorizedException"


def test_remembered_device_replaces_totp_and_a_new_device_still_needs_it(stack: DevStack, idp: Any) -> None:
    username = stack.device_mfa_username
    _, mfa = _password_step(stack, idp, username, stack.device_mfa_password, None)
    assert mfa["ChallengeName"] == "SOFTWARE_TOKEN_MFA"
    tokens = _respond(
        stack, idp, "SOFTWARE_TOKEN_MFA",
        {"USERNAME": username, "SOFTWARE_TOKEN_MFA_CODE": pyotp.TOTP(stack.totp_secret).now(),
         "SECRET_HASH": _hash(stack, username)},
        mfa["Session"],
    )["AuthenticationResult"]  # fmt: skip
    device = _remember(idp, tokens)

    srp, answer = _password_step(stack, idp, username, stack.device_mfa_password, device)

    assert answer["ChallengeName"] == "DEVICE_SRP_AUTH"
    assert _device_step(stack, idp, srp, answer, username)["AuthenticationResult"]["AccessToken"]


def test_refresh_needs_the_key_of_the_confirmed_device_it_was_issued_on(stack: DevStack, idp: Any) -> None:
    unconfirmed = _first_sign_in(stack, idp)
    with pytest.raises(ClientError) as not_confirmed:
        _refresh(stack, idp, unconfirmed["RefreshToken"], unconfirmed["NewDeviceMetadata"]["DeviceKey"])
    assert "Invalid Refresh Token" in str(not_confirmed.value)

    tokens = _first_sign_in(stack, idp)
    device = _remember(idp, tokens)
    other = _remember(idp, _first_sign_in(stack, idp))
    assert _refresh(stack, idp, tokens["RefreshToken"], device.key)["AuthenticationResult"]["IdToken"]
    for key in (None, other.key, f"{stack.region}_00000000-0000-0000-0000-000000000000"):
        with pytest.raises(ClientError) as refused:
            _refresh(stack, idp, tokens["RefreshToken"], key)
        assert _code(refused) == "NotAuthorizedException"
        assert "Invalid Refresh Token" in str(refused.value)

    renewed = idp.get_tokens_from_refresh_token(
        RefreshToken=tokens["RefreshToken"],
        ClientId=stack.device_client_id,
        ClientSecret=stack.device_client_secret,
        DeviceKey=device.key,
    )
    assert renewed["AuthenticationResult"]["IdToken"]
    with pytest.raises(ClientError):
        idp.get_tokens_from_refresh_token(
            RefreshToken=tokens["RefreshToken"],
            ClientId=stack.device_client_id,
            ClientSecret=stack.device_client_secret,
        )


def test_forgotten_device_can_neither_refresh_nor_sign_in_as_a_device(stack: DevStack, idp: Any) -> None:
    tokens = _first_sign_in(stack, idp)
    device = _remember(idp, tokens)

    idp.forget_device(AccessToken=tokens["AccessToken"], DeviceKey=device.key)

    with pytest.raises(ClientError) as refused:
        _refresh(stack, idp, tokens["RefreshToken"], device.key)
    assert "Invalid Refresh Token" in str(refused.value)
    _, answer = _password_step(stack, idp, stack.device_username, stack.device_password, device)
    assert answer["AuthenticationResult"]["NewDeviceMetadata"]["DeviceKey"] != device.key
    listed = idp.list_devices(AccessToken=tokens["AccessToken"])["Devices"]
    assert device.key not in [d["DeviceKey"] for d in listed]


def test_device_apis_need_a_user_access_token(stack: DevStack, idp: Any) -> None:
    tokens = _first_sign_in(stack, idp)

    with pytest.raises(ClientError) as id_token:
        idp.list_devices(AccessToken=tokens["IdToken"])
    with pytest.raises(ClientError) as unknown_device:
        idp.forget_device(AccessToken=tokens["AccessToken"], DeviceKey=f"{stack.region}_not-a-device")

    assert _code(id_token) == "NotAuthorizedException"
    assert _code(unknown_device) == "ResourceNotFoundException"


def test_device_pool_id_tokens_open_the_identity_pool(stack: DevStack, idp: Any, identity: Any) -> None:
    logins = {stack.device_provider_name: _first_sign_in(stack, idp)["IdToken"]}

    identity_id = identity.get_id(IdentityPoolId=stack.identity_pool_id, Logins=logins)["IdentityId"]

    assert identity.get_credentials_for_identity(IdentityId=identity_id, Logins=logins)["Credentials"]


def test_user_password_auth_in_the_device_pool_also_announces_a_device(stack: DevStack, idp: Any) -> None:
    answer = idp.initiate_auth(
        ClientId=stack.device_client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": stack.device_username, "PASSWORD": stack.device_password,
                        "SECRET_HASH": _hash(stack, stack.device_username)},
    )  # fmt: skip

    assert answer["AuthenticationResult"]["NewDeviceMetadata"]["DeviceKey"]


def test_the_main_pool_tracks_no_devices(stack: DevStack, idp: Any) -> None:
    assert "NewDeviceMetadata" not in srp_sign_in(stack, idp)


def test_stats_count_device_operations(stack: DevStack, idp: Any) -> None:
    tokens = _first_sign_in(stack, idp)
    stack.reset_stats()
    device = _remember(idp, tokens)
    idp.list_devices(AccessToken=tokens["AccessToken"])
    idp.forget_device(AccessToken=tokens["AccessToken"], DeviceKey=device.key)

    cognito = stack.stats()["cognito"]
    assert (cognito["ConfirmDevice"], cognito["ListDevices"], cognito["ForgetDevice"]) == (1, 1, 1)


def test_seeded_device_client_connection(stack: DevStack) -> None:
    conn = stack.conn_dict_for("device")

    assert conn["extra"]["user_pool_id"] == stack.device_user_pool_id
    assert conn["login"] == stack.device_username
    assert stack.describe()["device_client_id"] == stack.device_client_id
