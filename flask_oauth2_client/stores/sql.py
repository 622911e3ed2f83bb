"""Tokens in a SQL database through SQLAlchemy Core (``pip install flask-oauth2-client[sql]``).

Without ``OAUTH2_TOKEN_STORE_URL`` the database is a SQLite file in the app's instance folder: the
embedded default for one machine, several worker processes included. With PostgreSQL (or any
database SQLAlchemy speaks) several hosts share the tokens.

The table (``oauth2_tokens`` by default) is created on first use, or by ``flask oauth2 init-db``::

    provider    VARCHAR(64)   primary key, with user_id
    user_id     VARCHAR(255)  primary key, with provider
    token       TEXT          the serialised token; Fernet-encrypted with OAUTH2_TOKEN_ENCRYPTION_KEYS
    expires_at  TIMESTAMP     access token expiry (UTC), NULL when unknown; for housekeeping
    updated_at  TIMESTAMP     last write (UTC)

Several processes may create the table at the same moment: the one that loses the race finds the
table made by the other and goes on.

Keys that do not fit the columns: a user id longer than 255 characters, or one that the database
cannot hold as text (a NUL character, a lone surrogate), is stored as ``sha256:`` followed by the
SHA-256 hex digest of its UTF-8 bytes (71 characters). So is a user id that itself starts with
``sha256:``, so that no two user ids ever share a row. Every other user id is stored as it is. A
provider name longer than 64 characters is refused with
:class:`~flask_oauth2_client.errors.ConfigurationError` (``OAUTH2_PROVIDERS`` names have at most 48).

Built from a URL without ``connect_args`` in ``engine_options``, the engine gives PostgreSQL
(psycopg, psycopg2) a connect timeout of :data:`CONNECT_TIMEOUT` seconds, unless the URL sets
``connect_timeout`` itself: a database host that does not answer fails the request with a ``503``
rather than after the operating system's TCP timeout. (SQLite waits up to 10 s for a busy
database, through ``PRAGMA busy_timeout``.)

Reads (:meth:`~SQLTokenStore.get`) take one round trip: a ``SELECT`` built once, on
:attr:`~SQLTokenStore.read_engine`, in ``AUTOCOMMIT`` (no ``BEGIN``, no ``ROLLBACK`` when the
connection goes back to the pool) and without a ping at check-out. A pooled connection found dead
(the database restarted) is discarded with the rest of the pool, and the read is made once more on
a new connection, so a restart of the database server fails no request. Writes and the refresh lock
use :attr:`~SQLTokenStore.engine`, in transactions, with ``pool_pre_ping``: they are rare, and the
ping is cheap next to them. Built from a URL, the two engines have a pool each (give
``engine_options`` such as ``pool_size`` with that in mind); an in-memory SQLite database or an
:class:`~sqlalchemy.engine.Engine` given as ``url`` is read through that engine's own pool. With
PostgreSQL and SQLite from a URL, the ``SELECT`` goes to the driver's cursor on a pooled connection
without SQLAlchemy's ``Connection`` and ``Result`` in between (they cost more than the round trip
itself): the read engine's pool events apply, its ``before_cursor_execute`` events and ``echo``
logging do not.

The refresh lock works across processes: a PostgreSQL advisory lock, a file lock beside a SQLite
database (one machine), and on other databases a lock per process only. An advisory lock that
cannot be released (its connection failed) is never returned to the pool: the connection is
discarded, and PostgreSQL frees the lock with it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from datetime import timezone
from typing import Any

from ..crypto import TokenCipher
from ..errors import ConfigurationError
from ..errors import StoreError
from ..token import Token
from ._codec import TokenCodec
from .base import KeyedLocks
from .base import TokenStore

try:
    import sqlalchemy as sa
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.exc import ProgrammingError
    from sqlalchemy.exc import SQLAlchemyError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ConfigurationError("the 'sql' token store needs SQLAlchemy: pip install 'flask-oauth2-client[sql]'") from exc

__all__ = ["CONNECT_TIMEOUT", "SQLTokenStore"]

log = logging.getLogger("flask_oauth2_client")

_POLL = 0.05  # seconds between attempts at a busy lock
_RETRY_MESSAGE = "a pooled connection to the token database was dead; reading again"
#: Seconds to wait for the database server when connecting (see the module docstring).
CONNECT_TIMEOUT = 5
#: The DB-API ``connect()`` argument that bounds connecting, per (backend, driver).
_CONNECT_TIMEOUT_ARGUMENT = {
    ("postgresql", "psycopg"): "connect_timeout",
    ("postgresql", "psycopg2"): "connect_timeout",
}
PROVIDER_LENGTH = 64
USER_ID_LENGTH = 255
#: How a stored user id that is a hash begins.
HASHED = "sha256:"


class SQLTokenStore(TokenStore):
    """Tokens in one table of a SQL database.

    :param url: a SQLAlchemy database URL, or an :class:`~sqlalchemy.engine.Engine`.
    :param cipher: encrypts the ``token`` column.
    :param table: the table's name.
    :param engine_options: passed to :func:`sqlalchemy.create_engine`, for both engines (the
        read engine with ``pool_pre_ping=False`` and ``isolation_level="AUTOCOMMIT"`` on top).
        Without ``connect_args`` among them, PostgreSQL gets a connect timeout of
        :data:`CONNECT_TIMEOUT` seconds (unless the URL sets ``connect_timeout``).

    .. attribute:: engine

        Writes, table creation and the refresh lock (transactions, ``pool_pre_ping``).

    .. attribute:: read_engine

        Reads (``AUTOCOMMIT``, no ping; see the module docstring).
    """

    def __init__(
        self,
        url: str | sa.Engine,
        *,
        cipher: TokenCipher | None = None,
        table: str = "oauth2_tokens",
        engine_options: dict[str, Any] | None = None,
    ) -> None:
        read_options: dict[str, Any] | None = None
        if isinstance(url, sa.Engine):
            self.engine = url
        else:
            options: dict[str, Any] = {"pool_pre_ping": True}
            options.update(engine_options or {})
            try:
                parsed = sa.make_url(url)
                argument = _CONNECT_TIMEOUT_ARGUMENT.get((parsed.get_backend_name(), parsed.get_driver_name()))
                if argument is not None and "connect_args" not in options and argument not in parsed.query:
                    options["connect_args"] = {argument: CONNECT_TIMEOUT}
                self.engine = sa.create_engine(parsed, **options)
            except (SQLAlchemyError, ImportError, ValueError) as exc:
                raise ConfigurationError(f"OAUTH2_TOKEN_STORE_URL: cannot use this database URL ({exc})") from None
            read_options = {**options, "pool_pre_ping": False, "isolation_level": "AUTOCOMMIT"}
        self._codec = TokenCodec(cipher)
        self._locks = KeyedLocks()
        self._created = False
        self._create_lock = threading.Lock()
        metadata = sa.MetaData()
        self.table = sa.Table(
            table,
            metadata,
            sa.Column("provider", sa.String(64), primary_key=True),
            sa.Column("user_id", sa.String(255), primary_key=True),
            sa.Column("token", sa.Text, nullable=False),
            sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        )
        t = self.table
        # Built once: each get only binds the two key values (and SQLAlchemy's compiled cache
        # finds the compiled form of this very statement).
        self._select = sa.select(t.c.token).where(
            t.c.provider == sa.bindparam("provider"), t.c.user_id == sa.bindparam("user_id")
        )
        self._dialect = self.engine.dialect.name
        self._lock_file = self._sqlite_lock_path()
        self.read_engine = self._make_read_engine(read_options)
        #: Reads go straight to the driver (see _read_driver): the read engine has a pool of its
        #: own, in AUTOCOMMIT from the first connect, and a driver known to return text as is.
        self._driver_reads = self.read_engine.pool is not self.engine.pool and self._dialect in ("postgresql", "sqlite")
        self._driver_statement: tuple[str, tuple[str, ...]] | None = None
        if self._lock_file is not None:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            if self.read_engine.pool is not self.engine.pool:
                sa.event.listen(self.read_engine, "connect", _sqlite_pragmas)

    def _make_read_engine(self, options: dict[str, Any] | None) -> sa.Engine:
        """The engine :meth:`get` reads with: AUTOCOMMIT (a single ``SELECT`` needs no
        transaction, so no ``BEGIN`` and no ``ROLLBACK`` round trips) and no ping at check-out.

        Built from a URL, it has a pool of its own, without ``pool_pre_ping`` (a dead pooled
        connection is replaced by one retry, see :meth:`_read`). An in-memory SQLite database
        (one per pool) and an :class:`~sqlalchemy.engine.Engine` given by the caller (whose
        configuration cannot be copied: ``creator``, events...) share the main engine's pool,
        with AUTOCOMMIT set per check-out."""
        in_memory = self._dialect == "sqlite" and self._lock_file is None
        if options is None or in_memory:
            return self.engine.execution_options(isolation_level="AUTOCOMMIT")
        return sa.create_engine(self.engine.url, **options)

    @classmethod
    def from_config(cls, **options: Any) -> TokenStore:
        url = options.get("url")
        if not url:
            instance_path = options.get("instance_path") or "."
            os.makedirs(instance_path, exist_ok=True)
            url = "sqlite:///" + os.path.join(instance_path, "oauth2_tokens.sqlite3")
        return cls(url, cipher=options.get("cipher"))

    def __repr__(self) -> str:
        return f"<SQLTokenStore {self._dialect} table={self.table.name!r}>"

    # -- schema ---------------------------------------------------------------------------------

    def create_table(self) -> None:
        """Create the table if it does not exist (``flask oauth2 init-db`` calls this)."""
        for attempt in range(3):
            try:
                self.table.metadata.create_all(self.engine, checkfirst=True)
                break
            except SQLAlchemyError as exc:
                # SQLite answers "database is locked" at once when two connections' schema
                # transactions deadlock (the busy timeout cannot help): try again shortly.
                if "database is locked" in str(exc) and attempt < 2:
                    time.sleep(0.05 * (attempt + 1))
                    continue
                self._created_after_error(exc)
                break
        self._created = True

    def _created_after_error(self, exc: SQLAlchemyError) -> None:
        """Decide whether a failed CREATE TABLE is fine after all; raise StoreError if not."""
        # Another process created it between the check and CREATE TABLE: PostgreSQL reports a
        # unique violation in its catalog or "already exists", SQLite "already exists" (or stays
        # locked). Fine if the table is there now. (Other errors, e.g. no connection, are not.)
        message = str(exc)
        if not (
            isinstance(exc, (IntegrityError, ProgrammingError))
            or "already exists" in message
            or "database is locked" in message
        ):
            raise _unavailable("create the token table", exc) from None
        with self._errors("create the token table"):
            exists = sa.inspect(self.engine).has_table(self.table.name)
        if not exists:
            raise _unavailable("create the token table", exc) from None

    def _ensure_table(self) -> None:
        if not self._created:
            with self._create_lock:
                if not self._created:
                    self.create_table()

    # -- the TokenStore interface ---------------------------------------------------------------

    def get(self, provider: str, user_id: str) -> Token | None:
        params = {"provider": _provider_key(provider), "user_id": _user_key(user_id)}
        self._ensure_table()
        raw = self._read_driver(params) if self._driver_reads else self._read(params)
        return self._codec.loads(raw, provider=provider)

    def _read(self, params: dict[str, str]) -> str | bytes | None:
        """The ``token`` column of one row, through a SQLAlchemy connection: one round trip,
        outside any transaction.

        A pooled connection that turns out dead (the database restarted, or closed it) fails
        the ``SELECT`` with ``connection_invalidated``; SQLAlchemy then marks every connection
        of the pool made before that moment as stale, and the read is tried once more, on a
        fresh connection. A failure to connect is not retried (it would double the wait for a
        database host that does not answer)."""
        for attempt in (1, 2):
            try:
                conn = self.read_engine.connect()
            except SQLAlchemyError as exc:
                raise _unavailable("read a token", exc) from None
            try:
                with conn:
                    value: str | bytes | None = conn.execute(self._select, params).scalar()
                    return value
            except DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    log.info(_RETRY_MESSAGE)
                    continue
                raise _unavailable("read a token", exc) from None
            except SQLAlchemyError as exc:
                raise _unavailable("read a token", exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_driver(self, params: dict[str, str]) -> str | bytes | None:
        """:meth:`_read` on the DB-API connection of the read engine's pool, without
        SQLAlchemy's connection and result objects in between: the same ``SELECT``, compiled
        once, the same single round trip, and far less Python on the way to it. Used with
        PostgreSQL and SQLite, whose drivers return the ``token`` text as it is.

        Same failure handling: a dead pooled connection is discarded with every other idle one
        of the pool (:meth:`~sqlalchemy.engine.Engine.dispose`, as SQLAlchemy itself does when
        it sees a disconnect), and the read is tried once more on a new connection; a failure
        to connect is not retried."""
        engine = self.read_engine
        dialect = engine.dialect
        for attempt in (1, 2):
            try:
                conn = engine.raw_connection()
            except (SQLAlchemyError, dialect.loaded_dbapi.Error) as exc:  # the driver's own, unwrapped
                raise _unavailable("read a token", exc) from None
            cursor = None
            try:
                statement, names = self._driver_statement or self._compile_driver_statement()
                arguments: Any = tuple(params[name] for name in names) if names else params
                cursor = conn.cursor()
                try:
                    cursor.execute(statement, arguments)
                    row = cursor.fetchone()
                finally:
                    cursor.close()
            except dialect.loaded_dbapi.Error as exc:
                disconnected = dialect.is_disconnect(exc, conn.dbapi_connection, cursor)
                if disconnected:
                    conn.invalidate(exc)
                conn.close()
                if disconnected:
                    engine.dispose()  # the other idle connections are as dead (a restart)
                    if attempt == 1:
                        log.info(_RETRY_MESSAGE)
                        continue
                raise _unavailable("read a token", exc) from None
            except BaseException:
                # Interrupted half way (or a bug): the connection's state is unknown.
                conn.invalidate()
                conn.close()
                raise
            conn.close()
            value: str | bytes | None = None if row is None else row[0]
            return value
        raise AssertionError("unreachable")  # pragma: no cover

    def _compile_driver_statement(self) -> tuple[str, tuple[str, ...]]:
        """The read's SQL for the driver, and the order of its parameters (empty for named
        parameters). Compiled on first use, once the dialect knows the server."""
        compiled = self._select.compile(dialect=self.read_engine.dialect)
        names = tuple(compiled.positiontup or ()) if self.read_engine.dialect.positional else ()
        self._driver_statement = (compiled.string, names)
        return self._driver_statement

    def set(self, provider: str, user_id: str, token: Token) -> None:
        provider_key, user_key = _provider_key(provider), _user_key(user_id)
        self._ensure_table()
        t = self.table
        values = {
            "token": self._codec.dumps(token),
            "expires_at": token.expires_at,
            "updated_at": datetime.now(timezone.utc),
        }
        key = (t.c.provider == provider_key) & (t.c.user_id == user_key)
        with self._errors("store a token"):
            for _ in range(3):
                try:
                    with self.engine.begin() as conn:  # one transaction: all or nothing
                        if conn.execute(sa.update(t).where(key).values(**values)).rowcount == 0:
                            conn.execute(sa.insert(t).values(provider=provider_key, user_id=user_key, **values))
                    return
                except IntegrityError:
                    continue  # another process inserted the row meanwhile: update it
            raise StoreError("could not store the token (concurrent writes)")

    def delete(self, provider: str, user_id: str) -> None:
        key = (self.table.c.provider == _provider_key(provider)) & (self.table.c.user_id == _user_key(user_id))
        self._ensure_table()
        with self._errors("delete a token"), self.engine.begin() as conn:
            conn.execute(sa.delete(self.table).where(key))

    def lock(self, provider: str, user_id: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        return self._lock(provider, user_id, timeout)

    @contextlib.contextmanager
    def _lock(self, provider: str, user_id: str, timeout: float) -> Iterator[None]:
        deadline = time.monotonic() + timeout
        with self._locks.hold((provider, user_id), timeout):  # threads of this process first
            remaining = max(deadline - time.monotonic(), 0.0)
            key = _lock_key(provider, user_id)
            if self._dialect == "postgresql":
                with self._pg_advisory_lock(key, remaining):
                    yield
            elif self._lock_file is not None:
                with _file_range_lock(self._lock_file, key, remaining):
                    yield
            else:
                yield

    def close(self) -> None:
        if self.read_engine.pool is not self.engine.pool:
            self.read_engine.dispose()
        self.engine.dispose()

    # -- plumbing -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _pg_advisory_lock(self, key: int, timeout: float) -> Iterator[None]:
        deadline = time.monotonic() + timeout
        with self._errors("take the refresh lock"):
            conn = self.engine.connect()
        clean = False  # True once this connection is known not to hold the lock
        try:
            with self._errors("take the refresh lock"):
                while not conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                    conn.commit()
                    if time.monotonic() >= deadline:
                        clean = True
                        raise StoreError("timed out waiting for another refresh of the same token")
                    time.sleep(_POLL)
                conn.commit()
            try:
                yield
            finally:
                with contextlib.suppress(SQLAlchemyError):
                    unlocked = bool(conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key}).scalar())
                    conn.commit()
                    clean = unlocked
                if not clean:
                    log.warning("a refresh lock could not be released; its database connection is discarded")
        finally:
            if not clean:
                # The connection may still hold the lock: the pool must never hand it out again.
                # Closing it ends the session, and PostgreSQL frees the lock with it.
                with contextlib.suppress(SQLAlchemyError):
                    conn.invalidate()
            conn.close()

    def _sqlite_lock_path(self) -> str | None:
        if self._dialect != "sqlite":
            return None
        database = self.engine.url.database
        if not database or database == ":memory:" or database.startswith("file:"):
            return None
        return database + ".lock"

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Database failures become :class:`StoreError` (HTTP 503), without the URL or the SQL."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise _unavailable(action, exc) from None


def _unavailable(action: str, exc: Exception) -> StoreError:
    return StoreError(f"the token database is unavailable: could not {action} ({type(exc).__name__})")


def _fits(value: str, length: int) -> bool:
    """``True`` when *value* fits a ``VARCHAR(length)`` column of any database as it is."""
    if len(value) > length or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _user_key(user_id: str) -> str:
    """The ``user_id`` column's value for *user_id* (see the module docstring)."""
    if _fits(user_id, USER_ID_LENGTH) and not user_id.startswith(HASHED):
        return user_id
    return HASHED + hashlib.sha256(user_id.encode("utf-8", "surrogatepass")).hexdigest()


def _provider_key(provider: str) -> str:
    """The ``provider`` column's value for *provider*."""
    if not _fits(provider, PROVIDER_LENGTH):
        raise ConfigurationError(
            f"the SQL token store keeps provider names of at most {PROVIDER_LENGTH} characters "
            f"(without NUL or lone surrogates); this one has {len(provider)}"
        )
    return provider


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets readers go on while another process writes; wait for locks instead of failing.
    Run once per new connection (the pool keeps connections), never per request. The busy timeout
    comes first, so that switching to WAL waits for a busy database too."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _lock_key(provider: str, user_id: str) -> int:
    """A signed 64-bit number for (provider, user id), as PostgreSQL advisory locks take."""
    digest = hashlib.sha256(f"flask-oauth2-client\0{provider}\0{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def _file_range_lock(path: str, key: int, timeout: float) -> Iterator[None]:
    """Lock one byte of *path* (one of 65,536 stripes, chosen by *key*) across processes."""
    import fcntl

    stripe = key % 65536
    deadline = time.monotonic() + timeout
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, stripe)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise StoreError("timed out waiting for another refresh of the same token") from None
                time.sleep(_POLL)
        try:
            yield
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, 1, stripe)
    finally:
        os.close(fd)
