"""OpenID Connect: the provider's signing keys and ID token validation (OIDC Core §3.1.3.7).
No Flask import; signatures are checked with PyJWT.

Rules (SECURITY.md): algorithms come from an allow-list and are asymmetric, never ``none`` (P-13);
``aud`` must contain the client id and other audiences must be trusted, ``azp`` when present must
be the client id (P-10); 60 s of clock leeway, an ``iat`` more than 5 minutes ahead is refused
(P-11); an unknown ``kid`` re-fetches the key set at most once per 5 s (P-15); an ID token from a
refresh must name the same subject as the login's (P-9).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import jwt
import requests

from ._http import json_object
from ._http import printable
from ._http import send
from .errors import DiscoveryError
from .errors import IDTokenError
from .errors import ProviderUnavailable

__all__ = ["CLOCK_LEEWAY", "KeySet", "at_hash", "validate_id_token"]

log = logging.getLogger("flask_oauth2_client")

#: Seconds of clock difference tolerated for ``exp`` (P-11).
CLOCK_LEEWAY = 60
#: An ``iat`` further ahead than this is refused (P-11).
MAX_IAT_AHEAD = 300
#: Fewest seconds between two key set fetches caused by an unknown ``kid`` (P-15).
MIN_REFETCH_INTERVAL = 5.0
_KTY_OF_ALG = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
#: A public key and the algorithm its JWK declares, if any.
_Key = tuple[jwt.PyJWK, Any]


class KeySet:
    """The provider's public signing keys (its JWKS), fetched on first use and again when a token
    names a key id it does not hold, at most once per :data:`MIN_REFETCH_INTERVAL` seconds.

    :param url: a function returning the ``jwks_uri`` (it may come from the metadata).
    """

    def __init__(
        self,
        url: Callable[[], str | None],
        *,
        http: requests.Session,
        timeout: float,
        provider: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._http = http
        self._timeout = timeout
        self._provider = provider
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[_Key] | None = None
        self._fetched_at = float("-inf")

    def key_for(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The key that verifies a token with header ``kid`` and ``alg``.

        :raises IDTokenError: no such key, even after re-fetching the set.
        :raises ProviderUnavailable: the key set cannot be fetched.
        """
        keys = self._keys if self._keys is not None else self._refetch(force=True)
        found = _select(keys, kid, alg)
        if found is None:
            keys = self._refetch(force=False)
            found = _select(keys, kid, alg)
        if found is None:
            shown = "without a key id" if kid is None else f"with key id {printable(kid, 60)!r}"
            raise IDTokenError(
                f"the ID token is signed {shown}, which is not among the provider's keys", provider=self._provider
            )
        return found

    def _refetch(self, *, force: bool) -> list[_Key]:
        with self._lock:
            if not force and self._clock() - self._fetched_at < MIN_REFETCH_INTERVAL:
                return self._keys or []
            if force and self._keys is not None:
                return self._keys  # another thread fetched it meanwhile
            if not force:  # only fetches caused by an unknown kid count for the rate limit
                self._fetched_at = self._clock()
            self._keys = self._fetch()
            return self._keys

    def _fetch(self) -> list[_Key]:
        url = self._url()
        if url is None:
            raise DiscoveryError("the provider has no jwks_uri: ID tokens cannot be verified", provider=self._provider)
        status, content_type, body = send(
            self._http,
            "GET",
            url,
            timeout=self._timeout,
            what="key set (JWKS) endpoint",
            provider=self._provider,
            malformed=DiscoveryError,
        )
        if status != 200:
            raise ProviderUnavailable(
                f"the key set (JWKS) endpoint answered HTTP {status}",
                provider=self._provider,
                kind="server_error",
                status_code=status,
            )
        document = json_object(body, content_type)
        entries = document.get("keys") if document is not None else None
        if not isinstance(entries, list):
            raise DiscoveryError("the key set (JWKS) is not a JSON object with keys", provider=self._provider)
        keys: list[_Key] = []
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                keys.append((jwt.PyJWK(entry), entry.get("alg")))
            except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
                continue  # a key type or curve this installation cannot use: skip it
        log.debug("key set of %s fetched: %d signing keys", self._provider, len(keys))
        return keys


def _select(keys: Sequence[_Key], kid: str | None, alg: str) -> jwt.PyJWK | None:
    kty = _KTY_OF_ALG.get(alg[:2])
    # A key that declares its algorithm serves only that one (RFC 7517 §4.4).
    candidates = [key for key, declared in keys if key.key_type == kty and declared in (None, alg)]
    if kid is not None:
        matching = [key for key in candidates if key.key_id == kid]
        return matching[0] if len(matching) == 1 else None
    return candidates[0] if len(candidates) == 1 else None  # no kid: only an unambiguous key


