"""Tokens kept in Flask's session, next to the user's other session data.

With Flask's default cookie session the session travels to the browser, readable by anyone who
has the cookie, so tokens are always encrypted there (SECURITY.md P-18) — with
``OAUTH2_TOKEN_ENCRYPTION_KEYS`` or, failing that, a key derived from ``SECRET_KEY``. A server-side
session (Flask-Session) is the better choice; tokens are then encrypted only when keys are set.

Each token is kept with the user id it belongs to: when another user logs in to the app in the
same browser, the previous user's tokens are not theirs.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

from flask import current_app
from flask.sessions import SecureCookieSessionInterface

from .. import _session
from ..crypto import TokenCipher
from ..crypto import derive_key
from ..errors import ConfigurationError
from ..token import Token
from ._codec import TokenCodec
from .base import KeyedLocks
from .base import TokenStore

__all__ = ["SessionTokenStore", "uses_cookie_session"]


def uses_cookie_session(app: Any) -> bool:
    """``True`` when *app* keeps its session in a client-side cookie (Flask's default)."""
    return isinstance(app.session_interface, SecureCookieSessionInterface)


@functools.lru_cache(maxsize=8)
def _derived_cipher(secret: str | bytes) -> TokenCipher:
    return TokenCipher([derive_key(secret)])


@functools.lru_cache(maxsize=8)
def _codec(cipher: TokenCipher | None) -> TokenCodec:
    """One codec per cipher, so that its cache of decoded records serves every request."""
    return TokenCodec(cipher)


class SessionTokenStore(TokenStore):
    """Tokens in ``session["_oauth2"]["t"]``. Works only during a request.

    :param cipher: encrypts tokens; ``None`` derives one from ``SECRET_KEY`` when the app uses the
        cookie session, and stores tokens unencrypted in a server-side session.
    """

    uses_session = True

    def __init__(self, cipher: TokenCipher | None = None) -> None:
        self._cipher = cipher
        self._locks = KeyedLocks()

    @classmethod
    def from_config(cls, **options: Any) -> TokenStore:
        return cls(cipher=options.get("cipher"))

    def _cipher_for_app(self) -> TokenCipher | None:
        if self._cipher is not None:
            return self._cipher
        app = current_app
        if not uses_cookie_session(app):
            return None
        if not app.secret_key:
            raise ConfigurationError("SECRET_KEY must be set to keep tokens in the session")
        return _derived_cipher(app.secret_key)

    def get(self, provider: str, user_id: str) -> Token | None:
        entry = _session.peek().get("t", {}).get(provider)
        if not isinstance(entry, list) or len(entry) != 2 or entry[0] != user_id or not isinstance(entry[1], str):
            return None
        return _codec(self._cipher_for_app()).loads(entry[1], provider=provider)

    def set(self, provider: str, user_id: str, token: Token) -> None:
        payload = _codec(self._cipher_for_app()).dumps(token)
        data = _session.bucket()
        tokens = data.get("t")
        if not isinstance(tokens, dict):
            tokens = data["t"] = {}
        tokens[provider] = [user_id, payload]
        _session.changed()

    def delete(self, provider: str, user_id: str) -> None:
        tokens = _session.peek().get("t")
        if isinstance(tokens, dict) and provider in tokens:
            entry = tokens[provider]
            if isinstance(entry, list) and entry and entry[0] == user_id:
                del tokens[provider]
                _session.changed()

    def lock(self, provider: str, user_id: str, timeout: float) -> contextlib.AbstractContextManager[None]:
        return self._locks.hold((provider, user_id), timeout)

    def __repr__(self) -> str:
        return "<SessionTokenStore>"
