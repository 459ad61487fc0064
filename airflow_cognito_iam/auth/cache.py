"""Credential caches: in-process, and shared between the task processes of one worker.

Shaped like botocore's ``CachedCredentialFetcher`` + ``JSONFileCache`` (one entry per key, an
expired or unreadable entry is a miss), plus what a shared worker needs: entries are encrypted with a
key derived from the connection's secrets (only holders of the password can read them), files are
0600 in a 0700 directory, and a file lock makes concurrent task processes do one sign-in, not many.
The deployment-wide Redis layer (``redis_cache``) seals its entries with the same helpers.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import stat
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from airflow_cognito_iam.auth.models import CognitoTokens, DeviceInfo, IdentityCredentials
from airflow_cognito_iam.auth.settings import CognitoSettings

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "AIRFLOW_COGNITO_IAM_CACHE_DIR"
_FORMAT_VERSION = 1
# Long enough for one sign-in with its retries; after that a waiter signs in itself rather than hang.
_LOCK_WAIT_SECONDS = 120.0
_LOCK_POLL_SECONDS = 0.02


@dataclass(frozen=True)
class CacheEntry:
    """What one sign-in produced: tokens (the refresh token spares a later sign-in) and credentials.

    ``issued_at`` is when the credentials were received, so a reader can tell their full lifetime.
    ``totp_step`` is the last TOTP time step any process used for this user: a code is never reused
    across the processes (or workers) that share the entry.
    """

    tokens: CognitoTokens | None = field(default=None, repr=False)
    credentials: IdentityCredentials | None = field(default=None, repr=False)
    issued_at: datetime | None = None
    totp_step: int | None = None

    def to_json(self) -> dict[str, Any]:
        """Serialisable form (contains secrets: only ever written encrypted)."""
        data: dict[str, Any] = {"issued_at": _iso(self.issued_at)}
        if self.tokens is not None:
            t = self.tokens
            data["tokens"] = {
                "id_token": t.id_token,
                "access_token": t.access_token,
                "refresh_token": t.refresh_token,
                "expires_at": _iso(t.expires_at),
                "secret_hash_username": t.secret_hash_username,
            }
            if t.device is not None:
                data["tokens"]["device"] = {
                    "key": t.device.device_key,
                    "group_key": t.device.device_group_key,
                    "password": t.device.device_password,
                }
        if self.totp_step is not None:
            data["totp_step"] = self.totp_step
        if self.credentials is not None:
            c = self.credentials
            data["credentials"] = {
                "identity_id": c.identity_id,
                "access_key_id": c.access_key_id,
                "secret_access_key": c.secret_access_key,
                "session_token": c.session_token,
                "expiration": _iso(c.expiration),
            }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CacheEntry:
        """Inverse of :meth:`to_json`; raises KeyError/ValueError/TypeError on a malformed entry."""
        tokens = credentials = None
        if t := data.get("tokens"):
            device = t.get("device")
            tokens = CognitoTokens(
                id_token=str(t["id_token"]),
                access_token=str(t["access_token"]),
                refresh_token=t["refresh_token"],
                expires_at=datetime.fromisoformat(t["expires_at"]),
                secret_hash_username=t.get("secret_hash_username"),
                device=DeviceInfo(str(device["key"]), str(device["group_key"]), str(device["password"]))
                if device
                else None,
            )
        if c := data.get("credentials"):
            credentials = IdentityCredentials(
                identity_id=str(c["identity_id"]),
                access_key_id=str(c["access_key_id"]),
                secret_access_key=str(c["secret_access_key"]),
                session_token=str(c["session_token"]),
                expiration=datetime.fromisoformat(c["expiration"]),
            )
        issued = data.get("issued_at")
        step = data.get("totp_step")
        return cls(
            tokens,
            credentials,
            datetime.fromisoformat(issued) if issued else None,
            int(step) if step is not None else None,
        )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class CredentialCache(Protocol):
    """Where a provider looks before calling Cognito; ``lock()`` spans check, fetch and store."""

    def lock(self) -> contextlib.AbstractContextManager[None]: ...

    def load(self) -> CacheEntry | None: ...

    def store(self, entry: CacheEntry) -> None: ...


def secret_fingerprint(settings: CognitoSettings) -> str:
    """A hash of the connection's secrets, so an entry is only found by someone holding them."""
    material = "\x1f".join((settings.password, settings.client_secret or "", settings.cache_key()))
    return hashlib.sha256(material.encode()).hexdigest()


