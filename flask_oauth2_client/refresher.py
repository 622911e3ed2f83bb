"""Single-flight refresh: many concurrent requests that find the same expiring token cause one
refresh call; the others wait on the store's lock and use its result. No Flask import.

Besides the store's lock, a short-lived in-process memory of recent outcomes (keyed by a hash of
the refresh token that was spent) lets waiters whose copy of the token is stale (the session store:
every request carries its own copy of the cookie) reuse the result instead of spending the refresh
token a second time, which providers that rotate refresh tokens treat as theft.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from .client import ProviderClient
from .errors import ProviderError
from .errors import ReauthorizationRequired
from .errors import StoreError
from .errors import TokenError
from .stores.base import TokenStore
from .token import Token

__all__ = ["Refresher", "app_token_key", "app_token_owner"]

log = logging.getLogger("flask_oauth2_client")

_REFUSED = object()
#: Seconds a refreshed token that the store could not take is kept for a later request to store.
UNSTORED_TTL = 600  # remembered outcome: the provider refused this refresh token


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
        provider = client.name
        with store.lock(provider, user_id, self.lock_timeout):
            current = store.get(provider, user_id)
            if current is None:
                raise ReauthorizationRequired("the token is gone", provider=provider)
            if current.access_token != seen.access_token and not self.needs_refresh(current):
                return current  # someone else refreshed it while we waited
            if current.refresh_token is None:
                if not current.is_expired():
                    if force:
                        raise ReauthorizationRequired(
                            "the token has no refresh token", provider=provider, reason="no_refresh_token"
                        )
                    return current  # expiring, not expired: use it while it lasts
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
            if (
                isinstance(remembered, Token)
                and remembered.access_token != seen.access_token
                and not self.needs_refresh(remembered)
            ):
                if remembered.access_token != current.access_token:
                    store.set(provider, user_id, remembered)  # bring this caller's copy up to date
                return remembered
            if not force and not self.needs_refresh(current):
                return current

            try:
                fresh = client.refresh(current.refresh_token, previous_scopes=current.scopes)
            except TokenError as exc:
                if exc.error != "invalid_grant":
                    raise  # e.g. invalid_client: a configuration fault; the token is kept (P-8)
                self._remember(key, _REFUSED)
                store.delete(provider, user_id)
                raise ReauthorizationRequired(
                    "the provider refused to refresh the token", provider=provider, reason="refresh_refused"
                ) from None
            # Remember first: the old refresh token may be spent now, and if the store fails the
            # next request in this process can still store this result instead of refreshing.
            self._remember(key, fresh)
            try:
                store.set(provider, user_id, fresh)
            except StoreError:
                self._remember(key, fresh, ttl=UNSTORED_TTL)
                log.error(
                    "a refreshed %s token could not be stored; it is kept in this process's memory "
                    "for %d s and stored by the next request that finds the store available",
                    provider,
                    UNSTORED_TTL,
                )
                raise
        if on_refreshed is not None:
            on_refreshed(fresh)
        return fresh

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


def app_token_key(provider: str) -> str:
    """The store's provider key of the application's own tokens for *provider*."""
    return f"{provider}#app"


def app_token_owner(scopes: tuple[str, ...]) -> str:
    """The store's user id of the application's token for *scopes*: the sorted scopes, or a hash
    of them when they would not fit a store's key column."""
    owner = " ".join(sorted(set(scopes)))
    if len(owner) > 200:
        owner = "sha256:" + hashlib.sha256(owner.encode("utf-8")).hexdigest()
    return owner


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
