"""The server half of Cognito's SRP (USER_SRP_AUTH), so a wrong password or wrong client math fails.

moto hands out a random ``SRP_B`` and accepts any ``PASSWORD_CLAIM_SIGNATURE``. Here the stack plays
Cognito: it derives the verifier from the password it knows, sends a real ``B``, and checks the
client's HMAC claim with the same primitives the client uses (pycognito's constants and helpers).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from pycognito.aws_srp import (
    G_HEX,
    MONTH_NAMES,
    N_HEX,
    WEEKDAY_NAMES,
    calculate_u,
    compute_hkdf,
    hash_sha256,
    hex_hash,
    hex_to_long,
    long_to_hex,
    pad_hex,
)

_N = hex_to_long(N_HEX)
_G = hex_to_long(G_HEX)
_K = hex_to_long(hex_hash("00" + N_HEX + "0" + G_HEX))

# Cognito's clients format with a non-padded day ("Tue Nov 3 09:05:01 UTC 2026").
_TIMESTAMP = re.compile(
    r"^(?P<wd>[A-Z][a-z]{2}) (?P<mon>[A-Z][a-z]{2}) (?P<day>[1-9]\d?) "
    r"(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2}) UTC (?P<y>\d{4})$"
)
#: A claim timestamp further than this from the server clock is refused, as Cognito does.
MAX_TIMESTAMP_SKEW = dt.timedelta(minutes=5)


class SrpError(Exception):
    """The client's SRP values or proof are not acceptable."""


def parse_cognito_timestamp(value: str) -> dt.datetime:
    """Parse ``Tue Nov 26 12:00:00 UTC 2026``; raise SrpError if the format is not Cognito's."""
    match = _TIMESTAMP.match(value)
    if not match or match["mon"] not in MONTH_NAMES or match["wd"] not in WEEKDAY_NAMES:
        raise SrpError("TIMESTAMP is not in Cognito's format")
    try:
        parsed = dt.datetime(
            int(match["y"]),
            MONTH_NAMES.index(match["mon"]) + 1,
            int(match["day"]),
            int(match["h"]),
            int(match["m"]),
            int(match["s"]),
            tzinfo=dt.UTC,
        )
    except ValueError as exc:
        raise SrpError("TIMESTAMP is not a valid date") from exc
    if WEEKDAY_NAMES[parsed.weekday()] != match["wd"]:
        raise SrpError("TIMESTAMP weekday does not match its date")
    return parsed


@dataclass
class SrpServerSession:
    """One PASSWORD_VERIFIER challenge: the server secret b and what the proof must be bound to."""

    pool_id: str
    username: str
    client_id: str
    srp_a: int = field(repr=False)
    salt_hex: str = field(repr=False)
    verifier: int = field(repr=False)
    small_b: int = field(repr=False)
    big_b: int = field(repr=False)
    secret_block: bytes = field(repr=False)
    #: The USER_AUTH session the challenge belongs to (None for USER_SRP_AUTH, which has none).
    auth_session: str | None = field(default=None, repr=False)

    #: Device SRP (DEVICE_SRP_AUTH): the device key, whose DeviceGroupKey stands in for the pool name.
    device_key: str | None = field(default=None, repr=False)
    pool_name: str = field(default="", repr=False)
    #: The DEVICE_KEY a USER_SRP_AUTH sign-in named (a remembered device then gets DEVICE_SRP_AUTH).
    sign_in_device_key: str | None = field(default=None, repr=False)

    @classmethod
    def start(cls, *, pool_id: str, username: str, password: str, client_id: str, srp_a_hex: str) -> SrpServerSession:
        """Check the client's A and compute B = kv + g^b for this user's password."""
        salt_hex = new_salt_hex()
        verifier = pow(_G, _x_value(pool_id.split("_", 1)[1], username, password, salt_hex), _N)
        return cls.start_with_verifier(
            pool_id=pool_id,
            pool_name=pool_id.split("_", 1)[1],
            username=username,
            client_id=client_id,
            verifier=verifier,
            salt_hex=salt_hex,
            srp_a_hex=srp_a_hex,
        )

    @classmethod
    def start_with_verifier(
        cls,
        *,
        pool_id: str,
        pool_name: str,
        username: str,
        client_id: str,
        verifier: int,
        salt_hex: str,
        srp_a_hex: str,
    ) -> SrpServerSession:
        """The same exchange from a stored verifier: a device's, kept from ConfirmDevice."""
        try:
            srp_a = hex_to_long(srp_a_hex)
        except ValueError as exc:
            raise SrpError("SRP_A is not hexadecimal") from exc
        if srp_a % _N == 0:
            raise SrpError("SRP_A is not valid")
        while True:
            # 256 random bits, RFC 5054's floor for the secret exponent; a b as long as N only costs time.
            small_b = secrets.randbits(256) | 1 << 255
            big_b = (_K * verifier + pow(_G, small_b, _N)) % _N
            if big_b != 0 and calculate_u(srp_a, big_b) != 0:
                break
        return cls(
            pool_id=pool_id,
            username=username,
            client_id=client_id,
            srp_a=srp_a,
            salt_hex=salt_hex,
            verifier=verifier,
            small_b=small_b,
            big_b=big_b,
            secret_block=secrets.token_bytes(96),
            pool_name=pool_name,
        )

    @property
    def secret_block_b64(self) -> str:
        """The opaque SECRET_BLOCK sent to the client; it comes back in the response."""
        return base64.standard_b64encode(self.secret_block).decode()

    @property
    def srp_b_hex(self) -> str:
        """B as Cognito sends it."""
        return str(long_to_hex(self.big_b))

    def verify(self, *, signature_b64: str, timestamp: str, now: dt.datetime) -> None:
        """Raise SrpError unless the signature proves knowledge of the password for this session."""
        claimed = parse_cognito_timestamp(timestamp)
        if abs(now - claimed) > MAX_TIMESTAMP_SKEW:
            raise SrpError("TIMESTAMP is too far from the server time")
        u_value = calculate_u(self.srp_a, self.big_b)
        shared = pow(self.srp_a * pow(self.verifier, u_value, _N), self.small_b, _N)
        key = compute_hkdf(bytearray.fromhex(pad_hex(shared)), bytearray.fromhex(pad_hex(long_to_hex(u_value))))
        message = self.pool_name.encode() + self.username.encode() + self.secret_block + timestamp.encode()
        expected = base64.standard_b64encode(hmac.new(key, message, hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature_b64.encode()):
            raise SrpError("PASSWORD_CLAIM_SIGNATURE does not match")


def new_salt_hex() -> str:
    """A 128-bit salt as Cognito sends it: the hex of the integer, no leading zeros.

    Clients parse SALT as an integer and re-pad it before hashing (amazon-cognito-identity-js'
    ``padHex``). A salt string starting with ``00`` and a nibble below 8 (about 1 in 512) pads to
    other bytes there than the server hashed, so a correct password fails.
    """
    value = 0
    while value == 0:
        value = secrets.randbits(128)
    return format(value, "x")


def _x_value(pool_name: str, username: str, password: str, salt_hex: str) -> int:
    """x = H(salt | H(poolname | username | ":" | password)), exactly as the client derives it."""
    inner = hash_sha256(f"{pool_name}{username}:{password}".encode())
    return int(hex_to_long(hex_hash(pad_hex(salt_hex) + inner)))
