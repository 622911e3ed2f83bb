"""FakeProvider as an OpenID provider, over its real socket with ``requests``; tokens checked with PyJWT."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from flask_oauth2_client.testing import FakeProvider
from flask_oauth2_client.testing import Fault
from flask_oauth2_client.testing import SigningKey

CB = "http://127.0.0.1:9/callback"
BYE = "http://127.0.0.1:9/signed-out?app=1"
BASIC = ("demo-client", "demo-secret")
T = 5  # seconds; every request has a timeout


# -- helpers -------------------------------------------------------------------------------------


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(p: FakeProvider, **params: str) -> tuple[requests.Response, str]:
    verifier, challenge = pkce()
    query = {
        "response_type": "code",
        "client_id": p.client_id,
        "redirect_uri": CB,
        "state": "xyz",
        "scope": "openid profile email",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **params,
    }
    return requests.get(p.authorize_url, params=query, allow_redirects=False, timeout=T), verifier


def callback_params(r: requests.Response) -> dict[str, str]:
    assert r.status_code == 302, r.text
    url = urlsplit(r.headers["Location"])
    assert (url.netloc, url.path) == ("127.0.0.1:9", "/callback")
    return dict(parse_qsl(url.query))


def login(p: FakeProvider, **params: str) -> dict[str, Any]:
    """Authorization code flow; the token response."""
    r, verifier = authorize(p, **params)
    code = callback_params(r)["code"]
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CB, "code_verifier": verifier}
    answer = requests.post(p.token_url, data=data, auth=BASIC, timeout=T)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def post(url: str, auth: tuple[str, str] | None = BASIC, **data: str) -> requests.Response:
    return requests.post(url, data=data, auth=auth, allow_redirects=False, timeout=T)


def refresh(p: FakeProvider, refresh_token: str, **extra: str) -> dict[str, Any]:
    r = post(p.token_url, grant_type="refresh_token", refresh_token=refresh_token, **extra)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def fetch_jwks(p: FakeProvider) -> jwt.PyJWKSet:
    r = requests.get(p.jwks_url, timeout=T)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    return jwt.PyJWKSet.from_dict(r.json())


def verify(p: FakeProvider, token: str, *, aud: str = "demo-client", **options: Any) -> dict[str, Any]:
    """Full verification against the published JWKS, as a relying party does it."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = fetch_jwks(p)[kid]
    claims: dict[str, Any] = jwt.decode(
        token,
        key,
        algorithms=["RS256", "ES256"],
        audience=aud,
        issuer=p.issuer,
        options={"require": ["iss", "sub", "aud", "exp", "iat"], **options},
    )
    return claims


