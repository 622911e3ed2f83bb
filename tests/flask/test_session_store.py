"""The session store: encrypted in Flask's cookie session, scoped to the user id, and with
Flask-Session (server side) the session id is rotated once signed in."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from helpers import login
from helpers import provider_config

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import Token
from flask_oauth2_client.crypto import TokenCipher
from flask_oauth2_client.crypto import derive_key


def cookie_payload(app, client):
    cookie = client.get_cookie("session")
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    return serializer.loads(cookie.value)


def stored_token(app, client):
    with client.session_transaction() as session:
        owner, blob = session["_oauth2"]["t"]["demo"]
        assert owner == session["_oauth2"]["u"]
    return owner, blob


@pytest.mark.parametrize("keys", [None, [Fernet.generate_key().decode()]])
def test_tokens_in_the_cookie_are_encrypted(make_app, fake_provider, keys):
    app = make_app(OAUTH2_TOKEN_STORE="session", OAUTH2_TOKEN_ENCRYPTION_KEYS=keys)
    client = app.test_client()
    login(client, fake_provider)
    raw = str(cookie_payload(app, client))
    verifier = next(r.form["code_verifier"] for r in fake_provider.requests if r.endpoint == "token")
    assert verifier not in raw  # derived from the state, never stored
    for _ in range(3):
        client.get("/oauth2/demo/login")  # pending logins keep nothing secret either
    assert "code_verifier" not in str(cookie_payload(app, client))
    _, blob = stored_token(app, client)
    assert isinstance(blob, str)
    cipher = TokenCipher(keys or [derive_key(app.secret_key)])
    plain = cipher.decrypt(blob.encode()).decode()
    assert '"access_token"' in plain
    assert "access_token" not in raw
    assert client.get("/protected").status_code == 200


def test_key_rotation_keeps_old_tokens_readable(make_app, fake_provider):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    app = make_app(OAUTH2_TOKEN_STORE="session", OAUTH2_TOKEN_ENCRYPTION_KEYS=[old])
    client = app.test_client()
    login(client, fake_provider)
    rotated = make_app(OAUTH2_TOKEN_STORE="session", OAUTH2_TOKEN_ENCRYPTION_KEYS=f"{new},{old}")
    rotated_client = rotated.test_client()
    rotated_client.set_cookie("session", client.get_cookie("session").value)
    assert rotated_client.get("/protected").status_code == 200
    wrong = make_app(OAUTH2_TOKEN_STORE="session", OAUTH2_TOKEN_ENCRYPTION_KEYS=[new])
    wrong_client = wrong.test_client()
    wrong_client.set_cookie("session", client.get_cookie("session").value)
    assert wrong_client.get("/protected").status_code == 302  # unreadable = absent, never a 500


def test_another_user_in_the_same_browser_does_not_get_the_token(make_app, fake_provider):
    who = {"id": "alice"}
    oauth = OAuth2Client(user_id_loader=lambda: who["id"])
    app = make_app(OAUTH2_TOKEN_STORE="session", oauth=oauth)
    client = app.test_client()
    login(client, fake_provider)
    assert client.get("/protected").status_code == 200
    who["id"] = "bob"
    assert client.get("/protected").status_code == 302


def test_flask_session_server_side_rotates_the_session_id(fake_provider, tmp_path):
    from cachelib import FileSystemCache
    from flask_session import Session

    app = Flask("fs")
    app.config.update(
        SECRET_KEY="x" * 32,
        SESSION_TYPE="cachelib",
        SESSION_CACHELIB=FileSystemCache(str(tmp_path), threshold=500),
        OAUTH2_PROVIDERS={"demo": provider_config(fake_provider)},
    )
    Session(app)
    oauth = OAuth2Client(app)  # no cookie-session warning: tokens stay on the server

    @app.get("/protected")
    @oauth.token_required("demo")
    def protected(token: Token) -> str:
        return "ok"

    client = app.test_client()
    client.get("/oauth2/demo/login")
    before = client.get_cookie("session").value
    login(client, fake_provider)
    after = client.get_cookie("session").value
    assert before != after
    assert client.get("/protected").data == b"ok"
    assert "access_token" not in after
