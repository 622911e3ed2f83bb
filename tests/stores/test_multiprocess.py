"""Single-flight refresh across processes: 4 gunicorn workers sharing one store (PostgreSQL,
Redis, or a SQLite file) get 50 concurrent requests for one user whose token has expired.
The provider rotates refresh tokens, so a second refresh would spend a dead refresh token: exactly
one refresh call must reach it, and every request must succeed with the new token."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from stores.multiproc_app import USER
from stores.multiproc_app import build_store

from flask_oauth2_client import Token
from flask_oauth2_client.testing import FakeProvider
from flask_oauth2_client.testing import Fault

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
WORKERS = 4
REQUESTS = 50
BOOT_TIMEOUT = 20.0  # seconds for gunicorn and all its workers to come up


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Gunicorn:
    """``multiproc_app:create_app()`` under gunicorn, in its own process group."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.ready_dir = workdir / "ready"
        self.ready_dir.mkdir()
        self.log_path = workdir / "gunicorn.log"
        self.env = {**os.environ, **env, "MP_READY_DIR": str(self.ready_dir)}
        self.env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(ROOT), self.env.get("PYTHONPATH", "")])
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(WORKERS),
            "--worker-class",
            "sync",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--timeout",
            "30",
            "--graceful-timeout",
            "3",
            "--log-level",
            "warning",
            "multiproc_app:create_app()",
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
                command, cwd=HERE, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.proc.returncode}:\n{self.log()}")
            if len(list(self.ready_dir.iterdir())) >= WORKERS and self._port_open():
                return
            time.sleep(0.05)
        raise RuntimeError(f"gunicorn did not come up within {BOOT_TIMEOUT} s:\n{self.log()}")

    def _port_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        """SIGINT (gunicorn's quick shutdown: the master stops its workers, then exits), then
        SIGKILL to the whole process group if the master is still there; always reaps the master."""
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                # The master is alive and not reaped, so the group id is still ours.
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


@dataclass
class Backend:
    env: dict[str, str]  # for the workers
    store: Any  # the same store, for the test process


@pytest.fixture(params=["sql-postgresql", "redis", "sql-sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Environment variables naming the store, plus a store of the test's own on the same data."""
    kind = request.param
    name = "mp_tokens_" + uuid.uuid4().hex[:12]
    if kind == "sql-postgresql":
        url = request.getfixturevalue("postgres_url")
        env = {"OAUTH2_TOKEN_STORE": "sql", "OAUTH2_TOKEN_STORE_URL": url, "MP_TABLE": name}
    elif kind == "sql-sqlite":
        url = "sqlite:///" + str(tmp_path / "tokens.sqlite3")
        env = {"OAUTH2_TOKEN_STORE": "sql", "OAUTH2_TOKEN_STORE_URL": url, "MP_TABLE": name}
    else:
        url = request.getfixturevalue("redis_url")
        name = "test-mp-" + uuid.uuid4().hex[:12] + ":"
        env = {"OAUTH2_TOKEN_STORE": "redis", "OAUTH2_TOKEN_STORE_URL": url, "MP_PREFIX": name}
    store: Any = build_store(env["OAUTH2_TOKEN_STORE"], url, name)
    try:
        yield Backend(env, store)
    finally:
        if kind == "redis":
            for key in store.client.scan_iter(match=name + "*"):
                store.client.delete(key)
        else:
            store.table.drop(store.engine, checkfirst=True)
        store.close()


def fire(url: str, count: int) -> list[tuple[int, dict[str, Any] | str]]:
    """*count* GETs of *url* released together; (status, JSON body or error text) for each."""
    barrier = threading.Barrier(count)
    results: list[tuple[int, dict[str, Any] | str]] = [(0, "not run")] * count

    def one(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            # No redirects: a request sent to log in again must count as failed, not be followed.
            answer = requests.get(url, headers={"Accept": "application/json"}, allow_redirects=False, timeout=30)
            try:
                results[i] = (answer.status_code, answer.json())
            except ValueError:
                results[i] = (answer.status_code, answer.text[:300])
        except Exception as exc:  # reported by the assertion below
            results[i] = (-1, repr(exc))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "requests still running after 60 s"
    return results


def test_one_refresh_for_fifty_requests_in_four_processes(
    backend: Backend, fake_provider: FakeProvider, tmp_path: Path
) -> None:
    store = backend.store
    seed = Token.from_response(
        **_token_fields(fake_provider.issue_token(user="alice", client_id=fake_provider.client_id, expires_in=0))
    )
    assert seed.is_expired()
    assert seed.refresh_token is not None
    store.set("demo", USER, seed)  # also creates the table, before the workers race to do it
    fake_provider.set_fault("token", Fault(status=None, delay=0.5, grant_type="refresh_token"))

    env = {
        "MP_PROVIDER_URL": fake_provider.url,
        "MP_CLIENT_ID": fake_provider.client_id,
        "MP_CLIENT_SECRET": fake_provider.client_secret,
        **backend.env,
    }
    server = Gunicorn(env, tmp_path)
    try:
        server.start()
        results = fire(server.url + "/api/notes", REQUESTS)
    finally:
        server.stop()

    failed = [r for r in results if r[0] != 200]
    assert not failed, f"{len(failed)} failed, e.g. {failed[:3]}\n{server.log()}"
    bodies = [body for _, body in results if isinstance(body, dict)]
    assert len(bodies) == REQUESTS
    assert fake_provider.calls("token", grant_type="refresh_token") == 1

    pids = {body["pid"] for body in bodies}
    assert len(pids) > 1, f"only one worker served requests: {pids}"
    # Workers other than the refreshing one found the expired token and were handed the new one:
    # the collision really happened across processes.
    collided = {body["pid"] for body in bodies if body["seen"] == seed.access_token}
    assert len(collided) > 1, f"the expired token was seen by one process only: {collided}"
    used = {body["used"] for body in bodies}
    assert len(used) == 1
    assert seed.access_token not in used

    stored = store.get("demo", USER)
    assert stored is not None
    assert stored.access_token in used
    assert fake_provider.is_active(stored.access_token)
    assert stored.refresh_token is not None
    assert stored.refresh_token != seed.refresh_token
    assert fake_provider.is_active(stored.refresh_token)  # the rotated refresh token was kept
    assert not fake_provider.is_active(seed.refresh_token)  # ... and the old one spent once


def _token_fields(payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "access_token": payload["access_token"],
        "token_type": payload["token_type"],
        "expires_in": payload["expires_in"],
        "refresh_token": payload.get("refresh_token"),
        "scopes": payload.get("scope", "").split(),
    }
