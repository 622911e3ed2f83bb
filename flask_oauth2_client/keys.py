"""The application's own private keys: loading them (a PEM file or a JWK), publishing their public
halves as a JWK Set, and signing JWTs with them. No Flask import.

Used for ``private_key_jwt`` client authentication (RFC 7523, OpenID Connect Core §9) and for DPoP
proofs (RFC 9449). Keys are asymmetric only (RSA of 2048 bits or more, EC on P-256/P-384/P-521,
Ed25519); each has a ``kid`` (the one given, else its RFC 7638 thumbprint) and one signature
algorithm (the one given, else the usual one for its type).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import TypeAlias

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import ECAlgorithm
from jwt.algorithms import OKPAlgorithm
from jwt.algorithms import RSAAlgorithm

__all__ = ["ClientKey", "KeyLoadError", "b64url", "jwk_thumbprint", "load_keys"]

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_EC_CURVES: dict[str, ec.EllipticCurve] = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
#: RFC 7638 §3.2: the members of the thumbprint input, per key type.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class KeyLoadError(ValueError):
    """A key cannot be loaded or used; the message says why (never the key material)."""


def b64url(data: bytes) -> str:
    """Base64url without padding (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint of a public (or private) JWK, base64url-encoded."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise KeyLoadError(f"unsupported key type {jwk.get('kty')!r}")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


@dataclass(frozen=True, eq=False)
class ClientKey:
    """One private key of the application, with its ``kid`` and signature algorithm."""

    private_key: PrivateKey
    kid: str
    alg: str

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def generate(cls, alg: str = "ES256") -> ClientKey:
        """A new key for *alg* (``ES256``/``ES384``/``ES512``, ``EdDSA``, ``RS256``/``PS256``...)."""
        key: PrivateKey
        if alg in _EC_CURVES:
            key = ec.generate_private_key(_EC_CURVES[alg])
        elif alg == "EdDSA":
            key = ed25519.Ed25519PrivateKey.generate()
        elif alg in _RSA_ALGORITHMS:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            raise KeyLoadError(f"cannot generate a key for {alg!r}")
        return cls.from_private_key(key, alg=alg)

    @classmethod
    def from_private_key(cls, key: Any, *, kid: str | None = None, alg: str | None = None) -> ClientKey:
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)):
            raise KeyLoadError("the key must be an RSA, EC or Ed25519 private key")
        chosen = _algorithm_for(key, alg)
        draft = cls(private_key=key, kid="", alg=chosen)
        return cls(private_key=key, kid=kid or jwk_thumbprint(draft.public_jwk(with_kid=False)), alg=chosen)

    @classmethod
    def from_pem(cls, data: bytes, *, kid: str | None = None, alg: str | None = None) -> ClientKey:
        """A key from PEM (PKCS#8 or traditional), unencrypted."""
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyLoadError(f"not an unencrypted PEM private key ({type(exc).__name__})") from None
        return cls.from_private_key(key, kid=kid, alg=alg)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> ClientKey:
        """A key from a private JWK (with ``d``); its ``kid`` and ``alg`` are used when present."""
        if not isinstance(jwk, Mapping) or "d" not in jwk:
            raise KeyLoadError("the JWK must be a private key (with 'd')")
        kty = jwk.get("kty")
        data = json.dumps(dict(jwk))
        try:
            if kty == "RSA":
                key: Any = RSAAlgorithm.from_jwk(data)
            elif kty == "EC":
                key = ECAlgorithm.from_jwk(data)
            elif kty == "OKP":
                key = OKPAlgorithm.from_jwk(data)
            else:
                raise KeyLoadError(f"unsupported key type {kty!r}")
        except (jwt.InvalidKeyError, ValueError, TypeError, KeyError) as exc:
            if isinstance(exc, KeyLoadError):
                raise
            raise KeyLoadError(f"the JWK cannot be read ({type(exc).__name__})") from None
        kid = jwk.get("kid")
        alg = jwk.get("alg")
        return cls.from_private_key(
            key, kid=kid if isinstance(kid, str) and kid else None, alg=alg if isinstance(alg, str) else None
        )

    # -- use ----------------------------------------------------------------------------------

    def public_jwk(self, *, with_kid: bool = True) -> dict[str, Any]:
        """The public half as a JWK (``kty``, key members, ``use``, ``alg``, ``kid``)."""
        public = self.private_key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            jwk = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
        jwk = {k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS and k not in ("key_ops", "use", "alg")}
        if not with_kid:
            return jwk
        return {**jwk, "use": "sig", "alg": self.alg, "kid": self.kid}

    def private_jwk(self) -> dict[str, Any]:
        """The whole key as a private JWK with ``kid`` and ``alg`` (to keep it with a token)."""
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            jwk = RSAAlgorithm.to_jwk(key, as_dict=True)
        elif isinstance(key, ec.EllipticCurvePrivateKey):
            jwk = ECAlgorithm.to_jwk(key, as_dict=True)
        else:
            jwk = OKPAlgorithm.to_jwk(key, as_dict=True)
        return {**jwk, "alg": self.alg, "kid": self.kid}

    @property
    def thumbprint(self) -> str:
        """RFC 7638 thumbprint of the public key (DPoP's ``jkt``)."""
        return jwk_thumbprint(self.public_jwk(with_kid=False))

    def sign(self, claims: Mapping[str, Any], *, headers: Mapping[str, Any] | None = None) -> str:
        """A compact JWS of *claims*, signed with this key (``kid`` in the header unless
        *headers* replaces the key identification, as DPoP's ``jwk`` does)."""
        header = {"kid": self.kid, **(headers or {})}
        if "jwk" in header:
            header.pop("kid")
        return jwt.encode(dict(claims), self.private_key, algorithm=self.alg, headers=header)

    def __repr__(self) -> str:  # never the key material
        return f"ClientKey(kid={self.kid!r}, alg={self.alg!r})"


