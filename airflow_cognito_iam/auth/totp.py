"""TOTP answers for SOFTWARE_TOKEN_MFA, never reusing a code (RFC 6238 5.2: codes are single-use).

The ledger remembers the last time step used per (pool, user). In one process it is shared by all
hooks; across processes the provider seeds it from, and writes it back to, the cache entry, so two
workers signing in as the same user within 30 s never send the same code.
"""

from __future__ import annotations

import threading

import pyotp

#: TOTP step Cognito uses (RFC 6238 default).
TOTP_STEP_SECONDS = 30


class TotpStepLedger:
    """The last TOTP time step used per (pool, user) in this process.

    TOTP codes are single-use (RFC 6238 5.2: a verifier must not accept a code twice), so two tasks
    of one worker signing in as the same user within 30 s must not send the same code.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], int] = {}

    def claim(self, key: tuple[str, str], now: float) -> int:
        """The step to answer with (the current one, or the one after the last used) and mark it used."""
        with self._lock:
            step = max(int(now // TOTP_STEP_SECONDS), self._last.get(key, -1) + 1)
            self._last[key] = step
            return step

    def observe(self, key: tuple[str, str], step: int) -> None:
        """Note a step another process used (read from the shared cache entry)."""
        with self._lock:
            self._last[key] = max(step, self._last.get(key, -1))

    def last(self, key: tuple[str, str]) -> int | None:
        """The last step used for ``key`` (to write back to the shared cache entry)."""
        with self._lock:
            return self._last.get(key)


SHARED_TOTP_LEDGER = TotpStepLedger()


class _IssuedTotp(pyotp.TOTP):
    # The pool chose the secret; refusing a short one (pyotp's NIST floor) would only lock the job
    # out. Cognito issues 160-bit secrets; local stacks such as moto issue shorter ones.
    min_secret_length_bits = 0


def totp_code(secret: str, at: float) -> str:
    """The 6-digit TOTP code for base32 ``secret`` at Unix time ``at`` (30 s steps, SHA-1)."""
    return str(_IssuedTotp(secret.replace(" ", ""), interval=TOTP_STEP_SECONDS).at(at))
