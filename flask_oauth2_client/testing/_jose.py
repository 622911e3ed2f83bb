"""The JOSE checks :class:`~.FakeProvider` makes on what clients send it.

Compact JWS parsing, signature verification with a JWK or a shared secret, and
RFC 7638 thumbprints: enough to check client assertions (RFC 7523, OpenID
Connect Core 1.0 section 9) and DPoP proofs (RFC 9449) strictly, with every
failure turned into a :class:`JoseError` whose message says what is wrong.
HMAC signatures are checked here with :mod:`hmac` (PyJWT warns about short
secrets, and a test server must accept what the client registered).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from typing import Final

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import get_default_algorithms

from ..discovery import ASYMMETRIC_ALGORITHMS as ASYMMETRIC_JWS_ALGORITHMS

#: Asymmetric JWS algorithms :class:`~.FakeProvider` accepts (client assertions and DPoP proofs):
#: the same list the client accepts for ID tokens.
ASYMMETRIC_ALGORITHMS: Final = ASYMMETRIC_JWS_ALGORITHMS
#: Symmetric JWS algorithms (``client_secret_jwt`` only).
HMAC_ALGORITHMS: Final = ("HS256", "HS384", "HS512")

_HMAC_DIGESTS: Final = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
_EC_CURVES: Final = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_KEY_TYPES: Final = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
#: RFC 7638 section 3.2: the members of the thumbprint input, per key type.
_THUMBPRINT_MEMBERS: Final = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
#: JWK members that only a private (or symmetric) key has (RFC 7518 section 6).
PRIVATE_MEMBERS: Final = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MIN_RSA_BITS: Final = 2048
_B64URL_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


class JoseError(ValueError):
    """A JWT or JWK that fails a check; the message says which one."""


@dataclass(frozen=True)
class Jws:
    """A parsed (not yet verified) compact JWS with a JSON object payload."""

    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes

    @property
    def alg(self) -> str:
        return str(self.header.get("alg"))


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(part: str) -> bytes:
    if not part or any(c not in _B64URL_CHARS for c in part):
        raise JoseError("not base64url")
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise JoseError("not base64url") from None


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise JoseError(f"the {what} is not JSON") from None
    if not isinstance(value, dict):
        raise JoseError(f"the {what} is not a JSON object")
    return value


def parse_jws(token: str) -> Jws:
    """Split and decode a compact JWS (no signature check).

    :raises JoseError: not three base64url parts, or a header or payload that
        is not a JSON object.
    """
    parts = token.split(".")
    if len(parts) != 3:
        raise JoseError("malformed JWT: not a compact JWS (three dot-separated parts)")
    header_part, payload_part, signature_part = parts
    try:
        header = _json_object(_b64url_decode(header_part), "JOSE header")
        claims = _json_object(_b64url_decode(payload_part), "payload")
        signature = _b64url_decode(signature_part) if signature_part else b""
    except JoseError as exc:
        raise JoseError(f"malformed JWT: {exc}") from None
    if "crit" in header:
        raise JoseError("unsupported critical header parameters (crit)")
    return Jws(header, claims, f"{header_part}.{payload_part}".encode("ascii"), signature)


def peek_claims(token: str) -> dict[str, Any]:
    """The payload of a compact JWS without any check; ``{}`` when it cannot be decoded."""
    try:
        return parse_jws(token).claims
    except JoseError:
        return {}


def peek_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS without any check; ``{}`` when it cannot be decoded."""
    try:
        return parse_jws(token).header
    except JoseError:
        return {}


