"""The application's keys (PEM or JWK, thumbprints, JWKS) and DPoP proofs, without a server."""

from __future__ import annotations

import base64
import hashlib
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from flask_oauth2_client import Token
from flask_oauth2_client.dpop import NonceMemory
from flask_oauth2_client.dpop import access_token_hash
from flask_oauth2_client.dpop import htu
from flask_oauth2_client.dpop import make_proof
from flask_oauth2_client.dpop import nonce_requested
from flask_oauth2_client.keys import ClientKey
from flask_oauth2_client.keys import KeyLoadError
from flask_oauth2_client.keys import jwk_thumbprint
from flask_oauth2_client.keys import load_keys

# RFC 7638 §3.1: the example key and its thumbprint.
RFC7638_KEY = {
    "kty": "RSA",
    "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n"
    "3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6"
    "qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}


def pem(key: object) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_rfc7638_thumbprint():
    assert jwk_thumbprint(RFC7638_KEY) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize("alg", ["ES256", "ES384", "ES512", "EdDSA", "RS256", "PS256"])
def test_generated_keys_sign_and_round_trip_as_jwk(alg):
    key = ClientKey.generate(alg)
    public = key.public_jwk()
    assert public["alg"] == alg
    assert public["kid"] == key.kid == key.thumbprint  # no kid given: the thumbprint
    assert public["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(public)  # never the private part
    token = key.sign({"hello": "world"})
    assert jwt.get_unverified_header(token)["kid"] == key.kid
    assert jwt.decode(token, jwt.PyJWK(public).key, algorithms=[alg]) == {"hello": "world"}
    again = ClientKey.from_jwk(key.private_jwk())
    assert (again.kid, again.alg, again.public_jwk()) == (key.kid, key.alg, public)
    assert repr(key) == f"ClientKey(kid={key.kid!r}, alg={alg!r})"


def test_load_keys_from_pem_files_jwks_and_options(tmp_path):
    (tmp_path / "a.pem").write_bytes(pem(ec.generate_private_key(ec.SECP256R1())))
    (tmp_path / "b.pem").write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    jwk = ClientKey.generate("EdDSA").private_jwk()
    keys = load_keys(["a.pem", {"path": str(tmp_path / "b.pem"), "kid": "b-2026", "alg": "PS256"}, jwk], base=tmp_path)
    assert [k.alg for k in keys] == ["ES256", "PS256", "EdDSA"]
    assert keys[1].kid == "b-2026"
    assert keys[2].kid == jwk["kid"]
    assert load_keys({"keys": [jwk]})[0].kid == jwk["kid"]
    assert load_keys(str(tmp_path / "a.pem"))[0].alg == "ES256"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("missing.pem", "cannot read"),
        ({"kty": "EC", "crv": "P-256", "x": "x", "y": "y"}, "must be a private key"),
        ({"kty": "oct", "k": "c2VjcmV0", "d": "x"}, "unsupported key type"),
        (42, "expected a PEM file path or a private JWK"),
        ([], "no key given"),
    ],
)
def test_bad_keys_say_why(tmp_path, value, message):
    with pytest.raises(KeyLoadError, match=message):
        load_keys(value, base=tmp_path)


def test_weak_and_mismatched_keys_are_refused(tmp_path):
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused, as it should
    with pytest.raises(KeyLoadError, match="2048 bits"):
        ClientKey.from_private_key(small)
    with pytest.raises(KeyLoadError, match="not the algorithm"):
        ClientKey.from_private_key(ec.generate_private_key(ec.SECP256R1()), alg="ES384")
    with pytest.raises(KeyLoadError, match="not an algorithm for an RSA key"):
        ClientKey.from_private_key(rsa.generate_private_key(public_exponent=65537, key_size=2048), alg="HS256")
    (tmp_path / "garbage.pem").write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(KeyLoadError, match=r"garbage\.pem"):
        load_keys("garbage.pem", base=tmp_path)
    key = ClientKey.generate("ES256").private_jwk()
    with pytest.raises(KeyLoadError, match="same kid"):
        load_keys([key, key])


