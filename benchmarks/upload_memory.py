"""PUT a 1 GiB generator body through CognitoIamHook.request and measure the caller's peak RSS growth.

A generator cannot be hashed for x-amz-content-sha256 without consuming it, so the hook spools it
to a temporary file (bounded memory), hashes it on the way, and replays the file per attempt. The
receiving server (in this parent process) streams and hashes what arrives, and checks it against
the signed hash; the first attempt is answered 503 so the body really is sent twice.

    .venv/bin/python benchmarks/upload_memory.py [--size-mb 1024]

Last line: ``bytes=<sent per attempt> attempts=<n> sha_ok=<bool> peak_rss_growth_mib=<MiB>`` (target <= 64).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

TARGET_GROWTH_MIB = 64
CHUNK = 256 * 1024


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        match = re.search(rf"^{field}:\s+(\d+) kB", status.read(), re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{field} not in /proc/self/status (Linux only)")
    return int(match.group(1))


class HashingSink:
    """HTTP/1.1 server that hashes each request body as it streams in; answers 503 first, then 200."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.attempts: list[dict[str, object]] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        while True:
            if not reader.readline():
                return
            headers = {}
            while (line := reader.readline().decode("latin-1").strip()) != "":
                name, _, value = line.partition(":")
                headers[name.lower()] = value.strip()
            remaining = int(headers.get("content-length", "0"))
            digest, size = hashlib.sha256(), 0
            while remaining:
                chunk = reader.read(min(CHUNK, remaining))
                if not chunk:
                    return
                digest.update(chunk)
                size += len(chunk)
                remaining -= len(chunk)
            ok = digest.hexdigest() == headers.get("x-amz-content-sha256")
            self.attempts.append({"bytes": size, "sha_ok": ok})
            status = "503 Service Unavailable" if len(self.attempts) == 1 else "200 OK"
            body = json.dumps({"bytes": size, "sha_ok": ok}).encode()
            conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)


def run_child(size_mb: int) -> None:
    """Caller side: sign in, reset the peak-RSS mark, PUT the generator body, report JSON."""
    from airflow_cognito_iam.auth.retry import RetryPolicy
    from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

    hook = CognitoIamHook(retry_policy=RetryPolicy(max_attempts=3, max_seconds=600, initial=0.01, cap=0.05))
    hook.get_credentials()
    block = os.urandom(CHUNK)

    def body():  # type: ignore[no-untyped-def]
        for _ in range(size_mb * 1024 * 1024 // CHUNK):
            yield block

    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # resets VmHWM (peak RSS) to the current RSS
    before = _status_kib("VmRSS")
    started = time.perf_counter()
    response = hook.request("PUT", "/upload", data=body(), timeout=600)
    elapsed = time.perf_counter() - started
    peak = _status_kib("VmHWM")
    print(json.dumps({"answer": response.json(), "seconds": elapsed, "rss_before_kib": before, "rss_peak_kib": peak}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args.size_mb)
        return 0

    from airflow_cognito_iam.devstack import DevStack

    sink = HashingSink()
    with DevStack() as stack:
        env = {
            **os.environ,
            **stack.env(),
            "AIRFLOW_CONN_COGNITO_IAM_DEFAULT": json.dumps(stack.conn_dict(host=sink.url)),
        }
        done = subprocess.run(
            [sys.executable, __file__, "--child", "--size-mb", str(args.size_mb)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return 1
    result = json.loads(done.stdout.strip().splitlines()[-1])
    growth = (result["rss_peak_kib"] - result["rss_before_kib"]) / 1024
    sent = {a["bytes"] for a in sink.attempts}
    sha_ok = all(a["sha_ok"] for a in sink.attempts)
    print(
        f"size_mib={args.size_mb} seconds={result['seconds']:.1f} "
        f"throughput_mib_s={args.size_mb * len(sink.attempts) / result['seconds']:.0f} "
        f"target_growth_mib<={TARGET_GROWTH_MIB}"
    )
    print(
        f"bytes={','.join(str(b) for b in sorted(sent))} attempts={len(sink.attempts)} sha_ok={sha_ok} "
        f"peak_rss_growth_mib={growth:.1f}"
    )
    return 0 if sha_ok and len(sent) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
