"""Record formats written to a destination, streamed: JSON lines, one JSON array, or raw bytes; gzip.

A ``RecordWriter`` sits between the operator and a ``Sink``: records (or raw chunks) go in, encoded
bytes come out, compressed on the fly when asked. Nothing is buffered beyond one compressor window,
so memory stays flat at any size, and the sink still decides when the object becomes visible.
"""

from __future__ import annotations

import json
import zlib
from typing import Any, Literal, get_args

from airflow_cognito_iam.storage import Sink

OutputFormat = Literal["jsonl", "json", "raw"]
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)
Compression = Literal["gzip"]

CONTENT_TYPES = {"jsonl": "application/x-ndjson", "json": "application/json", "raw": None}


def compression_for(uri: str, compression: str | None) -> str | None:
    """``gzip`` when asked, or when the destination ends in ``.gz``; ValueError for anything else."""
    if compression not in (None, "", "gzip"):
        raise ValueError(f"compression={compression!r} must be 'gzip' or None")
    if compression == "gzip" or uri.lower().endswith(".gz"):
        return "gzip"
    return None


class RecordWriter:
    """Encodes records as ``output_format`` (and gzip) into ``sink``; counts records and bytes in."""

    def __init__(self, sink: Sink, output_format: str, compression: str | None) -> None:
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format={output_format!r} must be one of {list(OUTPUT_FORMATS)}")
        self.sink = sink
        self.output_format = output_format
        self.records = 0
        self.raw_bytes = 0
        self._gzip = zlib.compressobj(6, zlib.DEFLATED, 31) if compression == "gzip" else None
        self._first = True

    def _out(self, data: bytes) -> None:
        self.raw_bytes += len(data)
        if self._gzip is not None:
            data = self._gzip.compress(data)
        if data:
            self.sink.write(data)

    def write_record(self, record: Any) -> None:
        """One record: a JSON line, or an element of the JSON array."""
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()
        if self.output_format == "jsonl":
            self._out(text + b"\n")
        elif self.output_format == "json":
            self._out((b"[" if self._first else b",") + text)
        else:
            raise ValueError("output_format='raw' stores the bytes as received; a response_filter's records need jsonl")
        self._first = False
        self.records += 1

    def write_raw(self, chunk: bytes) -> None:
        """Bytes of a body as received (``raw``, or an unfiltered single body)."""
        self._out(chunk)

    def finish_raw(self) -> None:
        """Flush the compressor after :meth:`write_raw` of a single body (no JSON array to close)."""
        if self._gzip is not None:
            tail = self._gzip.flush()
            if tail:
                self.sink.write(tail)

    def finish(self) -> None:
        """Close the JSON array and flush the compressor (the sink then commits)."""
        if self.output_format == "json":
            self._out(b"[]" if self._first else b"]")
        if self._gzip is not None:
            tail = self._gzip.flush()
            if tail:
                self.sink.write(tail)
