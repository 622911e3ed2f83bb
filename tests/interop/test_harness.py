"""Smoke tests of the interop harness itself, with plain ``requests`` (not our library): they prove
that oidc-provider runs as configured, so that an interop failure means our client is wrong."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from interop.conftest import CLIENT_ID
from interop.conftest import CLIENT_SECRET
from interop.conftest import DEFAULT_CLIENT
from interop.conftest import OIDCProvider
from interop.conftest import ProviderFactory
from interop.op_driver import OPDriverError
from interop.op_driver import authorize
from interop.op_driver import logout
from interop.op_driver import parse_forms

REDIRECT_URI = "http://localhost/oauth2/op/callback"
AUTH = (CLIENT_ID, CLIENT_SECRET)


@dataclass
class Login:
    callback: str
    params: dict[str, str]
    verifier: str
    state: str
    nonce: str
    redirect_uri: str


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorization_url(provider: OIDCProvider, **params: str) -> str:
    return f"{provider.endpoint('authorization')}?{urlencode(params)}"


def login(
    provider: OIDCProvider,
    *,
    scope: str = "openid profile email offline_access",
    prompt: str | None = "consent",
    redirect_uri: str = REDIRECT_URI,
    session: requests.Session | None = None,
) -> Login:
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    params = {
        "response_type": "code",
        "client_id": provider.client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if prompt:
        params["prompt"] = prompt
    callback = authorize(authorization_url(provider, **params), session=session)
    answer = {key: values[0] for key, values in parse_qs(urlsplit(callback).query).items()}
    return Login(callback, answer, verifier, state, nonce, redirect_uri)


def redeem(provider: OIDCProvider, flow: Login) -> requests.Response:
    return requests.post(
        provider.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "code": flow.params["code"],
            "redirect_uri": flow.redirect_uri,
            "code_verifier": flow.verifier,
        },
        auth=(provider.client_id, provider.client_secret),
        timeout=5,
    )


def tokens(provider: OIDCProvider, **kwargs: Any) -> dict[str, Any]:
    answer = redeem(provider, login(provider, **kwargs))
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def refresh(provider: OIDCProvider, refresh_token: str) -> requests.Response:
    return requests.post(
        provider.endpoint("token"),
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(provider.client_id, provider.client_secret),
        timeout=5,
    )


def verify_id_token(provider: OIDCProvider, id_token: str, *, nonce: str | None = None) -> dict[str, Any]:
    kid = jwt.get_unverified_header(id_token)["kid"]
    key = next(key for key in provider.jwks()["keys"] if key["kid"] == kid)
    claims = jwt.decode(
        id_token,
        jwt.PyJWK(key).key,
        algorithms=["RS256"],
        audience=provider.client_id,
        issuer=provider.issuer,
    )
    if nonce is not None:
        assert claims["nonce"] == nonce
    return dict(claims)


def introspect(provider: OIDCProvider, token: str) -> dict[str, Any]:
    answer = requests.post(provider.endpoint("introspection"), data={"token": token}, auth=AUTH, timeout=5)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


# -- the tests ----------------------------------------------------------------------------------


def test_metadata(oidc_provider: OIDCProvider) -> None:
    assert oidc_provider.issuer == f"http://127.0.0.1:{oidc_provider.port}"
    metadata = oidc_provider.metadata
    assert metadata["issuer"] == oidc_provider.issuer
    assert metadata["authorization_response_iss_parameter_supported"] is True
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    for name in ("authorization", "token", "userinfo", "revocation", "introspection", "end_session"):
        assert oidc_provider.endpoint(name).startswith(oidc_provider.issuer + "/")
    assert {"authorization_code", "refresh_token", "client_credentials"} <= set(metadata["grant_types_supported"])
    assert [key["kid"] for key in oidc_provider.jwks()["keys"]] == oidc_provider.kids


def test_code_flow_with_pkce(oidc_provider: OIDCProvider) -> None:
    flow = login(oidc_provider)
    assert flow.callback.startswith(REDIRECT_URI + "?")
    assert flow.params["state"] == flow.state
    assert flow.params["iss"] == oidc_provider.issuer  # RFC 9207
    answer = redeem(oidc_provider, flow)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["access_token"]
    assert body["refresh_token"]  # offline_access with prompt=consent
    assert set(body["scope"].split()) == {"openid", "profile", "email", "offline_access"}
    claims = verify_id_token(oidc_provider, body["id_token"], nonce=flow.nonce)
    assert claims["sub"] == "alice"
    # the code is single-use
    again = redeem(oidc_provider, flow)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


def test_pkce_is_required(oidc_provider: OIDCProvider) -> None:
    url = authorization_url(
        oidc_provider,
        response_type="code",
        client_id=oidc_provider.client_id,
        redirect_uri=REDIRECT_URI,
        scope="openid",
        state="s",
    )
    callback = authorize(url)
    params = parse_qs(urlsplit(callback).query)
    assert params["error"] == ["invalid_request"]
    assert "PKCE" in params["error_description"][0]


def test_wrong_code_verifier_is_refused(oidc_provider: OIDCProvider) -> None:
    flow = login(oidc_provider, scope="openid")
    flow.verifier = pkce_pair()[0]
    answer = redeem(oidc_provider, flow)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"


def test_no_refresh_token_without_offline_access_consent(oidc_provider: OIDCProvider) -> None:
    body = tokens(oidc_provider, prompt=None)  # offline_access is dropped without prompt=consent
    assert "refresh_token" not in body
    assert "offline_access" not in body["scope"].split()


def test_refresh_rotates_and_reuse_fails(oidc_provider: OIDCProvider) -> None:
    first = tokens(oidc_provider)
    answer = refresh(oidc_provider, first["refresh_token"])
    assert answer.status_code == 200, answer.text
    second = answer.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["access_token"] != first["access_token"]
    verify_id_token(oidc_provider, second["id_token"])

    reused = refresh(oidc_provider, first["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # reuse detection revokes the whole grant: the rotated token is dead as well
    assert refresh(oidc_provider, second["refresh_token"]).json()["error"] == "invalid_grant"


def test_client_credentials(oidc_provider: OIDCProvider) -> None:
    answer = requests.post(
        oidc_provider.endpoint("token"),
        data={"grant_type": "client_credentials", "scope": "api:read"},
        auth=AUTH,
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "api:read"
    assert body["expires_in"] > 0
    details = introspect(oidc_provider, body["access_token"])
    assert details["active"] is True
    assert details["client_id"] == CLIENT_ID
    assert details["scope"] == "api:read"


def test_client_credentials_refuses_unknown_client_secret(oidc_provider: OIDCProvider) -> None:
    answer = requests.post(
        oidc_provider.endpoint("token"),
        data={"grant_type": "client_credentials"},
        auth=(CLIENT_ID, "wrong"),
        timeout=5,
    )
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"


def test_revocation(oidc_provider: OIDCProvider) -> None:
    body = tokens(oidc_provider)
    revoked = requests.post(
        oidc_provider.endpoint("revocation"),
        data={"token": body["access_token"], "token_type_hint": "access_token"},
        auth=AUTH,
        timeout=5,
    )
    assert revoked.status_code == 200, revoked.text
    assert introspect(oidc_provider, body["access_token"])["active"] is False
    revoked = requests.post(
        oidc_provider.endpoint("revocation"), data={"token": body["refresh_token"]}, auth=AUTH, timeout=5
    )
    assert revoked.status_code == 200
    assert refresh(oidc_provider, body["refresh_token"]).json()["error"] == "invalid_grant"


def test_userinfo(oidc_provider: OIDCProvider) -> None:
    body = tokens(oidc_provider)
    answer = requests.get(
        oidc_provider.endpoint("userinfo"), headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=5
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "sub": "alice",
        "name": "Test User alice",
        "given_name": "Test",
        "family_name": "User alice",
        "preferred_username": "alice",
        "email": "alice@example.test",
        "email_verified": True,
    }
    denied = requests.get(oidc_provider.endpoint("userinfo"), headers={"Authorization": "Bearer nope"}, timeout=5)
    assert denied.status_code == 401


def test_single_sign_on_and_consent_denied(oidc_provider: OIDCProvider) -> None:
    browser = requests.Session()
    first = login(oidc_provider, session=browser)
    assert "code" in first.params
    # same browser, no prompt: no login and no consent page, straight back with a code
    second = login(oidc_provider, session=browser, prompt=None, scope="openid profile")
    assert "code" in second.params
    challenge = pkce_pair()[1]
    url = authorization_url(
        oidc_provider,
        response_type="code",
        client_id=CLIENT_ID,
        redirect_uri=REDIRECT_URI,
        scope="openid",
        state="s",
        prompt="consent",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    denied = parse_qs(urlsplit(authorize(url, session=browser, consent=False)).query)
    assert denied["error"] == ["access_denied"]
    assert denied["state"] == ["s"]


def test_rp_initiated_logout(oidc_provider: OIDCProvider) -> None:
    browser = requests.Session()
    body = tokens(oidc_provider, session=browser)
    end_session = (
        oidc_provider.endpoint("end_session")
        + "?"
        + urlencode(
            {
                "id_token_hint": body["id_token"],
                "post_logout_redirect_uri": "http://localhost/logged-out",
                "state": "bye",
            }
        )
    )
    assert logout(end_session, session=browser) == "http://localhost/logged-out?state=bye"
    # the provider's session is gone: the next authorization asks for a login again
    page = browser.get(
        authorization_url(
            oidc_provider,
            response_type="code",
            client_id=CLIENT_ID,
            redirect_uri=REDIRECT_URI,
            scope="openid",
            code_challenge=pkce_pair()[1],
            code_challenge_method="S256",
        ),
        timeout=5,
    )
    assert [form.fields.get("prompt") for form in parse_forms(page.text)] == ["login"]


def test_unregistered_redirect_uri_then_registered(oidc_provider_factory: ProviderFactory) -> None:
    provider = oidc_provider_factory()
    live_app = "http://127.0.0.1:5999/oauth2/op/callback"
    with pytest.raises(OPDriverError, match="redirect_uri"):
        login(provider, redirect_uri=live_app)
    provider.register_redirect_uri(live_app)
    flow = login(provider, redirect_uri=live_app)
    assert flow.callback.startswith(live_app + "?")
    assert redeem(provider, flow).status_code == 200


def test_key_rotation(oidc_provider_factory: ProviderFactory) -> None:
    provider = oidc_provider_factory()
    browser = requests.Session()
    before = tokens(provider, session=browser)
    old_kid = jwt.get_unverified_header(before["id_token"])["kid"]
    assert provider.kids == [old_kid]

    new_kids = provider.rotate_keys()
    assert old_kid not in new_kids
    published = [key["kid"] for key in provider.jwks()["keys"]]
    assert published == [*new_kids, old_kid]  # the new key signs, the old one still verifies
    verify_id_token(provider, before["id_token"])

    # the SSO session and the grant survive the swap: no login page, and the old refresh token works
    after = tokens(provider, session=browser, prompt=None, scope="openid")
    assert jwt.get_unverified_header(after["id_token"])["kid"] == new_kids[0]
    verify_id_token(provider, after["id_token"])
    refreshed = refresh(provider, before["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    assert jwt.get_unverified_header(refreshed.json()["id_token"])["kid"] == new_kids[0]

    newest = provider.rotate_keys(keep_previous=False)
    assert [key["kid"] for key in provider.jwks()["keys"]] == newest
    assert jwt.get_unverified_header(tokens(provider)["id_token"])["kid"] == newest[0]


def test_short_access_token_lifetime_and_refresh_always(oidc_provider_factory: ProviderFactory) -> None:
    provider = oidc_provider_factory(ttl={"AccessToken": 1}, issue_refresh_token="always")
    body = tokens(provider, prompt=None, scope="openid")
    assert body["expires_in"] == 1
    assert body["refresh_token"]  # without offline_access, because issue_refresh_token is "always"
    time.sleep(1.5)
    assert introspect(provider, body["access_token"])["active"] is False
    answer = refresh(provider, body["refresh_token"])
    assert answer.status_code == 200, answer.text
    assert introspect(provider, answer.json()["access_token"])["active"] is True


def test_public_client_and_resource_indicator(oidc_provider_factory: ProviderFactory) -> None:
    public = {
        "client_id": "spa",
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    provider = oidc_provider_factory(
        clients=[DEFAULT_CLIENT, public],
        resource_servers={"https://api.example.test/": {"scope": "api:read", "accessTokenFormat": "jwt"}},
    )
    answer = requests.post(
        provider.endpoint("token"),
        data={"grant_type": "client_credentials", "resource": "https://api.example.test/", "scope": "api:read"},
        auth=AUTH,
        timeout=5,
    )
    assert answer.status_code == 200, answer.text
    access_token = answer.json()["access_token"]
    claims = jwt.decode(access_token, options={"verify_signature": False})
    assert claims["aud"] == "https://api.example.test/"
    assert claims["scope"] == "api:read"
    assert jwt.get_unverified_header(access_token)["typ"] == "at+jwt"

    verifier, challenge = pkce_pair()
    url = authorization_url(
        provider,
        response_type="code",
        client_id="spa",
        redirect_uri=REDIRECT_URI,
        scope="openid",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    code = parse_qs(urlsplit(authorize(url)).query)["code"][0]
    redeemed = requests.post(
        provider.endpoint("token"),
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": "spa",
        },
        timeout=5,
    )
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["id_token"]


def test_admin_hooks(oidc_provider_factory: ProviderFactory) -> None:
    provider = oidc_provider_factory()
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        answer = requests.post(f"{provider.issuer}/_harness/rotate-keys", json={}, headers=headers, timeout=5)
        assert answer.status_code == 401
    with pytest.raises(AssertionError, match="client_secret is mandatory"):
        provider.update_client({"client_id": "broken", "redirect_uris": [REDIRECT_URI]})
    assert [client["client_id"] for client in provider.clients] == [CLIENT_ID]
    assert "code" in login(provider).params  # the refused change left the provider as it was


def test_start_failure_shows_the_launcher_log(oidc_provider_factory: ProviderFactory) -> None:
    with pytest.raises(pytest.fail.Exception, match=r"(?s)launcher stderr.*client_secret is mandatory"):
        oidc_provider_factory(clients=[{"client_id": "broken", "redirect_uris": [REDIRECT_URI]}])
