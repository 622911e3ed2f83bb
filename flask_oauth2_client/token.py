"""The :class:`Token` value object and scope parsing. No Flask, no I/O."""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import time
from collections.abc import Iterable
from collections.abc import Mapping
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from types import MappingProxyType
from typing import Any

from .dpop import make_proof
from .keys import ClientKey

__all__ = ["Token", "format_scope", "parse_scope"]

_SCOPE_SPLIT = re.compile(r"[\s,]+")
#: The frozen form of every empty ``claims`` / ``extra``: most tokens have none, and a token is
#: built on every request by the stores that deserialise (one shared proxy instead of two copies).
_EMPTY: Mapping[str, Any] = MappingProxyType({})


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    if mapping is _EMPTY or (type(mapping) is dict and not mapping):
        return _EMPTY
    return MappingProxyType(dict(mapping))


def parse_scope(value: str | Iterable[str] | None) -> tuple[str, ...]:
    """Turn a scope given as a list, or as a string separated by commas and/or spaces, into a
    tuple of distinct scope tokens in their original order.

    >>> parse_scope("read:user, repo  gist")
    ('read:user', 'repo', 'gist')
    """
    if value is None:
        return ()
    if isinstance(value, str):
        items = _SCOPE_SPLIT.split(value)
    else:
        # A scope token never contains a space (RFC 6749 §3.3); in a list, commas are kept, so
        # a provider whose scope names contain commas can still be served.
        items = [part for item in value for part in str(item).split()]
    return tuple(dict.fromkeys(item for item in items if item))


def format_scope(scopes: Iterable[str], separator: str = " ") -> str:
    """Join scope tokens with the separator the provider expects on the wire."""
    return separator.join(scopes)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclasses.dataclass(frozen=True, repr=False)
