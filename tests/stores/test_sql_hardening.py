"""The SQL store against the real PostgreSQL (and a SQLite file): workers racing to create the
table, a database host that never answers, an advisory lock that cannot be released, and keys too
long for their columns."""

from __future__ import annotations

import hashlib
import logging
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from helpers import login

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import StoreError
from flask_oauth2_client import Token
from flask_oauth2_client.errors import ConfigurationError
from flask_oauth2_client.errors import OAuth2Error
from flask_oauth2_client.stores import sql as sql_module
from flask_oauth2_client.stores.sql import SQLTokenStore
from flask_oauth2_client.stores.sql import _lock_key
from flask_oauth2_client.testing import FakeProvider

JSON = {"Accept": "application/json"}


def a_token(**changes: Any) -> Token:
    token = Token.from_response(
        access_token="at-" + uuid.uuid4().hex, token_type="Bearer", expires_in=3600, refresh_token="rt-secret"
    )
    return token.replace(**changes)


def wait_until(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def pg_table(postgres_url: str) -> Iterator[str]:
    """A fresh table name in PostgreSQL, dropped afterwards."""
    name = "oauth2_hardening_" + uuid.uuid4().hex[:12]
    yield name
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
    engine.dispose()


# -- 1. two workers create the table at the same moment -------------------------------------------


def test_postgresql_table_created_by_another_worker_meanwhile(postgres_url: str, pg_table: str) -> None:
    """Deterministic race: worker A's CREATE TABLE is in an open transaction when worker B checks
    (nothing yet) and runs its own CREATE TABLE, which waits for A and then fails in PostgreSQL's
    catalog. B must find the table and go on."""
    a = SQLTokenStore(postgres_url, table=pg_table)
    b = SQLTokenStore(postgres_url, table=pg_table)
    conn = a.engine.connect()
    transaction = conn.begin()
    a.table.create(conn)
    outcome: list[BaseException | None] = []

    def create() -> None:
        try:
            b.set("demo", "u1", a_token())
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=create)
    worker.start()
    try:
        try:
            wait_until(lambda: _waiting_on_lock(postgres_url), timeout=5)  # B's CREATE TABLE waits for A
        finally:
            transaction.commit()
            conn.close()
            worker.join(10)
        assert outcome == [None]
        assert b.get("demo", "u1") is not None
    finally:
        a.close()
        b.close()


def _waiting_on_lock(url: str) -> bool:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            query = (
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query ILIKE '%CREATE TABLE%'"
            )
            return bool(conn.execute(sa.text(query)).scalar())
    finally:
        engine.dispose()


def test_sqlite_table_created_by_another_worker_meanwhile(tmp_path: Any) -> None:
    path = tmp_path / "oauth2_tokens.sqlite3"
    store = SQLTokenStore(f"sqlite:///{path}")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN IMMEDIATE")
    other.execute(
        "CREATE TABLE oauth2_tokens (provider VARCHAR(64) NOT NULL, user_id VARCHAR(255) NOT NULL, "
        "token TEXT NOT NULL, expires_at DATETIME, updated_at DATETIME NOT NULL, PRIMARY KEY (provider, user_id))"
    )
    outcome: list[BaseException | None] = []

    def create() -> None:
        try:
            store.create_table()  # checks (nothing committed yet), then waits on the busy database
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=create)
    worker.start()
    time.sleep(0.5)
    other.execute("COMMIT")
    other.close()
    worker.join(15)
    assert outcome == [None]
    store.set("demo", "u1", a_token())
    assert store.get("demo", "u1") is not None
    store.close()


@pytest.mark.parametrize("kind", ["postgresql", "sqlite"])
def test_many_workers_use_a_new_table_at_once(kind: str, request: pytest.FixtureRequest, tmp_path: Any) -> None:
    """Eight stores (eight engines, as eight worker processes would have) write their first token
    at the same moment: every write succeeds."""
    if kind == "postgresql":
        url = request.getfixturevalue("postgres_url")
        table = request.getfixturevalue("pg_table")
    else:
        url, table = f"sqlite:///{tmp_path / 'tokens.sqlite3'}", "oauth2_tokens"
    stores = [SQLTokenStore(url, table=table) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def first_use(index: int) -> None:
        barrier.wait()
        try:
            stores[index].set("demo", f"user-{index}", a_token())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(n,)) for n in range(len(stores))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert all(stores[0].get("demo", f"user-{n}") is not None for n in range(len(stores)))
    finally:
        for store in stores:
            store.close()


def test_a_clash_with_something_else_than_the_table_is_still_a_store_error(postgres_url: str, pg_table: str) -> None:
    """A type of the table's name makes CREATE TABLE fail with "already exists", but the table is
    not there on the second look: the store reports that it cannot be used."""
    engine = sa.create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE TYPE "{pg_table}" AS (a integer)'))
    store = SQLTokenStore(postgres_url, table=pg_table)
    try:
        with pytest.raises(StoreError, match="could not create the token table"):
            store.get("demo", "u1")
    finally:
        store.close()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP TYPE "{pg_table}"'))
        engine.dispose()


