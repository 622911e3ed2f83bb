"""client_credentials, password, and calling APIs with oauth.session(), against FakeProvider."""

from __future__ import annotations

import logging
import threading

import pytest
import requests
from flask import Flask
from helpers import aged
from helpers import login
from helpers import provider_config

from flask_oauth2_client import CallbackError
from flask_oauth2_client import ConfigurationError
from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import ProviderUnavailable
from flask_oauth2_client import ReauthorizationRequired
from flask_oauth2_client import Token
from flask_oauth2_client import TokenError
from flask_oauth2_client.refresher import app_token_key
from flask_oauth2_client.refresher import app_token_owner
from flask_oauth2_client.testing import Fault


def grant_app(fake_provider, grant_type, *, store="memory", **config) -> tuple[Flask, OAuth2Client]:
    app = Flask("grants")
    settings = provider_config(fake_provider, grant_type=grant_type)
    if grant_type != "authorization_code":
        settings.pop("authorize_url")
    app.config.update(SECRET_KEY="k" * 32, OAUTH2_TOKEN_STORE=store, OAUTH2_PROVIDERS={"svc": settings}, **config)
    oauth = OAuth2Client()
    if grant_type == "password":
        with pytest.warns(DeprecationWarning, match=r"RFC 9700 §2\.4"):
            oauth.init_app(app)
    else:
        oauth.init_app(app)

    @app.get("/data")
    @oauth.token_required("svc")
    def data(token: Token) -> dict[str, object]:
        return {"scopes": sorted(token.scopes)}

    @app.get("/notes")
    def notes() -> object:
        answer = oauth.session("svc").get(fake_provider.api_url)
        return answer.json(), answer.status_code

    return app, oauth


# -- client_credentials -----------------------------------------------------------------------------


def test_client_credentials_token_is_cached_until_near_expiry(fake_provider):
    app, oauth = grant_app(fake_provider, "client_credentials")
    with app.app_context():  # no request needed
        first = oauth.client_credentials_token("svc")
        assert oauth.client_credentials_token("svc") == first
        assert fake_provider.calls("token", grant_type="client_credentials") == 1
        store = app.extensions["oauth2_client"].app_store
        key = (app_token_key("svc"), "read write")
        assert store.get(*key) == first
        store.set(*key, aged(first, 10))  # within the leeway: asked again
        second = oauth.client_credentials_token("svc")
    assert second.access_token != first.access_token
    assert fake_provider.calls("token", grant_type="client_credentials") == 2
    request = [r for r in fake_provider.requests if r.endpoint == "token"][-1]
    assert request.auth_method_used == "client_secret_basic"
    assert request.form["scope"] == "read write"


def test_client_credentials_other_scopes_are_cached_apart(fake_provider):
    app, oauth = grant_app(fake_provider, "client_credentials")
    with app.app_context():
        narrow = oauth.client_credentials_token("svc", "read")
        wide = oauth.client_credentials_token("svc")
        assert oauth.client_credentials_token("svc", ["read"]) == narrow
    assert narrow.scopes == {"read"}
    assert wide.access_token != narrow.access_token


