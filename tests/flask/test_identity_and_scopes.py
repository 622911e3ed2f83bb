"""Whose token: Flask-Login's current user by default; and incremental authorization."""

from __future__ import annotations

from urllib.parse import parse_qs
from urllib.parse import urlsplit

import flask_login
import requests
from flask import Flask
from helpers import callback_path
from helpers import login
from helpers import provider_config

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.testing import Fault


class User(flask_login.UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def flask_login_app(fake_provider) -> Flask:
    app = Flask("fl")
    app.config.update(
        SECRET_KEY="k" * 32, OAUTH2_TOKEN_STORE="memory", OAUTH2_PROVIDERS={"demo": provider_config(fake_provider)}
    )
    manager = flask_login.LoginManager(app)
    manager.user_loader(User)
    oauth = OAuth2Client(app)

    @app.get("/signin/<user_id>")
    def signin(user_id: str) -> str:
        flask_login.login_user(User(user_id))
        return "in"

    @app.get("/protected")
    @oauth.token_required("demo")
    def protected(token: Token) -> str:
        return flask_login.current_user.get_id()

    return app


def test_flask_login_user_owns_the_token_on_every_device(fake_provider):
    app = flask_login_app(fake_provider)
    laptop, phone, other = app.test_client(), app.test_client(), app.test_client()
    laptop.get("/signin/42")
    phone.get("/signin/42")
    other.get("/signin/7")
    login(laptop, fake_provider)
    assert app.extensions["oauth2_client"].store.get("demo", "42") is not None
    assert laptop.get("/protected").data == b"42"
    assert phone.get("/protected").data == b"42"  # same app user, another browser
    assert other.get("/protected").status_code == 302


def test_missing_scope_asks_for_the_union_then_stops(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: "scoped")
    app = make_app(oauth=oauth)

    @app.get("/admin")
    @oauth.token_required("demo", scopes="admin")
    def admin(token: Token) -> str:
        return "admin"

    client = app.test_client()
    login(client, fake_provider)
    first = client.get("/admin")
    assert first.status_code == 302
    start = client.get(first.headers["Location"])
    asked = parse_qs(urlsplit(start.headers["Location"]).query)["scope"][0]
    assert asked.split() == ["read", "write", "admin"]
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    assert client.get(callback_path(answer.headers["Location"])).headers["Location"] == "/admin"
    assert client.get("/admin").data == b"admin"

    # A provider that grants less than asked: one more login, then a 403 instead of a loop.
    fake_provider.set_fault(
        "token",
        Fault(status=200, json={"access_token": "narrow", "token_type": "Bearer", "expires_in": 600, "scope": "read"}),
    )
    app.extensions["oauth2_client"].store.delete("demo", "scoped")
    again = client.get("/admin")
    assert again.status_code == 302
    start = client.get(again.headers["Location"])
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    assert client.get(callback_path(answer.headers["Location"])).status_code == 302
    refused = client.get("/admin")
    assert refused.status_code == 403
    assert "did not grant" in refused.get_data(as_text=True)


def test_added_scopes_are_kept_when_the_answer_omits_scope(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: "omit")
    app = make_app(oauth=oauth)

    @app.get("/admin")
    @oauth.token_required("demo", scopes="admin")
    def admin(token: Token) -> str:
        return "admin"

    client = app.test_client()
    fake_provider.set_fault(
        "token", Fault(status=200, json={"access_token": "a", "token_type": "Bearer", "expires_in": 600})
    )
    first = client.get("/admin")
    start = client.get(first.headers["Location"])
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    assert client.get(callback_path(answer.headers["Location"])).status_code == 302
    assert client.get("/admin").data == b"admin"