def test_dpop_proof_claims_and_header():
    key = ClientKey.generate("ES256")
    proof = make_proof(key, "post", "https://AS.example/token?x=1#f", nonce="n-1", access_token="at", now=1000)
    header = jwt.get_unverified_header(proof)
    assert header["typ"] == "dpop+jwt"
    assert header["alg"] == "ES256"
    assert "kid" not in header
    assert header["jwk"] == key.public_jwk(with_kid=False)
    claims = jwt.decode(proof, jwt.PyJWK(header["jwk"]).key, algorithms=["ES256"], options={"verify_iat": False})
    assert claims["htm"] == "POST"
    assert claims["htu"] == "https://as.example/token"
    assert claims["iat"] == 1000
    assert claims["nonce"] == "n-1"
    assert claims["ath"] == base64.urlsafe_b64encode(hashlib.sha256(b"at").digest()).rstrip(b"=").decode()
    assert len(claims["jti"]) >= 22
    other = jwt.decode(make_proof(key, "GET", "https://rs.example/"), options={"verify_signature": False})
    assert other["jti"] != claims["jti"]
    assert "nonce" not in other
    assert "ath" not in other


def test_htu_and_ath():
    assert htu("https://Example.COM:8443/a/b?c=d#e") == "https://example.com:8443/a/b"
    assert htu("https://example.com") == "https://example.com/"
    # RFC 9449 §7.1's example access token and its ath
    ath = access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU")
    assert ath == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


def test_nonce_requests_are_recognised():
    asked = {"DPoP-Nonce": "eyJ7S_zG.eyJH0-Z.HX4w-7v"}
    assert nonce_requested(400, asked, {"error": "use_dpop_nonce"}) == asked["DPoP-Nonce"]
    www = {**asked, "WWW-Authenticate": 'DPoP error="use_dpop_nonce", error_description="nonce required"'}
    assert nonce_requested(401, www) == asked["DPoP-Nonce"]
    assert nonce_requested(400, asked, {"error": "invalid_grant"}) is None
    assert nonce_requested(401, {**asked, "WWW-Authenticate": 'DPoP error="invalid_token"'}) is None
    assert nonce_requested(400, {}, {"error": "use_dpop_nonce"}) is None
    assert nonce_requested(400, {"DPoP-Nonce": "bad nonce\n"}, {"error": "use_dpop_nonce"}) is None


def test_nonce_memory_is_per_origin_and_bounded():
    memory = NonceMemory(limit=2)
    memory.remember("https://as.example/token", {"DPoP-Nonce": "a"})
    memory.remember("https://rs.example/api", {})
    assert memory.get("https://AS.example/par") == "a"
    assert memory.get("https://rs.example/other") is None
    memory.set("https://b.example/", "b")
    memory.set("https://c.example/", "c")
    assert memory.get("https://as.example/") is None  # the oldest went
    assert memory.get("https://c.example/x") == "c"


def test_a_dpop_token_presents_itself_with_a_proof():
    key = ClientKey.generate("ES256")
    token = Token(access_token="at-1", token_type="DPoP", dpop_jwk=key.private_jwk())
    assert token.is_dpop
    assert token.authorization_header == "DPoP at-1"
    headers = token.request_headers("GET", "https://rs.example/api?q=1", nonce="n")
    assert headers["Authorization"] == "DPoP at-1"
    claims = jwt.decode(headers["DPoP"], options={"verify_signature": False})
    assert claims["htu"] == "https://rs.example/api"
    assert claims["ath"] == access_token_hash("at-1")
    assert claims["nonce"] == "n"
    # stored and read back: the key comes along (the store encrypts it with the token)
    again = Token.from_json(token.to_json())
    assert again == token
    assert again.dpop_key is not None
    assert again.dpop_key.thumbprint == key.thumbprint
    assert "at-1" not in repr(again)
    assert json.loads(token.to_json())["dpop_jwk"]["d"]  # the private part is kept: it must be
    bearer = Token(access_token="at-2")
    assert bearer.request_headers("GET", "https://rs.example/") == {"Authorization": "Bearer at-2"}
    with pytest.raises(ValueError, match="not bound"):
        bearer.dpop_proof("GET", "https://rs.example/")
