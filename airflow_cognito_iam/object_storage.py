"""Destinations beyond ``s3://`` and ``file://``: anything Airflow's object storage knows.

``destination`` may be an ``ObjectStoragePath`` or a URL whose scheme a provider registered with
Airflow's object storage (``gs://``, ``abfs://``, ``sftp://``, …). ``s3://`` and ``file://`` keep
their fast sinks (multipart upload; temp file + rename) even when given as an ObjectStoragePath.
Any other store is written under a temporary name beside the target and moved into place only when
complete, so a reader never sees a partial object, and the temporary object is removed on failure.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_cognito_iam.storage import Sink, StorageError

log = logging.getLogger(__name__)

#: Schemes with their own fast sink in ``storage.py``.
NATIVE_SCHEMES = ("s3", "file")


@dataclass(frozen=True)
class Destination:
    """A resolved destination: its URI (for logs, assets, lineage) and the connection to write with."""

    uri: str
    scheme: str
    conn_id: str | None = None
    path: Any = None  # the ObjectStoragePath, for stores without a native sink


def is_object_storage_path(value: Any) -> bool:
    """True for an Airflow ``ObjectStoragePath`` (without touching ``.fs``, which imports its backend)."""
    if isinstance(value, str | bytes) or value is None:
        return False
    from airflow.sdk import ObjectStoragePath

    return isinstance(value, ObjectStoragePath)


def resolve(destination: Any, conn_id: str | None) -> Destination:
    """The destination as a URI plus what writes it; ValueError naming the problem, before any I/O."""
    if is_object_storage_path(destination):
        scheme = (destination.protocol or "file").lower()
        uri = _uri_of(destination)
        return Destination(uri, scheme, getattr(destination, "conn_id", None) or conn_id, destination)
    if not isinstance(destination, str) or not destination:
        raise ValueError(f"destination must be a URL or an ObjectStoragePath, got {type(destination).__name__}")
    scheme = urlsplit(destination).scheme.lower()
    if scheme in NATIVE_SCHEMES:
        return Destination(destination, scheme, conn_id)
    known = registered_schemes()
    if known is not None and scheme not in known:
        raise ValueError(
            f"destination {destination!r}: no filesystem for scheme {scheme!r}. Airflow's object storage knows "
            f"{', '.join(sorted(known))} here; install the provider for {scheme!r} (its filesystem extra), or use "
            "s3://bucket/key or file:///absolute/path"
        )
    from airflow.sdk import ObjectStoragePath

    return Destination(destination, scheme, conn_id, ObjectStoragePath(destination, conn_id=conn_id))


def registered_schemes() -> set[str] | None:
    """Schemes Airflow's object storage can open here; None when that cannot be told (then it decides)."""
    try:
        from airflow.sdk.io import fs as airflow_fs
        from airflow.sdk.io.store import _STORE_CACHE

        schemes = set(airflow_fs._register_filesystems())
        schemes.update(str(store.protocol) for store in _STORE_CACHE.values())  # attach()-ed ones (memory://)
    except Exception:  # Airflow's registry internals moved: let ObjectStoragePath raise its own error
        return None
    return schemes | set(NATIVE_SCHEMES)


def _uri_of(path: Any) -> str:
    # str(path) would show the conn_id as user info (s3://aws_default@bucket/key): rebuild without it.
    protocol = (path.protocol or "file").lower()
    if protocol in ("file", "local"):
        return f"file://{path.path}"
    return f"{protocol}://{str(path.path).lstrip('/')}"


class ObjectStorageSink(Sink):
    """Writes ``<dir>/.<name>.<random>.partial`` through fsspec, then moves it onto the target."""

    def __init__(self, uri: str, path: Any) -> None:
        super().__init__(uri)
        self._fs = path.fs
        self._final = path.path
        parent, _, name = self._final.rpartition("/")
        self._tmp = f"{parent}/.{name}.{uuid.uuid4().hex[:12]}.partial" if parent else f".{name}.partial"
        try:
            self._file = self._fs.open(self._tmp, "wb")
        except Exception as exc:
            raise StorageError(f"could not start writing {uri}: {type(exc).__name__}: {exc}") from exc

    def _write(self, data: bytes) -> None:
        self._file.write(data)

    def _commit(self) -> None:
        try:
            self._file.close()
            self._fs.mv(self._tmp, self._final)
        except Exception as exc:
            raise StorageError(f"could not move the finished object into place at {self.uri}: {exc}") from exc

    def _abort(self) -> None:
        try:
            self._file.close()
        finally:
            if self._fs.exists(self._tmp):
                self._fs.rm(self._tmp)