def at_hash(access_token: str, alg: str) -> str:
    """The ``at_hash`` of *access_token* for a token signed with *alg* (OIDC Core §3.1.3.6): the
    left half of its hash, base64url without padding."""
    if alg == "EdDSA":
        digest = hashlib.sha512(access_token.encode("ascii")).digest()
    else:
        bits = alg[2:]
        algorithm = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}[bits]
        digest = algorithm(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def validate_id_token(
    id_token: str,
    *,
    keys: KeySet,
    issuer: str,
    client_id: str,
    algorithms: Sequence[str],
    provider: str,
    nonce: str | None = None,
    access_token: str | None = None,
    trusted_audiences: Sequence[str] = (),
    previous: Mapping[str, Any] | None = None,
    now: float | None = None,
    accepted_issuers: Callable[[Mapping[str, Any]], Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Validate an ID token and return its claims.

    :param nonce: the nonce the authorization request sent; ``None`` for a refresh.
    :param access_token: the access token issued with it, to check ``at_hash`` when present.
    :param previous: the claims of the login's ID token, for an ID token from a refresh: ``iss``
        and ``sub`` must be the same (OIDC Core §12.2, P-9).
    :param accepted_issuers: for a provider preset's quirk (presets.py): a function of the
        signature-verified claims returning the ``iss`` values to accept instead of *issuer*.
    :raises IDTokenError: the token is not valid (``reason="subject_changed"`` for P-9).
    :raises ProviderUnavailable: the provider's key set cannot be fetched.
    """

    def fail(message: str, reason: str = "invalid_id_token") -> IDTokenError:
        return IDTokenError(f"the ID token {message}", provider=provider, reason=reason)

    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise fail("is not a JWS compact token") from None
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms or alg == "none" or alg.startswith("HS"):
        shown = printable(str(alg), 20)
        raise fail(f"is signed with {shown!r}; accepted: {', '.join(algorithms)} (SECURITY.md P-13)")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise fail("has an invalid key id")
    key = keys.key_for(kid, alg)
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key=key.key,
            algorithms=[alg],
            options={
                "verify_signature": True,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
                "require": [],
            },
        )
    except jwt.InvalidSignatureError:
        raise fail("has an invalid signature") from None
    except jwt.PyJWTError:
        raise fail("cannot be decoded") from None

    accepted = (issuer,) if accepted_issuers is None else tuple(accepted_issuers(claims))
    if claims.get("iss") not in accepted:
        raise fail(f"was issued by {printable(str(claims.get('iss')), 100)!r}, not {issuer!r}")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise fail("has no subject (sub)")
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise fail("has no valid audience (aud)")
    if client_id not in audiences:
        raise fail("is meant for another client (aud)")
    untrusted = [a for a in audiences if a != client_id and a not in trusted_audiences]
    if untrusted:
        raise fail(f"also names the untrusted audience {printable(untrusted[0], 100)!r} (SECURITY.md P-10)")
    azp = claims.get("azp")
    if azp is not None and azp != client_id:
        raise fail("was issued to another party (azp)")

    moment = time.time() if now is None else now
    expires, issued = claims.get("exp"), claims.get("iat")
    if not _numeric(expires) or not _numeric(issued):
        raise fail("lacks a numeric exp or iat")
    assert isinstance(expires, (int, float))
    assert isinstance(issued, (int, float))
    if moment > expires + CLOCK_LEEWAY:
        raise fail("has expired (exp)")
    if issued > moment + MAX_IAT_AHEAD:
        raise fail("was issued in the future (iat)")

    received_nonce = claims.get("nonce")
    if nonce is not None:
        if not isinstance(received_nonce, str) or not hmac.compare_digest(received_nonce, nonce):
            raise fail("does not carry this login's nonce")
    elif previous is not None and received_nonce is not None and received_nonce != previous.get("nonce"):
        raise fail("from the refresh carries another nonce than the login's")

    if "at_hash" in claims and access_token is not None:
        expected = at_hash(access_token, alg)
        if not isinstance(claims["at_hash"], str) or not hmac.compare_digest(claims["at_hash"], expected):
            raise fail("does not match the access token (at_hash)")

    if previous and (previous.get("sub") != subject or previous.get("iss") != claims.get("iss")):
        raise fail("from the refresh names another user than the login did", reason="subject_changed")
    return claims


def _numeric(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
