"""Proof Key for Code Exchange (RFC 7636), S256 only: ``plain`` is never used."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["code_challenge", "derive_code_verifier", "derive_nonce", "generate_code_verifier"]

_DERIVATION_LABEL = b"flask-oauth2-client/pkce/v1\x00"
_NONCE_LABEL = b"flask-oauth2-client/oidc-nonce/v1\x00"


def generate_code_verifier() -> str:
    """A fresh verifier: 32 random bytes, base64url without padding (43 characters, RFC 7636 §4.1)."""
    return secrets.token_urlsafe(32)


def code_challenge(verifier: str) -> str:
    """The S256 challenge of *verifier*: ``BASE64URL(SHA256(ASCII(verifier)))`` without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def derive_code_verifier(secret: str | bytes, state: str) -> str:
    """The verifier of the authorization request whose state is *state*: HMAC-SHA256 of the state
    under the application's secret key, base64url without padding (43 characters).

    The verifier is as unpredictable as a random one to anyone without the secret key, and it
    never needs to be stored: nothing secret of a pending login sits in the session cookie.
    """
    return _derive(secret, _DERIVATION_LABEL, state)


def derive_nonce(secret: str | bytes, state: str) -> str:
    """The OpenID Connect ``nonce`` of the authorization request whose state is *state*, derived
    like the PKCE verifier under another label: unpredictable without the secret key, bound to
    this one login, and never stored."""
    return _derive(secret, _NONCE_LABEL, state)


def _derive(secret: str | bytes, label: bytes, state: str) -> str:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    digest = hmac.new(key, label + state.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
