"""Remembered devices: device keys handed out at sign-in, ConfirmDevice verifiers, refresh bound to a device.

moto has no device tracking at all. In a pool with a ``DeviceConfiguration`` Cognito gives every
sign-in from an unknown device a ``NewDeviceMetadata`` (DeviceKey, DeviceGroupKey); the app confirms
it with an SRP verifier of a random device password; later sign-ins that send the DEVICE_KEY prove
the device with a second SRP exchange (DEVICE_SRP_AUTH) instead of MFA; and refresh tokens issued on
a device only work with that device's key.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from airflow_cognito_iam.devstack.errors import CognitoError

_GROUP_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True)
class DeviceConfig:
    """A pool's DeviceConfiguration."""

    challenge_required_on_new_device: bool
    only_remembered_on_user_prompt: bool

    @classmethod
    def of_pool(cls, pool: Any) -> DeviceConfig | None:
        spec = pool.extended_config.get("DeviceConfiguration")
        if not isinstance(spec, dict):
            return None
        return cls(bool(spec.get("ChallengeRequiredOnNewDevice")), bool(spec.get("DeviceOnlyRememberedOnUserPrompt")))


@dataclass(frozen=True)
class Device:
    """One tracked device of one user; the verifier and salt exist once ConfirmDevice ran."""

    key: str
    group_key: str
    pool_id: str
    username: str
    created: float
    modified: float
    last_authenticated: float
    name: str | None = None
    verifier: int | None = field(default=None, repr=False)
    salt_hex: str | None = field(default=None, repr=False)
    remembered: bool = False

    @property
    def confirmed(self) -> bool:
        return self.verifier is not None

    def to_api(self) -> dict[str, Any]:
        """The DeviceType shape of ListDevices and GetDevice."""
        attributes = [
            {"Name": "device_status", "Value": "valid"},
            {"Name": "device_remembered_status", "Value": "remembered" if self.remembered else "not_remembered"},
        ]
        if self.name:
            attributes.append({"Name": "device_name", "Value": self.name})
        return {
            "DeviceKey": self.key,
            "DeviceAttributes": attributes,
            "DeviceCreateDate": self.created,
            "DeviceLastModifiedDate": self.modified,
            "DeviceLastAuthenticatedDate": self.last_authenticated,
        }


def _not_found() -> CognitoError:
    return CognitoError("ResourceNotFoundException", "Device does not exist.")


class DeviceRegistry:
    """Devices by key and which device each refresh token was issued on; shared by request threads."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._devices: dict[str, Device] = {}
        self._refresh_device: dict[str, str] = {}

    def new_device(self, pool: Any, username: str) -> Device:
        """A fresh, unconfirmed device (what NewDeviceMetadata announces)."""
        now = self._clock()
        device = Device(
            key=f"{pool.region}_{uuid.uuid4()}",
            group_key="-" + "".join(secrets.choice(_GROUP_ALPHABET) for _ in range(9)),
            pool_id=pool.id,
            username=username,
            created=now,
            modified=now,
            last_authenticated=now,
        )
        with self._lock:
            self._devices[device.key] = device
        return device

    def get(self, key: Any, pool_id: str, username: str) -> Device | None:
        """The device if it exists and belongs to this user of this pool."""
        with self._lock:
            device = self._devices.get(key) if isinstance(key, str) else None
        if device is None or device.pool_id != pool_id or device.username != username:
            return None
        return device

    def confirm(self, device: Device, verifier_config: Any, name: Any, remember: bool) -> Device:
        """Store the device's SRP verifier (ConfirmDevice)."""
        if not isinstance(verifier_config, dict):
            raise CognitoError("InvalidParameterException", "DeviceSecretVerifierConfig is required")
        try:
            verifier = int.from_bytes(base64.b64decode(str(verifier_config.get("PasswordVerifier")), validate=True))
            salt = base64.b64decode(str(verifier_config.get("Salt")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CognitoError("InvalidParameterException", "DeviceSecretVerifierConfig is not base64") from exc
        if verifier <= 1 or not salt:
            raise CognitoError("InvalidParameterException", "DeviceSecretVerifierConfig is not a valid verifier")
        confirmed = replace(
            device,
            verifier=verifier,
            # The client hashes the salt as the hex of its integer; that is also how it comes back in SALT.
            salt_hex=format(int.from_bytes(salt), "x"),
            name=str(name) if isinstance(name, str) and name else None,
            remembered=remember,
            modified=self._clock(),
        )
        with self._lock:
            self._devices[device.key] = confirmed
        return confirmed

    def update(self, device: Device, **changes: Any) -> Device:
        updated = replace(device, modified=self._clock(), **changes)
        with self._lock:
            if device.key in self._devices:
                self._devices[device.key] = updated
        return updated

    def authenticated(self, device: Device) -> None:
        with self._lock:
            if device.key in self._devices:
                self._devices[device.key] = replace(self._devices[device.key], last_authenticated=self._clock())

    def forget(self, device: Device) -> None:
        with self._lock:
            self._devices.pop(device.key, None)

    def listed(self, pool_id: str, username: str) -> list[Device]:
        """A user's tracked (confirmed) devices, oldest first."""
        with self._lock:
            devices = [d for d in self._devices.values() if d.pool_id == pool_id and d.username == username]
        return sorted((d for d in devices if d.confirmed), key=lambda d: d.created)

    def bind(self, refresh_token: str, device: Device) -> None:
        with self._lock:
            self._refresh_device[refresh_token] = device.key

    def inherit(self, old_token: str, new_token: str) -> None:
        """A rotated refresh token stays bound to the device of the one it replaced."""
        with self._lock:
            key = self._refresh_device.get(old_token)
            if key is not None:
                self._refresh_device[new_token] = key

    def check_refresh(self, refresh_token: str, device_key: Any) -> None:
        """Refresh needs the key of the confirmed device the token was issued on, as Cognito's does."""
        with self._lock:
            bound = self._refresh_device.get(refresh_token)
            device = self._devices.get(bound) if bound else None
        if device is None or not device.confirmed or device_key != device.key:
            raise CognitoError("NotAuthorizedException", "Invalid Refresh Token.")


def new_device_metadata(device: Device) -> dict[str, str]:
    return {"DeviceKey": device.key, "DeviceGroupKey": device.group_key}