class Token:
    """An OAuth 2.0 token, immutable.

    ``expires_at`` is an aware UTC :class:`~datetime.datetime` computed from ``expires_in`` when
    the token was received, or ``None`` when the provider did not say. ``scopes`` holds the granted
    scopes. ``extra`` keeps any other field of the token response. ``repr()`` never shows a token
    value.
    """

    access_token: str
    token_type: str = "Bearer"
    expires_at: datetime | None = None
    refresh_token: str | None = None
    scopes: frozenset[str] = frozenset()
    id_token: str | None = None
    #: Validated claims of ``id_token`` (OpenID Connect), or an empty mapping.
    claims: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    #: When the token was received (aware UTC), if known; with ``expires_at`` it gives the lifetime.
    issued_at: datetime | None = None
    #: DPoP (RFC 9449): the private JWK of the key pair the token is bound to, or ``None``.
    dpop_jwk: Mapping[str, Any] | None = dataclasses.field(default=None, hash=False)

    def __post_init__(self) -> None:
        for moment in (self.expires_at, self.issued_at):
            if moment is not None and moment.tzinfo is None:
                raise ValueError("Token.expires_at and Token.issued_at must be aware datetimes")
        # Freeze the mappings so the token is immutable all the way down.
        setattr_ = object.__setattr__
        setattr_(self, "claims", _frozen(self.claims))
        setattr_(self, "extra", _frozen(self.extra))
        setattr_(self, "scopes", frozenset(self.scopes))
        if self.dpop_jwk is not None:
            setattr_(self, "dpop_jwk", MappingProxyType(dict(self.dpop_jwk)))
        self._derive()

    def _derive(self) -> None:
        """Compute once what every request's expiry check needs (not fields: neither compared
        nor serialised): the expiry as a POSIX timestamp and the lifetime in seconds."""
        expires_at = self.expires_at
        setattr_ = object.__setattr__
        setattr_(self, "_expires_ts", None if expires_at is None else expires_at.timestamp())
        lifetime = None
        if expires_at is not None and self.issued_at is not None:
            lifetime = (expires_at - self.issued_at).total_seconds()
        setattr_(self, "_lifetime", lifetime)

    @classmethod
    def from_response(
        cls,
        *,
        access_token: str,
        token_type: str,
        expires_in: float | None,
        refresh_token: str | None = None,
        scopes: Iterable[str] = (),
        id_token: str | None = None,
        extra: Mapping[str, Any] | None = None,
        now: datetime | None = None,
        dpop_jwk: Mapping[str, Any] | None = None,
    ) -> Token:
        """Build a token from the fields of a token response, turning ``expires_in`` (seconds
        from *now*) into an absolute ``expires_at``."""
        received = now or _utcnow()
        expires_at = None if expires_in is None else received + timedelta(seconds=expires_in)
        return cls(
            access_token=access_token,
            token_type=token_type,
            expires_at=expires_at,
            refresh_token=refresh_token,
            scopes=frozenset(scopes),
            id_token=id_token,
            extra=extra or {},
            issued_at=received,
            dpop_jwk=dpop_jwk,
        )

    def is_expired(self, leeway: float = 0, *, now: datetime | None = None) -> bool:
        """``True`` when the token expires within *leeway* seconds from now. A token whose
        lifetime is unknown never counts as expired."""
        expires_ts: float | None = self._expires_ts  # type: ignore[attr-defined]
        if expires_ts is None:
            return False
        if now is None:
            return time.time() >= expires_ts - leeway
        return now >= self.expires_at - timedelta(seconds=leeway)  # type: ignore[operator]

    @property
    def expires_in(self) -> float | None:
        """Seconds left before expiry (negative once expired), or ``None`` when unknown."""
        if self.expires_at is None:
            return None
        return (self.expires_at - _utcnow()).total_seconds()

    @property
    def lifetime(self) -> float | None:
        """Seconds between receipt and expiry, when both are known."""
        return self._lifetime  # type: ignore[attr-defined,no-any-return]

    def has_scopes(self, scopes: str | Iterable[str]) -> bool:
        """``True`` when every scope in *scopes* (a list, or a comma/space-separated string) was
        granted."""
        return self.scopes.issuperset(parse_scope(scopes))

    def replace(self, **changes: Any) -> Token:
        """A copy with *changes* applied (the token itself stays unchanged)."""
        return dataclasses.replace(self, **changes)

    @property
    def authorization_header(self) -> str:
        """The value of the ``Authorization`` header that presents this token: ``Bearer ...``,
        or ``DPoP ...`` for a DPoP-bound token (which also needs :meth:`dpop_proof`)."""
        return f"{'DPoP' if self.is_dpop else 'Bearer'} {self.access_token}"

    @property
    def is_dpop(self) -> bool:
        """``True`` for a token bound to a DPoP key (RFC 9449)."""
        return self.dpop_jwk is not None and self.token_type.lower() == "dpop"

    @functools.cached_property
    def dpop_key(self) -> ClientKey | None:
        """The key pair the token is bound to (DPoP), or ``None``."""
        return None if self.dpop_jwk is None else ClientKey.from_jwk(self.dpop_jwk)

    def dpop_proof(self, method: str, url: str, *, nonce: str | None = None) -> str:
        """A DPoP proof for a request of *method* to *url* presenting this token (with ``ath``).

        :raises ValueError: the token is not DPoP-bound."""
        key = self.dpop_key
        if key is None or not self.is_dpop:
            raise ValueError("this token is not bound to a DPoP key")
        return make_proof(key, method, url, nonce=nonce, access_token=self.access_token)

    def request_headers(self, method: str, url: str, *, nonce: str | None = None) -> dict[str, str]:
        """The headers that present this token on a request of *method* to *url*:
        ``Authorization``, and for a DPoP-bound token its ``DPoP`` proof."""
        headers = {"Authorization": self.authorization_header}
        if self.is_dpop:
            headers["DPoP"] = self.dpop_proof(method, url, nonce=nonce)
        return headers

    # -- serialisation -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict; :meth:`from_dict` turns it back into an equal token."""
        data: dict[str, Any] = {"access_token": self.access_token, "token_type": self.token_type}
        if self.expires_at is not None:
            data["expires_at"] = self.expires_at.timestamp()
        if self.refresh_token is not None:
            data["refresh_token"] = self.refresh_token
        if self.scopes:
            data["scopes"] = sorted(self.scopes)
        if self.id_token is not None:
            data["id_token"] = self.id_token
        if self.claims:
            data["claims"] = dict(self.claims)
        if self.extra:
            data["extra"] = dict(self.extra)
        if self.issued_at is not None:
            data["issued_at"] = self.issued_at.timestamp()
        if self.dpop_jwk is not None:
            data["dpop_jwk"] = dict(self.dpop_jwk)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Token:
        """Rebuild a token from :meth:`to_dict` output. Raises :class:`ValueError` when the data
        is not a serialised token."""
        try:
            access_token = data["access_token"]
            if not isinstance(access_token, str):
                raise TypeError("access_token")
            expires_at = data.get("expires_at")
            issued_at = data.get("issued_at")
            utc = timezone.utc
            fields = {
                "access_token": access_token,
                "token_type": str(data.get("token_type", "Bearer")),
                "expires_at": None if expires_at is None else datetime.fromtimestamp(float(expires_at), tz=utc),
                "refresh_token": data.get("refresh_token"),
                "scopes": frozenset(data.get("scopes", ())),
                "id_token": data.get("id_token"),
                "claims": data.get("claims", _EMPTY),
                "extra": data.get("extra", _EMPTY),
                "issued_at": None if issued_at is None else datetime.fromtimestamp(float(issued_at), tz=utc),
                "dpop_jwk": data.get("dpop_jwk"),
            }
            if cls is not Token:
                return cls(**fields)
            # The stores that deserialise do this on every request: the same object as
            # Token(**fields), without the generated __init__ setting each field in turn.
            token = object.__new__(Token)
            token.__dict__.update(fields)
            token.__post_init__()
            return token
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError("not a serialised Token") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Token:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError("not a serialised Token") from exc
        if not isinstance(data, dict):
            raise ValueError("not a serialised Token")
        return cls.from_dict(data)

    def __repr__(self) -> str:
        expiry = "unknown" if self.expires_at is None else self.expires_at.isoformat(timespec="seconds")
        return (
            f"<Token {self.token_type} access_token=*** refresh_token="
            f"{'***' if self.refresh_token else None} id_token={'***' if self.id_token else None}"
            f" expires_at={expiry} scopes={sorted(self.scopes)!r}>"
        )
