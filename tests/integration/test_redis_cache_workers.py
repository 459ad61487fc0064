"""credential_cache = "redis" against a real redis-server and the devstack: one sign-in for a whole
deployment, and a Redis that dies, hangs or holds a bad entry never fails a task.

Each module run starts its own redis-server on a free port (never the machine's 6379), so killing it
or flushing it touches nobody else. Task processes are real subprocesses with their own cache
directories, i.e. separate "hosts" as far as the file cache can tell.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from cryptography.fernet import Fernet

from airflow_cognito_iam.auth.cache import clear_memory_cache, seal_entry
from airflow_cognito_iam.auth.credentials import CognitoCredentialProvider
from airflow_cognito_iam.auth.redis_cache import (
    KEY_PREFIX,
    LayeredRedisCache,
    RedisCredentialCache,
    reset_process_state,
)
from airflow_cognito_iam.devstack import DevStack
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
REDIS_CONN_ID = "cognito_iam_cache_test"
PROCESS_TIMEOUT = 240

# A task process as the hook sees it: settings read, then (all together) one signed call.
TASK = """
import os, time
from airflow_cognito_iam.auth.cache import clear_memory_cache
from airflow_cognito_iam.hooks.cognito_iam import CognitoIamHook

def call():
    hook = CognitoIamHook()
    print(hook.request("GET", "/whoami").json()["identity_id"], flush=True)
    hook.close()

CognitoIamHook().settings
print("ready", flush=True)
while not os.path.exists(os.environ["GO_FILE"]):
    time.sleep(0.01)
call()
if os.environ.get("PHASE_FILE"):
    print("phase one done", flush=True)
    while not os.path.exists(os.environ["PHASE_FILE"]):
        time.sleep(0.01)
    clear_memory_cache()  # as the next task process on this host starts
    call()
    call()
"""

# The auth layer alone (no Airflow import): lets a test set the lock timeout or hold the lock.
AUTH_TASK = """
import json, os, time
import redis
from airflow_cognito_iam.auth.credentials import CognitoCredentialProvider
from airflow_cognito_iam.auth.redis_cache import LayeredRedisCache
from airflow_cognito_iam.auth.settings import CognitoSettings

conn = json.loads(os.environ["CONN"])
settings = CognitoSettings.from_connection(
    host=conn["host"], login=conn["login"], password=conn["password"], extra=conn["extra"]
)
cache = LayeredRedisCache(
    settings, lambda: redis.Redis(port=int(os.environ["REDIS_PORT"])), lock_timeout=float(os.environ["LOCK_TIMEOUT"])
)
print("ready", flush=True)
while not os.path.exists(os.environ["GO_FILE"]):
    time.sleep(0.01)
if os.environ.get("HOLD_LOCK"):
    with cache.lock():
        print("locked", flush=True)
        time.sleep(600)
provider = CognitoCredentialProvider(settings, cache=cache)
print(provider.get_credentials().identity_id, cache.last_hit, flush=True)
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A private redis-server on a free port, keeping nothing on disk."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.client = redis.Redis(port=self.port, socket_timeout=5)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                assert self.process.poll() is None, "redis-server exited"
                assert time.monotonic() < deadline, "redis-server did not answer PING"
                time.sleep(0.05)

    @property
    def conn_json(self) -> str:
        return json.dumps({"conn_type": "redis", "host": "127.0.0.1", "port": self.port})

    def entry_keys(self) -> list[bytes]:
        return [k for k in self.client.keys(f"{KEY_PREFIX}*") if not k.endswith(b":lock")]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


@pytest.fixture
def stack(cognito_iam_conn: DevStack, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[DevStack]:
    """The devstack connection with credential_cache=redis on our private Redis, emptied."""
    redis_server.client.flushdb()
    use_redis(monkeypatch, cognito_iam_conn, redis_server)
    reset_process_state()
    yield cognito_iam_conn
    reset_process_state()
    clear_memory_cache()


def use_redis(monkeypatch: pytest.MonkeyPatch, stack: DevStack, server: RedisServer, **extra: Any) -> None:
    conn = stack.conn_dict(credential_cache="redis", cache_conn_id=REDIS_CONN_ID, **extra)
    monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(conn))
    monkeypatch.setenv(f"AIRFLOW_CONN_{REDIS_CONN_ID.upper()}", server.conn_json)