def segments(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """Header, payload and signature of a compact JWS, unverified."""
    header, payload, signature = token.split(".")

    def decode(part: str) -> bytes:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    return json.loads(decode(header)), json.loads(decode(payload)), decode(signature)


def half_hash(value: str) -> str:
    digest = hashlib.sha256(value.encode()).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


# -- discovery and keys --------------------------------------------------------------------------


def test_openid_configuration(fake_provider: FakeProvider) -> None:
    p = fake_provider
    assert p.openid_configuration_url == p.url + "/.well-known/openid-configuration"
    r = requests.get(p.openid_configuration_url, timeout=T)
    assert (r.status_code, r.headers["Content-Type"]) == (200, "application/json")
    meta = r.json()
    assert meta["issuer"] == p.issuer
    assert meta["authorization_endpoint"] == p.authorize_url
    assert meta["token_endpoint"] == p.token_url
    assert meta["userinfo_endpoint"] == p.userinfo_url
    assert meta["jwks_uri"] == p.jwks_url == p.url + "/jwks"
    assert meta["revocation_endpoint"] == p.revocation_url
    assert meta["end_session_endpoint"] == p.end_session_url == p.url + "/logout"
    assert {"openid", "profile", "email"} <= set(meta["scopes_supported"])
    assert "code" in meta["response_types_supported"]
    assert {"authorization_code", "refresh_token"} <= set(meta["grant_types_supported"])
    assert meta["subject_types_supported"] == ["public"]
    assert meta["id_token_signing_alg_values_supported"] == ["RS256"]
    assert "client_secret_basic" in meta["token_endpoint_auth_methods_supported"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["authorization_response_iss_parameter_supported"] is False  # send_iss is off by default
    assert p.calls("openid_configuration") == 1
    assert p.calls("metadata") == 0
    # the RFC 8414 document says the same
    assert requests.get(p.metadata_url, timeout=T).json() == meta


def test_metadata_overrides_and_iss_support(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.send_iss = True
    p.metadata_overrides = {"issuer": "https://wrong.example", "end_session_endpoint": None}
    for url in (p.openid_configuration_url, p.metadata_url):
        meta = requests.get(url, timeout=T).json()
        assert meta["issuer"] == "https://wrong.example"
        assert "end_session_endpoint" not in meta
        assert meta["authorization_response_iss_parameter_supported"] is True
    p.reset()
    meta = requests.get(p.openid_configuration_url, timeout=T).json()
    assert meta["issuer"] == p.issuer
    assert meta["authorization_response_iss_parameter_supported"] is False


def test_jwks_publishes_public_keys_only(fake_provider: FakeProvider) -> None:
    p = fake_provider
    keys = requests.get(p.jwks_url, timeout=T).json()["keys"]
    assert keys == p.jwks()["keys"]
    assert [k["kid"] for k in keys] == [k.kid for k in p.signing_keys]
    rsa_jwk = next(k for k in keys if k["kid"] == p.current_key().kid)
    assert (rsa_jwk["kty"], rsa_jwk["alg"], rsa_jwk["use"]) == ("RSA", "RS256", "sig")
    private_key = p.current_key().private_key
    assert isinstance(private_key, rsa.RSAPrivateKey)
    assert private_key.key_size == 2048
    ec_jwk = next(k for k in keys if k["kid"] == p.current_key("ES256").kid)
    assert (ec_jwk["kty"], ec_jwk["crv"], ec_jwk["alg"]) == ("EC", "P-256", "ES256")
    for jwk in keys:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    assert len(fetch_jwks(p).keys) == len(keys)
    assert p.calls("jwks") == 2


def test_key_rotation(fake_provider: FakeProvider) -> None:
    p = fake_provider
    first_kid = p.current_key().kid
    before = p.make_id_token()
    new = p.rotate_keys()
    assert new.kid != first_kid
    assert p.current_key() == new
    after = p.make_id_token()
    assert jwt.get_unverified_header(after)["kid"] == new.kid
    kids = [k["kid"] for k in requests.get(p.jwks_url, timeout=T).json()["keys"]]
    assert {first_kid, new.kid} <= set(kids)
    assert verify(p, before)["sub"] == verify(p, after)["sub"] == "alice"
    newest = p.rotate_keys(keep_old=False)
    kids = [k["kid"] for k in requests.get(p.jwks_url, timeout=T).json()["keys"]]
    assert newest.kid in kids
    assert new.kid not in kids
    assert first_kid in kids  # keep_old=False drops the previous key only
    with pytest.raises(KeyError):
        verify(p, after)
    p.reset()  # the keys the provider started with
    assert p.current_key().kid == first_kid
    assert {k.kid for k in p.signing_keys} == {first_kid, p.current_key("ES256").kid}


def test_rotating_the_ec_key(fake_provider: FakeProvider) -> None:
    p = fake_provider
    rsa_kid, ec_kid = p.current_key().kid, p.current_key("ES256").kid
    new = p.rotate_keys(alg="ES256", keep_old=False)
    assert new.alg == "ES256"
    assert p.current_key().kid == rsa_kid
    assert {k.kid for k in p.signing_keys} == {rsa_kid, new.kid}
    assert ec_kid not in {k.kid for k in p.signing_keys}
    with pytest.raises(ValueError, match="no signing key"):
        p.current_key("PS256")


# -- ID tokens from the token endpoint -----------------------------------------------------------


def test_code_flow_returns_a_valid_id_token(fake_provider: FakeProvider) -> None:
    p = fake_provider
    tok = login(p, nonce="n-0S6_WzA2Mj")
    header, _, _ = segments(tok["id_token"])
    assert header == {"alg": "RS256", "typ": "JWT", "kid": p.current_key().kid}
    claims = verify(p, tok["id_token"])
    assert claims["iss"] == p.issuer
    assert claims["sub"] == "alice"
    assert claims["aud"] == claims["azp"] == "demo-client"
    assert claims["exp"] - claims["iat"] == 300
    assert abs(claims["iat"] - time.time()) < 5
    assert claims["auth_time"] <= claims["iat"]
    assert claims["nonce"] == "n-0S6_WzA2Mj"
    assert claims["at_hash"] == half_hash(tok["access_token"])
    assert (claims["name"], claims["email"]) == ("Alice Liddell", "alice@example.test")
    assert p.has_session("alice")


def test_claims_follow_the_scopes(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.add_user("bob", "builder", sub="user-42", name="Bob", email="bob@example.test", team="blue")
    tok = login(p, scope="openid email", login_hint="bob")
    claims = verify(p, tok["id_token"])
    assert claims["sub"] == "user-42"
    assert claims["email"] == "bob@example.test"
    assert claims["team"] == "blue"  # custom claims are not tied to a scope
    assert "name" not in claims
    assert "nonce" not in claims  # none was sent
    me = requests.get(p.userinfo_url, headers={"Authorization": f"Bearer {tok['access_token']}"}, timeout=T)
    assert me.json() == {"sub": "user-42", "email": "bob@example.test", "team": "blue"}


def test_no_openid_no_id_token(fake_provider: FakeProvider) -> None:
    tok = login(fake_provider, scope="read")
    assert "id_token" not in tok
    assert "id_token" not in fake_provider.issue_token(scopes="read")


def test_other_grants(fake_provider: FakeProvider) -> None:
    p = fake_provider
    r = post(p.token_url, grant_type="password", username="alice", password="wonderland", scope="openid")
    claims = verify(p, r.json()["id_token"])
    assert claims["sub"] == "alice"
    assert "email" not in claims
    r = post(p.token_url, grant_type="client_credentials", scope="openid")
    assert "id_token" not in r.json()
    issued = p.issue_token(scopes=("openid", "email"))
    assert verify(p, issued["id_token"])["at_hash"] == half_hash(issued["access_token"])


def test_refresh_returns_a_fresh_id_token(fake_provider: FakeProvider) -> None:
    p = fake_provider
    first = login(p, nonce="abc")
    original = verify(p, first["id_token"])
    second = refresh(p, first["refresh_token"])
    assert second["id_token"] != first["id_token"]
    claims = verify(p, second["id_token"])
    assert (claims["sub"], claims["aud"], claims["auth_time"]) == ("alice", "demo-client", original["auth_time"])
    assert claims["iat"] >= original["iat"]
    assert "nonce" not in claims
    assert claims["at_hash"] == half_hash(second["access_token"])
    # a narrower scope still gets an ID token, with fewer claims
    third = refresh(p, second["refresh_token"], scope="openid")
    assert "email" not in verify(p, third["id_token"])
    p.id_token_on_refresh = False
    assert "id_token" not in refresh(p, third["refresh_token"])


def test_refresh_of_a_non_openid_grant(fake_provider: FakeProvider) -> None:
    tok = login(fake_provider, scope="read")
    assert "id_token" not in refresh(fake_provider, tok["refresh_token"])


def test_id_token_ttl_and_es256() -> None:
    with FakeProvider(id_token_ttl=60, id_token_signing_alg="ES256") as p:
        meta = requests.get(p.openid_configuration_url, timeout=T).json()
        assert meta["id_token_signing_alg_values_supported"] == ["ES256"]
        tok = login(p)
        header, _, signature = segments(tok["id_token"])
        assert (header["alg"], header["kid"]) == ("ES256", p.current_key("ES256").kid)
        assert len(signature) == 64  # JWS (R || S), not DER
        claims = verify(p, tok["id_token"])
        assert claims["exp"] - claims["iat"] == 60
        p.id_token_signing_alg = "RS256"  # writable, restored by reset()
        assert segments(p.make_id_token())[0]["alg"] == "RS256"
        p.reset()
        assert p.id_token_signing_alg == "ES256"
    with pytest.raises(ValueError, match="id_token_signing_alg"):
        FakeProvider(id_token_signing_alg="HS256")


def test_userinfo_sub_knob(fake_provider: FakeProvider) -> None:
    p = fake_provider
    tok = login(p)
    p.userinfo_sub = "somebody-else"
    me = requests.get(p.userinfo_url, headers={"Authorization": f"Bearer {tok['access_token']}"}, timeout=T).json()
    assert me["sub"] == "somebody-else"
    assert verify(p, tok["id_token"])["sub"] == "alice"
    p.reset()
    assert p.userinfo_sub is None


# -- forged ID tokens -----------------------------------------------------------------------------


def test_make_id_token_defaults(fake_provider: FakeProvider) -> None:
    p = fake_provider
    token = p.make_id_token(nonce="n", access_token="at")
    claims = verify(p, token)
    assert (claims["nonce"], claims["at_hash"]) == ("n", half_hash("at"))
    assert claims["azp"] == "demo-client"
    other = p.make_id_token(client_id="c2", user="alice", scopes=["openid"])
    claims = verify(p, other, aud="c2")
    assert "email" not in claims
    with pytest.raises(ValueError, match="unknown user"):
        p.make_id_token(user="nobody")


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"iss": "https://evil.example"}, jwt.InvalidIssuerError),
        ({"aud": "another-client"}, jwt.InvalidAudienceError),
        ({"exp": int(time.time()) - 3600}, jwt.ExpiredSignatureError),
        ({"iat": int(time.time()) + 3600}, jwt.ImmatureSignatureError),
        ({"sub": None}, jwt.MissingRequiredClaimError),
    ],
)
def test_make_id_token_claims_override(
    fake_provider: FakeProvider, override: dict[str, Any], error: type[Exception]
) -> None:
    token = fake_provider.make_id_token(override)
    with pytest.raises(error):
        verify(fake_provider, token)


