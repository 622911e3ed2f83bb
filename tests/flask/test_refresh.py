"""token_required: refresh before expiry, single-flight, invalid_grant, provider down."""

from __future__ import annotations

import dataclasses
import threading
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import flask
import pytest
from helpers import aged
from helpers import login

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import ReauthorizationRequired
from flask_oauth2_client import token_refreshed
from flask_oauth2_client.client import ProviderClient
from flask_oauth2_client.testing import Fault

USER = "user-1"


def fixed_user() -> str:
    return USER


@pytest.fixture
def oauth():
    return OAuth2Client(user_id_loader=fixed_user)


@pytest.fixture
def app(make_app, oauth):
    return make_app(oauth=oauth)


def next_of(response):
    return parse_qs(urlsplit(response.headers["Location"]).query)["next"][0]


def stored(app):
    return app.extensions["oauth2_client"].store.get("demo", USER)


def make_expiring(app, seconds=5):
    """Move the stored token's expiry into the refresh leeway (60 s)."""
    store = app.extensions["oauth2_client"].store
    token = store.get("demo", USER)
    store.set("demo", USER, aged(token, seconds))
    return store.get("demo", USER)


def test_expiring_token_is_refreshed_before_the_view(app, client, fake_provider):
    login(client, fake_provider)
    old = make_expiring(app)
    events = []
    with token_refreshed.connected_to(lambda sender, **kw: events.append(kw), app):
        response = client.get("/protected")
    assert response.status_code == 200
    assert response.json["expires_in"] > 3000
    new = stored(app)
    assert new.access_token != old.access_token
    assert new.refresh_token != old.refresh_token  # FakeProvider rotates refresh tokens
    assert fake_provider.calls("token", grant_type="refresh_token") == 1
    assert [e["token"] for e in events] == [new]
    assert client.get("/api/notes").status_code == 200  # the new token works at the API


def test_old_refresh_token_is_kept_when_none_is_returned(app, client, fake_provider):
    login(client, fake_provider)
    old = make_expiring(app)
    fake_provider.set_fault(
        "token",
        Fault(
            status=200,
            json={"access_token": "fresh-one", "token_type": "bearer", "expires_in": 3600},
            grant_type="refresh_token",
        ),
    )
    assert client.get("/protected").status_code == 200
    new = stored(app)
    assert new.access_token == "fresh-one"
    assert new.refresh_token == old.refresh_token
    assert new.scopes == old.scopes == {"read", "write"}  # no scope in the answer: the original ones


def test_invalid_grant_deletes_the_token_and_sends_to_login_once(app, client, fake_provider):
    login(client, fake_provider)
    make_expiring(app)
    fake_provider.set_fault("token", Fault(status=400, json={"error": "invalid_grant"}, grant_type="refresh_token"))
    response = client.get("/protected?page=2")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/oauth2/demo/login?next=")
    assert next_of(response) == "/protected?page=2"
    assert stored(app) is None
    again = client.get("/protected")
    assert again.status_code == 302
    assert fake_provider.calls("token", grant_type="refresh_token") == 1
    # and the login it sends to works
    fake_provider.clear_faults()
    assert login(client, fake_provider).status_code == 302
    assert client.get("/protected").status_code == 200


def test_invalid_client_on_refresh_keeps_the_token_and_is_502(app, client, fake_provider):
    login(client, fake_provider)
    make_expiring(app, seconds=-5)
    fake_provider.set_fault("token", Fault(status=401, json={"error": "invalid_client"}, grant_type="refresh_token"))
    assert client.get("/protected").status_code == 502
    assert stored(app) is not None


@pytest.mark.parametrize(
    "fault",
    [Fault(status=500, body="down"), Fault(status=503, body="maintenance")],
    ids=["500", "503"],
)
def test_provider_down_keeps_the_token_and_is_503(app, client, fake_provider, fault):
    login(client, fake_provider)
    expired = make_expiring(app, seconds=-5)
    fake_provider.set_fault("token", fault)
    response = client.get("/protected")
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    assert stored(app) == expired
    fake_provider.clear_faults()
    assert client.get("/protected").status_code == 200


def test_unreachable_provider_keeps_the_token_and_is_503(make_app, oauth, fake_provider):
    app = make_app(oauth=oauth)
    client = app.test_client()
    login(client, fake_provider)
    expired = make_expiring(app, seconds=-5)
    clients = app.extensions["oauth2_client"].clients
    clients["demo"] = ProviderClient(
        dataclasses.replace(clients["demo"].config, token_url="http://127.0.0.1:9/token"), timeout=5
    )
    response = client.get("/protected", headers={"Accept": "application/json"})
    assert response.status_code == 503
    assert response.json["error"] == "provider_unavailable"
    assert stored(app) == expired


def test_token_within_leeway_is_used_when_refresh_fails(app, client, fake_provider):
    login(client, fake_provider)
    make_expiring(app, seconds=30)
    fake_provider.set_fault("token", Fault(status=500))
    assert client.get("/protected").status_code == 200


