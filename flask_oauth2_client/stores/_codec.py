"""How every store turns a :class:`Token` into stored text and back, encrypted when a cipher is
configured. One place, so that no store writes a token in clear by mistake."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from ..crypto import TokenCipher
from ..token import Token

__all__ = ["TokenCodec"]

log = logging.getLogger("flask_oauth2_client")


class TokenCodec:
    """Serialises tokens as JSON, wrapped in Fernet when *cipher* is given.

    Records written without encryption stay readable after keys are configured (they are
    encrypted on their next write); a record that no key decrypts counts as absent.

    Decoding (Fernet, then JSON) is the costliest part of a read that is not I/O, and every
    protected request reads the same record again and again: the last :data:`CACHE_SIZE` records
    read are kept decoded, keyed by the stored text itself, so a record that changes is decoded
    anew and a token can never be served for a record it did not come from.
    """

    #: Decoded records kept per store.
    CACHE_SIZE = 1024

    def __init__(self, cipher: TokenCipher | None) -> None:
        self.cipher = cipher
        self._decoded: OrderedDict[str | bytes, Token] = OrderedDict()
        self._guard = threading.Lock()

    def dumps(self, token: Token) -> str:
        text = token.to_json()
        if self.cipher is None:
            return text
        return self.cipher.encrypt(text.encode("utf-8")).decode("ascii")

    def loads(self, raw: str | bytes | None, *, provider: str) -> Token | None:
        """The token in *raw*, or ``None`` (logged, without the record) when it cannot be read."""
        if raw is None:
            return None
        if not isinstance(raw, str):
            raw = bytes(raw)
        cached = self._decoded.get(raw)
        if cached is not None:
            return cached
        token = self._decode(raw, provider)
        if token is not None:
            with self._guard:
                self._decoded[raw] = token
                if len(self._decoded) > self.CACHE_SIZE:
                    self._decoded.popitem(last=False)
        return token

    def _decode(self, raw: str | bytes, provider: str) -> Token | None:
        data: str | bytes
        if isinstance(raw, str):  # SQL: JSON text is parsed as it is, without a round trip to bytes
            data = raw
            clear = raw.lstrip().startswith("{")
        else:
            data = bytes(raw)
            clear = data.lstrip().startswith(b"{")
        if not clear:
            encrypted = data.encode("utf-8") if isinstance(data, str) else data
            plain = None if self.cipher is None else self.cipher.decrypt(encrypted)
            if plain is None:
                log.warning(
                    "a stored %s token could not be decrypted (wrong key, or damaged); it is treated as absent",
                    provider,
                )
                return None
            data = plain
        try:
            return Token.from_json(data)
        except ValueError:
            log.warning("a stored %s token is damaged; it is treated as absent", provider)
            return None

    def needs_rewrite(self, raw: str | bytes) -> bool:
        """``True`` when *raw* is not encrypted with the newest key (or not encrypted at all)."""
        if self.cipher is None:
            return False
        data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
        return data.lstrip().startswith(b"{") or self.cipher.needs_rotation(data)