# Per process: hooks for the same connection share one entry (and one lock) instead of signing in twice.
_MEMORY: dict[str, CacheEntry] = {}
_MEMORY_LOCKS: dict[str, threading.RLock] = {}
_MEMORY_GUARD = threading.Lock()


def _memory_lock(key: str) -> threading.RLock:
    with _MEMORY_GUARD:
        return _MEMORY_LOCKS.setdefault(key, threading.RLock())


def clear_memory_cache() -> None:
    """Forget every in-process entry (tests, or after rotating a password)."""
    with _MEMORY_GUARD:
        _MEMORY.clear()


class MemoryCredentialCache:
    """In-process cache keyed by the connection's cache key and a fingerprint of its secrets."""

    def __init__(self, settings: CognitoSettings) -> None:
        self._key = f"{settings.cache_key()}:{secret_fingerprint(settings)}"
        self._lock = _memory_lock(self._key)
        self.last_hit: str | None = None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialise refreshes of this connection within the process."""
        with self._lock:
            yield

    def load(self) -> CacheEntry | None:
        """The entry stored by any hook of this process for the same connection, if any."""
        with _MEMORY_GUARD:
            entry = _MEMORY.get(self._key)
        self.last_hit = "memory" if entry is not None else None
        return entry

    def store(self, entry: CacheEntry) -> None:
        """Remember the entry for the other hooks of this process."""
        with _MEMORY_GUARD:
            _MEMORY[self._key] = entry


def default_cache_dir() -> Path:
    """``$AIRFLOW_COGNITO_IAM_CACHE_DIR``, else ``~/.cache/airflow-cognito-iam``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".cache" / "airflow-cognito-iam"


_DERIVED_KEYS: dict[str, bytes] = {}
_DERIVED_GUARD = threading.Lock()
_PENDING_KEYS: dict[str, threading.Thread] = {}


def derive_fernet_key(settings: CognitoSettings) -> bytes:
    """Fernet key from the password, client secret and cache key.

    scrypt, not a fast hash: without a client secret the password is the only secret, and a cache
    file must not become a cheap offline password oracle. Derived once per process per connection.
    """
    fingerprint = secret_fingerprint(settings)
    with _DERIVED_GUARD:
        if fingerprint in _DERIVED_KEYS:
            return _DERIVED_KEYS[fingerprint]
        pending = _PENDING_KEYS.get(fingerprint)
    if pending is not None and pending is not threading.current_thread():
        pending.join()  # started by prederive_fernet_key while the sign-in ran
        with _DERIVED_GUARD:
            if fingerprint in _DERIVED_KEYS:
                return _DERIVED_KEYS[fingerprint]
    material = "\x1f".join((settings.password, settings.client_secret or "")).encode()
    kdf = Scrypt(salt=f"airflow-cognito-iam/v1/{settings.cache_key()}".encode(), length=32, n=2**14, r=8, p=1)
    key = base64.urlsafe_b64encode(kdf.derive(material))
    with _DERIVED_GUARD:
        _DERIVED_KEYS[fingerprint] = key
    return key


def prederive_fernet_key(settings: CognitoSettings) -> None:
    """Start deriving the cache key in a background thread; ``derive_fernet_key`` then waits for it.

    A cold task needs the key only to store what it is about to fetch from Cognito. scrypt runs
    without the GIL, so deriving it during the sign-in's round trips and SRP arithmetic takes its
    ~50 ms off the critical path instead of adding them after.
    """
    fingerprint = secret_fingerprint(settings)
    with _DERIVED_GUARD:
        if fingerprint in _DERIVED_KEYS or fingerprint in _PENDING_KEYS:
            return
        thread = threading.Thread(target=_derive_quietly, args=(settings,), name="cognito-iam-cache-key", daemon=True)
        _PENDING_KEYS[fingerprint] = thread
    thread.start()


