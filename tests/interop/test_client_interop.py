"""Our client against oidc-provider (OpenID Certified) over real sockets: discovery, code + PKCE
login through its login and consent pages, nonce and ID token validation, UserInfo, refresh with
rotation, revocation, and its signing keys rotated mid-run."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
from flask import Flask
from interop.conftest import CLIENT_ID
from interop.conftest import CLIENT_SECRET
from interop.op_driver import authorize

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token


def op_app(provider) -> tuple[Flask, OAuth2Client]:
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


def sign_in(app: Flask, username: str = "alice") -> None:
    client = app.test_client()
    start = client.get("/oauth2/op/login", query_string={"next": "/me"})
    assert start.status_code == 302
    back = authorize(start.headers["Location"], session=requests.Session(), username=username)
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
