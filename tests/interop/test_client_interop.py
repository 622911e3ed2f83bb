"""Our client against oidc-provider (OpenID Certified) over real sockets: discovery, code + PKCE
login through its login and consent pages, nonce and ID token validation, UserInfo, refresh with
rotation, client_credentials, revocation, RP-initiated logout, and its signing keys rotated
mid-run."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from flask import Flask
from interop.conftest import CLIENT_ID
from interop.conftest import CLIENT_SECRET
from interop.op_driver import authorize
from interop.op_driver import logout
from interop.op_driver import parse_forms

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token


def op_app(provider, **settings: object) -> tuple[Flask, OAuth2Client]:
    app = Flask("op_client_app")
    app.config.update(
        SECRET_KEY="k" * 32,
        OAUTH2_TOKEN_STORE="memory",
        OAUTH2_PROVIDERS={
            "op": {
                "metadata_url": provider.metadata_url,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "scope": "openid offline_access profile email",
                "authorize_params": {"prompt": "consent"},
                **settings,
            }
        },
    )
    oauth = OAuth2Client(user_id_loader=lambda: "u1")
    oauth.init_app(app)

    @app.get("/me")
    @oauth.token_required("op")
    def me(token: Token) -> dict[str, object]:
        return {"sub": token.claims["sub"], "userinfo": oauth.userinfo("op")}

    return app, oauth


def sign_in(app: Flask, username: str = "alice", browser: requests.Session | None = None) -> None:
    """Log in through the provider's pages; *browser* keeps the user's cookies at the provider."""
    client = app.test_client()
    start = client.get("/oauth2/op/login", query_string={"next": "/me"})
    assert start.status_code == 302
    back = authorize(start.headers["Location"], session=browser or requests.Session(), username=username)
    parts = urlsplit(back)
    assert parts.path == "/oauth2/op/callback", back
    done = client.get(f"{parts.path}?{parts.query}")
    assert done.status_code == 302, done.data
    assert done.headers["Location"] == "/me"


def stored(app: Flask) -> Token:
    token = app.extensions["oauth2_client"].store.get("op", "u1")
    assert token is not None
    return token


def test_login_validates_the_certified_providers_id_token(oidc_provider):
    app, _ = op_app(oidc_provider)
    sign_in(app, "alice")
    token = stored(app)
    assert token.claims["sub"] == "alice"
    assert token.claims["iss"] == oidc_provider.issuer
    assert token.refresh_token is not None
    me = app.test_client().get("/me").json
    assert me["sub"] == "alice"
    assert me["userinfo"]["sub"] == "alice"


def test_refresh_rotates_and_keeps_the_subject(oidc_provider):
    app, oauth = op_app(oidc_provider)
    sign_in(app, "bob")
    first = stored(app)
    with app.test_request_context():
        second = oauth.refresh("op")
    assert second.refresh_token != first.refresh_token  # rotated
    assert second.claims["sub"] == "bob"
    old = requests.post(
        oidc_provider.endpoint("token"),
        data={"grant_type": "refresh_token", "refresh_token": first.refresh_token},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=5,
    )
    assert old.status_code == 400  # the spent one is refused: we never used it twice


def test_revocation_at_the_provider(oidc_provider):
    app, oauth = op_app(oidc_provider)
    sign_in(app, "carol")
    token = stored(app)
    with app.test_request_context():
        oauth.revoke("op")
    assert app.extensions["oauth2_client"].store.get("op", "u1") is None
    answer = requests.post(
        oidc_provider.endpoint("introspection"),
        data={"token": token.refresh_token},
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=5,
    )
    assert answer.json()["active"] is False


def test_signing_keys_rotated_mid_run(oidc_provider_factory):
    provider = oidc_provider_factory()
    app, _ = op_app(provider)
    sign_in(app, "dave")
    jwks_before = app.extensions["oauth2_client"].clients["op"].keys._keys
    provider.rotate_keys(keep_previous=False)
    app.extensions["oauth2_client"].clients["op"].keys._fetched_at -= 5  # rate limit window passed
    app.extensions["oauth2_client"].store.delete("op", "u1")
    sign_in(app, "dave")  # signed with a kid the client has not seen: fetched again
    assert stored(app).claims["sub"] == "dave"
    assert app.extensions["oauth2_client"].clients["op"].keys._keys is not jwks_before


def introspect(provider, token: str) -> dict[str, object]:
    answer = requests.post(
        provider.endpoint("introspection"), data={"token": token}, auth=(CLIENT_ID, CLIENT_SECRET), timeout=5
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_client_credentials_token(oidc_provider):
    app = Flask("op_machine_app")
    app.config.update(
        SECRET_KEY="k" * 32,
        OAUTH2_TOKEN_STORE="memory",
        OAUTH2_PROVIDERS={
            "machine": {
                "metadata_url": oidc_provider.metadata_url,
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "grant_type": "client_credentials",
                "scope": "api:read",
            }
        },
    )
    oauth = OAuth2Client()
    oauth.init_app(app)
    with app.app_context():
        token = oauth.client_credentials_token("machine")
        assert oauth.client_credentials_token("machine") is token  # kept while it lasts
        wider = oauth.client_credentials_token("machine", scopes="api:read api:write")
    assert token.scopes == frozenset({"api:read"})
    assert wider.scopes == frozenset({"api:read", "api:write"})
    assert wider.access_token != token.access_token
    details = introspect(oidc_provider, token.access_token)
    assert details["active"] is True
    assert details["client_id"] == CLIENT_ID
    assert details["scope"] == "api:read"


def test_rp_initiated_logout_ends_the_providers_session(oidc_provider):
    app, _ = op_app(oidc_provider)
    browser = requests.Session()  # the user's cookies at the provider
    sign_in(app, "erin", browser)
    token = stored(app)
    answer = app.test_client().post("/oauth2/op/logout")
    assert answer.status_code == 303
    assert app.extensions["oauth2_client"].store.get("op", "u1") is None
    location = answer.headers["Location"]
    assert location.startswith(oidc_provider.endpoint("end_session") + "?")
    assert str(token.id_token) not in location  # no token in a URL
    # the provider asks the user to confirm, then sends the browser back to us
    assert logout(location, session=browser) == "http://localhost/"
    assert introspect(oidc_provider, str(token.refresh_token))["active"] is False  # revoked first
    assert_signed_out_at(app, browser)


def test_rp_initiated_logout_by_post_with_the_id_token_hint(oidc_provider_factory):
    # oidc-provider takes POST at its end-session endpoint only with SameSite=None cookies
    provider = oidc_provider_factory(http_post_methods=True)
    app, _ = op_app(provider, end_session_method="post")
    browser = requests.Session()
    sign_in(app, "frank", browser)
    token = stored(app)
    page = app.test_client().post("/oauth2/op/logout")
    assert page.status_code == 200
    [form] = parse_forms(page.get_data(as_text=True))
    assert form.method == "post"
    assert form.action == provider.endpoint("end_session")
    assert form.fields["id_token_hint"] == token.id_token
    assert form.fields["client_id"] == CLIENT_ID
    assert logout(form.action, session=browser, form=form.fields) == "http://localhost/"
    assert_signed_out_at(app, browser)


def test_a_post_logout_is_refused_by_a_default_oidc_provider(oidc_provider):
    # why "get" is the default: with SameSite=Lax cookies a provider cannot honour a cross-site POST
    answer = requests.post(oidc_provider.endpoint("end_session"), data={"client_id": CLIENT_ID}, timeout=5)
    assert answer.status_code == 404


def assert_signed_out_at(app: Flask, browser: requests.Session) -> None:
    """The provider's session is gone: the next login shows its login form again."""
    start = app.test_client().get("/oauth2/op/login")
    login_page = browser.get(start.headers["Location"], timeout=5)
    assert [f.fields.get("prompt") for f in parse_forms(login_page.text)] == ["login"]