def _derive_quietly(settings: CognitoSettings) -> None:
    try:
        derive_fernet_key(settings)
    except Exception:  # the caller derives again and sees the error itself
        log.debug("background derivation of the cache key failed")


class _UnsafeCacheError(Exception):
    """The cache directory or a file in it could be controlled by another user."""


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    # One warning per process and problem: a broken cache costs sign-ins, not log floods.
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning(message)


def _reason(exc: BaseException) -> str:
    return exc.strerror or type(exc).__name__ if isinstance(exc, OSError) else str(exc)


def seal_entry(fernet: Fernet, settings: CognitoSettings, entry: CacheEntry) -> bytes:
    """The encrypted form every shared store keeps (file, Redis): versioned and bound to the cache key."""
    payload = {"v": _FORMAT_VERSION, "key": settings.cache_key(), "entry": entry.to_json()}
    return fernet.encrypt(json.dumps(payload).encode())


def unseal_entry(fernet: Fernet, settings: CognitoSettings, blob: bytes) -> CacheEntry | None:
    """Inverse of :func:`seal_entry`; None for a corrupt, truncated, foreign or old-format blob."""
    try:
        data = json.loads(fernet.decrypt(blob))
        if data.get("v") != _FORMAT_VERSION or data.get("key") != settings.cache_key():
            return None
        return CacheEntry.from_json(data["entry"])
    except (InvalidToken, ValueError, KeyError, TypeError, AttributeError):
        # Corrupt, written with other secrets (e.g. before a password change), or an old format.
        return None


class FileCredentialCache:
    """Encrypted one-file-per-connection cache shared by the task processes on one worker."""

    def __init__(self, settings: CognitoSettings, directory: Path | None = None) -> None:
        self._settings = settings
        self._dir = directory or default_cache_dir()
        key = settings.cache_key()
        self.path = self._dir / f"{key}.bin"
        self._lock_path = self._dir / f"{key}.lock"
        self._fernet: Fernet | None = None
        self.last_hit: str | None = None

    def warm_up(self) -> None:
        """About to fetch from Cognito: derive the key meanwhile (see ``prederive_fernet_key``)."""
        if self._fernet is None:
            prederive_fernet_key(self._settings)

    @property
    def fernet(self) -> Fernet:
        if self._fernet is None:
            self._fernet = Fernet(derive_fernet_key(self._settings))
        return self._fernet

    def _ensure_dir(self) -> None:
        """Create the directory 0700, or accept an existing one only if this user owns it.

        A directory someone else owns could be swapped or filled by them. One this process did
        not create is never chmod-ed: as root with a shared 1777 directory, that would take the
        sticky bit away from everyone.
        """
        try:
            self._dir.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            pass
        else:
            os.chmod(self._dir, 0o700)  # ours: fix what the umask did to mkdir's mode
            return
        info = os.stat(self._dir)
        if not stat.S_ISDIR(info.st_mode):
            raise _UnsafeCacheError(f"{self._dir} is not a directory")
        if info.st_uid != os.getuid():
            raise _UnsafeCacheError(f"cache directory {self._dir} is owned by uid {info.st_uid}, not this user")

    def _open_own(self, path: Path, flags: int) -> int:
        """Open a file in the cache directory without following symlinks; it must be ours and regular."""
        fd = os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            os.close(fd)
            raise _UnsafeCacheError(f"{path.name} in the cache directory is not a regular file of this user")
        return fd

    def _open_lock_file(self) -> int:
        try:
            return self._open_own(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_EXCL)
        except FileExistsError:
            return self._open_own(self._lock_path, os.O_RDWR)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive flock on a side file, bounded: after the wait a process proceeds on its own."""
        try:
            self._ensure_dir()
            fd = self._open_lock_file()
        except (OSError, _UnsafeCacheError) as exc:
            _warn_once(f"Credential cache lock unavailable ({_reason(exc)}); continuing without it")
            yield
            return
        try:
            deadline = time.monotonic() + _LOCK_WAIT_SECONDS
            locked = False
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    locked = True
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        log.warning("Timed out waiting for the credential cache lock; signing in anyway")
                        break
                    time.sleep(_LOCK_POLL_SECONDS)
            try:
                yield
            finally:
                if locked:
                    fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def load(self) -> CacheEntry | None:
        """The decrypted entry, or None when missing, unreadable, tampered with or for other secrets."""
        self.last_hit = None
        try:
            fd = self._open_own(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except (OSError, _UnsafeCacheError) as exc:
            _warn_once(f"Ignoring the shared credential cache entry ({_reason(exc)})")
            return None
        with os.fdopen(fd, "rb") as handle:
            blob = handle.read()
        entry = unseal_entry(self.fernet, self._settings, blob)
        if entry is None:
            log.debug("Ignoring unreadable credential cache entry %s", self.path.name)
        else:
            self.last_hit = "shared"
        return entry

    def store(self, entry: CacheEntry) -> None:
        """Write atomically (temp file + rename) with 0600 permissions; failures only cost a sign-in."""
        blob = seal_entry(self.fernet, self._settings, entry)
        try:
            self._ensure_dir()
            # mkstemp: O_EXCL, 0600; rename replaces a planted symlink itself, never its target.
            fd, tmp = tempfile.mkstemp(dir=self._dir, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(blob)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        except (OSError, _UnsafeCacheError) as exc:
            _warn_once(f"Could not write the credential cache ({_reason(exc)}); later tasks will sign in")


class SharedCredentialCache:
    """Memory first, then the encrypted file; the lock is both, so threads and processes queue once."""

    def __init__(self, settings: CognitoSettings, directory: Path | None = None) -> None:
        self.memory = MemoryCredentialCache(settings)
        self.file = FileCredentialCache(settings, directory)
        #: Where the last ``load()`` found its entry: "memory", "shared", or None (a miss).
        self.last_hit: str | None = None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Thread lock first so only one thread per process waits on the file lock."""
        with self.memory.lock(), self.file.lock():
            yield

    def load(self) -> CacheEntry | None:
        """The fresher of the in-process and on-disk entries (another process may have refreshed)."""
        entry, self.last_hit = fresher((self.memory.load(), "memory"), (self.file.load(), "shared"))
        return entry

    def warm_up(self) -> None:
        """About to fetch from Cognito: let the file layer derive its key meanwhile."""
        self.file.warm_up()

    def store(self, entry: CacheEntry) -> None:
        """Store in both layers."""
        self.memory.store(entry)
        self.file.store(entry)