def test_client_credentials_is_single_flight(fake_provider):
    app, oauth = grant_app(fake_provider, "client_credentials")
    fake_provider.set_fault("token", Fault(status=None, delay=0.2, grant_type="client_credentials"))
    barrier = threading.Barrier(20)
    tokens: list[str] = []

    def fetch() -> None:
        with app.app_context():
            barrier.wait()
            tokens.append(oauth.client_credentials_token("svc").access_token)

    threads = [threading.Thread(target=fetch) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(tokens) == 20
    assert len(set(tokens)) == 1
    assert fake_provider.calls("token", grant_type="client_credentials") == 1


def test_client_credentials_with_session_store_is_app_wide(fake_provider):
    app, _ = grant_app(fake_provider, "client_credentials", store="session")
    assert app.test_client().get("/data").status_code == 200
    assert app.test_client().get("/data").status_code == 200  # another browser, same app token
    assert fake_provider.calls("token", grant_type="client_credentials") == 1


def test_token_required_and_session_use_the_app_token(fake_provider):
    app, _ = grant_app(fake_provider, "client_credentials")
    client = app.test_client()
    assert client.get("/data").json == {"scopes": ["read", "write"]}
    notes = client.get("/notes")
    assert notes.status_code == 200
    assert notes.json["user"] == fake_provider.client_id


def test_client_credentials_errors(fake_provider):
    app, oauth = grant_app(fake_provider, "client_credentials")
    fake_provider.set_fault("token", Fault(status=401, json={"error": "invalid_client"}))
    with app.app_context(), pytest.raises(TokenError) as info:
        oauth.client_credentials_token("svc")
    assert info.value.error == "invalid_client"
    assert app.test_client().get("/data").status_code == 502


def test_wrong_grant_is_a_configuration_error(app, fake_provider):
    oauth = app.extensions["test_oauth"]
    with app.app_context(), pytest.raises(ConfigurationError, match="authorization_code grant"):
        oauth.client_credentials_token("demo")
    with app.test_request_context(), pytest.raises(ConfigurationError):
        oauth.password_grant("demo", "alice", "wonderland")


# -- password -----------------------------------------------------------------------------------------


def test_password_grant_stores_the_token_for_the_current_user(fake_provider, caplog):
    app, oauth = grant_app(fake_provider, "password")
    caplog.set_level(logging.DEBUG)

    @app.post("/signin")
    def signin() -> str:
        oauth.password_grant("svc", "alice", "wonderland")
        return "ok"

    client = app.test_client()
    assert client.get("/data").status_code == 401  # no browser login for this grant
    assert client.post("/signin").data == b"ok"
    assert client.get("/data").status_code == 200
    assert client.get("/notes").json["user"] == "alice"
    sent = next(r for r in fake_provider.requests if r.endpoint == "token").form
    assert sent["username"] == "alice"
    assert sent["grant_type"] == "password"
    assert "wonderland" not in caplog.text


def test_wrong_password_never_appears_in_the_error(fake_provider):
    app, oauth = grant_app(fake_provider, "password")
    with app.test_request_context(), pytest.raises(TokenError) as info:
        oauth.password_grant("svc", "alice", "not-the-password")
    assert info.value.error == "invalid_grant"
    fake_provider.set_fault(
        "token", Fault(status=400, json={"error": "invalid_grant", "error_description": "hunter2 is wrong"})
    )
    with app.test_request_context(), pytest.raises(TokenError) as info:
        oauth.password_grant("svc", "alice", "hunter2")
    assert "hunter2" not in str(info.value)
    assert "hunter2" not in (info.value.description or "")
    assert "hunter2" not in repr(info.value.args)


# -- oauth.session() ------------------------------------------------------------------------------


def test_session_sends_the_header_never_the_url(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: "caller")
    app = make_app(oauth=oauth)
    login(app.test_client(), fake_provider)
    with app.test_request_context():
        answer = oauth.session("demo").get(fake_provider.api_url, params={"q": "x"})
    assert answer.status_code == 200
    call = [r for r in fake_provider.requests if r.endpoint == "api"][-1]
    assert call.headers["Authorization"].startswith("Bearer ")
    assert "access_token" not in call.query


def test_session_refreshes_before_expiry(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: "caller")
    app = make_app(oauth=oauth)
    login(app.test_client(), fake_provider)
    store = app.extensions["oauth2_client"].store
    store.set("demo", "caller", aged(store.get("demo", "caller"), 5))
    with app.test_request_context():
        assert oauth.session("demo").get(fake_provider.api_url).status_code == 200
    assert fake_provider.calls("token", grant_type="refresh_token") == 1


def test_session_retries_once_after_invalid_token(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: "caller")
    app = make_app(oauth=oauth)
    login(app.test_client(), fake_provider)
    fake_provider.expire_access_tokens()  # the provider drops it; the client still thinks it valid
    with app.test_request_context():
        answer = oauth.session("demo").get(fake_provider.api_url, data={"a": "1"})  # a body is replayed
    assert answer.status_code == 200
    assert [r.status_code for r in answer.history] == [401]
    assert answer.request.headers["Authorization"] != answer.history[0].request.headers["Authorization"]
    assert fake_provider.calls("token", grant_type="refresh_token") == 1


def test_session_gives_up_after_one_retry(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: "caller")
    app = make_app(oauth=oauth)
    login(app.test_client(), fake_provider)
    fake_provider.set_fault(
        "api", Fault(status=401, body="", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    )
    with app.test_request_context():
        answer = oauth.session("demo").get(fake_provider.api_url)
    assert answer.status_code == 401
    assert fake_provider.calls("api") == 2
    assert fake_provider.calls("token", grant_type="refresh_token") == 1


def test_session_applies_the_timeout(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: "caller")
    app = make_app(oauth=oauth, OAUTH2_HTTP_TIMEOUT=0.3)
    login(app.test_client(), fake_provider)
    fake_provider.set_fault("api", Fault(status=None, delay=2))
    with app.test_request_context(), pytest.raises(requests.Timeout):
        oauth.session("demo").get(fake_provider.api_url)


def test_session_without_a_token_needs_sign_in(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: "nobody-yet")
    app = make_app(oauth=oauth)
    with app.test_request_context(), pytest.raises(ReauthorizationRequired):
        oauth.session("demo").get(fake_provider.api_url)


# -- CLI ----------------------------------------------------------------------------------------------


def test_cli_providers_and_token(fake_provider):
    app, _ = grant_app(fake_provider, "client_credentials")
    runner = app.test_cli_runner()
    listing = runner.invoke(args=["oauth2", "providers"])
    assert listing.exit_code == 0, listing.output
    assert "svc  (client_credentials" in listing.output
    assert fake_provider.token_url in listing.output
    assert "Configuration OK" in listing.output
    hidden = runner.invoke(args=["oauth2", "token", "svc", "--scope", "read"])
    assert hidden.exit_code == 0, hidden.output
    assert "scopes:     read" in hidden.output
    assert "token:" not in hidden.output
    shown = runner.invoke(args=["oauth2", "token", "svc", "--show"])
    assert "token:" in shown.output
    assert runner.invoke(args=["oauth2", "token", "nope"]).exit_code != 0
    fake_provider.set_fault("token", Fault(status=401, json={"error": "invalid_client"}))
    failed = runner.invoke(args=["oauth2", "token", "svc", "--scope", "other"])
    assert failed.exit_code == 1
    assert "invalid_client" in failed.output


# -- follow-ups: app token resilience, password owner check, shared pool, warning location ------------


def test_app_token_is_used_while_it_lasts_when_the_provider_is_down(fake_provider, caplog):
    app, oauth = grant_app(fake_provider, "client_credentials")
    with app.app_context():
        first = oauth.client_credentials_token("svc")
        store = app.extensions["oauth2_client"].app_store
        key = (app_token_key("svc"), "read write")
        store.set(*key, aged(first, 10))  # due for renewal, not expired
        fake_provider.set_fault("token", Fault(status=503))
        assert oauth.client_credentials_token("svc").access_token == first.access_token
        store.set(*key, aged(first, -1))  # expired: nothing to fall back on
        with pytest.raises(ProviderUnavailable):
            oauth.client_credentials_token("svc")
    assert "using it while it lasts" in caplog.text


def test_app_token_of_many_scopes_fits_any_store_key():
    scopes = [f"https://api.example/scope/{n}" for n in range(40)]
    owner = app_token_owner(tuple(scopes))
    assert owner.startswith("sha256:")
    assert len(owner) < 100
    assert app_token_owner(("b", "a", "a")) == "a b"


def test_revoke_forgets_the_app_token(fake_provider):
    app, oauth = grant_app(fake_provider, "client_credentials")
    with app.test_request_context():
        first = oauth.client_credentials_token("svc")
        oauth.revoke("svc")
        assert oauth.client_credentials_token("svc").access_token != first.access_token
    assert fake_provider.calls("token", grant_type="client_credentials") == 2


def test_password_grant_without_a_signed_in_app_user_sends_nothing(fake_provider):
    app = Flask("pw")
    settings = provider_config(fake_provider, grant_type="password")
    settings.pop("authorize_url")
    app.config.update(SECRET_KEY="k" * 32, OAUTH2_TOKEN_STORE="memory", OAUTH2_PROVIDERS={"svc": settings})
    oauth = OAuth2Client(user_id_loader=lambda: None)
    with pytest.warns(DeprecationWarning, match="RFC 9700"):
        oauth.init_app(app)
    with app.test_request_context(), pytest.raises(CallbackError) as info:
        oauth.password_grant("svc", "alice", "wonderland")
    assert info.value.reason == "login_required"
    assert fake_provider.calls("token") == 0


def test_closing_a_session_keeps_the_shared_pool(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=lambda: "caller")
    app = make_app(oauth=oauth)
    login(app.test_client(), fake_provider)
    shared = app.extensions["oauth2_client"].api_adapters["demo"]
    with app.test_request_context():
        with oauth.session("demo") as first:
            assert first.get(fake_provider.api_url).status_code == 200
        pools = len(shared.poolmanager.pools)
        assert pools == 1  # closing the first session did not empty the shared pool
        assert oauth.session("demo").get(fake_provider.api_url).status_code == 200


def test_configuration_warnings_point_at_the_callers_line(fake_provider):
    app = Flask("warn")
    settings = provider_config(fake_provider, grant_type="password")
    settings.pop("authorize_url")
    app.config.update(SECRET_KEY="k" * 32, OAUTH2_TOKEN_STORE="memory", OAUTH2_PROVIDERS={"svc": settings})
    with pytest.warns(DeprecationWarning, match="RFC 9700") as caught:
        OAuth2Client(app)
    assert caught[0].filename == __file__