def test_make_id_token_extra_audience_and_nonce(fake_provider: FakeProvider) -> None:
    p = fake_provider
    claims = verify(p, p.make_id_token({"aud": ["demo-client", "other"]}))
    assert claims["aud"] == ["demo-client", "other"]
    assert "nonce" not in verify(p, p.make_id_token({"nonce": None}, nonce="n"))
    assert verify(p, p.make_id_token({"nonce": "wrong"}, nonce="n"))["nonce"] == "wrong"


def test_make_id_token_bad_signature(fake_provider: FakeProvider) -> None:
    p = fake_provider
    foreign = SigningKey.generate()
    # a bare private key: the header names the provider's current kid, the signature does not match
    token = p.make_id_token(key=foreign.private_key)
    assert jwt.get_unverified_header(token)["kid"] == p.current_key().kid
    with pytest.raises(jwt.InvalidSignatureError):
        verify(p, token)
    # a SigningKey: its own kid, unknown to the JWKS
    token = p.make_id_token(key=foreign)
    assert jwt.get_unverified_header(token)["kid"] == foreign.kid
    with pytest.raises(KeyError):
        verify(p, token)
    # an unknown kid on a correct signature
    token = p.make_id_token(headers={"kid": "no-such-key"})
    with pytest.raises(KeyError):
        verify(p, token)
    assert "kid" not in jwt.get_unverified_header(p.make_id_token(headers={"kid": None}))