def useful_until(entry: CacheEntry) -> datetime | None:
    """When nothing in the entry is valid any more: the later of credential and token expiry."""
    times = [entry.credentials.expiration] if entry.credentials else []
    if entry.tokens is not None:
        times.append(entry.tokens.expires_at)
    return max(times) if times else None


def _expiration(entry: CacheEntry) -> float:
    return entry.credentials.expiration.timestamp() if entry.credentials else float("-inf")


def fresher(*candidates: tuple[CacheEntry | None, str]) -> tuple[CacheEntry | None, str | None]:
    """The candidate whose credentials expire last (the first on a tie), with its layer's name."""
    best: tuple[CacheEntry | None, str | None] = (None, None)
    for entry, layer in candidates:
        if entry is not None and (best[0] is None or _expiration(entry) > _expiration(best[0])):
            best = (entry, layer)
    return best


def cache_for(settings: CognitoSettings, redis_client: Callable[[], Any] | None = None) -> CredentialCache | None:
    """The cache the connection asks for: ``shared`` (default), ``memory``, ``redis`` or ``none``.

    ``redis_client`` builds the ``redis.Redis`` client for ``redis`` (called lazily, so a missing
    Redis connection degrades to the shared file cache with a warning instead of failing the task).
    """
    if settings.credential_cache == "none":
        return None
    if settings.credential_cache == "memory":
        return MemoryCredentialCache(settings)
    if settings.credential_cache == "redis":
        try:
            from airflow_cognito_iam.auth.redis_cache import LayeredRedisCache, no_redis_client
        except ImportError as exc:  # redis-py missing: the file cache still spares most sign-ins
            log.warning(
                "credential_cache=redis needs redis-py (pip install 'airflow-cognito-iam[redis]'): %s; "
                "using the shared file cache",
                exc,
            )
            return SharedCredentialCache(settings)
        return LayeredRedisCache(settings, redis_client or no_redis_client, name=settings.cache_conn_id)
    return SharedCredentialCache(settings)
