"""Encryption of tokens at rest: Fernet (AES-128-CBC + HMAC-SHA256) with key rotation.

The first key encrypts; every key decrypts, so a new key can be put first while records written
with the old one stay readable (and are re-encrypted on their next write).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.fernet import MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import ConfigurationError

__all__ = ["TokenCipher", "derive_key"]

_DERIVATION_INFO = b"flask-oauth2-client token encryption v1"


def derive_key(secret: str | bytes) -> str:
    """A Fernet key derived from an application secret (HKDF-SHA256, a fixed context string), so
    tokens can be encrypted when no ``OAUTH2_TOKEN_ENCRYPTION_KEYS`` is configured."""
    material = secret.encode("utf-8") if isinstance(secret, str) else secret
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_DERIVATION_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(material)).decode("ascii")


class TokenCipher:
    """Encrypts and decrypts serialised tokens.

    :param keys: Fernet keys (URL-safe base64 of 32 bytes), newest first.
    :raises ConfigurationError: a key is malformed (the message names its position, never the key).
    """

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if not keys:
            raise ConfigurationError("OAUTH2_TOKEN_ENCRYPTION_KEYS: at least one key is needed")
        fernets = []
        for index, key in enumerate(keys):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                raise ConfigurationError(
                    f"OAUTH2_TOKEN_ENCRYPTION_KEYS[{index}] is not a valid Fernet key "
                    "(generate one with: python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())')"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._primary = fernets[0]

    def encrypt(self, data: bytes) -> bytes:
        return self._fernet.encrypt(data)

    def decrypt(self, data: bytes) -> bytes | None:
        """The plaintext, or ``None`` when no key decrypts *data* (or it was tampered with)."""
        try:
            return self._fernet.decrypt(data)
        except InvalidToken:
            return None

    def needs_rotation(self, data: bytes) -> bool:
        """``True`` when *data* was not encrypted with the newest key."""
        try:
            self._primary.decrypt(data)
        except InvalidToken:
            return True
        return False

    def __repr__(self) -> str:
        return "<TokenCipher keys=***>"
