"""How the SQL store reads: one statement, outside any transaction, no ping at check-out, on a
read engine of its own; a pooled connection that the database closed meanwhile (a restart, an
administrator, an idle timeout) costs one retry, not a failed request. Nothing here is timed."""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from tcp_proxy import TcpProxy

from flask_oauth2_client import StoreError
from flask_oauth2_client import Token
from flask_oauth2_client.stores.sql import SQLTokenStore


def a_token() -> Token:
    return Token.from_response(
        access_token="at-" + uuid.uuid4().hex, token_type="Bearer", expires_in=3600, refresh_token="rt-secret"
    )


class Wire:
    """What the read engine's connections send to the database, seen by the driver itself
    (whatever layer sends it): libpq's protocol trace for PostgreSQL, where every round trip
    ends with a ``ReadyForQuery`` message that carries the transaction status (``I`` idle, ``T``
    in a transaction); the SQL statements traced by SQLite."""

    def __init__(self, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
        self.engine = engine
        self.pings = 0
        self.sqlite_statements: list[str] = []
        self._traced: dict[int, tuple[Any, Any]] = {}
        sa.event.listen(engine, "checkout", self._checkout)
        real_ping = engine.dialect.do_ping

        def counted_ping(dbapi_connection: Any) -> bool:
            self.pings += 1
            return real_ping(dbapi_connection)

        monkeypatch.setattr(engine.dialect, "do_ping", counted_ping)

    def _checkout(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if id(dbapi_connection) in self._traced:
            return
        if isinstance(dbapi_connection, psycopg.Connection):
            file = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in close()
            dbapi_connection.pgconn.trace(file.fileno())
            dbapi_connection.pgconn.set_trace_flags(psycopg.pq.Trace.SUPPRESS_TIMESTAMPS)
        else:  # sqlite3
            file = None
            dbapi_connection.set_trace_callback(self.sqlite_statements.append)
        self._traced[id(dbapi_connection)] = (dbapi_connection, file)

    def postgresql_messages(self) -> list[list[str]]:
        """Every protocol message, split in fields (direction, length, type, ...)."""
        messages = []
        for _connection, file in self._traced.values():
            file.flush()
            file.seek(0)
            messages += [line.split("\t") for line in file.read().splitlines() if line]
        return messages

    def close(self) -> None:
        sa.event.remove(self.engine, "checkout", self._checkout)
        for connection, file in self._traced.values():
            if file is None:
                connection.set_trace_callback(None)
            else:
                if not connection.closed:
                    connection.pgconn.untrace()
                file.close()


@pytest.fixture
def sqlite_store(tmp_path: Any) -> Iterator[SQLTokenStore]:
    store = SQLTokenStore.from_config(instance_path=str(tmp_path))
    assert isinstance(store, SQLTokenStore)
    yield store
    store.close()


@pytest.fixture(params=["sql-postgresql", "sql-sqlite"])
def sql_store(request: pytest.FixtureRequest) -> SQLTokenStore:
    name = "postgres_store" if request.param == "sql-postgresql" else "sqlite_store"
    store: SQLTokenStore = request.getfixturevalue(name)
    return store


# -- one statement, no transaction, no ping ----------------------------------------------------------


def test_a_read_is_one_round_trip_outside_a_transaction(
    sql_store: SQLTokenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = a_token()
    sql_store.set("demo", "u1", token)
    assert sql_store.read_engine.pool is not sql_store.engine.pool  # built from a URL: a pool of its own
    assert sql_store.get("demo", "u1") == token  # the read engine's first connection exists
    wire = Wire(sql_store.read_engine, monkeypatch)
    reads = 8
    try:
        for _ in range(reads - 1):
            assert sql_store.get("demo", "u1") == token
        assert sql_store.get("demo", "nobody") is None
        if sql_store.engine.dialect.name == "postgresql":
            messages = wire.postgresql_messages()
        else:
            statements = list(wire.sqlite_statements)
    finally:
        wire.close()
    assert wire.pings == 0
    if sql_store.engine.dialect.name == "sqlite":
        assert len(statements) == reads, statements  # no BEGIN, no ROLLBACK, no PRAGMA
        assert all(statement.startswith("SELECT") and "token" in statement for statement in statements)
        return
    sent = [message[2] for message in messages if message[0] == "F"]
    assert "Query" not in sent, messages  # no simple query: no BEGIN, ROLLBACK, ping or SET
    parsed = [message[3] for message in messages if message[0] == "F" and message[2] == "Parse"]
    assert parsed
    assert all("SELECT" in text and sql_store.table.name in text for text in parsed)
    ends = [message[3].strip() for message in messages if message[0] == "B" and message[2] == "ReadyForQuery"]
    # One round trip per read; psycopg prepares a statement used often, once, in a trip of its own.
    assert reads <= len(ends) <= reads + 1, messages
    assert set(ends) == {"I"}  # idle: never inside a transaction


def test_writes_still_use_transactions_and_the_pinging_engine(postgres_store: SQLTokenStore) -> None:
    """set() is all or nothing (UPDATE, then INSERT when there was no row) on ``engine``."""
    seen: list[tuple[str, bool]] = []

    def executed(conn: sa.Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append((statement.split()[0].upper(), conn.in_transaction()))

    postgres_store.get("demo", "u1")  # the table exists
    sa.event.listen(postgres_store.engine, "after_cursor_execute", executed)
    try:
        postgres_store.set("demo", "u1", a_token())
        postgres_store.delete("demo", "u1")
    finally:
        sa.event.remove(postgres_store.engine, "after_cursor_execute", executed)
    assert seen == [("UPDATE", True), ("INSERT", True), ("DELETE", True)]
    assert postgres_store.engine.pool._pre_ping  # type: ignore[attr-defined]


def test_sqlite_read_connections_get_the_pragmas(sqlite_store: SQLTokenStore) -> None:
    """Set once per new connection of either engine (the pool keeps them), not per request."""
    sqlite_store.set("demo", "u1", a_token())
    for engine in (sqlite_store.engine, sqlite_store.read_engine):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    connects: list[object] = []
    sa.event.listen(sqlite_store.read_engine, "connect", lambda *_: connects.append(1))
    for _ in range(5):
        assert sqlite_store.get("demo", "u1") is not None
    assert connects == []  # the pooled connection is reused


def test_reads_see_what_another_engine_just_wrote(sql_store: SQLTokenStore) -> None:
    """No snapshot is kept between reads: each one sees the latest committed token, as the
    refresher needs when it reads again under the lock."""
    other = SQLTokenStore(sql_store.engine.url.render_as_string(hide_password=False), table=sql_store.table.name)
    try:
        for _ in range(3):
            token = a_token()
            other.set("demo", "u1", token)
            assert sql_store.get("demo", "u1") == token
        other.delete("demo", "u1")
        assert sql_store.get("demo", "u1") is None
    finally:
        other.close()


def test_in_memory_sqlite_reads_through_the_same_pool() -> None:
    """A second pool would open a second, empty, in-memory database."""
    store = SQLTokenStore("sqlite://")
    try:
        assert store.read_engine.pool is store.engine.pool
        token = a_token()
        store.set("demo", "u1", token)
        assert store.get("demo", "u1") == token
        store.delete("demo", "u1")
        assert store.get("demo", "u1") is None
    finally:
        store.close()


def test_an_engine_given_by_the_caller_is_read_through_its_own_pool(postgres_url: str, sql_table: str) -> None:
    engine = sa.create_engine(postgres_url)
    store = SQLTokenStore(engine, table=sql_table)
    seen: list[bool] = []

    def executed(conn: sa.Connection, _cursor: Any, _statement: str, *_args: Any) -> None:
        seen.append(conn.connection.dbapi_connection.autocommit)  # type: ignore[union-attr]

    try:
        assert store.read_engine.pool is engine.pool
        token = a_token()
        store.set("demo", "u1", token)
        sa.event.listen(store.read_engine, "after_cursor_execute", executed)
        assert store.get("demo", "u1") == token
        assert seen == [True]  # AUTOCOMMIT for the read
        with engine.connect() as conn:  # and not left so for the caller's own connections
            assert conn.get_isolation_level() != "AUTOCOMMIT"
            assert not conn.connection.dbapi_connection.autocommit  # type: ignore[union-attr]
    finally:
        sa.event.remove(store.read_engine, "after_cursor_execute", executed)
        store.table.drop(engine, checkfirst=True)
        store.close()


# -- a pooled connection that the database closed ----------------------------------------------------


def pooled_read_backends(store: SQLTokenStore, count: int) -> list[int]:
    """Fill the read pool with *count* connections; their server process ids."""
    connections = [store.read_engine.connect() for _ in range(count)]
    pids = [int(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()) for conn in connections]
    for conn in connections:
        conn.close()  # back to the pool
    return pids


def terminate(url: str, pids: list[int]) -> None:
    """End these server processes, as an administrator (or a restart) would, and wait until
    they are gone (AUTOCOMMIT: pg_stat_activity is a snapshot within a transaction)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for pid in pids:
                assert conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
            deadline = time.monotonic() + 5
            while conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": pids}
            ).scalar():
                assert time.monotonic() < deadline, "the backends did not go away"
                time.sleep(0.02)
    finally:
        engine.dispose()


def test_read_after_the_server_terminated_the_pooled_connections(
    postgres_store: SQLTokenStore, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As after a PostgreSQL restart: every pooled read connection is dead. The first read finds
    out, retries once on a new connection, and the rest of the pool is replaced as it is used:
    no read fails."""
    caplog.set_level(logging.INFO, logger="flask_oauth2_client")
    token = a_token()
    postgres_store.set("demo", "u1", token)
    assert postgres_store.get("demo", "u1") == token
    pids = pooled_read_backends(postgres_store, 3)
    terminate(postgres_url, pids)
    for _ in range(6):
        assert postgres_store.get("demo", "u1") == token
    assert pooled_read_backends(postgres_store, 1)[0] not in pids
    assert caplog.text.count("was dead; reading again") == 1


def test_a_failed_read_that_is_no_disconnect_is_not_retried(
    sql_store: SQLTokenStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The table went away behind the store's back: a StoreError (503), no retry, and the
    connection goes on serving once the table is back."""
    caplog.set_level(logging.INFO, logger="flask_oauth2_client")
    sql_store.set("demo", "u1", a_token())
    sql_store.table.drop(sql_store.engine)
    with pytest.raises(StoreError, match="could not read a token"):
        sql_store.get("demo", "u1")
    assert "reading again" not in caplog.text
    sql_store.create_table()
    assert sql_store.get("demo", "u1") is None
    token = a_token()
    sql_store.set("demo", "u1", token)
    assert sql_store.get("demo", "u1") == token


@pytest.fixture
def proxied_store(postgres_url: str, sql_table: str) -> Iterator[tuple[SQLTokenStore, TcpProxy]]:
    """A store whose connections go through a TcpProxy to the real PostgreSQL."""
    url = sa.make_url(postgres_url)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432).start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).update_query_dict({"connect_timeout": "2"})
    store = SQLTokenStore(proxied.render_as_string(hide_password=False), table=sql_table)
    try:
        yield store, proxy
    finally:
        proxy.stop()
        store.close()
        direct = sa.create_engine(postgres_url)
        store.table.drop(direct, checkfirst=True)
        direct.dispose()


def test_read_after_the_connection_was_cut(proxied_store: tuple[SQLTokenStore, TcpProxy]) -> None:
    """The network drops the pooled connection (no goodbye from the server): one retry."""
    store, proxy = proxied_store
    token = a_token()
    store.set("demo", "u1", token)
    assert store.get("demo", "u1") == token
    proxy.pause()  # cuts every open connection
    proxy.resume()
    accepted = proxy.accepted
    assert store.get("demo", "u1") == token
    assert proxy.accepted == accepted + 1  # one new connection, for the retry


def test_a_read_is_retried_once_only(proxied_store: tuple[SQLTokenStore, TcpProxy]) -> None:
    """The pooled connection is dead and the server does not take new ones: the read fails
    (503 in a request) after one attempt to connect, without a second retry."""
    store, proxy = proxied_store
    store.set("demo", "u1", a_token())
    assert store.get("demo", "u1") is not None
    proxy.pause()
    with pytest.raises(StoreError, match="could not read a token"):
        store.get("demo", "u1")
    assert proxy.refused == 1
    with pytest.raises(StoreError, match="could not read a token"):
        store.get("demo", "u1")  # nothing pooled any more: one connection attempt, no retry
    assert proxy.refused == 2
    proxy.resume()
    assert store.get("demo", "u1") is not None