def _algorithm_for(key: PrivateKey, alg: str | None) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise KeyLoadError(f"an RSA key needs 2048 bits or more, not {key.key_size}")
        chosen = alg or "RS256"
        if chosen not in _RSA_ALGORITHMS:
            raise KeyLoadError(f"{chosen!r} is not an algorithm for an RSA key")
        return chosen
    if isinstance(key, ec.EllipticCurvePrivateKey):
        expected = _EC_ALGORITHMS.get(key.curve.name)
        if expected is None:
            raise KeyLoadError(f"the curve {key.curve.name} is not supported (P-256, P-384, P-521)")
        if alg not in (None, expected):
            raise KeyLoadError(f"{alg!r} is not the algorithm of a {key.curve.name} key ({expected})")
        return expected
    if alg not in (None, "EdDSA"):
        raise KeyLoadError(f"{alg!r} is not the algorithm of an Ed25519 key (EdDSA)")
    return "EdDSA"


def load_keys(value: Any, *, base: Path | None = None) -> tuple[ClientKey, ...]:
    """Keys from configuration: one item or a list of items, each a path to a PEM file (relative
    paths against *base*), a private JWK (a dict), a JWK Set (``{"keys": [...]}``) or a
    ``{"path": ..., "kid": ..., "alg": ...}`` dict. The first key is the active one."""
    items: Sequence[Any]
    if isinstance(value, Mapping) and "keys" in value:
        items = value["keys"] if isinstance(value["keys"], list) else [value["keys"]]
    elif isinstance(value, (list, tuple)):
        items = value
    else:
        items = [value]
    keys: list[ClientKey] = []
    for index, item in enumerate(items, 1):
        where = f"key {index}"
        if isinstance(item, (str, Path)):
            keys.append(_from_path(Path(item), base, where, kid=None, alg=None))
        elif isinstance(item, Mapping) and "path" in item:
            kid, alg = item.get("kid"), item.get("alg")
            if (kid is not None and not isinstance(kid, str)) or (alg is not None and not isinstance(alg, str)):
                raise KeyLoadError(f"{where}: 'kid' and 'alg' must be strings")
            keys.append(_from_path(Path(str(item["path"])), base, where, kid=kid, alg=alg))
        elif isinstance(item, Mapping):
            try:
                keys.append(ClientKey.from_jwk(item))
            except KeyLoadError as exc:
                raise KeyLoadError(f"{where}: {exc}") from None
        else:
            raise KeyLoadError(f"{where}: expected a PEM file path or a private JWK")
    if not keys:
        raise KeyLoadError("no key given")
    kids = [key.kid for key in keys]
    if len(set(kids)) != len(kids):
        raise KeyLoadError("two keys have the same kid")
    return tuple(keys)


def _from_path(path: Path, base: Path | None, where: str, *, kid: str | None, alg: str | None) -> ClientKey:
    if not path.is_absolute() and base is not None:
        path = base / path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyLoadError(f"{where}: cannot read {path} ({exc.strerror or type(exc).__name__})") from None
    try:
        return ClientKey.from_pem(data, kid=kid, alg=alg)
    except KeyLoadError as exc:
        raise KeyLoadError(f"{where} ({path}): {exc}") from None
