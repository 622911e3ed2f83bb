"""DPoP proofs (RFC 9449): a JWT signed with a key pair of the client's, sent in a ``DPoP`` header
with each token request and each API call, so that a stolen token is useless without the key. No
Flask import.

A proof names the request (``htm``, ``htu``), is fresh (``iat``, a unique ``jti``), carries the
server's latest nonce when the server has asked for one (``nonce``), and, with an access token,
its hash (``ath``). The key pair lives with the user's token (one per token, generated at the
authorization request), kept encrypted where the store encrypts.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from .keys import ClientKey
from .keys import b64url

__all__ = ["DPOP_ALGORITHM", "NonceMemory", "access_token_hash", "htu", "make_proof", "nonce_requested"]

#: The algorithm of the key pairs the library generates (the one every DPoP server supports).
DPOP_ALGORITHM = "ES256"

_USE_DPOP_NONCE = re.compile(r'(?:^|[\s,])error\s*=\s*"?use_dpop_nonce"?', re.IGNORECASE)


def htu(url: str) -> str:
    """The ``htu`` claim: the request URL without query and fragment (RFC 9449 §4.2)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


def access_token_hash(access_token: str) -> str:
    """The ``ath`` claim: base64url(SHA-256(access token)) (RFC 9449 §4.2)."""
    return b64url(hashlib.sha256(access_token.encode("ascii")).digest())


def make_proof(
    key: ClientKey,
    method: str,
    url: str,
    *,
    nonce: str | None = None,
    access_token: str | None = None,
    now: float | None = None,
) -> str:
    """One DPoP proof JWT for a request of *method* to *url*."""
    claims: dict[str, object] = {
        "jti": secrets.token_urlsafe(24),
        "htm": method.upper(),
        "htu": htu(url),
        "iat": int(time.time() if now is None else now),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["ath"] = access_token_hash(access_token)
    return key.sign(claims, headers={"typ": "dpop+jwt", "jwk": key.public_jwk(with_kid=False)})


def nonce_requested(status: int, headers: Mapping[str, str], body: Mapping[str, object] | None = None) -> str | None:
    """The server's new nonce when its answer asks for a retry with it (RFC 9449 §8, §9): a 400
    ``use_dpop_nonce`` error from an authorization server, or a 401 whose ``WWW-Authenticate``
    says ``error="use_dpop_nonce"`` from a resource server. ``None`` otherwise."""
    nonce = headers.get("DPoP-Nonce")
    if not nonce or not _valid_nonce(nonce):
        return None
    if status == 400 and body is not None and body.get("error") == "use_dpop_nonce":
        return nonce
    if status == 401 and _USE_DPOP_NONCE.search(headers.get("WWW-Authenticate", "")):
        return nonce
    return None


def _valid_nonce(value: str) -> bool:
    # RFC 9449 §8.1: NQCHAR = %x21 / %x23-5B / %x5D-7E
    return 0 < len(value) <= 512 and all(c == "!" or "#" <= c <= "[" or "]" <= c <= "~" for c in value)


class NonceMemory:
    """The latest ``DPoP-Nonce`` each server gave, by origin (scheme, host, port). Thread-safe;
    bounded (oldest entries dropped)."""

    def __init__(self, limit: int = 256) -> None:
        self._nonces: dict[str, str] = {}
        self._lock = threading.Lock()
        self._limit = limit

    @staticmethod
    def _origin(url: str) -> str:
        parts = urlsplit(url)
        return f"{parts.scheme.lower()}://{parts.netloc.lower()}"

    def get(self, url: str) -> str | None:
        return self._nonces.get(self._origin(url))

    def remember(self, url: str, headers: Mapping[str, str]) -> None:
        """Keep the ``DPoP-Nonce`` of an answer from *url*, if it has one."""
        nonce = headers.get("DPoP-Nonce")
        if nonce and _valid_nonce(nonce):
            self.set(url, nonce)

    def set(self, url: str, nonce: str) -> None:
        origin = self._origin(url)
        with self._lock:
            self._nonces.pop(origin, None)
            self._nonces[origin] = nonce
            while len(self._nonces) > self._limit:
                self._nonces.pop(next(iter(self._nonces)))