def test_make_id_token_with_the_ec_key(fake_provider: FakeProvider) -> None:
    p = fake_provider
    token = p.make_id_token(key=p.current_key("ES256"))
    assert segments(token)[0]["alg"] == "ES256"
    assert verify(p, token)["sub"] == "alice"
    token = p.make_id_token(key=p.current_key(), alg="PS256")
    assert segments(token)[0]["alg"] == "PS256"
    kid = segments(token)[0]["kid"]
    key = fetch_jwks(p)[kid]
    assert jwt.decode(token, key.key, algorithms=["PS256"], audience="demo-client")["sub"] == "alice"


def test_make_id_token_unsigned(fake_provider: FakeProvider) -> None:
    token = fake_provider.make_id_token(unsigned=True)
    header, payload, signature = segments(token)
    assert header == {"alg": "none", "typ": "JWT"}
    assert token.endswith(".")
    assert signature == b""
    assert payload["iss"] == fake_provider.issuer
    assert segments(fake_provider.make_id_token(unsigned=True, alg="None"))[0]["alg"] == "None"
    public_key = fake_provider.current_key().private_key.public_key()
    with pytest.raises(jwt.InvalidAlgorithmError):
        jwt.decode(token, public_key, algorithms=["RS256"], audience="demo-client")


def test_make_id_token_signed_with_the_client_secret(fake_provider: FakeProvider) -> None:
    p = fake_provider
    token = p.make_id_token(sign_with_secret=p.client_secret)
    header, payload, signature = segments(token)
    assert header == {"alg": "HS256", "typ": "JWT"}
    signing_input = token.rsplit(".", 1)[0].encode()
    assert hmac.compare_digest(signature, hmac.new(b"demo-secret", signing_input, hashlib.sha256).digest())
    assert payload["aud"] == "demo-client"
    header, _, signature = segments(p.make_id_token(sign_with_secret="s", alg="HS512"))
    assert (header["alg"], len(signature)) == ("HS512", 64)
    # the header may lie about the algorithm
    assert segments(p.make_id_token(headers={"alg": "HS256"}))[0]["alg"] == "HS256"
    with pytest.raises(ValueError, match="HMAC"):
        p.make_id_token(sign_with_secret="s", alg="RS256")
    with pytest.raises(ValueError, match="at most one"):
        p.make_id_token(sign_with_secret="s", unsigned=True)
    with pytest.raises(ValueError, match="cannot sign"):
        p.make_id_token(alg="none")