class Tasks:
    """Task processes started together, released together through a file, then collected."""

    def __init__(self, tmp_path: Path, script: str = TASK) -> None:
        self.tmp_path = tmp_path
        self.script = script
        self.go = tmp_path / "go"
        self.processes: list[subprocess.Popen[str]] = []

    def start(self, count: int, *, host: str | None = None, **env: str) -> list[subprocess.Popen[str]]:
        started = []
        for index in range(count):
            cache_dir = self.tmp_path / "hosts" / (host or f"host-{len(self.processes)}")
            process = subprocess.Popen(
                [sys.executable, "-c", self.script],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                cwd=ROOT,
                env={**os.environ, "AIRFLOW_COGNITO_IAM_CACHE_DIR": str(cache_dir), "GO_FILE": str(self.go), **env},
            )
            self.processes.append(process)
            started.append(process)
        return started

    @staticmethod
    def wait_for(process: subprocess.Popen[str], line: str, seen: list[str]) -> None:
        assert process.stdout is not None
        while True:
            text = process.stdout.readline()
            assert text, f"process exited before {line!r}:\n{''.join(seen)}"
            seen.append(text)
            if text.strip() == line:
                return

    def release(self, processes: list[subprocess.Popen[str]], line: str = "ready") -> list[list[str]]:
        outputs: list[list[str]] = [[] for _ in processes]
        for process, seen in zip(processes, outputs, strict=True):
            self.wait_for(process, line, seen)
        self.go.touch()
        return outputs

    def finish(self, processes: list[subprocess.Popen[str]], outputs: list[list[str]]) -> list[str]:
        texts = []
        for process, seen in zip(processes, outputs, strict=True):
            rest, _ = process.communicate(timeout=PROCESS_TIMEOUT)
            text = "".join(seen) + rest
            assert process.returncode == 0, text[-3000:]
            texts.append(text)
        return texts

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


@pytest.fixture
def tasks(tmp_path: Path) -> Iterator[Tasks]:
    started = Tasks(tmp_path)
    yield started
    started.kill_all()


def test_eight_task_processes_on_eight_hosts_sign_in_once_through_one_redis(
    stack: DevStack, redis_server: RedisServer, tasks: Tasks, tmp_path: Path
):
    processes = tasks.start(8)
    outputs = tasks.release(processes)
    stack.reset_stats()
    texts = tasks.finish(processes, outputs)

    identities = {text.strip().splitlines()[-1] for text in texts}
    assert len(identities) == 1
    calls = stack.stats()["cognito"]
    assert calls["InitiateAuth"] == 1, calls
    assert calls["GetCredentialsForIdentity"] == 1, calls
    [key] = redis_server.entry_keys()
    ttl = redis_server.client.pttl(key) / 1000
    assert 3500 < ttl <= 3600, "TTL at the credentials' expiry (the devstack issues 1 h credentials)"
    blob = redis_server.client.get(key)
    for secret in (stack.password, stack.client_secret, stack.username):
        assert secret.encode() not in blob
        assert secret.encode() not in key
    # Only the process that signed in wrote its host's file (the fallback for a Redis outage).
    assert len(list((tmp_path / "hosts").glob("*/*.bin"))) == 1


def test_workers_that_find_the_entry_near_expiry_refresh_it_once(
    stack: DevStack, redis_server: RedisServer, tmp_path: Path
):
    settings = CognitoIamHook().settings
    cache = LayeredRedisCache(settings, lambda: redis.Redis(port=redis_server.port), directory=tmp_path / "filler")
    CognitoCredentialProvider(settings, cache=cache).get_credentials()
    # Rewrite the shared entry as if its credentials were five seconds from expiry.
    layer = RedisCredentialCache(settings, redis_server.client)
    entry = layer.load()
    assert entry is not None
    assert entry.credentials is not None
    now = datetime.now(UTC)
    layer.store(dataclasses.replace(
        entry,
        credentials=dataclasses.replace(entry.credentials, expiration=now + timedelta(seconds=5)),
        issued_at=now - timedelta(minutes=59),
    ))
    stack.reset_stats()

    workers = Tasks(tmp_path, AUTH_TASK)
    try:
        processes = workers.start(
            6, CONN=json.dumps(stack.conn_dict()), REDIS_PORT=str(redis_server.port), LOCK_TIMEOUT="60"
        )
        texts = workers.finish(processes, workers.release(processes))
    finally:
        workers.kill_all()

    calls = stack.stats()["cognito"]
    assert calls.get("GetCredentialsForIdentity") == 1, calls
    assert "InitiateAuth" not in calls, "the cached tokens were still good: no sign-in"
    # Everyone read Redis (none fell back to a file); the others waited on the lock and re-read.
    assert [text.strip().split()[-1] for text in texts] == ["redis"] * 6


