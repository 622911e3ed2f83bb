"""A token store in one SQLite file: an example of a TokenStore subclass.

Its lock coordinates the threads of one process; a store shared by several processes needs a lock
that they all see (a database row lock, a Redis lock).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from typing import Any

from flask_oauth2_client import Token
from flask_oauth2_client.errors import ConfigurationError
from flask_oauth2_client.errors import StoreError
from flask_oauth2_client.stores import KeyedLocks
from flask_oauth2_client.stores import TokenStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS oauth2_tokens (
    provider TEXT NOT NULL,
    user_id TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (provider, user_id)
)
"""


class SqliteTokenStore(TokenStore):
    def __init__(self, path: str, cipher: Any = None) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute(_SCHEMA)
        self._mutex = threading.Lock()  # one connection, used by one thread at a time
        self._locks = KeyedLocks()
        self._cipher = cipher

    @classmethod
    def from_config(cls, **options: Any) -> TokenStore:
        if not options.get("url"):
            raise ConfigurationError("OAUTH2_TOKEN_STORE_URL must name the SQLite file")
        return cls(options["url"], cipher=options.get("cipher"))

    def get(self, provider: str, user_id: str) -> Token | None:
        with self._mutex:
            row = self._db.execute(
                "SELECT data FROM oauth2_tokens WHERE provider = ? AND user_id = ?", (provider, user_id)
            ).fetchone()
        if row is None:
            return None
        data = row[0] if self._cipher is None else self._cipher.decrypt(row[0])
        if data is None:
            return None  # written with a key that is gone: the user signs in again
        try:
            return Token.from_json(data)
        except ValueError:
            return None

    def set(self, provider: str, user_id: str, token: Token) -> None:
        data = token.to_json().encode()
        if self._cipher is not None:
            data = self._cipher.encrypt(data)
        try:
            with self._mutex:
                self._db.execute(
                    "INSERT OR REPLACE INTO oauth2_tokens (provider, user_id, data) VALUES (?, ?, ?)",
                    (provider, user_id, data),
                )
        except sqlite3.Error as exc:
            # Never put the token or the SQL parameters in the message.
            raise StoreError(f"the token could not be stored ({type(exc).__name__})") from None

    def delete(self, provider: str, user_id: str) -> None:
        with self._mutex:
            self._db.execute("DELETE FROM oauth2_tokens WHERE provider = ? AND user_id = ?", (provider, user_id))

    def lock(self, provider: str, user_id: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        return self._locks.hold((provider, user_id), timeout)

    def close(self) -> None:
        with self._mutex:
            self._db.close()
