"""A store in this process's memory: for tests and single-process apps. Tokens are lost on restart
and not shared between worker processes."""

from __future__ import annotations

import contextlib
import threading

from ..token import Token
from .base import KeyedLocks
from .base import TokenStore

__all__ = ["MemoryTokenStore"]


class MemoryTokenStore(TokenStore):
    """Tokens in a dict, guarded for use from many threads."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], Token] = {}
        self._mutex = threading.Lock()
        self._locks = KeyedLocks()

    def get(self, provider: str, user_id: str) -> Token | None:
        return self._tokens.get((provider, user_id))

    def set(self, provider: str, user_id: str, token: Token) -> None:
        with self._mutex:
            self._tokens[(provider, user_id)] = token

    def delete(self, provider: str, user_id: str) -> None:
        with self._mutex:
            self._tokens.pop((provider, user_id), None)

    def lock(self, provider: str, user_id: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        return self._locks.hold((provider, user_id), timeout)

    def __len__(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:
        return f"<MemoryTokenStore tokens={len(self._tokens)}>"