# -- a given ID token in the next token response --------------------------------------------------


def test_set_next_id_token_string(fake_provider: FakeProvider) -> None:
    p = fake_provider
    forged = p.make_id_token({"iss": "https://evil.example"})
    p.set_next_id_token(forged)
    assert login(p)["id_token"] == forged
    assert login(p)["id_token"] != forged  # only once


def test_set_next_id_token_callable_sees_the_genuine_claims(fake_provider: FakeProvider) -> None:
    p = fake_provider
    seen: list[dict[str, Any]] = []

    def wrong_nonce(claims: dict[str, Any]) -> str:
        seen.append(claims)
        return p.make_id_token({**claims, "nonce": "not-yours"})

    p.set_next_id_token(wrong_nonce)
    tok = login(p, nonce="mine")
    assert seen[0]["nonce"] == "mine"
    assert seen[0]["at_hash"] == half_hash(tok["access_token"])
    claims = verify(p, tok["id_token"])
    assert (claims["nonce"], claims["at_hash"]) == ("not-yours", half_hash(tok["access_token"]))


def test_set_next_id_token_none_and_grant_type(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.set_next_id_token(None, grant_type="refresh_token")
    tok = login(p)  # an authorization_code request: not concerned
    assert "id_token" in tok
    again = refresh(p, tok["refresh_token"])
    assert "id_token" not in again
    assert "access_token" in again
    # on a grant that would have no ID token, one is added
    p.set_next_id_token(lambda claims: p.make_id_token(claims))
    assert "id_token" in login(p, scope="read")


def test_id_token_fault_with_times(fake_provider: FakeProvider) -> None:
    p = fake_provider
    other = p.make_id_token({"sub": "mallory"})
    p.set_fault("token", Fault(status=None, id_token=other, times=2, grant_type="refresh_token"))
    tok = login(p)
    assert verify(p, tok["id_token"])["sub"] == "alice"
    second = refresh(p, tok["refresh_token"])
    third = refresh(p, second["refresh_token"])
    assert second["id_token"] == third["id_token"] == other
    fourth = refresh(p, third["refresh_token"])
    assert verify(p, fourth["id_token"])["sub"] == "alice"
    assert p.calls("token", grant_type="refresh_token") == 3


# -- RFC 9207 ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("send_iss", "expected"),
    [(False, None), (True, "ISSUER"), ("https://wrong.example", "https://wrong.example")],
)
def test_iss_in_authorization_responses(
    fake_provider: FakeProvider, send_iss: bool | str, expected: str | None
) -> None:
    p = fake_provider
    p.send_iss = send_iss
    want = p.issuer if expected == "ISSUER" else expected
    ok = callback_params(authorize(p)[0])
    error = callback_params(authorize(p, code_challenge_method="plain")[0])
    assert "code" in ok
    assert error["error"] == "invalid_request"
    for params in (ok, error):
        assert params.get("iss") == want
        assert params["state"] == "xyz"
    p.set_fault("authorize", Fault(json={"error": "access_denied"}))
    assert callback_params(authorize(p)[0]).get("iss") == want