# -- 2. a database host that never answers ------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port where connections are accepted by the kernel and then nothing ever answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    yield listener.getsockname()[1]
    listener.close()


def connect_params(store: SQLTokenStore) -> dict[str, Any]:
    """The arguments the store's engines (the one for writes and the one for reads) pass to the
    driver's connect(), observed on real connections to PostgreSQL; both must pass the same."""
    seen: dict[str, dict[str, Any]] = {"engine": {}, "read_engine": {}}
    for name in seen:

        def observe(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any], name: str = name) -> None:
            seen[name].update(params)

        sa.event.listen(getattr(store, name), "do_connect", observe)
    store.get("demo", "nobody")  # creates the table (engine), then reads (read_engine)
    for params in seen.values():
        params.pop("context", None)  # psycopg's adapters, one per engine
    assert seen["engine"] == seen["read_engine"]
    return seen["read_engine"]


def test_postgresql_gets_a_connect_timeout_by_default(postgres_url: str, pg_table: str) -> None:
    store = SQLTokenStore(postgres_url, table=pg_table)
    assert connect_params(store)["connect_timeout"] == sql_module.CONNECT_TIMEOUT == 5
    store.close()


def test_connect_timeout_of_the_url_or_of_engine_options_wins(postgres_url: str, pg_table: str) -> None:
    in_url = sa.make_url(postgres_url).update_query_dict({"connect_timeout": "3"})
    store = SQLTokenStore(in_url.render_as_string(hide_password=False), table=pg_table)
    assert connect_params(store)["connect_timeout"] == "3"
    store.close()
    store = SQLTokenStore(postgres_url, table=pg_table, engine_options={"connect_args": {"application_name": "mine"}})
    params = connect_params(store)
    assert params["application_name"] == "mine"
    assert "connect_timeout" not in params  # the user's connect_args are taken as they are
    store.close()
    store = SQLTokenStore(postgres_url, table=pg_table, engine_options={"pool_size": 2})
    assert connect_params(store)["connect_timeout"] == 5  # other options keep the default
    store.close()


def test_silent_database_host_gives_503_within_the_connect_timeout(
    silent_server: int, make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_module, "CONNECT_TIMEOUT", 2)  # the least psycopg accepts; 5 by default
    store = SQLTokenStore(f"postgresql+psycopg://postgres@127.0.0.1:{silent_server}/test", table="never_made")
    app = make_app(oauth=OAuth2Client(store=store, user_id_loader=lambda: "someone"))
    started = time.monotonic()
    answer = app.test_client().get("/protected", headers=JSON)
    elapsed = time.monotonic() - started
    store.close()
    assert answer.status_code == 503, answer.data
    assert answer.get_json()["error"] == "store_unavailable"
    assert 1.5 < elapsed < 3.5  # one connect timeout, not the operating system's TCP timeout


# -- 3. an advisory lock that cannot be released ------------------------------------------------


