"""The authorization-code flow end to end against FakeProvider over real sockets."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from helpers import authorization_params
from helpers import login

from flask_oauth2_client import token_obtained
from flask_oauth2_client.pkce import code_challenge


def test_login_redirects_with_every_parameter(app, client, fake_provider):
    response = client.get("/oauth2/demo/login?next=/somewhere")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == fake_provider.authorize_url
    params = authorization_params(client, next_url="/somewhere")
    assert params["response_type"] == "code"
    assert params["client_id"] == fake_provider.client_id
    assert params["redirect_uri"] == "http://localhost/oauth2/demo/callback"
    assert params["scope"] == "read write"
    assert params["code_challenge_method"] == "S256"
    assert len(params["state"]) >= 32
    assert len(params["code_challenge"]) == 43
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_each_login_has_its_own_state_and_verifier(client):
    first = authorization_params(client)
    second = authorization_params(client)
    assert first["state"] != second["state"]
    assert first["code_challenge"] != second["code_challenge"]


def test_scope_separator_and_authorize_params(make_app, fake_provider):
    app = make_app(provider={"scope": ["a", "b c"], "scope_separator": ",", "authorize_params": {"prompt": "consent"}})
    params = authorization_params(app.test_client())
    assert params["scope"] == "a,b,c"
    assert params["prompt"] == "consent"


def test_happy_path_stores_token_and_goes_to_next(app, client, fake_provider):
    received = []

    def on_token(sender, **kwargs):
        received.append(kwargs)

    with token_obtained.connected_to(on_token, app):
        response = login(client, fake_provider, next_url="/protected?x=1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/protected?x=1"
    assert len(received) == 1
    assert received[0]["provider"] == "demo"
    assert received[0]["token"].scopes == {"read", "write"}

    page = client.get("/protected")
    assert page.status_code == 200
    assert page.json["scopes"] == ["read", "write"]
    notes = client.get("/api/notes")
    assert notes.status_code == 200
    assert notes.json["user"] == "alice"


def test_code_exchange_sends_verifier_and_basic_auth(app, client, fake_provider):
    params = authorization_params(client)
    login(client, fake_provider)
    exchange = [r for r in fake_provider.requests if r.endpoint == "token"][-1]
    assert exchange.grant_type == "authorization_code"
    assert exchange.auth_method_used == "client_secret_basic"
    assert "client_secret" not in exchange.form
    assert exchange.form["redirect_uri"] == "http://localhost/oauth2/demo/callback"
    assert code_challenge(exchange.form["code_verifier"]) != params["code_challenge"]  # another login's


def test_client_secret_post_matches_the_reference_text(make_app, fake_provider):
    app = make_app(provider={"client_auth_method": "client_secret_post"})
    client = app.test_client()
    assert login(client, fake_provider).status_code == 302
    exchange = [r for r in fake_provider.requests if r.endpoint == "token"][-1]
    assert exchange.auth_method_used == "client_secret_post"
    assert list(exchange.form)[:5] == ["grant_type", "code", "client_id", "client_secret", "redirect_uri"]
    assert "Authorization" not in exchange.headers


def test_public_client_with_auth_method_none(make_app, fake_provider):
    fake_provider.register_client("public-app", None, auth_method="none")
    app = make_app(provider={"client_id": "public-app", "client_secret": None})
    client = app.test_client()
    assert login(client, fake_provider).status_code == 302
    exchange = [r for r in fake_provider.requests if r.endpoint == "token"][-1]
    assert exchange.auth_method_used == "none"
    assert client.get("/protected").status_code == 200


@pytest.mark.parametrize("store", ["memory", "session"])
def test_flow_works_with_each_store(make_app, fake_provider, store):
    app = make_app(OAUTH2_TOKEN_STORE=store)
    client = app.test_client()
    assert login(client, fake_provider).status_code == 302
    assert client.get("/protected").status_code == 200
    other = app.test_client()
    assert other.get("/protected").status_code == 302  # another browser has no token


def test_unknown_provider_is_404(client):
    assert client.get("/oauth2/nope/login").status_code == 404
    assert client.get("/oauth2/nope/callback?state=x&code=y").status_code == 404
