"""Proof Key for Code Exchange (RFC 7636), S256 only: ``plain`` is never used."""

from __future__ import annotations

import base64
import hashlib
import secrets

__all__ = ["code_challenge", "generate_code_verifier"]


def generate_code_verifier() -> str:
    """A fresh verifier: 32 random bytes, base64url without padding (43 characters, RFC 7636 §4.1)."""
    return secrets.token_urlsafe(32)


def code_challenge(verifier: str) -> str:
    """The S256 challenge of *verifier*: ``BASE64URL(SHA256(ASCII(verifier)))`` without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
