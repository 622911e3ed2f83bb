"""Single-flight refresh: many concurrent requests that find the same expiring token cause one
refresh call; the others wait on the store's lock and use its result. No Flask import.

Besides the store's lock, a short-lived in-process memory of recent outcomes (keyed by a hash of
the refresh token that was spent) lets waiters whose copy of the token is stale (the session store:
every request carries its own copy of the cookie) reuse the result instead of spending the refresh
token a second time, which providers that rotate refresh tokens treat as theft.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from .client import ProviderClient
from .errors import IDTokenError
from .errors import ProviderError
from .errors import ReauthorizationRequired
from .errors import StoreError
from .errors import TokenError
from .stores.base import TokenStore
from .token import Token

__all__ = ["Refresher", "app_token_key", "app_token_owner"]

log = logging.getLogger("flask_oauth2_client")

_REFUSED = object()  # remembered outcome: the provider refused this refresh token
#: Seconds a refreshed token that the store could not take is kept for a later request to store.
UNSTORED_TTL = 600
#: Pauses (s) before writing a refreshed token again after the store failed, still holding the
#: refresh lock; no new attempt starts later than STORE_RETRY_BUDGET s after the first one.
STORE_RETRY_DELAYS = (0.1, 0.3)
STORE_RETRY_BUDGET = 1.0


class _Unstored:
    """A remembered outcome: a refreshed token the store could not take. Its refresh token may be
    the only valid one left (the provider rotated the stored one), so a later request in this
    process stores it, and announces it, instead of refreshing again."""

    __slots__ = ("token",)

    def __init__(self, token: Token) -> None:
        self.token = token


class Refresher:
    """Coordinates refreshes for one app.

    :param leeway: seconds before expiry at which a token counts as expiring.
    :param lock_timeout: seconds to wait for another refresh of the same token.
    :param memory_ttl: seconds an outcome is remembered for waiters holding a stale copy.
    """

    def __init__(self, *, leeway: float, lock_timeout: float, memory_ttl: float = 60, capacity: int = 10_000) -> None:
        self.leeway = leeway
        self.lock_timeout = lock_timeout
        self._ttl = memory_ttl
        self._capacity = capacity
        self._outcomes: OrderedDict[tuple[str, str, str], tuple[float, object]] = OrderedDict()
        self._guard = threading.Lock()

    def needs_refresh(self, token: Token) -> bool:
        """``True`` when *token* expires within the leeway. For a token whose whole lifetime is
        shorter than twice the leeway, half its lifetime is used instead, so a provider that
        issues short-lived tokens does not cause a refresh on every request."""
        leeway = self.leeway
        lifetime = token.lifetime
        if lifetime is not None and lifetime < 2 * leeway:
            leeway = max(lifetime, 0) / 2
        return token.is_expired(leeway)

    def refresh(
        self,
        client: ProviderClient,
        store: TokenStore,
        user_id: str,
        seen: Token,
        *,
        force: bool = False,
        on_refreshed: Callable[[Token], None] | None = None,
    ) -> Token:
        """Return a fresh token for (provider, user) in place of *seen*, refreshing at most once
        across all concurrent callers.

        :param force: refresh even when the stored token is not expiring (but still only once for
            everyone who saw *seen*).
        :raises ReauthorizationRequired: no token, no refresh token, or the provider refused it
            with ``invalid_grant`` (the token is then deleted).
        :raises TokenError: any other refusal (e.g. ``invalid_client``); the token is kept.
        :raises ProviderError: the provider failed; the token is kept.
        :raises StoreError: the lock was not obtained in time, or the store failed.
        """
        with store.lock(client.name, user_id, self.lock_timeout):
            token, refreshed = self._refresh_locked(client, store, user_id, seen, force=force)
        if refreshed and on_refreshed is not None:
            on_refreshed(token)
        return token

    def _refresh_locked(
        self, client: ProviderClient, store: TokenStore, user_id: str, seen: Token, *, force: bool
    ) -> tuple[Token, bool]:
        """The body of :meth:`refresh`, under the lock: the token to use, and whether it is a newly
        stored refresh result (to announce once the lock is released)."""
        provider = client.name
        current = store.get(provider, user_id)
        if current is None:
            raise ReauthorizationRequired("the token is gone", provider=provider)
        if current.access_token != seen.access_token and not self.needs_refresh(current):
            return current, False  # someone else refreshed it while we waited
        if current.refresh_token is None:
            if not current.is_expired():
                if force:
                    raise ReauthorizationRequired(
                        "the token has no refresh token", provider=provider, reason="no_refresh_token"
                    )
                return current, False  # expiring, not expired: use it while it lasts
            store.delete(provider, user_id)
            raise ReauthorizationRequired(
                "the token expired and cannot be refreshed", provider=provider, reason="expired"
            )

        key = (provider, user_id, _fingerprint(current.refresh_token))
        remembered = self._recall(key)
        if remembered is _REFUSED:
            store.delete(provider, user_id)
            raise ReauthorizationRequired(
                "the provider refused to refresh the token", provider=provider, reason="refresh_refused"
            )
        if isinstance(remembered, _Unstored):
            # An earlier refresh in this process got this token but could not store it (the
            # stored refresh token is spent): store it now, and announce it, which that refresh
            # could not do. Refresh it in turn only if it is itself expiring by now.
            kept = remembered.token
            self._store_refreshed(store, provider, user_id, key, kept)
            if not self.needs_refresh(kept) or kept.refresh_token is None:
                return kept, True
            current = kept
            key = (provider, user_id, _fingerprint(kept.refresh_token))
            remembered = self._recall(key)
        if (
            isinstance(remembered, Token)
            and remembered.access_token != seen.access_token
            and not self.needs_refresh(remembered)
        ):
            if remembered.access_token != current.access_token:
                store.set(provider, user_id, remembered)  # bring this caller's copy up to date
            return remembered, False
        if not force and not self.needs_refresh(current):
            return current, False

        assert current.refresh_token is not None
        try:
            fresh = client.refresh(current.refresh_token, previous=current)
        except (TokenError, IDTokenError) as exc:
            if isinstance(exc, TokenError) and exc.error != "invalid_grant":
                raise  # e.g. invalid_client: a configuration fault; the token is kept (P-8)
            # invalid_grant; or an ID token that is invalid or names another user (P-9): the
            # refresh token may be spent, and the user must sign in again.
            if isinstance(exc, IDTokenError):
                log.warning("the refreshed %s token was discarded: %s", provider, exc)
            self._remember(key, _REFUSED)
            store.delete(provider, user_id)
            raise ReauthorizationRequired(
                "the provider refused to refresh the token", provider=provider, reason="refresh_refused"
            ) from None
        self._store_refreshed(store, provider, user_id, key, fresh)
        return fresh, True

    def _store_refreshed(
        self, store: TokenStore, provider: str, user_id: str, key: tuple[str, str, str], fresh: Token
    ) -> None:
        """Store *fresh*, the outcome of refreshing the refresh token behind *key*, trying again
        briefly (see :data:`STORE_RETRY_DELAYS`) when the store fails. The caller holds the lock.

        Remembered first, as not stored yet: the old refresh token may be spent now, and if the
        store stays unavailable the next request in this process stores this token instead of
        refreshing again.

        :raises StoreError: the store failed every attempt.
        """
        self._remember(key, _Unstored(fresh), ttl=UNSTORED_TTL)
        deadline = time.monotonic() + STORE_RETRY_BUDGET
        delays = iter(STORE_RETRY_DELAYS)
        while True:
            try:
                store.set(provider, user_id, fresh)
                break
            except StoreError:
                delay = next(delays, None)
                if delay is None or time.monotonic() + delay > deadline:
                    self._remember(key, _Unstored(fresh), ttl=UNSTORED_TTL)
                    log.error(
                        "a refreshed %s token could not be stored; it is kept in this process's memory "
                        "for %d s and stored by the next request that finds the store available",
                        provider,
                        UNSTORED_TTL,
                    )
                    raise
                time.sleep(delay)
        self._remember(key, fresh)  # stored: waiters holding a stale copy may reuse it

    def app_token(
        self, client: ProviderClient, store: TokenStore, scopes: tuple[str, ...], *, stale: Token | None = None
    ) -> Token:
        """The application's own token (client_credentials grant) for *scopes*, cached in *store*
        and requested again when it is about to expire (or when it is *stale*, e.g. refused by an
        API) — once, however many threads and processes ask at the same time.

        App tokens are stored under the provider key ``"<provider>#app"`` (``#`` never appears in a
        provider name, so they cannot collide with a user's token) and the user id ``scopes``.
        """
        key = (app_token_key(client.name), app_token_owner(scopes))

        def usable(token: Token | None) -> bool:
            if token is None or self.needs_refresh(token):
                return False
            return stale is None or token.access_token != stale.access_token

        token = store.get(*key)
        if usable(token):
            assert token is not None
            return token
        with store.lock(*key, self.lock_timeout):
            token = store.get(*key)
            if usable(token):
                assert token is not None
                return token
            try:
                fresh = client.client_credentials(scopes=scopes)
            except ProviderError as exc:
                if stale is None and token is not None and not token.is_expired() and not isinstance(exc, TokenError):
                    log.warning("renewing the %s app token failed (%s); using it while it lasts", client.name, exc)
                    return token
                raise
            store.set(*key, fresh)
            return fresh

    def _recall(self, key: tuple[str, str, str]) -> object:
        now = time.monotonic()
        with self._guard:
            entry = self._outcomes.get(key)
            if entry is None or entry[0] < now:
                return None
            return entry[1]

    def _remember(self, key: tuple[str, str, str], outcome: object, *, ttl: float | None = None) -> None:
        now = time.monotonic()
        with self._guard:
            self._outcomes[key] = (now + (self._ttl if ttl is None else ttl), outcome)
            self._outcomes.move_to_end(key)
            while self._outcomes:
                oldest_key, (expires, _) = next(iter(self._outcomes.items()))
                if expires >= now and len(self._outcomes) <= self._capacity:
                    break
                del self._outcomes[oldest_key]


@functools.lru_cache(maxsize=256)
def app_token_key(provider: str) -> str:
    """The store's provider key of the application's own tokens for *provider*."""
    return f"{provider}#app"


@functools.lru_cache(maxsize=256)  # asked on every request of a client_credentials provider
def app_token_owner(scopes: tuple[str, ...]) -> str:
    """The store's user id of the application's token for *scopes*: the sorted scopes, or a hash
    of them when they would not fit a store's key column."""
    owner = " ".join(sorted(set(scopes)))
    if len(owner) > 200:
        owner = "sha256:" + hashlib.sha256(owner.encode("utf-8")).hexdigest()
    return owner


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
