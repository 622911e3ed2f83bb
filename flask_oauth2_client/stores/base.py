"""The token store interface every backend implements, and the in-process lock helper."""

from __future__ import annotations

import abc
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from ..errors import StoreError
from ..token import Token

__all__ = ["KeyedLocks", "TokenStore"]


class TokenStore(abc.ABC):
    """Keeps tokens per (provider, user id).

    The extension decides *whose* token (through ``user_id_loader``) and *when* to refresh; a store
    only keeps values. Subclass it and implement the four abstract methods to write your own.

    Interface version 1.
    """

    #: ``True`` when the store keeps tokens in Flask's session and so only works in a request.
    uses_session: bool = False

    @classmethod
    def from_config(cls, **options: Any) -> TokenStore:
        """Build the store from configuration. The extension's ``init_app`` passes these options
        (a later version may pass more: accept ``**options`` and ignore what you do not use):

        ``url``
            ``OAUTH2_TOKEN_STORE_URL``, or ``None``.
        ``cipher``
            a :class:`~flask_oauth2_client.crypto.TokenCipher` made from
            ``OAUTH2_TOKEN_ENCRYPTION_KEYS``, or ``None`` when no keys are set.
        ``instance_path``
            the app's instance folder (where an embedded database may live).
        ``prefix``
            ``OAUTH2_TOKEN_STORE_PREFIX`` (default ``"oauth2:"``), a namespace for keys or names.
        ``lock_ttl``
            seconds after which a refresh lock that was not released (its owner died, or the
            store was unreachable) should free itself: the larger of
            ``OAUTH2_REFRESH_LOCK_TIMEOUT`` and ``3 * OAUTH2_HTTP_TIMEOUT + 5``.

        It is not called for a store given as an instance (``OAUTH2_TOKEN_STORE`` or
        ``OAuth2Client(store=...)``), which is used as it is. The default ignores the options."""
        return cls()

    @abc.abstractmethod
    def get(self, provider: str, user_id: str) -> Token | None:
        """The stored token, or ``None``. A record that cannot be read counts as absent."""

    @abc.abstractmethod
    def set(self, provider: str, user_id: str, token: Token) -> None:
        """Store *token*, replacing any previous one. Either the whole token is stored or, on
        failure, :class:`~flask_oauth2_client.errors.StoreError` is raised and nothing changed."""

    @abc.abstractmethod
    def delete(self, provider: str, user_id: str) -> None:
        """Forget the token; no error when there is none."""

    @abc.abstractmethod
    def lock(self, provider: str, user_id: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        """An exclusive section for refreshing one user's token. Raises
        :class:`~flask_oauth2_client.errors.StoreError` when it is not obtained within *timeout*
        seconds. In-process stores lock across threads; shared stores across processes too."""

    def close(self) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Release connections. The extension never calls it (Flask has no shutdown hook);
        call it yourself when your process shuts down, if your store holds connections."""


class KeyedLocks:
    """One :class:`threading.Lock` per key, created on demand and dropped when nobody holds or
    waits for it, so the table does not grow with the number of users."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Any, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: Any, timeout: float) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(key, (None, 0))
            if lock is None:
                lock = threading.Lock()
            self._locks[key] = (lock, users + 1)
        try:
            if not lock.acquire(timeout=timeout):
                raise StoreError("timed out waiting for another refresh of the same token")
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                _, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
