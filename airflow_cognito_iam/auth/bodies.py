"""Request and response bodies with the guarantees a retried, signed request needs.

Requests: every attempt must send the whole body. A file-like body left at EOF by the first
attempt would be re-sent empty with a valid signature (of the empty body), and a generator cannot
be hashed for ``x-amz-content-sha256`` at all. ``ReplayableBody`` rewinds seekable files and spools
anything else to a temporary file once, hashing as it goes, in bounded memory.

Responses: error bodies and pages held in memory are read up to a decoded-size cap (urllib3
decompresses at most what is asked for, so a gzip bomb costs the cap, not its decoded size), and
text is decoded strictly (U+FFFD replacement would silently corrupt XCom values).
"""

from __future__ import annotations

import codecs
import hashlib
import tempfile
from collections.abc import Iterable, Mapping
from typing import IO, Any

import requests

#: Spooled bodies stay in memory up to this size, then go to a temporary file.
SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
_CHUNK = 1024 * 1024
#: What an error message needs from an error body.
ERROR_BODY_BYTES = 8 * 1024


class BodyTooLargeError(ValueError):
    """A body went past its decoded-size cap while being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


class ReplayableBody:
    """A request body every attempt sends whole: bytes, or a seekable file rewound per attempt."""

    def __init__(self, data: bytes | IO[bytes], sha256: str, length: int, *, start: int = 0, owned: bool = False):
        self.data = data
        self.sha256 = sha256
        self.length = length
        self._start = start
        self._owned = owned

    @classmethod
    def wrap(cls, data: Any) -> ReplayableBody | None:
        """A replayable form of ``data``, or None when requests already sends it whole every time.

        bytes, str, form dicts and lists of pairs are rebuilt by requests on each attempt. Files are
        hashed (and rewound) or spooled; other iterables (generators, iterators) are spooled.
        """
        if data is None or isinstance(data, bytes | bytearray | str | Mapping | list | tuple):
            return None
        if hasattr(data, "read"):
            if _seekable(data):
                return cls._from_seekable(data)
            return cls._spool(_read_chunks(data))
        if isinstance(data, Iterable):
            return cls._spool(iter(data))
        raise TypeError(
            f"cannot send a {type(data).__name__} as a request body: pass bytes, str, a file or an iterable"
        )

    @classmethod
    def _from_seekable(cls, file: IO[bytes]) -> ReplayableBody:
        start = file.tell()
        digest = hashlib.sha256()
        length = 0
        while chunk := file.read(_CHUNK):
            chunk = _as_bytes(chunk)
            digest.update(chunk)
            length += len(chunk)
        file.seek(start)
        return cls(file, digest.hexdigest(), length, start=start)

    @classmethod
    def _spool(cls, chunks: Iterable[Any]) -> ReplayableBody:
        digest = hashlib.sha256()
        memory = bytearray()
        spool: IO[bytes] | None = None
        length = 0
        try:
            for raw in chunks:
                chunk = _as_bytes(raw)
                if not chunk:
                    continue
                digest.update(chunk)
                length += len(chunk)
                if spool is None and len(memory) + len(chunk) <= SPOOL_MEMORY_BYTES:
                    memory += chunk
                    continue
                if spool is None:
                    spool = tempfile.TemporaryFile(prefix="cognito-iam-body-")  # noqa: SIM115 - owned below
                    spool.write(memory)
                    memory = bytearray()
                spool.write(chunk)
        except BaseException:
            if spool is not None:
                spool.close()
            raise
        if spool is None:
            return cls(bytes(memory), digest.hexdigest(), length)
        spool.seek(0)
        return cls(spool, digest.hexdigest(), length, owned=True)

    def for_attempt(self) -> bytes | IO[bytes]:
        """The body to hand to requests for the next attempt, from its first byte."""
        if not isinstance(self.data, bytes):
            self.data.seek(self._start)
        return self.data

    def close(self) -> None:
        """Delete the spool file, if any."""
        if self._owned and not isinstance(self.data, bytes):
            self.data.close()


def _seekable(file: Any) -> bool:
    try:
        return bool(file.seekable()) and file.tell() >= 0
    except (AttributeError, OSError, ValueError):
        return False


def _read_chunks(file: Any) -> Iterable[Any]:
    while chunk := file.read(_CHUNK):
        yield chunk


def _as_bytes(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, bytearray | memoryview):
        return bytes(chunk)
    if isinstance(chunk, str):
        return chunk.encode()
    raise TypeError(f"a request body chunk must be bytes or str, got {type(chunk).__name__}")


def read_capped(response: requests.Response, limit: int) -> bytes:
    """The decoded body, read at most ``limit`` bytes; BodyTooLargeError past that.

    Also stores the body as ``response.content``, so later readers (response.json()) see it.
    """
    if getattr(response, "_content_consumed", False) and isinstance(getattr(response, "_content", None), bytes):
        content: bytes = response.content
        if len(content) > limit:
            raise BodyTooLargeError(limit)
        return content
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_content(min(64 * 1024, limit + 1)):
        size += len(chunk)
        if size > limit:
            response.close()
            raise BodyTooLargeError(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    response._content = body  # what requests itself does when it reads the body
    return body


def read_error_excerpt(response: requests.Response, limit: int = ERROR_BODY_BYTES) -> str:
    """At most ``limit`` decoded bytes of an error body as text (never raises).

    The excerpt becomes ``response.content``: an error body is never held whole.
    """
    try:
        if getattr(response, "_content_consumed", False) and isinstance(getattr(response, "_content", None), bytes):
            head = response.content[:limit]
        else:
            head = b""
            for chunk in response.iter_content(min(limit, 4096)):
                head += chunk
                if len(head) >= limit:
                    break
            response.close()
            head = head[:limit]
            response._content = head
            response._content_consumed = True  # type: ignore[attr-defined]
    except Exception:
        return ""
    return head.decode(response.encoding or "utf-8", errors="replace")


def decode_text(body: bytes, response: requests.Response) -> str:
    """The body as text in its declared charset (UTF-8 if none); UnicodeDecodeError if it is not."""
    charset = _declared_charset(response) or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError:
        charset = "utf-8"
    return body.decode(charset, errors="strict")


def _declared_charset(response: requests.Response) -> str | None:
    content_type = response.headers.get("Content-Type", "")
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip("\"' ")
    return None