def test_redis_killed_mid_run_tasks_still_succeed_on_the_hosts_file_cache(
    cognito_iam_conn: DevStack, monkeypatch: pytest.MonkeyPatch, tasks: Tasks, tmp_path: Path
):
    doomed = RedisServer(tmp_path / "doomed-redis")
    try:
        use_redis(monkeypatch, cognito_iam_conn, doomed)
        phase_file = tmp_path / "redis-is-dead"
        processes = tasks.start(3, host="host-a", PHASE_FILE=str(phase_file))
        outputs = tasks.release(processes)
        for process, seen in zip(processes, outputs, strict=True):
            tasks.wait_for(process, "phase one done", seen)
        assert cognito_iam_conn.stats()["cognito"]["InitiateAuth"] == 1
        doomed.kill()
        phase_file.touch()
        texts = tasks.finish(processes, outputs)
        late = tasks.start(1, host="host-b")  # a task on another host, started during the outage
        texts += tasks.finish(late, tasks.release(late))
    finally:
        doomed.kill()

    for text in texts:
        assert text.count("unavailable") == 1, text[-3000:]  # one warning per process, not per call
        assert "file cache" in text
    # host-a's processes took their credentials from the file the first one wrote through;
    # host-b had nothing cached anywhere it could reach and signed in.
    assert cognito_iam_conn.stats()["cognito"]["InitiateAuth"] == 2