# -- provider sessions, prompt and max_age -------------------------------------------------------


def test_prompt_none_needs_a_session(fake_provider: FakeProvider) -> None:
    p = fake_provider
    params = callback_params(authorize(p, prompt="none")[0])
    assert (params["error"], params["state"]) == ("login_required", "xyz")
    assert not p.has_session()
    first = verify(p, login(p)["id_token"])
    assert p.has_session("alice")
    silent = verify(p, login(p, prompt="none")["id_token"])
    assert silent["auth_time"] == first["auth_time"]
    time.sleep(1.1)
    forced = verify(p, login(p, prompt="login")["id_token"])
    assert forced["auth_time"] > first["auth_time"]
    params = callback_params(authorize(p, prompt="none", max_age="0")[0])
    assert params["error"] == "login_required"
    time.sleep(1.1)
    assert verify(p, login(p, max_age="0")["id_token"])["auth_time"] > forced["auth_time"]
    assert callback_params(authorize(p, prompt="none login")[0])["error"] == "invalid_request"
    assert callback_params(authorize(p, max_age="-1")[0])["error"] == "invalid_request"


# -- RP-initiated logout -------------------------------------------------------------------------


def logout(p: FakeProvider, method: str = "GET", **params: str) -> requests.Response:
    if method == "POST":
        return requests.post(p.end_session_url, data=params, allow_redirects=False, timeout=T)
    return requests.get(p.end_session_url, params=params, allow_redirects=False, timeout=T)


def assert_refused(r: requests.Response) -> None:
    assert r.status_code == 400
    assert "Location" not in r.headers
    assert r.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_logout_redirects_back_with_state(fake_provider: FakeProvider, method: str) -> None:
    p = fake_provider
    p.register_client("rp", "rp-secret", post_logout_redirect_uris=[BYE])
    hint = p.make_id_token(client_id="rp")
    login(p)
    assert p.has_session("alice")
    r = logout(p, method, id_token_hint=hint, post_logout_redirect_uri=BYE, state="s 1")
    assert r.status_code == 302
    assert r.headers["Location"] == BYE + "&state=s+1"
    assert r.headers["Cache-Control"] == "no-store"
    assert not p.has_session("alice")
    assert p.calls("logout") == 1
    recorded = p.requests[-1]
    assert (recorded.endpoint, recorded.method) == ("logout", method)
    assert recorded.params["id_token_hint"] == hint


