"""Pending authorizations: what a login keeps in the session until the provider redirects back.

Each entry is single use, expires after ``OAUTH2_STATE_TTL`` seconds, and the session keeps at most
``OAUTH2_MAX_PENDING_LOGINS`` of them (the oldest is dropped), so several tabs can log in at once
while the cookie stays small.
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import secrets
import time
from typing import Any

from . import _session
from .errors import StateError

__all__ = ["PendingAuthorization", "begin", "consume"]


@dataclasses.dataclass(frozen=True, repr=False)
class PendingAuthorization:
    state: str
    provider: str
    pkce: bool
    next_url: str
    created_at: int
    #: ``True`` when the authorization request sent a nonce (OpenID Connect); the nonce itself
    #: is derived from the state and never stored (see :func:`~flask_oauth2_client.pkce.derive_nonce`).
    nonce: bool = False
    scopes: tuple[str, ...] = ()

    def dump(self) -> list[Any]:
        return [
            self.state,
            self.provider,
            int(self.pkce),
            self.next_url,
            self.created_at,
            int(self.nonce),
            list(self.scopes),
        ]

    @classmethod
    def load(cls, item: Any) -> PendingAuthorization | None:
        if not isinstance(item, list) or len(item) != 7:
            return None
        state, provider, pkce, next_url, created, nonce, scopes = item
        if not (
            isinstance(state, str)
            and isinstance(provider, str)
            and isinstance(next_url, str)
            and isinstance(created, int)
            and isinstance(scopes, list)
        ):
            return None
        return cls(state, provider, bool(pkce), next_url, created, bool(nonce), tuple(scopes))

    def __repr__(self) -> str:
        return f"<PendingAuthorization provider={self.provider!r} next={self.next_url!r} state=***>"


def _entries(ttl: int, now: int) -> list[PendingAuthorization]:
    loaded = (PendingAuthorization.load(item) for item in _session.peek().get("p", ()))
    return [p for p in loaded if p is not None and p.created_at + ttl > now]


#: Most bytes (as JSON) the pending logins may take in the session; the oldest go first beyond it,
#: so that links crafted with long ``next`` values cannot push the session cookie past 4 KB.
MAX_PENDING_BYTES = 1536


def _save(entries: list[PendingAuthorization]) -> None:
    data = _session.bucket()
    dumped = [p.dump() for p in entries]
    while len(dumped) > 1 and len(json.dumps(dumped, separators=(",", ":"))) > MAX_PENDING_BYTES:
        del dumped[0]
    if dumped:
        data["p"] = dumped
    else:
        data.pop("p", None)
    _session.changed()


def begin(
    provider: str,
    next_url: str,
    *,
    pkce: bool,
    nonce: bool,
    scopes: tuple[str, ...],
    ttl: int,
    limit: int,
) -> PendingAuthorization:
    """Create a pending authorization with a fresh random state and keep it in the session."""
    now = int(time.time())
    pending = PendingAuthorization(
        state=secrets.token_urlsafe(24),
        provider=provider,
        pkce=pkce,
        next_url=next_url,
        created_at=now,
        nonce=nonce,
        scopes=scopes,
    )
    entries = _entries(ttl, now)
    entries.append(pending)
    _save(entries[-limit:])
    return pending


def consume(state: str, *, provider: str, ttl: int) -> PendingAuthorization:
    """Take the pending authorization whose state is *state* out of the session.

    An entry that matches is removed whatever happens next (single use). A state that matches no
    entry removes nothing: the caller has not shown it owns any.

    :raises StateError: unknown state, expired entry, or an entry of another provider.
    """
    now = int(time.time())
    stored = [PendingAuthorization.load(item) for item in _session.peek().get("p", ())]
    match: PendingAuthorization | None = None
    keep: list[PendingAuthorization] = []
    for entry in stored:
        if entry is None:
            continue
        # Compare every entry in constant time; never stop early on a match.
        if hmac.compare_digest(entry.state.encode(), state.encode()) and match is None:
            match = entry
        elif entry.created_at + ttl > now:
            keep.append(entry)
    if match is None:
        raise StateError(
            "unknown or already used state; start the login again", provider=provider, reason="invalid_state"
        )
    _save(keep)
    if match.created_at + ttl <= now:
        raise StateError(
            "the login took too long and expired; start it again", provider=provider, reason="expired_state"
        )
    if match.provider != provider:
        raise StateError(
            "the state belongs to a login with another provider", provider=provider, reason="invalid_state"
        )
    return match