class _BlackHole:
    """Accepts TCP connections and never answers: a Redis that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_hanging_redis_costs_one_bounded_wait_then_the_file_cache(
    cognito_iam_conn: DevStack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    hole = _BlackHole()
    try:
        conn = cognito_iam_conn.conn_dict(credential_cache="redis", cache_conn_id="hanging_redis")
        monkeypatch.setenv("AIRFLOW_CONN_COGNITO_IAM_DEFAULT", json.dumps(conn))
        monkeypatch.setenv("AIRFLOW_CONN_HANGING_REDIS", json.dumps({"conn_type": "redis", "host": "127.0.0.1",
                                                                     "port": hole.port}))
        reset_process_state()
        caplog.set_level(logging.WARNING, logger="airflow_cognito_iam.auth.redis_cache")
        assert CognitoIamHook().request("GET", "/whoami").status_code == 200
        clear_memory_cache()
        assert CognitoIamHook().request("GET", "/whoami").status_code == 200
    finally:
        hole.close()
        reset_process_state()
    assert len(hole.held) == 1, "after the timeout the process left Redis alone"
    warnings = [r.getMessage() for r in caplog.records if r.name.endswith("redis_cache")]
    assert len(warnings) == 1, warnings
    assert "Timeout" in warnings[0]
    assert cognito_iam_conn.stats()["cognito"]["InitiateAuth"] == 1, "the second hook used the file cache"


def _flip(blob: bytes) -> bytes:
    middle = len(blob) // 2
    return blob[:middle] + (b"A" if blob[middle:middle + 1] != b"A" else b"B") + blob[middle + 1:]


@pytest.mark.parametrize("damage", ["tampered", "foreign-key", "truncated", "not-a-token", "wrong-type"])
def test_an_unreadable_redis_entry_is_a_miss_never_a_crash(
    stack: DevStack, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    caplog: pytest.LogCaptureFixture, damage: str
):
    hook = CognitoIamHook()
    hook.request("GET", "/whoami")
    [key] = redis_server.entry_keys()
    blob = redis_server.client.get(key)
    if damage == "tampered":
        redis_server.client.set(key, _flip(blob))
    elif damage == "foreign-key":
        entry = RedisCredentialCache(hook.settings, redis_server.client).load()
        assert entry is not None
        redis_server.client.set(key, seal_entry(Fernet(Fernet.generate_key()), hook.settings, entry))
    elif damage == "truncated":
        redis_server.client.set(key, blob[: len(blob) // 2])
    elif damage == "not-a-token":
        redis_server.client.set(key, b"\x00\xffnot fernet at all")
    else:
        redis_server.client.delete(key)
        redis_server.client.hset(key, "field", "value")
    clear_memory_cache()
    monkeypatch.setenv("AIRFLOW_COGNITO_IAM_CACHE_DIR", str(tmp_path / "another-host"))
    stack.reset_stats()
    caplog.set_level(logging.WARNING, logger="airflow_cognito_iam.auth.redis_cache")

    fresh = CognitoIamHook()
    assert fresh.request("GET", "/whoami").status_code == 200

    assert stack.stats()["cognito"]["InitiateAuth"] == 1, "a miss: one sign-in"
    assert RedisCredentialCache(fresh.settings, redis_server.client).load() is not None, "replaced by a good entry"
    warnings = [r.getMessage() for r in caplog.records if r.name.endswith("redis_cache")]
    assert len(warnings) == 1, warnings
    assert "cannot be read" in warnings[0]


def test_two_connections_never_share_an_entry(
    stack: DevStack, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
):
    confidential = stack.conn_dict(credential_cache="redis", cache_conn_id=REDIS_CONN_ID)
    public = stack.conn_dict(credential_cache="redis", cache_conn_id=REDIS_CONN_ID, client_id=stack.public_client_id,
                             client_secret=None)
    monkeypatch.setenv("AIRFLOW_CONN_CONFIDENTIAL", json.dumps(confidential))
    monkeypatch.setenv("AIRFLOW_CONN_PUBLIC", json.dumps(public))
    first, second = CognitoIamHook("confidential"), CognitoIamHook("public")
    first.request("GET", "/whoami")
    second.request("GET", "/whoami")
    assert stack.stats()["cognito"]["InitiateAuth"] == 2
    assert len(redis_server.entry_keys()) == 2

    clear_memory_cache()
    stack.reset_stats()
    again_first, again_second = CognitoIamHook("confidential"), CognitoIamHook("public")
    assert again_first.get_tokens().id_token == first.get_tokens().id_token
    assert again_second.get_tokens().id_token == second.get_tokens().id_token
    assert first.get_tokens().id_token != second.get_tokens().id_token
    assert stack.stats()["cognito"] == {}, "each found its own entry"

    # The same identity with another password has another key and cannot read this one's entry.
    wrong = dataclasses.replace(first.settings, password="Not-The-Passw0rd!")
    assert RedisCredentialCache(wrong, redis_server.client).key.encode() not in redis_server.entry_keys()
    assert RedisCredentialCache(wrong, redis_server.client).load() is None


def test_a_killed_lock_holder_delays_the_others_only_until_the_lock_expires(
    stack: DevStack, redis_server: RedisServer, tmp_path: Path
):
    holder = Tasks(tmp_path, AUTH_TASK)
    try:
        [process] = holder.start(
            1, CONN=json.dumps(stack.conn_dict()), REDIS_PORT=str(redis_server.port), LOCK_TIMEOUT="3", HOLD_LOCK="1"
        )
        seen = holder.release([process])[0]
        holder.wait_for(process, "locked", seen)
        process.send_signal(signal.SIGKILL)  # the task dies mid-refresh, lock still held
        process.wait(timeout=30)
    finally:
        holder.kill_all()
    settings = CognitoIamHook().settings
    lock_key = f"{RedisCredentialCache(settings, redis_server.client).key}:lock"
    assert redis_server.client.pttl(lock_key) > 0, "the dead holder's lock is still there"
    stack.reset_stats()

    cache = LayeredRedisCache(settings, lambda: redis.Redis(port=redis_server.port), lock_timeout=3,
                              directory=tmp_path / "waiter")
    credentials = CognitoCredentialProvider(settings, cache=cache).get_credentials()

    assert credentials.identity_id
    assert stack.stats()["cognito"]["InitiateAuth"] == 1, "the waiter signed in once the lock expired"
    assert not redis_server.client.exists(lock_key), "and released its own lock"
    assert RedisCredentialCache(settings, redis_server.client).load() is not None