def test_expired_token_without_refresh_token_sends_to_login(app, client, fake_provider):
    login(client, fake_provider)
    store = app.extensions["oauth2_client"].store
    token = store.get("demo", USER)
    store.set(
        "demo", USER, token.replace(refresh_token=None, expires_at=datetime.now(timezone.utc) - timedelta(seconds=1))
    )
    with client.session_transaction() as session:
        session["_oauth2"]["d"]["demo"][0] -= 60  # the login finished a minute ago
        session.modified = True
    assert client.get("/protected").status_code == 302
    assert stored(app) is None
    assert fake_provider.calls("token", grant_type="refresh_token") == 0


def test_tokens_that_expire_at_once_do_not_loop(app, client, fake_provider):
    fake_provider.set_fault(
        "token", Fault(status=200, json={"access_token": "dead", "token_type": "Bearer", "expires_in": 0})
    )
    assert login(client, fake_provider).status_code == 302
    response = client.get("/protected")
    assert response.status_code == 502
    assert "not starting another login" in response.get_data(as_text=True)


def test_no_token_browser_is_redirected_and_api_client_gets_401(client):
    browser = client.get("/protected")
    assert browser.status_code == 302
    assert browser.headers["Location"].startswith("/oauth2/demo/login?")
    assert next_of(browser) == "/protected"
    api = client.get("/protected", headers={"Accept": "application/json"})
    assert api.status_code == 401
    assert api.json["error"] == "reauthorization_required"
    assert api.json["login_url"].startswith("/oauth2/demo/login")


def test_refresh_method_forces_a_refresh(app, client, fake_provider):
    login(client, fake_provider)
    old = stored(app)
    with app.test_request_context():
        new = app.extensions["test_oauth"].refresh("demo")
    assert new.access_token != old.access_token
    assert stored(app) == new


def hit_concurrently(app, threads, prepare=None):
    """*threads* browsers request /api/notes at the same moment; returns their statuses."""
    barrier = threading.Barrier(threads)
    statuses: list[int] = []

    def hit():
        client = app.test_client()
        if prepare is not None:
            prepare(client)
        barrier.wait()
        statuses.append(client.get("/api/notes").status_code)

    workers = [threading.Thread(target=hit) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return statuses


def test_concurrent_requests_cause_one_refresh(app, fake_provider):
    login(app.test_client(), fake_provider)
    make_expiring(app, seconds=-1)
    fake_provider.set_fault("token", Fault(status=None, delay=0.2, grant_type="refresh_token"))
    assert hit_concurrently(app, 20) == [200] * 20
    assert fake_provider.calls("token", grant_type="refresh_token") == 1
    assert fake_provider.is_active(stored(app).access_token)


def test_concurrent_requests_with_the_session_store_cause_one_refresh(make_app, fake_provider):
    """Every request carries its own copy of the cookie: the waiters must reuse the one result."""
    app = make_app(OAUTH2_TOKEN_STORE="session")
    first = app.test_client()
    login(first, fake_provider)
    with first.session_transaction() as session:
        saved = dict(session)
    store = app.extensions["oauth2_client"].store
    with app.test_request_context():
        flask.session.update(saved)
        user_id = flask.session["_oauth2"]["u"]
        token = store.get("demo", user_id)
        store.set("demo", user_id, aged(token, -1))
        expired_session = dict(flask.session)
    fake_provider.set_fault("token", Fault(status=None, delay=0.2, grant_type="refresh_token"))

    def copy_cookie(client):
        with client.session_transaction() as sess:
            sess.update(expired_session)

    assert hit_concurrently(app, 20, copy_cookie) == [200] * 20
    assert fake_provider.calls("token", grant_type="refresh_token") == 1


def test_refresh_method_without_refresh_token_keeps_a_valid_token(app, client, fake_provider):
    login(client, fake_provider)
    store = app.extensions["oauth2_client"].store
    store.set("demo", USER, stored(app).replace(refresh_token=None))
    with app.test_request_context(), pytest.raises(ReauthorizationRequired) as info:
        app.extensions["test_oauth"].refresh("demo")
    assert info.value.reason == "no_refresh_token"
    assert stored(app) is not None


def test_short_lived_tokens_are_not_refreshed_on_every_request(app, client, fake_provider):
    fake_provider.access_token_ttl = 30  # shorter than the 60 s leeway
    login(client, fake_provider)
    for _ in range(3):
        assert client.get("/protected").status_code == 200
    assert fake_provider.calls("token", grant_type="refresh_token") == 0
    now = datetime.now(timezone.utc)
    store = app.extensions["oauth2_client"].store
    # received 20 s ago, 30 s lifetime: 10 s left, less than half its life
    store.set(
        "demo", USER, stored(app).replace(issued_at=now - timedelta(seconds=20), expires_at=now + timedelta(seconds=10))
    )
    assert client.get("/protected").status_code == 200  # past half its life: refreshed
    assert fake_provider.calls("token", grant_type="refresh_token") == 1


def test_token_params_go_to_the_token_endpoint_only(make_app, fake_provider):
    oauth = OAuth2Client(user_id_loader=fixed_user)
    app = make_app(oauth=oauth, provider={"token_params": {"audience": "api://notes"}})
    client = app.test_client()
    login(client, fake_provider)
    client.post("/oauth2/demo/logout")
    by_endpoint = {r.endpoint: r.form for r in fake_provider.requests if r.endpoint in ("token", "revoke")}
    assert by_endpoint["token"]["audience"] == "api://notes"
    assert "audience" not in by_endpoint["revoke"]
