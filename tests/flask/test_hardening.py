"""Hostile or odd input from browsers and providers: clean errors, never a 500."""

from __future__ import annotations

import pytest
import requests
from helpers import callback_path
from helpers import login
from helpers import provider_answer

from flask_oauth2_client import InvalidTokenResponse
from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import OAuth2Error
from flask_oauth2_client.client import parse_token_response
from flask_oauth2_client.testing import Fault

NASTY_BODIES = [
    b'{"access_token": "a", "token_type": "Bearer", "expires_in": 1000000000000}',
    b'{"access_token": "a", "token_type": "Bearer", "expires_in": "1e12"}',
    b'{"access_token": "a", "token_type": "Bearer", "expires_in": 1e300}',
    b'{"access_token": "a", "token_type": "Bearer", "expires_in": ' + b"9" * 400 + b"}",
    b'{"access_token": "a", "token_type": "Bearer", "expires_in": ' + b"9" * 5000 + b"}",
    b'{"access_token": "a", "token_type": "Bearer", "expires_in": NaN}',
    b'{"access_token": "a", "token_type": "Bearer", "expires_in": -Infinity}',
    b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"error": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b"\x00\x01\x02",
    b"",
    b"null",
    b'{"access_token": ["a"], "token_type": "Bearer"}',
    b'{"access_token": "a", "token_type": null}',
    b'{"access_token": "a", "token_type": "Bearer", "scope": ["a", 1]}',
    b'{"access_token": "a", "token_type": "Bearer", "id_token": 5}',
]


@pytest.mark.parametrize("body", NASTY_BODIES, ids=range(len(NASTY_BODIES)))
@pytest.mark.parametrize("status", [200, 400, 500])
def test_parser_only_raises_library_errors(body, status):
    try:
        token = parse_token_response(status, "application/json", body, provider="p")
    except OAuth2Error:
        return
    assert token.expires_at is None or token.expires_in is not None


def test_huge_expires_in_means_unknown_expiry(app, client, fake_provider):
    fake_provider.set_fault(
        "token", Fault(status=200, json={"access_token": "a", "token_type": "Bearer", "expires_in": 10**12}, times=1)
    )
    assert login(client, fake_provider).status_code == 302
    assert client.get("/protected").json["expires_in"] is None


def test_parser_rejects_repeated_members_even_deep():
    with pytest.raises(InvalidTokenResponse, match="repeated"):
        parse_token_response(200, "application/json", b'{"x": {"a": 1, "a": 2}}', provider="p")


def test_planted_session_id_never_gets_the_victims_token(make_app, fake_provider):
    app = make_app(OAUTH2_TOKEN_STORE="memory")
    attacker = app.test_client()
    login(attacker, fake_provider)  # the attacker's own login gives him a session user id
    planted = attacker.get_cookie("session").value
    victim = app.test_client()
    victim.set_cookie("session", planted)  # e.g. through a sibling subdomain
    fake_provider.add_user("bob", "pw", name="Bob")
    victim_login = victim.get("/oauth2/demo/login")

    answer = requests.get(victim_login.headers["Location"] + "&login_hint=bob", allow_redirects=False, timeout=5)
    assert victim.get(callback_path(answer.headers["Location"])).status_code == 302
    assert victim.get("/api/notes").json["user"] == "bob"
    attacker.set_cookie("session", planted)
    seen = attacker.get("/api/notes")
    assert seen.status_code != 200 or seen.json["user"] != "bob"


def test_forced_refresh_always_reaches_a_non_rotating_provider(make_app, fake_provider):
    fake_provider.rotate_refresh_tokens = False
    oauth = OAuth2Client(user_id_loader=lambda: "steady")
    app = make_app(oauth=oauth)
    login(app.test_client(), fake_provider)
    with app.test_request_context():
        first = oauth.refresh("demo")
        second = oauth.refresh("demo")
    assert first.access_token != second.access_token
    assert fake_provider.calls("token", grant_type="refresh_token") == 2


def test_required_iss_missing_is_400(make_app, fake_provider):
    app = make_app(provider={"issuer": fake_provider.issuer, "require_iss": True})
    client = app.test_client()
    response = login(client, fake_provider)  # FakeProvider sends no iss by default
    assert response.status_code == 400
    assert fake_provider.calls("token") == 0


def test_empty_parameters_count_as_absent(client, fake_provider):
    path = provider_answer(client, fake_provider)
    assert client.get(path + "&error=&iss=").status_code == 302


def test_malformed_scope_at_login_is_400(client):
    assert client.get("/oauth2/demo/login?scope=a%00b").status_code == 400
    assert client.get("/oauth2/demo/login?scope=" + "a" * 600).status_code == 400
    assert client.get("/oauth2/demo/login?scope=extra,more").status_code == 302


def test_long_next_values_cannot_bloat_the_session(make_app, fake_provider):
    app = make_app(OAUTH2_TOKEN_STORE="session")
    client = app.test_client()
    login(client, fake_provider)
    for _ in range(5):
        client.get("/oauth2/demo/login?next=/" + "x" * 1000)
    assert len(client.get_cookie("session").value) < 3500
    assert client.get("/oauth2/demo/login?next=/" + "y" * 2000).status_code == 302


def test_head_on_the_callback_spends_nothing(client, fake_provider):
    path = provider_answer(client, fake_provider)
    assert client.head(path).status_code == 405
    assert fake_provider.calls("token") == 0
    assert client.get(path).status_code == 302