def is_private_jwk(jwk: Mapping[str, Any]) -> bool:
    """Whether ``jwk`` holds private (or symmetric) key material."""
    return any(member in jwk for member in PRIVATE_MEMBERS)


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a JWK, base64url-encoded (DPoP's ``jkt``).

    :raises JoseError: unsupported key type or a required member missing.
    """
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise JoseError(f"unsupported key type {jwk.get('kty')!r}")
    try:
        canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    except KeyError as exc:
        raise JoseError(f"the JWK has no {exc.args[0]!r} member") from None
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def public_key(jwk: Mapping[str, Any], alg: str) -> Any:
    """The :mod:`cryptography` public key of a public ``jwk`` usable with ``alg``.

    :raises JoseError: a private key, a key type or curve that does not fit
        ``alg``, an RSA key under 2048 bits, or a malformed JWK.
    """
    if alg not in ASYMMETRIC_ALGORITHMS:
        raise JoseError(f"algorithm {alg!r} is not allowed")
    if is_private_jwk(jwk):
        raise JoseError("the JWK contains private key material")
    kty = _KEY_TYPES[alg[:2]]
    if jwk.get("kty") != kty:
        raise JoseError(f"a {jwk.get('kty')!r} key cannot verify {alg}")
    if kty == "EC" and jwk.get("crv") != _EC_CURVES[alg]:
        raise JoseError(f"{alg} needs a {_EC_CURVES[alg]} key, not {jwk.get('crv')!r}")
    if kty == "OKP" and jwk.get("crv") not in ("Ed25519", "Ed448"):
        raise JoseError(f"EdDSA needs an Ed25519 or Ed448 key, not {jwk.get('crv')!r}")
    if "alg" in jwk and jwk["alg"] != alg:
        raise JoseError(f"the key is for {jwk['alg']!r}, not {alg}")
    try:
        key = jwt.PyJWK(dict(jwk), algorithm=alg).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError):
        raise JoseError("malformed JWK") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        raise JoseError(f"RSA keys must have at least {_MIN_RSA_BITS} bits")
    return key


def verify_with_jwk(jws: Jws, jwk: Mapping[str, Any]) -> bool:
    """Whether ``jws`` is signed by the public ``jwk`` (with ``jws.alg``).

    :raises JoseError: the key does not fit the algorithm (see :func:`public_key`).
    """
    key = public_key(jwk, jws.alg)
    algorithm = get_default_algorithms()[jws.alg]
    try:
        return bool(algorithm.verify(jws.signing_input, key, jws.signature))
    except (ValueError, TypeError):
        return False


def verify_with_secret(jws: Jws, secret: str) -> bool:
    """Whether ``jws`` carries a valid HMAC (``HS256``/``HS384``/``HS512``) made with ``secret``."""
    digest = _HMAC_DIGESTS.get(jws.alg)
    if digest is None:
        return False
    expected = hmac.new(secret.encode("utf-8"), jws.signing_input, digest).digest()
    return hmac.compare_digest(expected, jws.signature)


def verify_with_jwks(jws: Jws, keys: Iterable[Mapping[str, Any]]) -> bool:
    """Whether ``jws`` is signed by one of ``keys``: the one with the header's
    ``kid`` when there is one, else any signing key that fits the algorithm.

    :raises JoseError: no key fits (unknown ``kid``, no key of that type).
    """
    kid = jws.header.get("kid")
    candidates = [k for k in keys if k.get("use", "sig") == "sig"]
    if kid is not None:
        candidates = [k for k in candidates if k.get("kid") == kid]
        if not candidates:
            raise JoseError(f"no registered key has kid {kid!r}")
    usable: list[Mapping[str, Any]] = []
    problem = "no registered key fits the algorithm"
    for jwk in candidates:
        try:
            public_key(jwk, jws.alg)
        except JoseError as exc:
            problem = str(exc)
            continue
        usable.append(jwk)
    if not usable:
        raise JoseError(problem)
    return any(verify_with_jwk(jws, jwk) for jwk in usable)


def check_public_jwks(jwks: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The keys of a JWK Set, checked to be public keys of a supported type.

    :raises ValueError: not ``{"keys": [...]}``, or a key that is private or unsupported.
    """
    keys = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(keys, list) or not all(isinstance(k, Mapping) for k in keys):
        raise ValueError('jwks must be a JWK Set: {"keys": [...]}')
    result: list[dict[str, Any]] = []
    for jwk in keys:
        if is_private_jwk(jwk):
            raise ValueError("jwks must contain public keys only")
        if jwk.get("kty") not in _THUMBPRINT_MEMBERS:
            raise ValueError(f"unsupported key type {jwk.get('kty')!r} in jwks")
        result.append(dict(jwk))
    return result
