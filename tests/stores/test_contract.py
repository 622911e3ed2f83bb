"""One scenario suite for every store: memory, session (cookie and Flask-Session), sql on SQLite
and PostgreSQL, redis. Each runs inside a request (the session stores need one)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any

import pytest
from flask import Flask

from flask_oauth2_client import StoreError
from flask_oauth2_client import Token
from flask_oauth2_client.stores import MemoryTokenStore
from flask_oauth2_client.stores.session import SessionTokenStore
from flask_oauth2_client.stores.sql import SQLTokenStore

STORES = ["memory", "session-cookie", "session-server", "sql-sqlite", "sql-postgresql", "redis"]
SHARED = ["memory", "sql-sqlite", "sql-postgresql", "redis"]  # usable from several threads at once


def make_token(**changes: Any) -> Token:
    token = Token.from_response(
        access_token="at-" + str(time.monotonic_ns()),
        token_type="Bearer",
        expires_in=3600,
        refresh_token="rt-secret",
        scopes=["read", "write"],
        extra={"team": {"id": 7}, "note": "ünïcode"},
    )
    return token.replace(**changes)


@pytest.fixture(params=STORES)
def store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    kind = request.param
    app = Flask("contract")
    app.config["SECRET_KEY"] = "contract-secret-key"
    if kind == "memory":
        built: Any = MemoryTokenStore()
    elif kind == "session-cookie":
        built = SessionTokenStore()
    elif kind == "session-server":
        from cachelib import FileSystemCache
        from flask_session import Session

        app.config.update(SESSION_TYPE="cachelib", SESSION_CACHELIB=FileSystemCache(str(tmp_path / "sessions")))
        Session(app)
        built = SessionTokenStore()
    elif kind == "sql-sqlite":
        built = SQLTokenStore.from_config(instance_path=str(tmp_path))
    elif kind == "sql-postgresql":
        built = request.getfixturevalue("postgres_store")
    else:
        built = request.getfixturevalue("redis_store")
    with app.test_request_context():
        yield built
    if kind == "sql-sqlite":
        built.close()


def test_missing_token_is_none(store):
    assert store.get("demo", "nobody") is None


def test_round_trip_keeps_every_field(store):
    token = make_token(id_token="h.p.s", claims={"sub": "42"})
    store.set("demo", "u1", token)
    again = store.get("demo", "u1")
    assert again == token
    assert again.expires_at == token.expires_at
    assert again.issued_at == token.issued_at
    assert again.extra == {"team": {"id": 7}, "note": "ünïcode"}
    assert again.claims == {"sub": "42"}


def test_set_replaces(store):
    store.set("demo", "u1", make_token())
    newer = make_token(refresh_token="rt-2")
    store.set("demo", "u1", newer)
    assert store.get("demo", "u1") == newer


def test_delete_and_delete_missing(store):
    store.set("demo", "u1", make_token())
    store.delete("demo", "u1")
    assert store.get("demo", "u1") is None
    store.delete("demo", "u1")
    store.delete("other", "nobody")


def test_keys_are_per_provider_and_user(store):
    a, b = make_token(access_token="a"), make_token(access_token="b")
    store.set("demo", "user:1", a)
    store.set("other", "user:1", b)
    assert store.get("demo", "user:1") == a
    assert store.get("other", "user:1") == b
    assert store.get("demo", "user:2") is None
    store.delete("demo", "user:1")
    assert store.get("other", "user:1") == b


def test_token_without_expiry_or_refresh_token(store):
    token = Token("plain-token")
    store.set("demo", "u1", token)
    assert store.get("demo", "u1") == token


def test_expired_token_is_kept(store):
    expired = make_token(expires_at=datetime.now(timezone.utc) - timedelta(minutes=5))
    store.set("demo", "u1", expired)
    assert store.get("demo", "u1") == expired  # refreshing it is the extension's job


def test_lock_is_reentrant_free_and_times_out(store):
    with store.lock("demo", "u1", timeout=1):
        store.set("demo", "u1", make_token())
    with store.lock("demo", "u1", timeout=1):
        pass


@pytest.fixture(params=SHARED)
def shared_store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Any]:
    kind = request.param
    if kind == "memory":
        yield MemoryTokenStore()
    elif kind == "sql-sqlite":
        built = SQLTokenStore.from_config(instance_path=str(tmp_path))
        yield built
        built.close()
    elif kind == "sql-postgresql":
        yield request.getfixturevalue("postgres_store")
    else:
        yield request.getfixturevalue("redis_store")


def test_lock_excludes_other_threads_and_times_out(shared_store):
    holding = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with shared_store.lock("demo", "u1", timeout=5):
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    assert holding.wait(5)
    started = time.monotonic()
    with pytest.raises(StoreError, match="timed out"), shared_store.lock("demo", "u1", timeout=0.3):
        pass
    assert time.monotonic() - started >= 0.25
    with shared_store.lock("demo", "other-user", timeout=1):
        pass  # another key is not blocked
    release.set()
    thread.join(5)
    with shared_store.lock("demo", "u1", timeout=1):
        pass


def test_lock_serialises_read_modify_write(shared_store):
    shared_store.set("demo", "counter", Token("0"))

    def bump() -> None:
        with shared_store.lock("demo", "counter", timeout=10):
            current = shared_store.get("demo", "counter")
            time.sleep(0.01)
            shared_store.set("demo", "counter", Token(str(int(current.access_token) + 1)))

    threads = [threading.Thread(target=bump) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert shared_store.get("demo", "counter").access_token == "10"
