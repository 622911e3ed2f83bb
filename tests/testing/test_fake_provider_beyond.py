"""FakeProvider's JWT client authentication (RFC 7523), PAR (RFC 9126), DPoP (RFC 9449) and device
authorization grant (RFC 8628), exercised over its real socket with ``requests`` and PyJWT."""

from __future__ import annotations

import base64
import hashlib
import html
import http.client
import json
import re
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import ECAlgorithm
from jwt.algorithms import OKPAlgorithm
from jwt.algorithms import RSAAlgorithm

from flask_oauth2_client.testing import FakeProvider
from flask_oauth2_client.testing import Fault
from flask_oauth2_client.testing import jwk_thumbprint

CB = "http://127.0.0.1:9/callback"
BASIC = ("demo-client", "demo-secret")
T = 5  # seconds; every request has a timeout
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: Long enough for PyJWT not to warn about a short HMAC key.
JWT_SECRET = "a-client-secret-that-is-long-enough-for-hs256"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


# -- helpers -------------------------------------------------------------------------------------


def public_jwk(key: PrivateKey, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any]
    if isinstance(key, ec.EllipticCurvePrivateKey):
        jwk = dict(ECAlgorithm.to_jwk(key.public_key(), as_dict=True))
    elif isinstance(key, rsa.RSAPrivateKey):
        jwk = dict(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
    else:
        jwk = dict(OKPAlgorithm.to_jwk(key.public_key(), as_dict=True))
    return {**jwk, **extra}


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_jwt(header: dict[str, Any], claims: dict[str, Any]) -> str:
    parts = [b64(json.dumps(x).encode()) for x in (header, claims)]
    return ".".join(parts) + "."


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, b64(hashlib.sha256(verifier.encode()).digest())


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    result = {**base, **over}
    return {k: v for k, v in result.items() if v is not None}


def assertion_claims(p: FakeProvider, client_id: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": client_id,
        "sub": client_id,
        "aud": p.issuer,
        "jti": secrets.token_urlsafe(16),
        "iat": now,
        "exp": now + 60,
    }
    return merged(base, over)


def error_of(r: requests.Response, status: int = 400) -> str:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["error_description"]
    return str(body["error"])


def redirect_params(r: requests.Response) -> dict[str, str]:
    assert r.status_code == 302, r.text
    url = urlsplit(r.headers["Location"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == CB
    return dict(parse_qsl(url.query))


class KeyClient:
    """A ``private_key_jwt`` client with an EC key, registered at ``p``."""

    def __init__(
        self,
        p: FakeProvider,
        client_id: str = "kc",
        *,
        kid: str | None = "k1",
        key: ec.EllipticCurvePrivateKey | None = None,
        others: tuple[dict[str, Any], ...] = (),
        register: bool = True,
    ) -> None:
        self.p = p
        self.client_id = client_id
        self.key = key or ec_key()
        self.kid = kid
        jwk = public_jwk(self.key) if kid is None else public_jwk(self.key, kid=kid)
        if register:
            p.register_client(client_id, auth_method="private_key_jwt", jwks={"keys": [*others, jwk]})

    def assertion(self, *, key: PrivateKey | None = None, alg: str = "ES256", **over: Any) -> str:
        headers = {} if self.kid is None else {"kid": self.kid}
        claims = assertion_claims(self.p, self.client_id, **over)
        return jwt.encode(claims, key or self.key, algorithm=alg, headers=headers)

    def auth(self, **over: Any) -> dict[str, str]:
        return {"client_assertion_type": JWT_BEARER, "client_assertion": self.assertion(**over)}


def post(url: str, data: dict[str, str], **kwargs: Any) -> requests.Response:
    return requests.post(url, data=data, allow_redirects=False, timeout=T, **kwargs)


def client_credentials(p: FakeProvider, fields: dict[str, str], **kwargs: Any) -> requests.Response:
    return post(p.token_url, {"grant_type": "client_credentials", **fields}, **kwargs)


def dpop_proof(
    key: PrivateKey,
    method: str,
    url: str,
    *,
    alg: str = "ES256",
    nonce: str | None = None,
    token: str | None = None,
    headers: dict[str, Any] | None = None,
    **over: Any,
) -> str:
    claims: dict[str, Any] = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url, "iat": int(time.time())}
    if nonce is not None:
        claims["nonce"] = nonce
    if token is not None:
        claims["ath"] = b64(hashlib.sha256(token.encode()).digest())
    header = merged({"typ": "dpop+jwt", "jwk": public_jwk(key)}, headers or {})
    return jwt.encode(merged(claims, over), key, algorithm=alg, headers=header)


def dpop_token(p: FakeProvider, key: PrivateKey, *, auth: tuple[str, str] = BASIC) -> dict[str, Any]:
    proof = dpop_proof(key, "POST", p.token_url)
    r = post(p.token_url, {"grant_type": "client_credentials"}, auth=auth, headers={"DPoP": proof})
    assert r.status_code == 200, r.text
    tok: dict[str, Any] = r.json()
    return tok


def dpop_get(url: str, token: str, proof: str | None, scheme: str = "DPoP") -> requests.Response:
    headers = {"Authorization": f"{scheme} {token}"}
    if proof is not None:
        headers["DPoP"] = proof
    return requests.get(url, headers=headers, timeout=T)


def www_authenticate(r: requests.Response) -> str:
    return r.headers.get("WWW-Authenticate", "")


# -- JWT client authentication (RFC 7523, OpenID Connect Core 1.0 section 9) -------------------


def test_private_key_jwt_at_the_token_endpoint(fake_provider: FakeProvider) -> None:
    p = fake_provider
    kc = KeyClient(p)
    for aud in (p.issuer, p.token_url, [p.token_url, "https://other.example"]):
        r = client_credentials(p, kc.auth(aud=aud))
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "Bearer"
    last = p.requests[-1]
    assert (last.client_id, last.auth_method_used) == ("kc", "private_key_jwt")
    # Without a kid, every registered key that fits is tried.
    nokid = KeyClient(p, "nokid", kid=None, others=(public_jwk(ec_key()), public_jwk(rsa_key())))
    assert client_credentials(p, nokid.auth()).status_code == 200
    # client_id may come along, if it is the same.
    assert client_credentials(p, {**kc.auth(), "client_id": "kc"}).status_code == 200


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize("alg", ["RS256", "PS256", "EdDSA"])
def test_private_key_jwt_algorithms(fake_provider: FakeProvider, alg: str) -> None:
    key: PrivateKey = ed25519.Ed25519PrivateKey.generate() if alg == "EdDSA" else rsa_key()
    fake_provider.register_client("c", auth_method="private_key_jwt", jwks={"keys": [public_jwk(key, kid="a")]})
    token = jwt.encode(assertion_claims(fake_provider, "c"), key, algorithm=alg, headers={"kid": "a"})
    r = client_credentials(fake_provider, {"client_assertion_type": JWT_BEARER, "client_assertion": token})
    assert r.status_code == 200, r.text


def test_private_key_jwt_at_the_other_endpoints(fake_provider: FakeProvider) -> None:
    p = fake_provider
    kc = KeyClient(p)
    token = client_credentials(p, kc.auth()).json()["access_token"]
    r = post(p.revocation_url, {"token": token, **kc.auth(aud=p.revocation_url)})
    assert r.status_code == 200, r.text
    assert not p.is_active(token)
    _, challenge = pkce()
    push = {"response_type": "code", "redirect_uri": CB, "code_challenge": challenge, "code_challenge_method": "S256"}
    r = post(p.par_url, {**push, **kc.auth(aud=p.par_url)})
    assert r.status_code == 201, r.text
    r = post(p.device_authorization_url, {"scope": "read", **kc.auth()})
    assert r.status_code == 200, r.text
    assert [(x.endpoint, x.auth_method_used) for x in p.requests] == [
        ("token", "private_key_jwt"),
        ("revoke", "private_key_jwt"),
        ("par", "private_key_jwt"),
        ("device_authorization", "private_key_jwt"),
    ]


def test_private_key_jwt_refusals(fake_provider: FakeProvider) -> None:
    p = fake_provider
    kc = KeyClient(p)
    now = int(time.time())
    cases: list[tuple[dict[str, str], str]] = [
        (kc.auth(key=ec_key()), "signature"),
        ({"client_assertion_type": JWT_BEARER, "client_assertion": kc.assertion(alg="ES384", key=ec384())}, "ES384"),
        ({"client_assertion_type": JWT_BEARER, "client_assertion": hs256(p, "kc", JWT_SECRET)}, "not 'HS256'"),
        ({"client_assertion_type": JWT_BEARER, "client_assertion": none_alg(p, "kc")}, "not 'none'"),
        (kc.auth(iss="other"), "iss and sub"),
        (kc.auth(sub=None), "sub"),
        (kc.auth(aud="https://other.example"), "aud"),
        (kc.auth(aud=p.userinfo_url), "aud"),
        (kc.auth(aud=None), "aud is missing"),
        (kc.auth(exp=now - 120), "expired"),
        (kc.auth(exp=now + 3600), "too far"),
        (kc.auth(exp=None), "exp"),
        (kc.auth(iat=now + 600), "iat is in the future"),
        (kc.auth(nbf=now + 600), "nbf is in the future"),
        (kc.auth(jti=None), "jti is missing"),
        ({**kc.auth(), "client_assertion_type": "urn:other"}, "client_assertion_type"),
        ({**kc.auth(), "client_id": "demo-client"}, "differs"),
        ({"client_assertion_type": JWT_BEARER, "client_assertion": "not.a.jwt"}, "malformed"),
    ]
    for auth, words in cases:
        r = client_credentials(p, auth)
        assert error_of(r, 401) == "invalid_client", auth
        assert words in r.json()["error_description"], (words, r.json())
        assert r.headers["Cache-Control"] == "no-store"
    # Unknown kid.
    r = client_credentials(p, KeyClient(p, "kc", kid="k2", key=kc.key, register=False).auth())
    assert error_of(r, 401) == "invalid_client"
    assert "kid 'k2'" in r.json()["error_description"]
    # Two methods at once, or half an assertion.
    assert error_of(client_credentials(p, kc.auth(), auth=BASIC)) == "invalid_request"
    assert error_of(client_credentials(p, {"client_assertion_type": JWT_BEARER})) == "invalid_request"
    # The default client authenticates with its secret, not an assertion.
    r = client_credentials(p, {"client_assertion_type": JWT_BEARER, "client_assertion": hs256(p, "demo-client")})
    assert error_of(r, 401) == "invalid_client"
    assert "client_secret_basic or client_secret_post" in r.json()["error_description"]
    # And a private_key_jwt client cannot use a secret.
    assert error_of(client_credentials(p, {}, auth=("kc", "x")), 401) == "invalid_client"


def ec384() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def hs256(p: FakeProvider, client_id: str, secret: str = JWT_SECRET, **over: Any) -> str:
    return jwt.encode(assertion_claims(p, client_id, **over), secret, algorithm="HS256")


def none_alg(p: FakeProvider, client_id: str) -> str:
    return unsigned_jwt({"alg": "none", "typ": "JWT"}, assertion_claims(p, client_id))


def test_assertion_replay_is_refused(fake_provider: FakeProvider) -> None:
    p = fake_provider
    kc = KeyClient(p)
    auth = kc.auth()
    assert client_credentials(p, auth).status_code == 200
    r = client_credentials(p, auth)
    assert error_of(r, 401) == "invalid_client"
    assert "replay" in r.json()["error_description"]
    # The same jti at another endpoint is a replay too.
    r = post(p.revocation_url, {"token": "x", **kc.auth(jti="j1")})
    assert r.status_code == 200
    r = post(p.par_url, {"response_type": "code", **kc.auth(jti="j1")})
    assert error_of(r, 401) == "invalid_client"


def test_client_secret_jwt(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.register_client("sc", JWT_SECRET, auth_method="client_secret_jwt")
    r = client_credentials(p, {"client_assertion_type": JWT_BEARER, "client_assertion": hs256(p, "sc")})
    assert r.status_code == 200, r.text
    assert p.requests[-1].auth_method_used == "client_secret_jwt"
    for token, words in [
        (hs256(p, "sc", "another-secret-that-is-long-enough-for-hs256"), "signature"),
        (jwt.encode(assertion_claims(p, "sc"), rsa_key(), algorithm="RS256"), "not 'RS256'"),
        (none_alg(p, "sc"), "not 'none'"),
        (hs256(p, "sc", aud="https://evil.example"), "aud"),
    ]:
        r = client_credentials(p, {"client_assertion_type": JWT_BEARER, "client_assertion": token})
        assert error_of(r, 401) == "invalid_client"
        assert words in r.json()["error_description"]
    # Its secret does not work as a password.
    assert error_of(client_credentials(p, {}, auth=("sc", JWT_SECRET)), 401) == "invalid_client"


def test_private_key_jwt_with_jwks_uri(fake_provider: FakeProvider) -> None:
    """The client's keys come from a URL (here, another FakeProvider's JWKS), fetched each time."""
    p = fake_provider
    with FakeProvider() as keys:
        p.register_client("uc", auth_method="private_key_jwt", jwks_uri=keys.jwks_url)

        def auth() -> dict[str, str]:
            k = keys.current_key("RS256")
            token = jwt.encode(assertion_claims(p, "uc"), k.private_key, algorithm="RS256", headers={"kid": k.kid})
            return {"client_assertion_type": JWT_BEARER, "client_assertion": token}

        assert client_credentials(p, auth()).status_code == 200
        keys.rotate_keys(alg="RS256", keep_old=False)
        assert client_credentials(p, auth()).status_code == 200
        assert keys.calls("jwks") == 2
        keys.set_fault("jwks", Fault(status=500))
        r = client_credentials(p, auth())
        assert error_of(r, 401) == "invalid_client"
        assert "jwks_uri" in r.json()["error_description"]


def test_register_client_with_keys_is_checked(fake_provider: FakeProvider) -> None:
    p = fake_provider
    private = dict(ECAlgorithm.to_jwk(ec_key(), as_dict=True))
    with pytest.raises(ValueError, match="public keys only"):
        p.register_client("x", auth_method="private_key_jwt", jwks={"keys": [private]})
    with pytest.raises(ValueError, match="exactly one"):
        p.register_client("x", auth_method="private_key_jwt")
    with pytest.raises(ValueError, match="exactly one"):
        p.register_client("x", auth_method="private_key_jwt", jwks={"keys": []}, jwks_uri="http://127.0.0.1/k")
    with pytest.raises(ValueError, match="only for"):
        p.register_client("x", "s", auth_method="client_secret_jwt", jwks={"keys": []})
    with pytest.raises(ValueError, match="needs a client_secret"):
        p.register_client("x", auth_method="client_secret_jwt")
    with pytest.raises(ValueError, match="http"):
        p.register_client("x", auth_method="private_key_jwt", jwks_uri="file:///etc/passwd")
    with pytest.raises(ValueError, match="JWK Set"):
        p.register_client("x", auth_method="private_key_jwt", jwks={"key": []})


def test_metadata_advertises_the_new_features(fake_provider: FakeProvider) -> None:
    p = fake_provider
    meta = requests.get(p.metadata_url, timeout=T).json()
    assert {"private_key_jwt", "client_secret_jwt", "client_secret_basic"} <= set(
        meta["token_endpoint_auth_methods_supported"]
    )
    algs = meta["token_endpoint_auth_signing_alg_values_supported"]
    assert {"RS256", "ES256", "PS256", "EdDSA", "HS256"} <= set(algs)
    assert "none" not in algs
    assert meta["pushed_authorization_request_endpoint"] == p.par_url
    assert meta["require_pushed_authorization_requests"] is False
    assert meta["device_authorization_endpoint"] == p.device_authorization_url
    assert DEVICE_GRANT in meta["grant_types_supported"]
    assert "dpop_signing_alg_values_supported" not in meta
    p.dpop = True
    p.require_par = True
    meta = requests.get(p.openid_configuration_url, timeout=T).json()
    assert meta["require_pushed_authorization_requests"] is True
    assert {"ES256", "RS256", "EdDSA"} <= set(meta["dpop_signing_alg_values_supported"])
    assert not {"HS256", "none"} & set(meta["dpop_signing_alg_values_supported"])


# -- pushed authorization requests (RFC 9126) ------------------------------------------------------


def push(p: FakeProvider, auth: tuple[str, str] | None = BASIC, **params: str | None) -> requests.Response:
    return post(p.par_url, par_fields(**params), auth=auth)


def par_fields(**params: str | None) -> dict[str, str]:
    data = {
        "response_type": "code",
        "client_id": "demo-client",
        "redirect_uri": CB,
        "state": "s1",
        "scope": "openid read",
        "code_challenge_method": "S256",
        **params,
    }
    return {k: v for k, v in data.items() if v is not None}


def authorize_by_reference(p: FakeProvider, request_uri: str, **extra: str) -> requests.Response:
    query = {"client_id": "demo-client", "request_uri": request_uri, **extra}
    return requests.get(p.authorize_url, params=query, allow_redirects=False, timeout=T)


def test_par_then_authorize(fake_provider: FakeProvider) -> None:
    p = fake_provider
    verifier, challenge = pkce()
    r = push(p, code_challenge=challenge, nonce="n-1")
    assert r.status_code == 201, r.text
    assert r.headers["Cache-Control"] == "no-store"
    answer = r.json()
    assert answer["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
    assert answer["expires_in"] == 60
    # Parameters outside the pushed request are ignored.
    q = redirect_params(authorize_by_reference(p, answer["request_uri"], state="forged", scope="admin"))
    assert q["state"] == "s1"
    data = {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": CB, "code_verifier": verifier}
    tok = post(p.token_url, data, auth=BASIC).json()
    assert tok["scope"] == "openid read"
    assert jwt.decode(tok["id_token"], options={"verify_signature": False})["nonce"] == "n-1"
    # Single use.
    r = authorize_by_reference(p, answer["request_uri"])
    assert r.status_code == 400
    assert "invalid_request_uri" in r.text
    assert p.calls("par") == 1
    assert p.requests[0].auth_method_used == "client_secret_basic"


def test_par_client_id_may_come_from_the_authentication(fake_provider: FakeProvider) -> None:
    p = fake_provider
    r = push(p, client_id=None, code_challenge=pkce()[1])
    assert r.status_code == 201
    assert "code" in redirect_params(authorize_by_reference(p, r.json()["request_uri"]))
    p.register_client("pub", None, auth_method="none")
    r = push(p, auth=None, client_id="pub", code_challenge=pkce()[1])
    assert r.status_code == 201, r.text
    request_uri = r.json()["request_uri"]
    # Bound to its client.
    r = authorize_by_reference(p, request_uri)
    assert r.status_code == 400
    assert "another client" in r.text
    r = requests.get(
        p.authorize_url, params={"client_id": "pub", "request_uri": request_uri}, allow_redirects=False, timeout=T
    )
    assert "code" in redirect_params(r)


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"request_uri": "urn:ietf:params:oauth:request_uri:x"}, 400, "invalid_request"),
        ({"request": "eyJ.eyJ.sig"}, 400, "request_not_supported"),
        ({"response_type": "id_token"}, 400, "unsupported_response_type"),
        ({"response_type": None}, 400, "invalid_request"),
        ({"redirect_uri": "ftp://x/cb"}, 400, "invalid_request"),
        ({"code_challenge_method": "plain", "code_challenge": "x" * 43}, 400, "invalid_request"),
        ({"scope": "a\\b"}, 400, "invalid_scope"),
        ({"client_id": "other"}, 401, "invalid_client"),
    ],
)
def test_par_refusals(fake_provider: FakeProvider, params: dict[str, str | None], status: int, error: str) -> None:
    fields = par_fields(**{"code_challenge": pkce()[1], **params})
    assert error_of(post(fake_provider.par_url, fields, auth=BASIC), status) == error


def test_par_needs_client_authentication(fake_provider: FakeProvider) -> None:
    p = fake_provider
    assert error_of(push(p, auth=None), 401) == "invalid_client"
    assert error_of(push(p, auth=("demo-client", "wrong")), 401) == "invalid_client"
    r = requests.post(p.par_url, json={"response_type": "code"}, auth=BASIC, timeout=T)
    assert error_of(r) == "invalid_request"


def test_par_request_uri_expires_and_is_checked(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.par_ttl = 0
    r = push(p, code_challenge=pkce()[1])
    assert r.json()["expires_in"] == 0
    r = authorize_by_reference(p, r.json()["request_uri"])
    assert r.status_code == 400
    assert "expired" in r.text
    p.par_ttl = 60
    assert "unknown" in authorize_by_reference(p, "urn:ietf:params:oauth:request_uri:nope").text
    request_uri = push(p, code_challenge=pkce()[1]).json()["request_uri"]
    r = requests.get(p.authorize_url, params={"request_uri": request_uri}, allow_redirects=False, timeout=T)
    assert r.status_code == 400
    assert "client_id" in r.text


def test_require_par(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.require_par = True
    query = {
        "response_type": "code",
        "client_id": "demo-client",
        "redirect_uri": CB,
        "state": "s",
        "code_challenge": pkce()[1],
        "code_challenge_method": "S256",
    }
    q = redirect_params(requests.get(p.authorize_url, params=query, allow_redirects=False, timeout=T))
    assert q["error"] == "invalid_request"
    assert "pushed" in q["error_description"]
    request_uri = push(p, code_challenge=pkce()[1]).json()["request_uri"]
    assert "code" in redirect_params(authorize_by_reference(p, request_uri))
    with FakeProvider(require_par=True) as other:
        assert other.require_par
        other.require_par = False
        other.reset()
        assert other.require_par


def test_par_with_the_consent_page(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.auto_approve = False
    p.require_par = True
    request_uri = push(p, code_challenge=pkce()[1]).json()["request_uri"]
    page = authorize_by_reference(p, request_uri)
    assert page.status_code == 200
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    form = {k: html.unescape(v) for k, v in form.items()}
    assert form == {"client_id": "demo-client", "request_uri": request_uri}
    # Reloading the consent page is fine; deciding uses the request_uri up.
    assert authorize_by_reference(p, request_uri).status_code == 200
    r = post(p.authorize_url, {**form, "username": "alice", "decision": "approve"})
    assert redirect_params(r)["state"] == "s1"
    r = post(p.authorize_url, {**form, "username": "alice", "decision": "approve"})
    assert r.status_code == 400


def test_par_faults(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.set_fault("par", Fault(status=503, times=1))
    assert push(p, code_challenge=pkce()[1]).status_code == 503
    assert push(p, code_challenge=pkce()[1]).status_code == 201
    p.set_fault("par", Fault(status=400, json={"error": "invalid_request", "error_description": "no"}))
    assert error_of(push(p)) == "invalid_request"
    assert p.calls("par") == 3


# -- DPoP (RFC 9449) -----------------------------------------------------------------------------------


def test_dpop_token_and_resources(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.dpop = True
    key = ec_key()
    tok = dpop_token(p, key)
    assert tok["token_type"] == "DPoP"
    at = tok["access_token"]
    for url in (p.api_url, p.userinfo_url):
        r = dpop_get(url, at, dpop_proof(key, "GET", url, token=at))
        assert r.status_code == 200, r.text
    # The htu ignores query and fragment.
    r = dpop_get(p.api_url + "?page=2", at, dpop_proof(key, "GET", p.api_url, token=at))
    assert r.status_code == 200, r.text
    proofs = p.dpop_proofs
    assert [(x.endpoint, x.method, x.accepted) for x in proofs] == [
        ("token", "POST", True),
        ("api", "GET", True),
        ("userinfo", "GET", True),
        ("api", "GET", True),
    ]
    assert proofs[0].claims["htu"] == p.token_url
    assert proofs[0].jkt == jwk_thumbprint(public_jwk(key))
    assert proofs[1].claims["ath"] == b64(hashlib.sha256(at.encode()).digest())
    assert proofs[0].header["typ"] == "dpop+jwt"


def test_dpop_bound_token_refusals_at_resources(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.dpop = True
    key = ec_key()
    at = dpop_token(p, key)["access_token"]
    url = p.api_url
    # As a bearer token.
    r = dpop_get(url, at, None, scheme="Bearer")
    assert error_of(r, 401) == "invalid_token"
    assert www_authenticate(r).startswith('DPoP error="invalid_token"')
    cases = [
        (None, "required"),
        (dpop_proof(ec_key(), "GET", url, token=at), "another key"),
        (dpop_proof(key, "GET", url), "ath"),
        (dpop_proof(key, "GET", url, token="other"), "ath"),
        (dpop_proof(key, "POST", url, token=at), "htm"),
        (dpop_proof(key, "GET", p.userinfo_url, token=at), "htu"),
        (dpop_proof(key, "GET", url, token=at, iat=int(time.time()) - 3600), "too old"),
    ]
    for proof, words in cases:
        r = dpop_get(url, at, proof)
        assert error_of(r, 401) == "invalid_dpop_proof", words
        assert words in r.json()["error_description"]
        assert 'DPoP error="invalid_dpop_proof"' in www_authenticate(r)
        assert 'algs="' in www_authenticate(r)
    # A replayed proof.
    proof = dpop_proof(key, "GET", url, token=at)
    assert dpop_get(url, at, proof).status_code == 200
    r = dpop_get(url, at, proof)
    assert error_of(r, 401) == "invalid_dpop_proof"
    assert "replay" in r.json()["error_description"]
    # A bearer token sent with the DPoP scheme; an unknown token.
    bearer_at = p.issue_token()["access_token"]
    r = dpop_get(url, bearer_at, dpop_proof(key, "GET", url, token=bearer_at))
    assert error_of(r, 401) == "invalid_token"
    assert error_of(dpop_get(url, "nope", dpop_proof(key, "GET", url, token="nope")), 401) == "invalid_token"
    refused = [x for x in p.dpop_proofs if not x.accepted]
    assert refused
    assert all(x.error for x in refused)


def test_dpop_proof_refusals_at_the_token_endpoint(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.dpop = True
    key = ec_key()
    url = p.token_url
    private = dict(ECAlgorithm.to_jwk(key, as_dict=True))
    now = int(time.time())
    cases = [
        (dpop_proof(key, "POST", url, headers={"typ": "JWT"}), "typ"),
        (jwt.encode({"jti": "a", "htm": "POST", "htu": url, "iat": now}, JWT_SECRET, algorithm="HS256",
                    headers={"typ": "dpop+jwt", "jwk": public_jwk(key)}), "alg"),
        (unsigned_jwt({"typ": "dpop+jwt", "alg": "none", "jwk": public_jwk(key)},
                      {"jti": "b", "htm": "POST", "htu": url, "iat": now}), "alg"),
        (dpop_proof(key, "POST", url, headers={"jwk": None}), "no jwk"),
        (dpop_proof(key, "POST", url, headers={"jwk": private}), "private"),
        (dpop_proof(key, "POST", url, headers={"jwk": public_jwk(ec_key())}), "signature"),
        (dpop_proof(key, "POST", url, headers={"jwk": public_jwk(rsa_key())}), "unusable"),
        (dpop_proof(key, "GET", url), "htm"),
        (dpop_proof(key, "POST", p.url + "/other"), "htu"),
        (dpop_proof(key, "POST", url, iat=now - 3600), "too old"),
        (dpop_proof(key, "POST", url, iat=now + 3600), "future"),
        (dpop_proof(key, "POST", url, jti=None), "no jti"),
        (dpop_proof(key, "POST", url, iat=None), "no iat"),
        ("garbage", "malformed"),
    ]  # fmt: skip
    for proof, words in cases:
        r = post(url, {"grant_type": "client_credentials"}, auth=BASIC, headers={"DPoP": proof})
        assert error_of(r) == "invalid_dpop_proof", words
        assert words in r.json()["error_description"], (words, r.json())
    proof = dpop_proof(key, "POST", url)
    assert post(url, {"grant_type": "client_credentials"}, auth=BASIC, headers={"DPoP": proof}).status_code == 200
    r = post(url, {"grant_type": "client_credentials"}, auth=BASIC, headers={"DPoP": proof})
    assert "replay" in r.json()["error_description"]
    assert len(p.dpop_proofs) == len(cases) + 2


@pytest.mark.parametrize("alg", ["RS256", "PS256", "EdDSA", "ES384"])
def test_dpop_algorithms(fake_provider: FakeProvider, alg: str) -> None:
    fake_provider.dpop = True
    keys: dict[str, Callable[[], PrivateKey]] = {"EdDSA": ed25519.Ed25519PrivateKey.generate, "ES384": ec384}
    key = keys.get(alg, rsa_key)()
    proof = dpop_proof(key, "POST", fake_provider.token_url, alg=alg)
    r = post(fake_provider.token_url, {"grant_type": "client_credentials"}, auth=BASIC, headers={"DPoP": proof})
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"


def test_dpop_off_ignores_proofs(fake_provider: FakeProvider) -> None:
    p = fake_provider
    proof = dpop_proof(ec_key(), "POST", p.token_url)
    r = post(p.token_url, {"grant_type": "client_credentials"}, auth=BASIC, headers={"DPoP": proof})
    assert r.json()["token_type"] == "Bearer"
    assert p.dpop_proofs == []
    assert p.requests[-1].headers["Dpop"] == proof
    r = requests.get(p.api_url, timeout=T)
    assert www_authenticate(r) == 'Bearer realm="FakeProvider"'
    p.dpop = True
    r = requests.get(p.api_url, timeout=T)
    assert "DPoP algs=" in www_authenticate(r)


def test_dpop_nonce(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.dpop = True
    p.require_dpop_nonce = True
    key = ec_key()
    # The authorization code survives a use_dpop_nonce answer.
    verifier, challenge = pkce()
    query = {
        "response_type": "code",
        "client_id": "demo-client",
        "redirect_uri": CB,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    q = redirect_params(requests.get(p.authorize_url, params=query, allow_redirects=False, timeout=T))
    data = {"grant_type": "authorization_code", "code": q["code"], "redirect_uri": CB, "code_verifier": verifier}
    r = post(p.token_url, data, auth=BASIC, headers={"DPoP": dpop_proof(key, "POST", p.token_url)})
    assert error_of(r) == "use_dpop_nonce"
    nonce = r.headers["DPoP-Nonce"]
    assert nonce == p.dpop_nonce
    r = post(p.token_url, data, auth=BASIC, headers={"DPoP": dpop_proof(key, "POST", p.token_url, nonce="old")})
    assert error_of(r) == "use_dpop_nonce"
    r = post(p.token_url, data, auth=BASIC, headers={"DPoP": dpop_proof(key, "POST", p.token_url, nonce=nonce)})
    assert r.status_code == 200, r.text
    assert r.headers["DPoP-Nonce"] == nonce
    at = r.json()["access_token"]
    assert [x.error for x in p.dpop_proofs] == ["use_dpop_nonce", "use_dpop_nonce", None]
    # Resources: 401 with a DPoP challenge and the nonce.
    r = dpop_get(p.api_url, at, dpop_proof(key, "GET", p.api_url, token=at))
    assert error_of(r, 401) == "use_dpop_nonce"
    assert www_authenticate(r).startswith('DPoP error="use_dpop_nonce"')
    assert r.headers["DPoP-Nonce"] == nonce
    assert dpop_get(p.api_url, at, dpop_proof(key, "GET", p.api_url, token=at, nonce=nonce)).status_code == 200
    # A new nonce: the old one is refused.
    fresh = p.new_dpop_nonce()
    assert fresh != nonce
    r = dpop_get(p.api_url, at, dpop_proof(key, "GET", p.api_url, token=at, nonce=nonce))
    assert r.headers["DPoP-Nonce"] == fresh
    assert dpop_get(p.userinfo_url, at, dpop_proof(key, "GET", p.userinfo_url, token=at, nonce=fresh)).ok


def test_dpop_refresh_of_a_public_client_needs_the_same_key(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.dpop = True
    p.register_client("pub", None, auth_method="none")
    key = ec_key()
    tok = p.issue_token(client_id="pub", dpop_jkt=jwk_thumbprint(public_jwk(key)))
    assert tok["token_type"] == "DPoP"
    data = {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"], "client_id": "pub"}
    r = post(p.token_url, data)
    assert error_of(r) == "invalid_grant"
    r = post(p.token_url, data, headers={"DPoP": dpop_proof(ec_key(), "POST", p.token_url)})
    assert error_of(r) == "invalid_grant"
    assert "bound" in r.json()["error_description"]
    r = post(p.token_url, data, headers={"DPoP": dpop_proof(key, "POST", p.token_url)})
    assert r.status_code == 200, r.text
    new = r.json()
    assert new["token_type"] == "DPoP"
    at = new["access_token"]
    assert dpop_get(p.api_url, at, dpop_proof(key, "GET", p.api_url, token=at)).status_code == 200
    # The rotated refresh token is bound as well.
    data["refresh_token"] = new["refresh_token"]
    r = post(p.token_url, data, headers={"DPoP": dpop_proof(ec_key(), "POST", p.token_url)})
    assert error_of(r) == "invalid_grant"


def test_dpop_refresh_of_a_confidential_client(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.dpop = True
    key, other = ec_key(), ec_key()
    tok = p.issue_token(dpop_jkt=jwk_thumbprint(public_jwk(key)))
    data = {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]}
    # RFC 9449 section 5: the refresh token is bound to the client's credentials, not the key.
    r = post(p.token_url, data, auth=BASIC, headers={"DPoP": dpop_proof(other, "POST", p.token_url)})
    assert r.status_code == 200, r.text
    at = r.json()["access_token"]
    assert dpop_get(p.api_url, at, dpop_proof(other, "GET", p.api_url, token=at)).status_code == 200
    p.dpop_bind_refresh_tokens = True
    tok = p.issue_token(dpop_jkt=jwk_thumbprint(public_jwk(key)))
    data = {"grant_type": "refresh_token", "refresh_token": tok["refresh_token"]}
    r = post(p.token_url, data, auth=BASIC, headers={"DPoP": dpop_proof(other, "POST", p.token_url)})
    assert error_of(r) == "invalid_grant"
    r = post(p.token_url, data, auth=BASIC, headers={"DPoP": dpop_proof(key, "POST", p.token_url)})
    assert r.status_code == 200


def test_dpop_jkt_binds_the_authorization_code(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.dpop = True
    key = ec_key()
    jkt = jwk_thumbprint(public_jwk(key))
    for proof_key, ok in ((ec_key(), False), (key, True)):
        verifier, challenge = pkce()
        request_uri = push(p, code_challenge=challenge, dpop_jkt=jkt).json()["request_uri"]
        code = redirect_params(authorize_by_reference(p, request_uri))["code"]
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CB, "code_verifier": verifier}
        r = post(p.token_url, data, auth=BASIC, headers={"DPoP": dpop_proof(proof_key, "POST", p.token_url)})
        assert r.status_code == (200 if ok else 400), r.text
    # A DPoP proof at the PAR endpoint binds the code the same way.
    verifier, challenge = pkce()
    r = post(
        p.par_url,
        {"response_type": "code", "redirect_uri": CB, "code_challenge": challenge, "code_challenge_method": "S256"},
        auth=BASIC,
        headers={"DPoP": dpop_proof(key, "POST", p.par_url)},
    )
    assert r.status_code == 201, r.text
    code = redirect_params(authorize_by_reference(p, r.json()["request_uri"]))["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CB, "code_verifier": verifier}
    assert error_of(post(p.token_url, data, auth=BASIC)) == "invalid_grant"


# -- device authorization grant (RFC 8628) -----------------------------------------------------------


def start_device(p: FakeProvider, scope: str = "openid read") -> dict[str, Any]:
    r = post(p.device_authorization_url, {"scope": scope}, auth=BASIC)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    answer: dict[str, Any] = r.json()
    return answer


def poll(p: FakeProvider, device_code: str, auth: tuple[str, str] | None = BASIC, **extra: str) -> requests.Response:
    return post(p.token_url, {"grant_type": DEVICE_GRANT, "device_code": device_code, **extra}, auth=auth)


def test_device_flow(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.device_interval = 0
    d = start_device(p)
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", d["user_code"])
    assert d["verification_uri"] == p.device_verification_url
    assert d["verification_uri_complete"] == f"{p.device_verification_url}?user_code={d['user_code']}"
    assert d["expires_in"] == 600
    assert d["interval"] == 0
    assert p.pending_user_codes() == [d["user_code"]]
    assert error_of(poll(p, d["device_code"])) == "authorization_pending"
    p.add_user("bob", "builder")
    p.approve_device(d["user_code"].lower().replace("-", " "), "bob")
    assert p.pending_user_codes() == []
    r = poll(p, d["device_code"])
    assert r.status_code == 200, r.text
    tok = r.json()
    assert tok["scope"] == "openid read"
    assert jwt.decode(tok["id_token"], options={"verify_signature": False})["sub"] == "bob"
    assert requests.get(p.api_url, headers={"Authorization": f"Bearer {tok['access_token']}"}, timeout=T).ok
    # Single use.
    assert error_of(poll(p, d["device_code"])) == "invalid_grant"
    assert p.calls("token", grant_type=DEVICE_GRANT) == 3
    assert p.calls("device_authorization") == 1


def test_device_slow_down(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.device_interval = 1
    p.device_slow_down_increment = 0.5
    d = start_device(p)
    assert d["interval"] == 1
    assert error_of(poll(p, d["device_code"])) == "authorization_pending"
    r = poll(p, d["device_code"])
    assert error_of(r) == "slow_down"
    assert "1.5 seconds" in r.json()["error_description"]
    time.sleep(1.6)
    assert error_of(poll(p, d["device_code"])) == "authorization_pending"


def test_device_denied_expired_and_foreign(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.device_interval = 0
    d = start_device(p)
    p.deny_device(d["user_code"])
    assert error_of(poll(p, d["device_code"])) == "access_denied"
    assert error_of(poll(p, d["device_code"])) == "access_denied"
    with pytest.raises(ValueError, match="no pending"):
        p.approve_device(d["user_code"])
    with pytest.raises(ValueError, match="unknown user"):
        p.approve_device(d["user_code"], "nobody")
    p.device_code_ttl = 0
    d = start_device(p)
    assert d["expires_in"] == 0
    assert error_of(poll(p, d["device_code"])) == "expired_token"
    with pytest.raises(ValueError, match="no pending"):
        p.approve_device(d["user_code"])
    p.device_code_ttl = 600
    d = start_device(p)
    p.register_client("other", "secret")
    assert error_of(poll(p, d["device_code"], auth=("other", "secret"))) == "invalid_grant"
    assert error_of(poll(p, "unknown")) == "invalid_grant"
    assert error_of(post(p.token_url, {"grant_type": DEVICE_GRANT}, auth=BASIC)) == "invalid_request"
    assert error_of(poll(p, d["device_code"], auth=None), 401) == "invalid_client"


def test_device_authorization_client_authentication(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.device_interval = 0
    assert error_of(post(p.device_authorization_url, {"scope": "read"}), 401) == "invalid_client"
    r = post(p.device_authorization_url, {"client_id": "demo-client"})
    assert error_of(r, 401) == "invalid_client"
    p.register_client("tv", None, auth_method="none")
    r = post(p.device_authorization_url, {"client_id": "tv"})
    assert r.status_code == 200, r.text
    d = r.json()
    p.approve_device(d["user_code"])
    r = post(p.token_url, {"grant_type": DEVICE_GRANT, "device_code": d["device_code"], "client_id": "tv"})
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "read"
    assert error_of(post(p.device_authorization_url, {"scope": "a\\b"}, auth=BASIC)) == "invalid_scope"


def test_device_verification_page(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.auto_approve = False
    p.device_interval = 0
    d = start_device(p)
    page = requests.get(d["verification_uri_complete"], timeout=T)
    assert page.status_code == 200
    assert f'value="{d["user_code"]}"' in page.text
    assert 'id="approve"' in page.text
    assert p.pending_user_codes() == [d["user_code"]]
    assert requests.get(p.device_verification_url, timeout=T).status_code == 200
    r = post(p.device_verification_url, {"user_code": "wrong", "decision": "approve", "username": "alice"})
    assert r.status_code == 400
    code = d["user_code"].replace("-", "").lower()
    r = post(p.device_verification_url, {"user_code": code, "decision": "approve", "username": "alice"})
    assert r.status_code == 200
    assert '<p id="outcome">approved</p>' in r.text
    assert poll(p, d["device_code"]).status_code == 200
    d = start_device(p)
    r = post(p.device_verification_url, {"user_code": d["user_code"], "decision": "deny"})
    assert '<p id="outcome">denied</p>' in r.text
    assert error_of(poll(p, d["device_code"])) == "access_denied"
    # auto_approve: opening verification_uri_complete approves at once (as alice).
    p.auto_approve = True
    d = start_device(p)
    assert error_of(poll(p, d["device_code"])) == "authorization_pending"
    r = requests.get(d["verification_uri_complete"], timeout=T)
    assert '<p id="outcome">approved</p>' in r.text
    assert poll(p, d["device_code"]).status_code == 200
    assert requests.get(d["verification_uri_complete"], timeout=T).status_code == 400
    assert p.calls("device") == 7


def test_device_faults_and_dpop(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.device_interval = 0
    p.set_fault("device_authorization", Fault(status=503, times=1))
    assert post(p.device_authorization_url, {}, auth=BASIC).status_code == 503
    d = start_device(p)
    p.set_fault("token", Fault(status=400, json={"error": "slow_down"}, times=1, grant_type=DEVICE_GRANT))
    assert poll(p, d["device_code"]).json() == {"error": "slow_down"}
    p.approve_device(d["user_code"])
    p.dpop = True
    key = ec_key()
    r = post(
        p.token_url,
        {"grant_type": DEVICE_GRANT, "device_code": d["device_code"]},
        auth=BASIC,
        headers={"DPoP": dpop_proof(key, "POST", p.token_url)},
    )
    assert r.json()["token_type"] == "DPoP"


def test_reset_forgets_the_new_state(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.dpop = True
    p.require_dpop_nonce = True
    nonce = p.dpop_nonce
    d = start_device(p)
    request_uri = push(p, code_challenge=pkce()[1]).json()["request_uri"]
    post(p.token_url, {"grant_type": "client_credentials"}, auth=BASIC, headers={"DPoP": "x"})
    assert p.dpop_proofs
    p.reset()
    assert not p.dpop
    assert not p.require_dpop_nonce
    assert p.dpop_nonce != nonce
    assert p.dpop_proofs == []
    assert p.pending_user_codes() == []
    with pytest.raises(ValueError, match="no pending"):
        p.approve_device(d["user_code"])
    assert authorize_by_reference(p, request_uri).status_code == 400


def test_concurrent_replays_have_one_winner(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.dpop = True
    kc = KeyClient(p)
    auth = kc.auth()
    proof = dpop_proof(ec_key(), "POST", p.token_url)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: client_credentials(p, auth).status_code, range(8)))
        assert sorted(answers) == [200] + [401] * 7
        send = lambda _: client_credentials(p, {}, auth=BASIC, headers={"DPoP": proof}).status_code  # noqa: E731
        assert sorted(pool.map(send, range(8))) == [200] + [400] * 7


def test_several_dpop_headers_are_refused(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.dpop = True
    key = ec_key()
    body = "grant_type=client_credentials"
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=T)
    try:
        conn.putrequest("POST", "/token")
        conn.putheader("Authorization", "Basic " + base64.b64encode(b"demo-client:demo-secret").decode())
        conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("DPoP", dpop_proof(key, "POST", p.token_url))
        conn.putheader("DPoP", dpop_proof(key, "POST", p.token_url))
        conn.endheaders(body.encode())
        answer = conn.getresponse()
        payload = json.loads(answer.read())
    finally:
        conn.close()
    assert answer.status == 400
    assert payload["error"] == "invalid_dpop_proof"
    assert "more than one" in payload["error_description"]
    # A proof at the PAR endpoint must agree with a dpop_jkt sent along.
    r = post(
        p.par_url,
        par_fields(code_challenge=pkce()[1], dpop_jkt=jwk_thumbprint(public_jwk(ec_key()))),
        auth=BASIC,
        headers={"DPoP": dpop_proof(key, "POST", p.par_url)},
    )
    assert error_of(r) == "invalid_dpop_proof"
