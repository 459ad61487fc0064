"""A loopback HTTP/1.1 server that misbehaves the way real backends and networks do.

Raw sockets, so it can do what a well-behaved framework will not: reset mid-body, trickle bytes,
send gzip bombs or bodies that are not UTF-8, redirect anywhere. Each request takes the next
behaviour of its path's script (then the default); every request is recorded (method, path,
headers, body length and whether the body matches its ``x-amz-content-sha256``).
"""

from __future__ import annotations

import hashlib
import json
import random
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Behaviour = Callable[[socket.socket, "Seen"], None]


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes = field(repr=False)

    @property
    def body_sha_ok(self) -> bool:
        claimed = self.headers.get("x-amz-content-sha256")
        return claimed is not None and claimed == hashlib.sha256(self.body).hexdigest()


def _head(status: int, headers: dict[str, str]) -> bytes:
    reason = {200: "OK", 301: "Moved", 302: "Found", 303: "See Other", 307: "Temporary Redirect", 403: "Forbidden",
              404: "Not Found", 429: "Too Many Requests", 500: "Internal Server Error", 501: "Not Implemented",
              502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}.get(status, "Status")
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def respond(status: int = 200, body: bytes | str | Any = b"", headers: dict[str, str] | None = None) -> Behaviour:
    """A normal answer (JSON-encodes non-bytes bodies)."""
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    data = body.encode() if isinstance(body, str) else body

    def behave(conn: socket.socket, seen: Seen) -> None:
        extra = {"Content-Type": "application/json", **(headers or {})}
        conn.sendall(_head(status, {**extra, "Content-Length": str(len(data))}) + data)

    return behave


def reset_mid_body(total: int = 100_000, sent: int = 1000) -> Behaviour:
    """Promise ``total`` bytes, send ``sent``, then reset the connection."""

    def behave(conn: socket.socket, seen: Seen) -> None:
        conn.sendall(_head(200, {"Content-Type": "application/json", "Content-Length": str(total)}) + b"[" * sent)
        _reset(conn)

    return behave


def reset_before_answer() -> Behaviour:
    """Read the request, then reset without a byte of answer."""

    def behave(conn: socket.socket, seen: Seen) -> None:
        _reset(conn)

    return behave


def trickle(body: bytes = b'{"ok": true}' + b" " * 200, *, in_headers: bool = False, every: float = 0.5) -> Behaviour:
    """Send one byte every ``every`` seconds (of the headers, or of the body)."""

    def behave(conn: socket.socket, seen: Seen) -> None:
        head = _head(200, {"Content-Type": "application/json", "Content-Length": str(len(body))})
        slow, fast = (head + body, b"") if in_headers else (body, head)
        try:
            conn.sendall(fast)
            for i in range(len(slow)):
                conn.sendall(slow[i : i + 1])
                time.sleep(every)
        except OSError:
            return

    return behave


def redirect(location: str, status: int = 302) -> Behaviour:
    """A redirect to ``location``."""
    return respond(status, b"", {"Location": location})


def gzip_bomb(status: int = 403, decoded_mib: int = 256) -> Behaviour:
    """A small gzip body that decodes to ``decoded_mib`` MiB of JSON-ish text."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b" " * (1024 * 1024)
    parts = [compressor.compress(b'{"message": "')]
    parts += [compressor.compress(chunk) for _ in range(decoded_mib)]
    parts.append(compressor.compress(b'"}') + compressor.flush())
    data = b"".join(parts)

    def behave(conn: socket.socket, seen: Seen) -> None:
        conn.sendall(
            _head(status, {"Content-Type": "application/json", "Content-Encoding": "gzip",
                           "Content-Length": str(len(data))}) + data
        )

    behave.compressed_bytes = len(data)  # type: ignore[attr-defined]
    return behave


class _Hangup(Exception):
    """Raised by a behaviour to end the connection with a RST (closing it for real)."""


def _reset(conn: socket.socket) -> None:
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raise _Hangup


class MisbehavingServer:
    """Threaded raw HTTP/1.1 server on 127.0.0.1; ``script(path, *behaviours)`` sets what comes next."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[Seen] = []
        self._scripts: dict[str, list[Behaviour]] = {}
        self._random: dict[str, tuple[float, list[Behaviour], random.Random]] = {}
        self.default: Behaviour = respond(200, {"ok": True})
        self._lock = threading.Lock()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True, name="misbehaving-server")
        self._thread.start()

    def __enter__(self) -> MisbehavingServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stop = True
        self._sock.close()

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()
            self._scripts.clear()
            self._random.clear()
            self.default = respond(200, {"ok": True})

    def script(self, path: str, *behaviours: Behaviour) -> None:
        """The next requests to ``path`` get these behaviours, in order."""
        with self._lock:
            self._scripts.setdefault(path, []).extend(behaviours)

    def faults(self, path: str, rate: float, behaviours: list[Behaviour], seed: int = 7) -> None:
        """Each request to ``path`` gets one of ``behaviours`` with probability ``rate``."""
        with self._lock:
            self._random[path] = (rate, behaviours, random.Random(seed))

    def requests_to(self, path: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.path.split("?", 1)[0] == path]

    def _behaviour(self, path: str) -> Behaviour | None:
        key = path.split("?", 1)[0]
        with self._lock:
            queue = self._scripts.get(key)
            if queue:
                return queue.pop(0)
            if key in self._random:
                rate, behaviours, rng = self._random[key]
                if rng.random() < rate:
                    return rng.choice(behaviours)
        return None

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while True:
                seen = _read_request(reader)
                if seen is None:
                    return
                with self._lock:
                    self.seen.append(seen)
                behaviour = self._behaviour(seen.path)
                if behaviour is None:
                    handler = getattr(self, "handler", None)
                    behaviour = handler(seen) if handler else self.default
                behaviour(conn, seen)
        except (OSError, _Hangup):
            return
        finally:
            try:
                reader.close()
                conn.close()
            except OSError:
                pass


def _read_request(reader: Any) -> Seen | None:
    line = reader.readline()
    if not line:
        return None
    parts = line.decode("latin-1").split(" ", 2)
    # Not HTTP (e.g. a TLS hello sent to this plain-http port): hang up. The version check matters:
    # a hello's random bytes hold two spaces before a newline now and then, and reading "headers"
    # from it would block until the client's deadline, turning a TLS failure into a timeout.
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return None
    method, path, _ = parts
    headers: dict[str, str] = {}
    while True:
        header = reader.readline().decode("latin-1").rstrip("\r\n")
        if not header:
            break
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(reader.readline().split(b";")[0], 16)
            if size == 0:
                reader.readline()
                break
            body += reader.read(size)
            reader.readline()
    else:
        body = reader.read(int(headers.get("content-length", "0") or 0))
    return Seen(method, path, headers, body)
