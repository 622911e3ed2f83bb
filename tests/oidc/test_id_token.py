"""OpenID Connect logins against FakeProvider over real sockets: nonce, ID token validation with
forged tokens (SECURITY.md P-9..P-16), key rotation, refresh, UserInfo, mix-up defence and
RP-initiated logout."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import pytest
import requests
from flask import Flask
from helpers import callback_path
from helpers import login
from helpers import provider_answer

from flask_oauth2_client import ConfigurationError
from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.testing import FakeProvider
from flask_oauth2_client.testing import SigningKey

SCOPE = "openid profile email"


def oidc_app(fake_provider: FakeProvider, name: str = "demo", **provider) -> tuple[Flask, OAuth2Client]:
    app = Flask("oidc")
    settings = {
        "client_id": fake_provider.client_id,
        "client_secret": fake_provider.client_secret,
        "metadata_url": fake_provider.openid_configuration_url,
        "scope": SCOPE,
        **provider,
    }
    app.config.update(
        SECRET_KEY="k" * 32,
        OAUTH2_TOKEN_STORE="memory",
        OAUTH2_PROVIDERS={name: {k: v for k, v in settings.items() if v is not None}},
    )
    oauth = OAuth2Client(user_id_loader=lambda: "user-1")
    oauth.init_app(app)

    @app.get("/protected")
    @oauth.token_required(name)
    def protected(token: Token) -> dict[str, object]:
        return {"sub": token.claims.get("sub"), "name": token.claims.get("name")}

    @app.get("/me")
    def me() -> dict[str, object]:
        return oauth.userinfo(name)

    return app, oauth


def stored(app: Flask, name: str = "demo") -> Token | None:
    return app.extensions["oauth2_client"].store.get(name, "user-1")


def refused(app: Flask, fake_provider: FakeProvider, id_token) -> dict[str, str]:
    """Log in while the provider answers with *id_token*; return the callback's JSON error."""
    fake_provider.set_next_id_token(id_token)
    before = stored(app)
    client = app.test_client()
    path = provider_answer(client, fake_provider)
    answer = client.get(path, headers={"Accept": "application/json"})
    assert answer.status_code == 502, answer.data
    assert stored(app) == before  # nothing stored
    return answer.json


# -- a valid login ------------------------------------------------------------------------------------


def test_login_validates_the_id_token_and_keeps_its_claims(fake_provider):
    app, _ = oidc_app(fake_provider)
    client = app.test_client()
    start = client.get("/oauth2/demo/login")
    params = parse_qs(urlsplit(start.headers["Location"]).query)
    nonce = params["nonce"][0]
    assert len(nonce) >= 43
    assert nonce not in str(client.get_cookie("session").value)  # derived, never stored
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    assert client.get(callback_path(answer.headers["Location"])).status_code == 302
    token = stored(app)
    assert token.claims["sub"] == "alice"
    assert token.claims["nonce"] == nonce
    assert token.claims["iss"] == fake_provider.issuer
    assert client.get("/protected").json == {"sub": "alice", "name": token.claims.get("name")}


def test_a_provider_configured_by_hand_needs_issuer_and_jwks(fake_provider):
    app, _ = oidc_app(
        fake_provider,
        metadata_url=None,
        authorize_url=fake_provider.authorize_url,
        token_url=fake_provider.token_url,
        issuer=fake_provider.issuer,
        jwks_url=fake_provider.jwks_url,
    )
    assert login(app.test_client(), fake_provider).status_code == 302
    assert stored(app).claims["sub"] == "alice"


def test_without_the_issuer_an_id_token_cannot_be_checked(fake_provider):
    app, _ = oidc_app(
        fake_provider, metadata_url=None, authorize_url=fake_provider.authorize_url, token_url=fake_provider.token_url
    )
    client = app.test_client()
    answer = client.get(provider_answer(client, fake_provider), headers={"Accept": "application/json"})
    assert answer.status_code == 502
    assert stored(app) is None


# -- forged ID tokens -----------------------------------------------------------------------------


def nonce_of(claims: dict) -> str:
    return claims["nonce"]


