"""Harness tests for the features beyond the code flow, with plain ``requests`` (not our library):
private_key_jwt / client_secret_jwt (RFC 7523), pushed authorization requests (RFC 9126), DPoP
(RFC 9449) and the device authorization grant (RFC 8628) against oidc-provider 9.13.3.

They pin down what oidc-provider does, so that the client library's interop tests can rely on it:

* Client assertions (private_key_jwt, client_secret_jwt) must have ``iss`` = ``sub`` = client_id,
  ``aud``, ``jti`` and ``exp``. The accepted ``aud`` values are exactly: the issuer identifier, the
  token endpoint URL, and the URL of the endpoint receiving the assertion (so at the PAR endpoint:
  issuer, token endpoint or PAR endpoint; at the token endpoint: issuer or token endpoint; never
  another endpoint's URL). An array ``aud`` passes when one of its values is accepted. (Under a
  FAPI 2.0 profile only the issuer is accepted; the harness runs none.) A ``jti`` is accepted once
  per client until the assertion's ``exp`` (+15 s clock tolerance): a replay is ``invalid_client``.
  Every refusal is ``401 invalid_client`` with the description "client authentication failed".
* A client's ``jwks_uri`` may be http://; oidc-provider's SSRF protection refuses loopback
  addresses though, so the launcher needs ``fetch_loopback=True`` for a JWKS served on 127.0.0.1.
  Fetched keys are cached for max(60 s, Cache-Control max-age, Expires); a signature that does not
  verify refetches only once that time has passed (or when the client is re-registered).
* PAR is on by default (endpoint ``/request``); a ``request_uri`` lives 60 s and is single-use.
* DPoP is on by default; nonces only with the launcher's ``dpop`` option. Refresh tokens of
  confidential clients are not bound to the DPoP key (any key, or none, may refresh them); those
  of public clients are.
* oidc-provider's device flow sends no ``interval`` and never answers ``slow_down``; the launcher's
  ``device_flow`` option emulates both.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
import requests
from interop.conftest import CLIENT_ID
from interop.conftest import CLIENT_SECRET
from interop.conftest import DEFAULT_CLIENT
from interop.conftest import DEVICE_CODE_GRANT
from interop.conftest import JWT_BEARER_ASSERTION
from interop.conftest import ClientKey
from interop.conftest import JWKSServer
from interop.conftest import OIDCProvider
from interop.conftest import ProviderFactory
from interop.conftest import client_assertion
from interop.conftest import dpop_proof
from interop.conftest import make_client_key
from interop.op_driver import OPDriverError
from interop.op_driver import approve_device
from interop.op_driver import authorize
from interop.op_driver import deny_device
from interop.op_driver import device_flow

REDIRECT_URI = "http://localhost/oauth2/op/callback"
AUTH = (CLIENT_ID, CLIENT_SECRET)
TIMEOUT = 5


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorization_params(client_id: str, challenge: str, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile offline_access",
        "prompt": "consent",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **extra,
    }


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def get_code(provider: OIDCProvider, client_id: str) -> tuple[str, str]:
    """A code flow up to the code (plain authorization request); returns (code, verifier)."""
    verifier, challenge = pkce_pair()
    url = f"{provider.endpoint('authorization')}?{urlencode(authorization_params(client_id, challenge))}"
    params = query(authorize(url))
    assert "code" in params, params
    return params["code"], verifier


def code_grant(code: str, verifier: str) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI, "code_verifier": verifier}


def assertion_params(assertion: str) -> dict[str, str]:
    return {"client_assertion_type": JWT_BEARER_ASSERTION, "client_assertion": assertion}


def post(url: str, data: dict[str, str], **kwargs: Any) -> requests.Response:
    return requests.post(url, data=data, timeout=TIMEOUT, **kwargs)


def error_of(answer: requests.Response) -> str:
    return str(answer.json()["error"])


# -- private_key_jwt and client_secret_jwt (RFC 7523) ------------------------------------------------

PKJ_CLIENT_ID = "pkj-client"
CSJ_CLIENT_ID = "csj-client"
CSJ_SECRET = "csj-secret-that-is-at-least-32-bytes-long-for-HS256"


def pkj_client(key: ClientKey | None = None, **metadata: Any) -> dict[str, Any]:
    client: dict[str, Any] = {
        "client_id": PKJ_CLIENT_ID,
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "private_key_jwt",
        "scope": "openid profile offline_access api:read",
    }
    if key is not None:
        client["jwks"] = key.jwks()
    client.update(metadata)
    return client


CSJ_CLIENT: dict[str, Any] = {
    "client_id": CSJ_CLIENT_ID,
    "client_secret": CSJ_SECRET,
    "redirect_uris": [REDIRECT_URI],
    "grant_types": ["authorization_code", "client_credentials"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "client_secret_jwt",
    "scope": "openid profile offline_access api:read",
}


@pytest.fixture(scope="module")
def client_key() -> ClientKey:
    return make_client_key("ES256")


@pytest.fixture(scope="module")
def jwt_auth_provider(oidc_provider_factory: ProviderFactory, client_key: ClientKey) -> OIDCProvider:
    """Clients with private_key_jwt (jwks) and client_secret_jwt; device flow on as well."""
    grant_types = ["authorization_code", "refresh_token", "client_credentials", DEVICE_CODE_GRANT]
    clients = [DEFAULT_CLIENT, pkj_client(client_key, grant_types=grant_types), CSJ_CLIENT]
    return oidc_provider_factory(clients=clients, device_flow=True)


def client_credentials(provider: OIDCProvider, assertion: str, url: str | None = None) -> requests.Response:
    data = {"grant_type": "client_credentials", "scope": "api:read", **assertion_params(assertion)}
    return post(url or provider.endpoint("token"), data)


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_private_key_jwt_algorithms(oidc_provider_factory: ProviderFactory, alg: str) -> None:
    key = make_client_key(alg)
    provider = oidc_provider_factory(clients=[pkj_client(key)])
    answer = client_credentials(provider, client_assertion(PKJ_CLIENT_ID, provider.issuer, key=key))
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "Bearer"


def test_private_key_jwt_code_flow(jwt_auth_provider: OIDCProvider, client_key: ClientKey) -> None:
    provider = jwt_auth_provider
    code, verifier = get_code(provider, PKJ_CLIENT_ID)
    assertion = client_assertion(PKJ_CLIENT_ID, provider.endpoint("token"), key=client_key)
    answer = post(provider.endpoint("token"), {**code_grant(code, verifier), **assertion_params(assertion)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id_token"]
    # the refresh grant authenticates the same way (a fresh assertion: each jti is single-use)
    assertion = client_assertion(PKJ_CLIENT_ID, provider.issuer, key=client_key)
    refreshed = post(
        provider.endpoint("token"),
        {"grant_type": "refresh_token", "refresh_token": body["refresh_token"], **assertion_params(assertion)},
    )
    assert refreshed.status_code == 200, refreshed.text
    # the client_id parameter may accompany the assertion, it must match its sub
    assertion = client_assertion(PKJ_CLIENT_ID, provider.issuer, key=client_key)
    data = {"grant_type": "client_credentials", "client_id": PKJ_CLIENT_ID, **assertion_params(assertion)}
    assert post(provider.endpoint("token"), data).status_code == 200
    assertion = client_assertion(PKJ_CLIENT_ID, provider.issuer, key=client_key)
    data = {"grant_type": "client_credentials", "client_id": CLIENT_ID, **assertion_params(assertion)}
    mismatch = post(provider.endpoint("token"), data)
    assert mismatch.status_code == 400
    assert mismatch.json() == {"error": "invalid_request", "error_description": "client_id mismatch"}


def test_private_key_jwt_refusals(jwt_auth_provider: OIDCProvider, client_key: ClientKey) -> None:
    provider = jwt_auth_provider

    def refused(assertion: str) -> None:
        answer = client_credentials(provider, assertion)
        assert answer.status_code == 401, answer.text
        assert answer.json() == {"error": "invalid_client", "error_description": "client authentication failed"}

    # wrong key (same kid)
    other = make_client_key("ES256", kid=client_key.kid)
    refused(client_assertion(PKJ_CLIENT_ID, provider.issuer, key=other))
    # replayed jti: accepted once, then refused (oidc-provider's ReplayDetection, until exp + 15 s)
    assertion = client_assertion(PKJ_CLIENT_ID, provider.issuer, key=client_key)
    assert client_credentials(provider, assertion).status_code == 200
    refused(assertion)
    jti = secrets.token_hex(8)
    first = client_credentials(provider, client_assertion(PKJ_CLIENT_ID, provider.issuer, key=client_key, jti=jti))
    assert first.status_code == 200
    refused(client_assertion(PKJ_CLIENT_ID, provider.issuer, key=client_key, jti=jti))  # new token, same jti
    # wrong audiences: another endpoint, the issuer with a trailing slash, somewhere else
    metadata = provider.metadata
    for audience in (
        metadata["pushed_authorization_request_endpoint"],
        provider.endpoint("introspection"),
        provider.endpoint("authorization"),
        provider.issuer + "/",
        "https://elsewhere.example/",
    ):
        refused(client_assertion(PKJ_CLIENT_ID, audience, key=client_key))
    # expired, no jti, iss not the client
    refused(client_assertion(PKJ_CLIENT_ID, provider.issuer, key=client_key, lifetime=-60))
    now = int(time.time())
    refused(client_key.sign({"iss": PKJ_CLIENT_ID, "sub": PKJ_CLIENT_ID, "aud": provider.issuer, "exp": now + 60}))
    refused(
        client_assertion(PKJ_CLIENT_ID, provider.issuer, key=client_key, extra={"iss": CLIENT_ID}),
    )
    # an HS256 assertion (the client_secret_jwt way) for a private_key_jwt client
    refused(client_assertion(PKJ_CLIENT_ID, provider.issuer, secret=CSJ_SECRET))


# The audiences oidc-provider 9.13.3 accepts in a client assertion, by receiving endpoint: the
# issuer, the token endpoint, and the receiving endpoint itself (OIDCContext.clientJwtAuthExpectedAudience).
ASSERTION_AUDIENCES = {
    "token": {"issuer": True, "token": True, "par": False, "introspection": False, "device": False},
    "par": {"issuer": True, "token": True, "par": True, "introspection": False, "device": False},
    "introspection": {"issuer": True, "token": True, "par": False, "introspection": True, "device": False},
    "device": {"issuer": True, "token": True, "par": False, "introspection": False, "device": True},
}


def test_assertion_audiences(jwt_auth_provider: OIDCProvider, client_key: ClientKey) -> None:
    provider = jwt_auth_provider
    metadata = provider.metadata
    urls = {
        "issuer": provider.issuer,
        "token": provider.endpoint("token"),
        "par": metadata["pushed_authorization_request_endpoint"],
        "introspection": provider.endpoint("introspection"),
        "device": metadata["device_authorization_endpoint"],
    }
    assert urls["par"] == f"{provider.issuer}/request"

    def call(endpoint: str, assertion: str) -> requests.Response:
        auth = assertion_params(assertion)
        if endpoint == "token":
            return client_credentials(provider, assertion)
        if endpoint == "par":
            _, challenge = pkce_pair()
            return post(urls["par"], {**authorization_params(PKJ_CLIENT_ID, challenge), **auth})
        if endpoint == "introspection":
            return post(urls["introspection"], {"token": "unknown", **auth})
        return post(urls["device"], {"client_id": PKJ_CLIENT_ID, "scope": "openid", **auth})

    for endpoint, expected in ASSERTION_AUDIENCES.items():
        for audience, accepted in expected.items():
            answer = call(endpoint, client_assertion(PKJ_CLIENT_ID, urls[audience], key=client_key))
            if accepted:
                assert answer.status_code in (200, 201), f"{endpoint} aud={audience}: {answer.text}"
            else:
                assert answer.status_code == 401, f"{endpoint} aud={audience}: {answer.text}"
                assert error_of(answer) == "invalid_client"
    # an array audience passes when one of its members is accepted
    mixed = client_assertion(PKJ_CLIENT_ID, ["https://elsewhere.example/", provider.issuer], key=client_key)
    assert call("token", mixed).status_code == 200
    wrong = client_assertion(PKJ_CLIENT_ID, ["https://elsewhere.example/", urls["par"]], key=client_key)
    assert call("token", wrong).status_code == 401


def test_client_secret_jwt(jwt_auth_provider: OIDCProvider) -> None:
    provider = jwt_auth_provider
    assertion = client_assertion(CSJ_CLIENT_ID, provider.endpoint("token"), secret=CSJ_SECRET)
    answer = client_credentials(provider, assertion)
    assert answer.status_code == 200, answer.text
    assert client_credentials(provider, assertion).status_code == 401  # replay
    wrong = client_assertion(CSJ_CLIENT_ID, provider.issuer, secret=CSJ_SECRET + "x")
    assert error_of(client_credentials(provider, wrong)) == "invalid_client"
    wrong_aud = client_assertion(CSJ_CLIENT_ID, provider.endpoint("userinfo"), secret=CSJ_SECRET)
    assert error_of(client_credentials(provider, wrong_aud)) == "invalid_client"
    # the method is the registered one: the secret itself (client_secret_basic) is refused
    basic = post(provider.endpoint("token"), {"grant_type": "client_credentials"}, auth=(CSJ_CLIENT_ID, CSJ_SECRET))
    assert basic.status_code == 401
    assert error_of(basic) == "invalid_client"
    # and the code flow
    code, verifier = get_code(provider, CSJ_CLIENT_ID)
    assertion = client_assertion(CSJ_CLIENT_ID, provider.issuer, secret=CSJ_SECRET)
    answer = post(provider.endpoint("token"), {**code_grant(code, verifier), **assertion_params(assertion)})
    assert answer.status_code == 200, answer.text


def test_private_key_jwt_with_jwks_uri(oidc_provider_factory: ProviderFactory, jwks_server: JWKSServer) -> None:
    key = make_client_key("ES256")
    jwks_server.keys = [key.public_jwk]
    client = pkj_client(jwks_uri=jwks_server.url)
    assert jwks_server.url.startswith("http://127.0.0.1:")

    # By default oidc-provider's SSRF protection refuses to fetch from loopback addresses.
    guarded = oidc_provider_factory(clients=[client])
    answer = client_credentials(guarded, client_assertion(PKJ_CLIENT_ID, guarded.issuer, key=key))
    assert answer.status_code == 401, answer.text
    assert error_of(answer) == "invalid_client"
    assert jwks_server.hits == 0

    # With fetch_loopback the http:// jwks_uri on 127.0.0.1 is fetched (http is accepted as such).
    provider = oidc_provider_factory(clients=[client], fetch_loopback=True)
    answer = client_credentials(provider, client_assertion(PKJ_CLIENT_ID, provider.issuer, key=key))
    assert answer.status_code == 200, answer.text
    assert jwks_server.hits == 1
    answer = client_credentials(provider, client_assertion(PKJ_CLIENT_ID, provider.issuer, key=key))
    assert answer.status_code == 200
    assert jwks_server.hits == 1  # cached (at least 60 s, longer with Cache-Control max-age / Expires)

    # A rotated key: the cached set is used until it goes stale, even though the new kid is unknown.
    new_key = make_client_key("ES256")
    jwks_server.keys = [new_key.public_jwk, key.public_jwk]
    answer = client_credentials(provider, client_assertion(PKJ_CLIENT_ID, provider.issuer, key=new_key))
    assert answer.status_code == 401
    assert jwks_server.hits == 1
    # Re-registering the client (the admin hook swaps in a fresh Provider) drops the cache.
    provider.update_client(client)
    answer = client_credentials(provider, client_assertion(PKJ_CLIENT_ID, provider.issuer, key=new_key))
    assert answer.status_code == 200, answer.text
    assert jwks_server.hits == 2


def test_client_metadata_needs_keys_for_private_key_jwt(oidc_provider_factory: ProviderFactory) -> None:
    with pytest.raises(pytest.fail.Exception, match="jwks or jwks_uri is mandatory"):
        oidc_provider_factory(clients=[pkj_client()])


# -- pushed authorization requests (RFC 9126) ----------------------------------------------------------


def push(provider: OIDCProvider, params: dict[str, str], **kwargs: Any) -> requests.Response:
    return post(provider.metadata["pushed_authorization_request_endpoint"], params, **kwargs)


def request_uri_url(provider: OIDCProvider, client_id: str, request_uri: str) -> str:
    """The authorization URL after a push: only ``client_id`` and ``request_uri``."""
    return f"{provider.endpoint('authorization')}?{urlencode({'client_id': client_id, 'request_uri': request_uri})}"


def test_par_is_on_by_default(oidc_provider: OIDCProvider) -> None:
    metadata = oidc_provider.metadata
    assert metadata["pushed_authorization_request_endpoint"] == f"{oidc_provider.issuer}/request"
    assert "require_pushed_authorization_requests" not in metadata


def test_par_push_then_authorize(oidc_provider: OIDCProvider) -> None:
    provider = oidc_provider
    verifier, challenge = pkce_pair()
    params = authorization_params(CLIENT_ID, challenge)
    pushed = push(provider, params, auth=AUTH)
    assert pushed.status_code == 201, pushed.text
    body = pushed.json()
    assert body["expires_in"] == 60  # fixed (a pushed signed request object's exp may shorten it)
    assert body["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")

    url = request_uri_url(provider, CLIENT_ID, body["request_uri"])
    callback = authorize(url)
    answer = query(callback)
    assert callback.startswith(REDIRECT_URI + "?")
    assert answer["state"] == params["state"]
    assert answer["iss"] == provider.issuer
    redeemed = post(provider.endpoint("token"), code_grant(answer["code"], verifier), auth=AUTH)
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["refresh_token"]  # prompt=consent and offline_access came through the push

    # single use: the request_uri is spent once a code was issued for it. The error goes to the
    # client's redirect_uri when it has only one registered (there is no state: it was in the push).
    spent = authorize(url)
    assert spent.startswith(REDIRECT_URI + "?")
    assert query(spent) == {
        "error": "invalid_request_uri",
        "error_description": "request_uri is invalid, expired, or was already used",
        "iss": provider.issuer,
    }


def test_par_refusals(oidc_provider: OIDCProvider) -> None:
    provider = oidc_provider
    _, challenge = pkce_pair()
    params = authorization_params(CLIENT_ID, challenge)
    # the push needs client authentication (of a confidential client)
    unauthenticated = push(provider, params)
    assert unauthenticated.status_code == 401
    assert error_of(unauthenticated) == "invalid_client"
    # the pushed parameters are validated at push time
    bad_redirect = push(provider, {**params, "redirect_uri": "http://localhost/elsewhere"}, auth=AUTH)
    assert bad_redirect.status_code == 400
    assert error_of(bad_redirect) == "invalid_request"  # invalid_redirect_uri is mapped to it at PAR
    no_pkce = {name: value for name, value in params.items() if not name.startswith("code_challenge")}
    assert error_of(push(provider, no_pkce, auth=AUTH)) == "invalid_request"
    # an unknown request_uri
    url = request_uri_url(provider, CLIENT_ID, "urn:ietf:params:oauth:request_uri:unknown")
    assert query(authorize(url))["error"] == "invalid_request_uri"
    # with an unknown client_id the error is rendered (here as JSON), there is nowhere to redirect to
    pushed = push(provider, params, auth=AUTH).json()["request_uri"]
    other = request_uri_url(provider, "nobody", pushed)
    with pytest.raises(OPDriverError, match="invalid_client"):
        authorize(other)


def test_par_required_globally(oidc_provider_factory: ProviderFactory) -> None:
    provider = oidc_provider_factory(par={"required": True})
    assert provider.metadata["require_pushed_authorization_requests"] is True
    verifier, challenge = pkce_pair()
    params = authorization_params(CLIENT_ID, challenge)
    plain = query(authorize(f"{provider.endpoint('authorization')}?{urlencode(params)}"))
    assert plain["error"] == "invalid_request"
    assert plain["error_description"] == "Pushed Authorization Request must be used"
    assert plain["state"] == params["state"]

    request_uri = push(provider, params, auth=AUTH).json()["request_uri"]
    url = request_uri_url(provider, CLIENT_ID, request_uri)
    answer = query(authorize(url))
    assert post(provider.endpoint("token"), code_grant(answer["code"], verifier), auth=AUTH).status_code == 200


def test_par_required_per_client(oidc_provider_factory: ProviderFactory, client_key: ClientKey) -> None:
    strict = pkj_client(client_key, require_pushed_authorization_requests=True)
    provider = oidc_provider_factory(clients=[DEFAULT_CLIENT, strict])
    assert "require_pushed_authorization_requests" not in provider.metadata
    # the default client may still send plain authorization requests, the strict one may not
    assert "code" in query(
        authorize(f"{provider.endpoint('authorization')}?{urlencode(authorization_params(CLIENT_ID, pkce_pair()[1]))}")
    )
    verifier, challenge = pkce_pair()
    params = authorization_params(PKJ_CLIENT_ID, challenge)
    plain = query(authorize(f"{provider.endpoint('authorization')}?{urlencode(params)}"))
    assert plain["error"] == "invalid_request"

    # PAR with private_key_jwt: the assertion's aud may be the PAR endpoint
    assertion = client_assertion(
        PKJ_CLIENT_ID, provider.metadata["pushed_authorization_request_endpoint"], key=client_key
    )
    pushed = push(provider, {**params, **assertion_params(assertion)})
    assert pushed.status_code == 201, pushed.text
    url = request_uri_url(provider, PKJ_CLIENT_ID, pushed.json()["request_uri"])
    code = query(authorize(url))["code"]
    assertion = client_assertion(PKJ_CLIENT_ID, provider.endpoint("token"), key=client_key)
    answer = post(provider.endpoint("token"), {**code_grant(code, verifier), **assertion_params(assertion)})
    assert answer.status_code == 200, answer.text


# -- DPoP (RFC 9449) ------------------------------------------------------------------------------------------

PUBLIC_CLIENT: dict[str, Any] = {
    "client_id": "public-spa",
    "redirect_uris": [REDIRECT_URI],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
    "scope": "openid profile offline_access",
}


def dpop_post(
    provider: OIDCProvider,
    key: ClientKey,
    data: dict[str, str],
    *,
    nonce: str | None = None,
    url: str | None = None,
    auth: tuple[str, str] | None = AUTH,
) -> requests.Response:
    url = url or provider.endpoint("token")
    return post(url, data, auth=auth, headers={"DPoP": dpop_proof(key, "POST", url, nonce=nonce)})


def userinfo(
    provider: OIDCProvider,
    access_token: str,
    key: ClientKey | None,
    *,
    nonce: str | None = None,
    scheme: str = "DPoP",
    proof: str | None = None,
) -> requests.Response:
    url = provider.endpoint("userinfo")
    headers = {"Authorization": f"{scheme} {access_token}"}
    if proof is None and key is not None:
        proof = dpop_proof(key, "GET", url, access_token=access_token, nonce=nonce)
    if proof is not None:
        headers["DPoP"] = proof
    return requests.get(url, headers=headers, timeout=TIMEOUT)


def dpop_tokens(
    provider: OIDCProvider, key: ClientKey, *, client_id: str = CLIENT_ID, nonce: str | None = None
) -> requests.Response:
    code, verifier = get_code(provider, client_id)
    data = code_grant(code, verifier)
    if client_id == CLIENT_ID:
        return dpop_post(provider, key, data, nonce=nonce)
    return dpop_post(provider, key, {**data, "client_id": client_id}, nonce=nonce, auth=None)


def test_dpop_is_on_by_default(oidc_provider: OIDCProvider) -> None:
    assert oidc_provider.metadata["dpop_signing_alg_values_supported"] == ["ES256", "Ed25519", "EdDSA"]


def test_dpop_token_and_userinfo(oidc_provider: OIDCProvider) -> None:
    provider = oidc_provider
    key = make_client_key("ES256")
    answer = dpop_tokens(provider, key)
    assert answer.status_code == 200, answer.text
    assert "DPoP-Nonce" not in answer.headers  # no nonces without the launcher's dpop option
    body = answer.json()
    assert body["token_type"] == "DPoP"
    access_token = body["access_token"]
    introspected = post(provider.endpoint("introspection"), {"token": access_token}, auth=AUTH).json()
    assert introspected["token_type"] == "DPoP"
    assert introspected["cnf"]["jkt"]

    ok = userinfo(provider, access_token, key)
    assert ok.status_code == 200, ok.text
    assert ok.json()["sub"] == "alice"

    def refused(answer: requests.Response, error: str) -> str:
        assert answer.status_code == 401, answer.text
        challenge = answer.headers["WWW-Authenticate"]
        assert challenge.startswith("DPoP "), challenge
        assert f'error="{error}"' in challenge, challenge
        return challenge

    # the Bearer scheme; the DPoP scheme without a proof is a 400
    refused(userinfo(provider, access_token, None, scheme="Bearer"), "invalid_token")
    no_proof = userinfo(provider, access_token, None)
    assert no_proof.status_code == 400
    assert no_proof.json() == {"error": "invalid_request", "error_description": "`DPoP` header not provided"}
    # a proof without ath, with another key, for another URL or method, or replayed
    url = provider.endpoint("userinfo")
    refused(userinfo(provider, access_token, key, proof=dpop_proof(key, "GET", url)), "invalid_dpop_proof")
    refused(userinfo(provider, access_token, make_client_key("ES256")), "invalid_token")  # failed jkt verification
    wrong_htu = dpop_proof(key, "GET", provider.endpoint("token"), access_token=access_token)
    refused(userinfo(provider, access_token, key, proof=wrong_htu), "invalid_dpop_proof")
    wrong_htm = dpop_proof(key, "POST", url, access_token=access_token)
    refused(userinfo(provider, access_token, key, proof=wrong_htm), "invalid_dpop_proof")
    proof = dpop_proof(key, "GET", url, access_token=access_token)
    assert userinfo(provider, access_token, key, proof=proof).status_code == 200
    refused(userinfo(provider, access_token, key, proof=proof), "invalid_token")  # DPoP proof JWT Replay detected
    # a proof's iat must be within 5 minutes (without nonces)
    stale = dpop_proof(key, "GET", url, access_token=access_token, iat=int(time.time()) - 400)
    refused(userinfo(provider, access_token, key, proof=stale), "invalid_dpop_proof")
    # htu ignores query and fragment
    assert (
        userinfo(
            provider, access_token, key, proof=dpop_proof(key, "GET", url + "?x=1", access_token=access_token)
        ).status_code
        == 200
    )


def test_dpop_token_request_refusals(oidc_provider: OIDCProvider) -> None:
    provider = oidc_provider
    key = make_client_key("ES256")
    url = provider.endpoint("token")
    data = {"grant_type": "client_credentials", "scope": "api:read"}
    answer = post(url, data, auth=AUTH, headers={"DPoP": dpop_proof(key, "POST", provider.issuer)})
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_dpop_proof", "error_description": "DPoP proof htu mismatch"}
    rsa = make_client_key("RS256")  # RSA is not among dpop_signing_alg_values_supported
    answer = post(url, data, auth=AUTH, headers={"DPoP": dpop_proof(rsa, "POST", url)})
    assert error_of(answer) == "invalid_dpop_proof"
    proof = dpop_proof(key, "POST", url)
    assert post(url, data, auth=AUTH, headers={"DPoP": proof}).json()["token_type"] == "DPoP"
    replayed = post(url, data, auth=AUTH, headers={"DPoP": proof})
    assert replayed.status_code == 400
    # oidc-provider does not disclose invalid_grant details ("DPoP proof JWT Replay detected")
    assert replayed.json() == {"error": "invalid_grant", "error_description": "grant request is invalid"}


def test_dpop_nonce_required(oidc_provider_factory: ProviderFactory) -> None:
    provider = oidc_provider_factory(dpop={"require_nonce": True})
    key = make_client_key("ES256")
    # token endpoint: 400 use_dpop_nonce with a DPoP-Nonce header, then the retry with it succeeds;
    # the refused request did not spend the code (the proof is checked before the code is looked up)
    code, verifier = get_code(provider, CLIENT_ID)
    first = dpop_post(provider, key, code_grant(code, verifier))
    assert first.status_code == 400, first.text
    assert first.json() == {"error": "use_dpop_nonce", "error_description": "nonce is required in the DPoP proof"}
    nonce = first.headers["DPoP-Nonce"]
    assert "WWW-Authenticate" not in first.headers
    assert "DPoP-Nonce" in first.headers["Access-Control-Expose-Headers"]
    answer = dpop_post(provider, key, code_grant(code, verifier), nonce=nonce)
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"
    # (no DPoP-Nonce header here while the nonce used is still the current one: nonces change every
    # 60 s, and one up to 2 steps old or ahead is accepted)
    access_token = answer.json()["access_token"]

    # userinfo (a resource server): 401 with WWW-Authenticate DPoP error="use_dpop_nonce" + DPoP-Nonce
    denied = userinfo(provider, access_token, key)
    assert denied.status_code == 401
    challenge = denied.headers["WWW-Authenticate"]
    assert challenge.startswith("DPoP ")
    assert 'error="use_dpop_nonce"' in challenge
    assert 'algs="ES256 Ed25519 EdDSA"' in challenge
    assert denied.json() == {"error": "use_dpop_nonce", "error_description": "nonce is required in the DPoP proof"}
    assert denied.headers["DPoP-Nonce"]
    ok = userinfo(provider, access_token, key, nonce=denied.headers["DPoP-Nonce"])
    assert ok.status_code == 200, ok.text
    # the same server-wide nonce serves every endpoint
    ok = userinfo(provider, access_token, key, nonce=nonce)
    assert ok.status_code == 200, ok.text
    # a wrong nonce: use_dpop_nonce again, with the right one
    wrong = userinfo(provider, access_token, key, nonce="not-a-nonce")
    assert wrong.status_code == 401
    assert 'error="use_dpop_nonce"' in wrong.headers["WWW-Authenticate"]
    assert wrong.headers["DPoP-Nonce"]


def test_dpop_nonce_required_at_token_endpoint_only(oidc_provider_factory: ProviderFactory) -> None:
    provider = oidc_provider_factory(dpop={"require_nonce": ["token"]})
    key = make_client_key("ES256")
    first = dpop_tokens(provider, key)
    assert error_of(first) == "use_dpop_nonce"
    code, verifier = get_code(provider, CLIENT_ID)
    answer = dpop_post(provider, key, code_grant(code, verifier), nonce=first.headers["DPoP-Nonce"])
    assert answer.status_code == 200, answer.text
    # userinfo takes a proof without nonce, but (a nonce secret being set) hands out a fresh nonce
    ok = userinfo(provider, answer.json()["access_token"], key)
    assert ok.status_code == 200, ok.text
    assert ok.headers["DPoP-Nonce"]


def test_dpop_refresh_confidential_client_is_not_bound(oidc_provider_factory: ProviderFactory) -> None:
    provider = oidc_provider_factory()
    key = make_client_key("ES256")
    body = dpop_tokens(provider, key).json()
    refresh_token = body["refresh_token"]
    assert "cnf" not in post(provider.endpoint("introspection"), {"token": refresh_token}, auth=AUTH).json()
    # same key: a new DPoP-bound access token
    same = dpop_post(provider, key, {"grant_type": "refresh_token", "refresh_token": refresh_token})
    assert same.status_code == 200, same.text
    assert same.json()["token_type"] == "DPoP"
    # another key works as well for a confidential client: the new access token is bound to it
    other = make_client_key("ES256")
    moved = dpop_post(provider, other, {"grant_type": "refresh_token", "refresh_token": same.json()["refresh_token"]})
    assert moved.status_code == 200, moved.text
    assert userinfo(provider, moved.json()["access_token"], other).status_code == 200
    assert userinfo(provider, moved.json()["access_token"], key).status_code == 401
    # and without a proof the refresh gives a Bearer token
    plain = post(
        provider.endpoint("token"),
        {"grant_type": "refresh_token", "refresh_token": moved.json()["refresh_token"]},
        auth=AUTH,
    )
    assert plain.status_code == 200, plain.text
    assert plain.json()["token_type"] == "Bearer"


def test_dpop_refresh_public_client_is_bound(oidc_provider_factory: ProviderFactory) -> None:
    provider = oidc_provider_factory(clients=[DEFAULT_CLIENT, PUBLIC_CLIENT])
    key = make_client_key("EdDSA")
    answer = dpop_tokens(provider, key, client_id="public-spa")
    assert answer.status_code == 200, answer.text
    refresh_token = answer.json()["refresh_token"]
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "public-spa"}
    other = dpop_post(provider, make_client_key("ES256"), data, auth=None)
    assert other.status_code == 400
    assert error_of(other) == "invalid_grant"  # "failed jkt verification", not disclosed
    without = post(provider.endpoint("token"), data)
    assert without.status_code == 400
    assert error_of(without) == "invalid_grant"
    same = dpop_post(provider, key, data, auth=None)
    assert same.status_code == 200, same.text
    assert same.json()["token_type"] == "DPoP"


def test_dpop_bound_access_tokens_client(oidc_provider_factory: ProviderFactory) -> None:
    client = {**DEFAULT_CLIENT, "dpop_bound_access_tokens": True}
    provider = oidc_provider_factory(clients=[client])
    data = {"grant_type": "client_credentials", "scope": "api:read"}
    refused = post(provider.endpoint("token"), data, auth=AUTH)
    assert refused.status_code == 400
    assert error_of(refused) == "invalid_grant"  # "DPoP proof JWT not provided", not disclosed
    answer = dpop_post(provider, make_client_key("ES256"), data)
    assert answer.status_code == 200, answer.text
    assert answer.json()["token_type"] == "DPoP"


def test_dpop_at_the_par_endpoint_binds_the_code(oidc_provider_factory: ProviderFactory) -> None:
    provider = oidc_provider_factory(dpop={"require_nonce": True})
    key = make_client_key("ES256")
    par_url = provider.metadata["pushed_authorization_request_endpoint"]
    verifier, challenge = pkce_pair()
    params = authorization_params(CLIENT_ID, challenge)
    first = dpop_post(provider, key, params, url=par_url)
    assert first.status_code == 400
    assert error_of(first) == "use_dpop_nonce"
    pushed = dpop_post(provider, key, params, url=par_url, nonce=first.headers["DPoP-Nonce"])
    assert pushed.status_code == 201, pushed.text
    url = request_uri_url(provider, CLIENT_ID, pushed.json()["request_uri"])
    code = query(authorize(url))["code"]
    nonce = first.headers["DPoP-Nonce"]
    other = dpop_post(provider, make_client_key("ES256"), code_grant(code, verifier), nonce=nonce)
    assert other.status_code == 400
    assert error_of(other) == "invalid_grant"  # the code is bound to the key of the push (dpop_jkt)


# -- device authorization grant (RFC 8628) ---------------------------------------------------------------

DEVICE_CLIENT = {**DEFAULT_CLIENT, "grant_types": [*DEFAULT_CLIENT["grant_types"], DEVICE_CODE_GRANT]}


def device_authorization(provider: OIDCProvider, scope: str = "openid profile offline_access") -> dict[str, Any]:
    answer = post(provider.metadata["device_authorization_endpoint"], {"scope": scope}, auth=AUTH)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def poll(provider: OIDCProvider, device_code: str) -> requests.Response:
    return post(provider.endpoint("token"), {"grant_type": DEVICE_CODE_GRANT, "device_code": device_code}, auth=AUTH)


@pytest.fixture(scope="module")
def device_provider(oidc_provider_factory: ProviderFactory) -> OIDCProvider:
    return oidc_provider_factory(clients=[DEVICE_CLIENT], features={"deviceFlow": True})


def test_device_flow_is_off_by_default(oidc_provider: OIDCProvider) -> None:
    assert "device_authorization_endpoint" not in oidc_provider.metadata


def test_device_flow_approved(device_provider: OIDCProvider) -> None:
    provider = device_provider
    assert DEVICE_CODE_GRANT in provider.metadata["grant_types_supported"]
    started = device_authorization(provider)
    assert set(started) == {"device_code", "user_code", "verification_uri", "verification_uri_complete", "expires_in"}
    assert started["verification_uri"] == f"{provider.issuer}/device"
    assert started["expires_in"] == 600
    assert "interval" not in started  # clients fall back to RFC 8628's 5 seconds

    for _ in range(3):  # oidc-provider never answers slow_down, however fast the polling
        pending = poll(provider, started["device_code"])
        assert pending.status_code == 400
        assert error_of(pending) == "authorization_pending"

    page = approve_device(started["verification_uri_complete"])
    assert page.status_code == 200
    answer = poll(provider, started["device_code"])
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["id_token"]
    assert body["refresh_token"]  # offline_access is kept in the device flow
    assert set(body["scope"].split()) == {"openid", "profile", "offline_access"}

    spent = poll(provider, started["device_code"])
    assert spent.status_code == 400
    assert error_of(spent) == "invalid_grant"
    # the user code is spent as well
    assert device_flow(started["verification_uri_complete"]).outcome == "error"


def test_device_flow_typed_user_code_and_single_sign_on(device_provider: OIDCProvider) -> None:
    provider = device_provider
    browser = requests.Session()
    first = device_authorization(provider)
    approve_device(first["verification_uri"], user_code=first["user_code"].replace("-", "").lower(), session=browser)
    assert poll(provider, first["device_code"]).status_code == 200
    # the same browser: no login form the second time (the consent is remembered too)
    second = device_authorization(provider, scope="openid")
    approve_device(second["verification_uri_complete"], session=browser, username="not-used")
    body = poll(provider, second["device_code"]).json()
    assert body["access_token"]
    # a wrong user code
    assert device_flow(first["verification_uri"], user_code="BCDF-GHJK").outcome == "error"


@pytest.mark.parametrize("at", ["confirm", "consent"])
def test_device_flow_denied(device_provider: OIDCProvider, at: str) -> None:
    provider = device_provider
    started = device_authorization(provider)
    deny_device(started["verification_uri_complete"], at=at)
    answer = poll(provider, started["device_code"])
    assert answer.status_code == 400
    assert error_of(answer) == "access_denied"
    assert poll(provider, started["device_code"]).json()["error"] == "invalid_grant"  # consumed


def test_device_flow_expired(oidc_provider_factory: ProviderFactory) -> None:
    provider = oidc_provider_factory(clients=[DEVICE_CLIENT], device_flow=True, ttl={"DeviceCode": 1})
    started = device_authorization(provider)
    assert started["expires_in"] == 1
    time.sleep(1.5)
    answer = poll(provider, started["device_code"])
    assert answer.status_code == 400
    assert answer.json() == {"error": "expired_token", "error_description": "device code is expired"}
    assert device_flow(started["verification_uri_complete"]).outcome == "error"


def test_device_flow_interval_and_slow_down_emulated(oidc_provider_factory: ProviderFactory) -> None:
    provider = oidc_provider_factory(
        clients=[DEVICE_CLIENT], device_flow={"interval": 1, "slow_down": True, "slow_down_increment": 1}
    )
    started = device_authorization(provider)
    assert started["interval"] == 1
    assert error_of(poll(provider, started["device_code"])) == "authorization_pending"
    fast = poll(provider, started["device_code"])
    assert fast.status_code == 400
    assert error_of(fast) == "slow_down"
    time.sleep(1.2)  # the interval is now 2 s: still too fast
    assert error_of(poll(provider, started["device_code"])) == "slow_down"
    time.sleep(3.2)  # now 3 s
    assert error_of(poll(provider, started["device_code"])) == "authorization_pending"
    approve_device(started["verification_uri_complete"])
    time.sleep(3.2)
    assert poll(provider, started["device_code"]).status_code == 200