def lock_is_free(url: str, provider: str, user_id: str) -> bool:
    """``True`` when another session can take the advisory lock (it is released at once)."""
    engine = sa.create_engine(url)
    key = _lock_key(provider, user_id)
    try:
        with engine.connect() as conn:
            taken = bool(conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            if taken:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
            return taken
    finally:
        engine.dispose()


def test_failed_unlock_never_returns_a_locked_connection_to_the_pool(
    postgres_store: SQLTokenStore, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The unlock statement fails while the connection stays open (injected in the driver call):
    the connection must be discarded, or the pool would keep the lock held for ever."""

    def unlock_fails(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "pg_advisory_unlock" in statement:
            raise psycopg.OperationalError("unlock failed (injected)")

    sa.event.listen(postgres_store.engine, "before_cursor_execute", unlock_fails)
    with postgres_store.lock("demo", "u1", 2):
        assert not lock_is_free(postgres_url, "demo", "u1")
    wait_until(lambda: lock_is_free(postgres_url, "demo", "u1"))
    assert "could not be released" in caplog.text
    sa.event.remove(postgres_store.engine, "before_cursor_execute", unlock_fails)
    with postgres_store.lock("demo", "u1", 2):  # the store goes on as usual
        postgres_store.set("demo", "u1", a_token())
    assert lock_is_free(postgres_url, "demo", "u1")


def test_lock_connection_killed_during_the_refresh(postgres_store: SQLTokenStore, postgres_url: str) -> None:
    """The lock's connection dies while the lock is held (a database restart, a killed backend):
    leaving the lock raises nothing, and the store keeps working."""
    killer = sa.create_engine(postgres_url)
    key = _lock_key("demo", "u1")
    with postgres_store.lock("demo", "u1", 2):
        with killer.begin() as conn:
            rows = conn.execute(
                sa.text("SELECT pid, classid, objid FROM pg_locks WHERE locktype = 'advisory' AND granted")
            ).all()
            # A 64-bit advisory key is shown as its high (classid) and low (objid) 32 bits.
            pids = [pid for pid, high, low in rows if _signed64((int(high) << 32) | int(low)) == key]
            assert len(pids) == 1
            conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]})
        postgres_store.set("demo", "u1", a_token())
    killer.dispose()
    assert lock_is_free(postgres_url, "demo", "u1")
    with postgres_store.lock("demo", "u1", 2):
        assert postgres_store.get("demo", "u1") is not None


def _signed64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


# -- 4. keys too long for their columns ---------------------------------------------------------


@pytest.fixture(params=["sql-postgresql", "sql-sqlite"])
def sql_store(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[SQLTokenStore]:
    if request.param == "sql-postgresql":
        yield request.getfixturevalue("postgres_store")
    else:
        store = SQLTokenStore.from_config(instance_path=str(tmp_path))
        assert isinstance(store, SQLTokenStore)
        yield store
        store.close()


def stored_user_ids(store: SQLTokenStore) -> set[str]:
    with store.engine.connect() as conn:
        return set(conn.execute(sa.select(store.table.c.user_id)).scalars())


def hashed(user_id: str) -> str:
    return "sha256:" + hashlib.sha256(user_id.encode("utf-8")).hexdigest()


def test_user_ids_too_long_for_the_column_are_stored_as_a_hash(sql_store: SQLTokenStore) -> None:
    long_id = "https://idp.example/" + "x" * 300
    exactly = "é" * 255  # 255 characters (510 bytes): fits VARCHAR(255) as it is
    nul = "user\x00id"  # PostgreSQL text cannot hold NUL
    surrogate = "user\ud800id"  # not encodable as UTF-8
    tokens = {user_id: a_token() for user_id in (long_id, exactly, nul, surrogate, "plain")}
    for user_id, token in tokens.items():
        sql_store.set("demo", user_id, token)
    for user_id, token in tokens.items():
        assert sql_store.get("demo", user_id) == token
    surrogate_hash = "sha256:" + hashlib.sha256(surrogate.encode("utf-8", "surrogatepass")).hexdigest()
    assert stored_user_ids(sql_store) == {hashed(long_id), exactly, hashed(nul), surrogate_hash, "plain"}
    assert all(len(user_id) <= 255 for user_id in stored_user_ids(sql_store))

    sql_store.set("demo", long_id, tokens["plain"])  # replaced, not a second row
    assert sql_store.get("demo", long_id) == tokens["plain"]
    sql_store.delete("demo", long_id)
    assert sql_store.get("demo", long_id) is None
    assert stored_user_ids(sql_store) == {exactly, hashed(nul), surrogate_hash, "plain"}


def test_a_user_id_that_looks_like_a_hash_gets_its_own_row(sql_store: SQLTokenStore) -> None:
    long_id = "y" * 400
    sql_store.set("demo", long_id, a_token())
    lookalike = hashed(long_id)  # what the long id is stored as, used as an id of its own
    assert sql_store.get("demo", lookalike) is None
    sql_store.set("demo", lookalike, a_token())
    assert sql_store.get("demo", lookalike) != sql_store.get("demo", long_id)
    assert len(stored_user_ids(sql_store)) == 2


def test_provider_names_too_long_for_the_column_are_refused(sql_store: SQLTokenStore) -> None:
    name = "p" * 65
    for call in (
        lambda: sql_store.get(name, "u1"),
        lambda: sql_store.set(name, "u1", a_token()),
        lambda: sql_store.delete(name, "u1"),
    ):
        with pytest.raises(ConfigurationError, match="at most 64 characters") as caught:
            call()
        assert isinstance(caught.value, OAuth2Error)
        assert isinstance(caught.value, ValueError)
    sql_store.set("p" * 64, "u1", a_token())  # 64 fits
    assert sql_store.get("p" * 64, "u1") is not None
    assert stored_user_ids(sql_store) == {"u1"}


def test_app_with_long_user_ids_on_postgresql(
    postgres_store: SQLTokenStore, make_app: Any, fake_provider: FakeProvider
) -> None:
    long_id = "tenant-7|" + "https://login.example/users/" + "0123456789" * 30
    app = make_app(oauth=OAuth2Client(store=postgres_store, user_id_loader=lambda: long_id))
    client = app.test_client()
    assert login(client, fake_provider).status_code == 302
    assert client.get("/protected").status_code == 200
    assert stored_user_ids(postgres_store) == {hashed(long_id)}


def test_logging_of_lock_failures_has_no_key_material(
    postgres_store: SQLTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The warning names neither the user nor anything of a token."""
    caplog.set_level(logging.DEBUG)

    def unlock_fails(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "pg_advisory_unlock" in statement:
            raise psycopg.OperationalError("unlock failed (injected)")

    sa.event.listen(postgres_store.engine, "before_cursor_execute", unlock_fails)
    token = a_token()
    with postgres_store.lock("demo", "secret-user-42", 2):
        postgres_store.set("demo", "secret-user-42", token)
    sa.event.remove(postgres_store.engine, "before_cursor_execute", unlock_fails)
    assert "could not be released" in caplog.text
    for secret in ("secret-user-42", token.access_token, "rt-secret"):
        assert secret not in caplog.text