def test_logout_variants(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.register_client("rp", "rp-secret", post_logout_redirect_uris=[BYE])
    p.add_user("bob", "builder")
    # an expired hint is still a valid hint; client_id may come along with it; no state, no state back
    login(p)
    login(p, login_hint="bob")
    expired = p.make_id_token({"exp": int(time.time()) - 3600}, client_id="rp")
    r = logout(p, id_token_hint=expired, client_id="rp", post_logout_redirect_uri=BYE)
    assert (r.status_code, r.headers["Location"]) == (302, BYE)
    assert not p.has_session("alice")
    assert p.has_session("bob")  # only the hint's user is signed out
    # client_id instead of a hint; no post_logout_redirect_uri: a page; everybody is signed out
    assert logout(p, client_id="rp", post_logout_redirect_uri=BYE).status_code == 302
    r = logout(p)
    assert (r.status_code, r.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
    assert "Signed out" in r.text
    assert not p.has_session("bob")
    # the default client accepts any http(s) URI, like its redirect_uris
    r = logout(p, id_token_hint=p.make_id_token(), post_logout_redirect_uri="http://127.0.0.1:9/bye", state="x")
    assert r.headers["Location"] == "http://127.0.0.1:9/bye?state=x"
    assert p.calls("logout") == 4


def test_logout_refusals(fake_provider: FakeProvider) -> None:
    p = fake_provider
    p.register_client("rp", "rp-secret", post_logout_redirect_uris=[BYE])
    p.register_client("rp2", "rp2-secret", post_logout_redirect_uris=[])
    hint = p.make_id_token(client_id="rp")
    login(p)
    # not registered for this client
    assert_refused(logout(p, id_token_hint=hint, post_logout_redirect_uri=BYE + "&x=1"))
    assert_refused(logout(p, client_id="rp2", post_logout_redirect_uri=BYE))
    assert_refused(logout(p, id_token_hint=p.make_id_token(client_id="rp2"), post_logout_redirect_uri=BYE))
    # hints not issued by this provider, or for another client
    assert_refused(logout(p, id_token_hint=p.make_id_token(key=SigningKey.generate().private_key, client_id="rp")))
    assert_refused(logout(p, id_token_hint=p.make_id_token({"iss": "https://evil.example"}, client_id="rp")))
    assert_refused(logout(p, id_token_hint=p.make_id_token(unsigned=True, client_id="rp")))
    assert_refused(logout(p, id_token_hint=p.make_id_token(sign_with_secret="rp-secret", client_id="rp")))
    assert_refused(logout(p, id_token_hint="not-a-jwt"))
    assert_refused(logout(p, id_token_hint=hint, client_id="rp2"))
    # no way to know the client; unknown client
    assert_refused(logout(p, post_logout_redirect_uri=BYE))
    assert_refused(logout(p, client_id="nobody"))
    r = requests.get(f"{p.end_session_url}?state=a&state=b", allow_redirects=False, timeout=T)
    assert_refused(r)
    assert p.has_session("alice")  # nothing above signed anybody out
    # a retired key no longer vouches for its hints
    p.rotate_keys(keep_old=False)
    assert_refused(logout(p, id_token_hint=hint))
    p.set_fault("logout", Fault(status=503, times=1))
    assert logout(p).status_code == 503


# -- concurrency ---------------------------------------------------------------------------------


def test_concurrent_issuance_and_rotation(fake_provider: FakeProvider) -> None:
    p = fake_provider

    def password_grant(i: int) -> str:
        if i % 4 == 0:
            p.rotate_keys()
        r = post(p.token_url, grant_type="password", username="alice", password="wonderland", scope="openid")
        return str(r.json()["id_token"])

    with ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(password_grant, range(24)))
    assert len(p.signing_keys) == 2 + 6  # RS256 + ES256, plus six rotations kept
    for token in tokens:
        assert verify(p, token)["sub"] == "alice"