FORGERIES = {
    "bad signature": lambda p: lambda c: p.make_id_token(c, key=SigningKey.generate().private_key),
    "alg none": lambda p: lambda c: p.make_id_token(c, unsigned=True),
    "HS256 with the client secret": lambda p: lambda c: p.make_id_token(c, sign_with_secret=p.client_secret),
    "wrong iss": lambda p: lambda c: p.make_id_token({**c, "iss": "https://evil.example"}),
    "wrong aud": lambda p: lambda c: p.make_id_token({**c, "aud": "someone-else", "azp": None}),
    "extra untrusted aud": lambda p: lambda c: p.make_id_token({**c, "aud": [c["aud"], "other-api"]}),
    "wrong azp": lambda p: lambda c: p.make_id_token({**c, "azp": "someone-else"}),
    "expired": lambda p: lambda c: p.make_id_token({**c, "exp": int(time.time()) - 120}),
    "iat in the future": lambda p: lambda c: p.make_id_token({**c, "iat": int(time.time()) + 600}),
    "wrong nonce": lambda p: lambda c: p.make_id_token({**c, "nonce": "not-the-nonce"}),
    "missing nonce": lambda p: lambda c: p.make_id_token({**c, "nonce": None}),
    "missing sub": lambda p: lambda c: p.make_id_token({**c, "sub": None}),
    "at_hash of another token": lambda p: lambda c: p.make_id_token({**c, "at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}),
    "unknown kid": lambda p: lambda c: p.make_id_token(c, key=SigningKey.generate()),
    "not a JWT": lambda p: lambda c: "not.a.jwt",
    "missing": lambda p: None,
}


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_id_tokens_are_refused(fake_provider, forgery):
    app, _ = oidc_app(fake_provider)
    error = refused(app, fake_provider, FORGERIES[forgery](fake_provider))
    assert error["error"] == "invalid_id_token"


def test_extra_audience_is_accepted_when_trusted(fake_provider):
    app, _ = oidc_app(fake_provider, trusted_audiences=["other-api"])
    fake_provider.set_next_id_token(lambda c: fake_provider.make_id_token({**c, "aud": [c["aud"], "other-api"]}))
    assert login(app.test_client(), fake_provider).status_code == 302
    assert stored(app) is not None


def test_small_clock_skew_is_tolerated(fake_provider):
    app, _ = oidc_app(fake_provider)
    now = int(time.time())
    fake_provider.set_next_id_token(lambda c: fake_provider.make_id_token({**c, "exp": now - 30, "iat": now + 200}))
    assert login(app.test_client(), fake_provider).status_code == 302


def test_key_rotation_is_followed_once_per_unknown_kid(fake_provider):
    app, _ = oidc_app(fake_provider)
    assert login(app.test_client(), fake_provider).status_code == 302
    assert fake_provider.calls("jwks") == 1
    fake_provider.rotate_keys(keep_old=False)
    assert login(app.test_client(), fake_provider).status_code == 302  # new kid: fetched again
    assert fake_provider.calls("jwks") == 2
    # A flood of tokens with unknown key ids fetches the key set at most once per 5 s (P-15).
    for _ in range(3):
        refused(app, fake_provider, lambda c: fake_provider.make_id_token(c, key=SigningKey.generate()))
    assert fake_provider.calls("jwks") == 2
    app.extensions["oauth2_client"].clients["demo"].keys._fetched_at -= 5  # five seconds later
    refused(app, fake_provider, lambda c: fake_provider.make_id_token(c, key=SigningKey.generate()))
    assert fake_provider.calls("jwks") == 3


def test_an_unreachable_key_set_fails_the_login_cleanly(fake_provider):
    from flask_oauth2_client.testing import Fault

    app, _ = oidc_app(fake_provider)
    fake_provider.set_fault("jwks", Fault(status=500))
    client = app.test_client()
    answer = client.get(provider_answer(client, fake_provider), headers={"Accept": "application/json"})
    assert answer.status_code == 502
    assert answer.json["error"] == "provider_unavailable"
    assert stored(app) is None


# -- refresh ----------------------------------------------------------------------------------------


def expire(app: Flask) -> None:
    store = app.extensions["oauth2_client"].store
    token = store.get("demo", "user-1")
    from helpers import aged

    store.set("demo", "user-1", aged(token, -5))


def test_refresh_checks_the_new_id_token_and_keeps_the_user(fake_provider):
    app, _ = oidc_app(fake_provider)
    client = app.test_client()
    login(client, fake_provider)
    first = stored(app)
    expire(app)
    assert client.get("/protected").json["sub"] == "alice"
    second = stored(app)
    assert second.id_token != first.id_token
    assert second.claims["sub"] == "alice"
    assert fake_provider.calls("token", grant_type="refresh_token") == 1


def test_refresh_without_an_id_token_keeps_the_logins(fake_provider):
    app, _ = oidc_app(fake_provider)
    client = app.test_client()
    login(client, fake_provider)
    first = stored(app)
    expire(app)
    fake_provider.set_next_id_token(None, grant_type="refresh_token")
    assert client.get("/protected").status_code == 200
    assert stored(app).id_token == first.id_token
    assert stored(app).claims["sub"] == "alice"


def test_refresh_naming_another_user_ends_the_session(fake_provider):
    app, _ = oidc_app(fake_provider)
    client = app.test_client()
    login(client, fake_provider)
    expire(app)
    fake_provider.set_next_id_token(
        lambda c: fake_provider.make_id_token({**c, "sub": "mallory"}), grant_type="refresh_token"
    )
    answer = client.get("/protected")
    assert answer.status_code == 302
    assert "/oauth2/demo/login" in answer.headers["Location"]
    assert stored(app) is None


# -- UserInfo ---------------------------------------------------------------------------------------


def test_userinfo_returns_the_users_claims(fake_provider):
    app, _ = oidc_app(fake_provider)
    client = app.test_client()
    login(client, fake_provider)
    assert client.get("/me").json["sub"] == "alice"


def test_userinfo_about_another_subject_is_refused(fake_provider):
    app, _ = oidc_app(fake_provider)
    client = app.test_client()
    login(client, fake_provider)
    fake_provider.userinfo_sub = "mallory"
    answer = client.get("/me", headers={"Accept": "application/json"})
    assert answer.status_code == 502
    assert answer.json["error"] == "subject_changed"


# -- mix-up defence (RFC 9207) ----------------------------------------------------------------------


def test_an_answer_from_another_issuer_is_refused_before_any_exchange(fake_provider):
    fake_provider.send_iss = True
    with FakeProvider(send_iss=True) as other:
        app = Flask("mixup")
        app.config.update(
            SECRET_KEY="k" * 32,
            OAUTH2_TOKEN_STORE="memory",
            OAUTH2_PROVIDERS={
                name: {
                    "client_id": p.client_id,
                    "client_secret": p.client_secret,
                    "metadata_url": p.openid_configuration_url,
                    "scope": SCOPE,
                }
                for name, p in (("a", fake_provider), ("b", other))
            },
        )
        OAuth2Client(app)
        client = app.test_client()
        start_a = client.get("/oauth2/a/login").headers["Location"]
        answer_b = requests.get(client.get("/oauth2/b/login").headers["Location"], allow_redirects=False, timeout=5)
        state_a = parse_qs(urlsplit(start_a).query)["state"][0]
        # The attacker's provider B answers on A's callback, with A's state and B's code.
        code_b = parse_qs(urlsplit(answer_b.headers["Location"]).query)["code"][0]
        forged = client.get(
            "/oauth2/a/callback",
            query_string={"state": state_a, "code": code_b, "iss": other.issuer},
            headers={"Accept": "application/json"},
        )
        assert forged.status_code == 400
        assert forged.json["error"] == "invalid_issuer"
        assert fake_provider.calls("token") == 0
        assert other.calls("token") == 0


def test_a_missing_iss_is_refused_when_the_provider_promises_it(fake_provider):
    fake_provider.metadata_overrides = {"authorization_response_iss_parameter_supported": True}
    app, _ = oidc_app(fake_provider)
    client = app.test_client()
    answer = client.get(provider_answer(client, fake_provider), headers={"Accept": "application/json"})
    assert answer.status_code == 400
    assert answer.json["error"] == "invalid_issuer"
    assert fake_provider.calls("token") == 0


def test_the_right_iss_is_accepted(fake_provider):
    fake_provider.send_iss = True
    app, _ = oidc_app(fake_provider)
    assert login(app.test_client(), fake_provider).status_code == 302
    assert stored(app) is not None


# -- RP-initiated logout ------------------------------------------------------------------------------


def test_logout_ends_the_providers_session_with_a_redirect_without_the_id_token(fake_provider):
    app, _ = oidc_app(fake_provider)
    client = app.test_client()
    login(client, fake_provider)
    id_token = stored(app).id_token
    answer = client.post("/oauth2/demo/logout", data={"next": "/ignored"}, headers={"Origin": "http://localhost"})
    assert answer.status_code == 303
    assert stored(app) is None
    location = answer.headers["Location"]
    assert location.startswith(fake_provider.end_session_url + "?")
    assert id_token not in location  # no token in a URL
    assert "id_token_hint" not in location
    assert dict(parse_qsl(urlsplit(location).query)) == {
        "client_id": fake_provider.client_id,
        "post_logout_redirect_uri": "http://localhost/",  # OAUTH2_DEFAULT_NEXT, made absolute
    }
    assert answer.headers["Cache-Control"] == "no-store"
    assert fake_provider.has_session("alice")
    done = requests.get(location, allow_redirects=False, timeout=5)
    assert done.status_code == 302
    assert done.headers["Location"] == "http://localhost/"
    assert not fake_provider.has_session("alice")


def test_an_end_session_url_with_a_query_keeps_it(fake_provider):
    app, _ = oidc_app(fake_provider, end_session_url=fake_provider.end_session_url + "?tenant=t1")
    client = app.test_client()
    login(client, fake_provider)
    answer = client.post("/oauth2/demo/logout", headers={"Origin": "http://localhost"})
    query = parse_qsl(urlsplit(answer.headers["Location"]).query)
    assert query[0] == ("tenant", "t1")
    assert dict(query)["client_id"] == fake_provider.client_id


def test_logout_ends_the_providers_session_with_a_post(fake_provider):
    app, _ = oidc_app(fake_provider, post_logout_redirect_uri="http://localhost/bye", end_session_method="post")
    client = app.test_client()
    login(client, fake_provider)
    id_token = stored(app).id_token
    page = client.post("/oauth2/demo/logout", headers={"Origin": "http://localhost"})
    assert page.status_code == 200
    assert stored(app) is None
    html = page.get_data(as_text=True)
    assert f'action="{fake_provider.end_session_url}"' in html
    assert id_token not in page.headers.get("Location", "")
    csp = page.headers["Content-Security-Policy"]
    assert f"form-action {fake_provider.url}" in csp
    assert "script-src 'self'" in csp
    assert page.headers["Cache-Control"] == "no-store"
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', html))
    assert fields["id_token_hint"] == id_token
    assert fields["post_logout_redirect_uri"] == "http://localhost/bye"
    assert fake_provider.has_session("alice")
    done = requests.post(fake_provider.end_session_url, data=fields, allow_redirects=False, timeout=5)
    assert done.status_code == 302
    assert done.headers["Location"].startswith("http://localhost/bye")
    assert not fake_provider.has_session("alice")


def test_logout_without_an_end_session_endpoint_just_redirects(fake_provider):
    fake_provider.metadata_overrides = {"end_session_endpoint": None}
    app, _ = oidc_app(fake_provider)
    client = app.test_client()
    login(client, fake_provider)
    answer = client.post("/oauth2/demo/logout", data={"next": "/after"}, headers={"Origin": "http://localhost"})
    assert answer.status_code == 303
    assert answer.headers["Location"] == "/after"


def test_end_session_method_must_be_get_or_post(fake_provider):
    with pytest.raises(ConfigurationError, match="'end_session_method' must be 'get' or 'post'"):
        oidc_app(fake_provider, end_session_method="PUT")
