"""Tokens in Redis through redis-py (``pip install flask-oauth2-client[redis]``).

Each token is one string key, ``<prefix>token:<provider>:<user id>`` (prefix ``oauth2:`` by
default, ``OAUTH2_TOKEN_STORE_PREFIX``). A token that cannot be refreshed expires from Redis when
the token itself expires; a refreshable one is kept until it is replaced or deleted (its refresh
token may outlive the access token by months), unless the provider said how long the refresh token
lives (``refresh_expires_in``).

The refresh lock is a Redis lock with an expiry and an owner check (only its owner releases it),
so it works across processes and hosts. A lock whose release fails (Redis unreachable at that
moment) lingers until its expiry, ``lock_ttl`` seconds after it was taken; refreshes of that
user's token wait for it meanwhile, and fail with a ``503`` after ``OAUTH2_REFRESH_LOCK_TIMEOUT``.
The failed release itself is logged as a warning and does not fail the request whose refresh
succeeded.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from ..crypto import TokenCipher
from ..errors import ConfigurationError
from ..errors import StoreError
from ..token import Token
from ._codec import TokenCodec
from .base import KeyedLocks
from .base import TokenStore

try:
    import redis
    from redis.exceptions import LockError
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ConfigurationError(
        "the 'redis' token store needs redis-py: pip install 'flask-oauth2-client[redis]'"
    ) from exc

__all__ = ["RedisTokenStore"]

log = logging.getLogger("flask_oauth2_client")

#: Seconds a token stays in Redis past its own expiry, so a request that just read it can finish.
EXPIRY_GRACE = 60


class RedisTokenStore(TokenStore):
    """Tokens in Redis.

    :param client: a :class:`redis.Redis` client, or a ``redis://`` URL.
    :param cipher: encrypts the stored tokens.
    :param prefix: the namespace of every key.
    :param lock_ttl: seconds after which Redis frees a refresh lock that its owner did not release
        (the owner died, or Redis was unreachable when it tried). Longer than any refresh can take.
    """

    def __init__(
        self,
        client: redis.Redis | str,
        *,
        cipher: TokenCipher | None = None,
        prefix: str = "oauth2:",
        lock_ttl: float = 60,
    ) -> None:
        if isinstance(client, str):
            try:
                client = redis.Redis.from_url(client, socket_timeout=5, socket_connect_timeout=5)
            except ValueError as exc:
                raise ConfigurationError(f"OAUTH2_TOKEN_STORE_URL: not a Redis URL ({exc})") from None
        self.client = client
        self.prefix = prefix
        self.lock_ttl = lock_ttl
        self._codec = TokenCodec(cipher)
        self._locks = KeyedLocks()

    @classmethod
    def from_config(cls, **options: Any) -> TokenStore:
        url = options.get("url")
        if not url:
            raise ConfigurationError("OAUTH2_TOKEN_STORE_URL must name the Redis server, e.g. redis://127.0.0.1:6379/0")
        return cls(
            url,
            cipher=options.get("cipher"),
            prefix=options.get("prefix") or "oauth2:",
            lock_ttl=options.get("lock_ttl") or 60,
        )

    def __repr__(self) -> str:
        return f"<RedisTokenStore prefix={self.prefix!r}>"

    def key(self, provider: str, user_id: str) -> str:
        """The Redis key of (provider, user id). Provider names cannot contain ``:``."""
        return f"{self.prefix}token:{provider}:{user_id}"

    def get(self, provider: str, user_id: str) -> Token | None:
        # One GET on the client's pooled connection: nothing else is sent (the expiry is Redis's
        # own business). The hottest path of the store, so no context manager around it.
        try:
            raw = self.client.get(self.key(provider, user_id))
        except RedisError as exc:
            raise _unavailable("read a token", exc) from None
        return self._codec.loads(raw, provider=provider)

    def set(self, provider: str, user_id: str, token: Token) -> None:
        expire_at = _expiry(token)
        with _errors("store a token"):
            if expire_at is None:
                self.client.set(self.key(provider, user_id), self._codec.dumps(token))
            else:
                self.client.set(self.key(provider, user_id), self._codec.dumps(token), exat=expire_at)

    def delete(self, provider: str, user_id: str) -> None:
        with _errors("delete a token"):
            self.client.delete(self.key(provider, user_id))

    def lock(self, provider: str, user_id: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        return self._lock(provider, user_id, timeout)

    @contextlib.contextmanager
    def _lock(self, provider: str, user_id: str, timeout: float) -> Iterator[None]:
        deadline = time.monotonic() + timeout
        with self._locks.hold((provider, user_id), timeout):  # threads of this process first
            lock = self.client.lock(
                f"{self.prefix}lock:{provider}:{user_id}",
                timeout=self.lock_ttl,
                blocking_timeout=max(deadline - time.monotonic(), 0.0),
                sleep=0.05,
            )
            with _errors("take the refresh lock"):
                acquired = lock.acquire()
            if not acquired:
                raise StoreError("timed out waiting for another refresh of the same token")
            try:
                yield
            finally:
                # Never raised from here: the refresh it guarded may have succeeded.
                try:
                    lock.release()
                except LockError:
                    # Expired before the refresh finished (slower than lock_ttl): another process
                    # may have taken it meanwhile; only the owner's own lock is released.
                    log.warning(
                        "a %s refresh lock expired before it was released; lock_ttl (%s s) is too short",
                        provider,
                        self.lock_ttl,
                    )
                except RedisError as exc:
                    log.warning(
                        "a %s refresh lock could not be released (%s); Redis frees it after lock_ttl (%s s)",
                        provider,
                        type(exc).__name__,
                        self.lock_ttl,
                    )

    def close(self) -> None:
        self.client.close()


def _expiry(token: Token) -> int | None:
    """When Redis may forget *token* (a Unix time), or ``None`` for never."""
    if token.refresh_token is None:
        if token.expires_at is None:
            return None
        return int(token.expires_at.timestamp()) + EXPIRY_GRACE
    refresh_lifetime = token.extra.get("refresh_expires_in")
    if (
        isinstance(refresh_lifetime, (int, float))
        and not isinstance(refresh_lifetime, bool)
        and refresh_lifetime > 0
        and token.issued_at is not None
    ):
        return int(token.issued_at.timestamp() + min(refresh_lifetime, 10 * 365 * 86400)) + EXPIRY_GRACE
    return None


@contextlib.contextmanager
def _errors(action: str) -> Iterator[None]:
    try:
        yield
    except RedisError as exc:
        raise _unavailable(action, exc) from None


def _unavailable(action: str, exc: Exception) -> StoreError:
    return StoreError(f"the token store (Redis) is unavailable: could not {action} ({type(exc).__name__})")
