"""The legacy implicit grant (grant_type = "implicit"): the redirect asks for a token without
PKCE; the callback is a page that posts the fragment back; the post is held to the same rules as
the authorization code callback (single-use state, repeated fields, errors, Bearer only), and an
expired implicit token sends the user to log in again, with no refresh attempt.

The provider's answer is taken from the real FakeProvider's redirect (its ``Location`` fragment),
and posted as the page's script would post it."""

from __future__ import annotations

import logging
import re
import time
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from types import SimpleNamespace
from urllib.parse import parse_qs
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

import pytest
import requests
from helpers import aged
from werkzeug.datastructures import MultiDict

from flask_oauth2_client import OAuth2Client
from flask_oauth2_client import authorization_failed
from flask_oauth2_client import token_obtained
from flask_oauth2_client.implicit import CONTENT_SECURITY_POLICY
from flask_oauth2_client.implicit import FIELDS
from flask_oauth2_client.testing import Fault

USER = "user-1"
POST = "/oauth2/demo/implicit"
#: A public client that only has an authorization endpoint, as implicit-only providers offer.
IMPLICIT = {"grant_type": "implicit", "token_url": None, "client_secret": None, "revocation_url": None}
DEPRECATED = r"RFC 9700 §2\.1\.2"


def fixed_user() -> str:
    return USER


@pytest.fixture
def make_implicit_app(make_app):
    def factory(provider=None, oauth=None, **config):
        with pytest.warns(DeprecationWarning, match=DEPRECATED):
            return make_app(
                oauth=oauth or OAuth2Client(user_id_loader=fixed_user),
                provider={**IMPLICIT, **(provider or {})},
                **config,
            )

    return factory


@pytest.fixture
def app(make_implicit_app):
    return make_implicit_app()


def store_of(app):
    return app.extensions["oauth2_client"].store


def stored(app):
    return store_of(app).get("demo", USER)


def authorize(client, *, next_url="/protected"):
    """Our login route: the response and the parameters of the authorization request."""
    start = client.get("/oauth2/demo/login", query_string={"next": next_url})
    assert start.status_code == 302, start.data
    return start, {k: v[0] for k, v in parse_qs(urlsplit(start.headers["Location"]).query).items()}


def provider_answer(client, *, next_url="/protected"):
    """Start a login, let the FakeProvider answer over its socket; return the callback URL it
    redirects to and the fields of its fragment (as pairs, in order)."""
    start, _ = authorize(client, next_url=next_url)
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    parts = urlsplit(location)
    assert not parts.query, "the implicit answer belongs in the fragment (RFC 6749 §4.2.2)"
    return location, parse_qsl(parts.fragment, keep_blank_values=True)


def script_fields(pairs):
    """What the page's script posts: the known fields, nothing else."""
    return [(k, v) for k, v in pairs if k in FIELDS]


def replaced(pairs, **values):
    return [(k, values.get(k, v)) for k, v in pairs]


def assert_clean_error(response, status, code=None):
    assert response.status_code == status
    body = response.get_data(as_text=True)
    assert "Traceback" not in body
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    if code is not None:
        assert code in body


def assert_spent(client, pairs):
    """The pending login of *pairs* is gone: posting its real answer now fails."""
    assert_clean_error(client.post(POST, data=MultiDict(script_fields(pairs))), 400, "invalid_state")


def test_init_app_warns_that_the_grant_is_deprecated(make_app):
    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        make_app(provider=IMPLICIT)


def test_login_asks_for_a_token_without_pkce(client):
    start, params = authorize(client)
    assert params["response_type"] == "token"
    assert params["redirect_uri"] == "http://localhost/oauth2/demo/callback"
    assert params["state"]
    assert "code_challenge" not in params
    assert "code_challenge_method" not in params
    assert start.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("path", ["/oauth2/demo/callback", POST])
def test_the_page_is_locked_down_and_posts_to_the_implicit_route(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    headers = response.headers
    assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    directives = {d.strip().split(" ", 1)[0]: d.strip() for d in CONTENT_SECURITY_POLICY.split(";")}
    assert directives["default-src"] == "default-src 'none'"
    assert directives["script-src"] == "script-src 'self'"
    assert directives["form-action"] == "form-action 'self'"
    assert directives["base-uri"] == "base-uri 'none'"
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Cache-Control"] == "no-store"
    assert headers["Referrer-Policy"] == "no-referrer"

    html = response.get_data(as_text=True)
    scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", html, re.S)
    assert scripts == [""], "one script, and no inline code"
    assert '<script src="/oauth2/_static/implicit.js" defer>' in html
    assert '<form id="oauth2-implicit" method="post" action="/oauth2/demo/implicit"' in html
    assert f'data-fields="{" ".join(FIELDS)}"' in html
    assert "<noscript>" in html
    assert " style=" not in html  # nothing the CSP would block
    assert "<style" not in html

    with client.get("/oauth2/_static/implicit.js") as script:
        assert script.status_code == 200
        assert script.mimetype in ("text/javascript", "application/javascript")
        source = script.get_data(as_text=True)
    assert "history.replaceState" in source
    assert "form.submit()" in source


def test_the_page_is_only_for_implicit_providers(make_app, fake_provider):
    app = make_app()  # the demo provider uses the authorization code grant
    assert app.test_client().get(POST).status_code == 404
    assert app.test_client().post(POST, data={"state": "x"}).status_code == 404


def test_posting_the_fragment_stores_the_token_and_goes_to_next(app, client, fake_provider):
    location, pairs = provider_answer(client, next_url="/protected?page=2")
    fragment = dict(pairs)
    assert fragment["token_type"] == "Bearer"
    assert "refresh_token" not in fragment
    page = client.get(urlsplit(location).path)
    assert page.status_code == 200
    events = []
    with token_obtained.connected_to(lambda sender, **kw: events.append(kw), app):
        response = client.post(POST, data=MultiDict(script_fields(pairs)))
    assert response.status_code == 302
    assert response.headers["Location"] == "/protected?page=2"
    token = stored(app)
    assert token is not None
    assert token.access_token == fragment["access_token"]
    assert token.token_type == "Bearer"
    assert token.refresh_token is None
    assert token.scopes == {"read", "write"}
    assert 3590 < token.expires_in <= 3600
    assert len(events) == 1
    assert events[0]["token"] == token
    assert fake_provider.calls("token") == 0  # no code, no exchange
    assert client.get("/protected").json["scopes"] == ["read", "write"]
    notes = client.get("/api/notes")  # the token works at the provider's API
    assert notes.status_code == 200
    assert notes.json["user"] == "alice"


def test_the_token_is_never_logged_shown_or_put_in_a_location(app, client, fake_provider, caplog):
    caplog.set_level(logging.DEBUG)
    _, pairs = provider_answer(client)
    secret = dict(pairs)["access_token"]
    responses = [client.get("/oauth2/demo/callback"), client.post(POST, data=MultiDict(script_fields(pairs)))]
    responses.append(client.post(POST, data=MultiDict(script_fields(pairs))))  # a replay: an error page
    responses.append(client.post(POST, data=MultiDict(script_fields(pairs)), headers={"Accept": "application/json"}))
    for response in responses:
        assert secret not in response.get_data(as_text=True)
        assert secret not in response.headers.get("Location", "")
    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert secret not in logged
    assert secret not in repr(stored(app))


def test_replayed_post_is_400_and_stores_nothing_new(app, client, fake_provider):
    _, pairs = provider_answer(client)
    assert client.post(POST, data=MultiDict(script_fields(pairs))).status_code == 302
    first = stored(app)
    failures = []
    with authorization_failed.connected_to(lambda sender, **kw: failures.append(kw), app):
        assert_clean_error(client.post(POST, data=MultiDict(script_fields(pairs))), 400, "invalid_state")
        forged = replaced(script_fields(pairs), access_token="another-token")
        assert_clean_error(client.post(POST, data=MultiDict(forged)), 400, "invalid_state")
    assert stored(app) == first
    assert len(store_of(app)) == 1
    assert len(failures) == 2


@pytest.mark.parametrize("state", [None, "", "forged-state-value"])
def test_missing_or_forged_state_is_400_and_consumes_nothing(app, client, fake_provider, state):
    _, pairs = provider_answer(client)
    fields = [(k, v) for k, v in script_fields(pairs) if k != "state"]
    if state is not None:
        fields.append(("state", state))
    failures = []
    with authorization_failed.connected_to(lambda sender, **kw: failures.append(kw), app):
        assert_clean_error(client.post(POST, data=MultiDict(fields)), 400, "invalid_state")
    assert len(failures) == 1
    assert stored(app) is None
    assert client.post(POST, data=MultiDict(script_fields(pairs))).status_code == 302  # the real answer still works


def test_post_from_another_browser_is_400(app, client, fake_provider):
    _, pairs = provider_answer(client)
    attacker = app.test_client()
    assert_clean_error(attacker.post(POST, data=MultiDict(script_fields(pairs))), 400, "invalid_state")
    assert stored(app) is None
    assert client.post(POST, data=MultiDict(script_fields(pairs))).status_code == 302


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "http://localhost.evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site", "Origin": "http://localhost"},
        {"Origin": "null"},
        {"Origin": "null", "Sec-Fetch-Site": "cross-site"},
        {"Origin": "null", "Sec-Fetch-Site": "none"},
    ],
)
def test_cross_origin_post_is_403_and_consumes_nothing(app, client, fake_provider, headers):
    _, pairs = provider_answer(client)
    failures = []
    with authorization_failed.connected_to(lambda sender, **kw: failures.append(kw), app):
        response = client.post(POST, data=MultiDict(script_fields(pairs)), headers=headers)
    assert_clean_error(response, 403, "cross_site_request")
    assert len(failures) == 1
    assert stored(app) is None
    json_answer = client.post(
        POST, data=MultiDict(script_fields(pairs)), headers={**headers, "Accept": "application/json"}
    )
    assert json_answer.status_code == 403
    assert json_answer.json["error"] == "cross_site_request"
    assert client.post(POST, data=MultiDict(script_fields(pairs))).status_code == 302


@pytest.mark.parametrize(
    "headers",
    [
        # What Chromium sends from the page, whose Referrer-Policy is no-referrer.
        {"Origin": "null", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
        {"Origin": "http://localhost"},
    ],
)
def test_same_origin_post_is_accepted(app, client, fake_provider, headers):
    _, pairs = provider_answer(client)
    assert client.post(POST, data=MultiDict(script_fields(pairs)), headers=headers).status_code == 302
    assert stored(app) is not None


def test_access_denied_in_the_fragment_is_403_and_spends_the_state(app, client, fake_provider):
    fake_provider.set_fault("authorize", Fault(json={"error": "access_denied", "error_description": "User said no"}))
    location, pairs = provider_answer(client)
    assert urlsplit(location).fragment  # RFC 6749 §4.2.2.1: the error is in the fragment too
    assert dict(pairs)["error"] == "access_denied"
    failures = []
    with authorization_failed.connected_to(lambda sender, **kw: failures.append(kw), app):
        response = client.post(POST, data=MultiDict(script_fields(pairs)))
    assert_clean_error(response, 403, "access_denied")
    assert "User said no" in response.get_data(as_text=True)
    assert len(failures) == 1
    assert failures[0]["error"].error == "access_denied"
    assert stored(app) is None
    assert_spent(client, pairs)


def test_provider_error_as_json(client, fake_provider):
    fake_provider.set_fault("authorize", Fault(json={"error": "invalid_scope"}))
    _, pairs = provider_answer(client)
    response = client.post(POST, data=MultiDict(script_fields(pairs)), headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_scope"
    assert "error_description" in response.json


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"token_type": "mac"}, "invalid_token"),
        ({"token_type": "DPoP"}, "invalid_token"),
        ({"token_type": ""}, "invalid_token"),
        ({"access_token": ""}, "missing_token"),
    ],
)
def test_unusable_token_is_400_and_spends_the_state(app, client, fake_provider, fields, code):
    _, pairs = provider_answer(client)
    failures = []
    with authorization_failed.connected_to(lambda sender, **kw: failures.append(kw), app):
        response = client.post(POST, data=MultiDict(replaced(script_fields(pairs), **fields)))
    assert_clean_error(response, 400, code)
    assert len(failures) == 1
    assert stored(app) is None
    assert_spent(client, pairs)


def test_bearer_is_case_insensitive(app, client, fake_provider):
    _, pairs = provider_answer(client)
    assert client.post(POST, data=MultiDict(replaced(script_fields(pairs), token_type="bearer"))).status_code == 302
    assert stored(app).token_type == "Bearer"


def test_refresh_token_and_unknown_fields_are_ignored(app, client, fake_provider):
    _, pairs = provider_answer(client)
    fields = [*script_fields(pairs), ("refresh_token", "smuggled"), ("id_token", "x"), ("foo", "bar")]
    assert client.post(POST, data=MultiDict(fields)).status_code == 302
    token = stored(app)
    assert token.refresh_token is None
    assert token.id_token is None
    assert token.extra == {}


@pytest.mark.parametrize("name", ["access_token", "token_type", "scope", "expires_in", "error", "foo"])
def test_repeated_field_is_400_and_spends_the_state(app, client, fake_provider, name):
    _, pairs = provider_answer(client)
    fields = [*script_fields(pairs), (name, "one"), (name, "two")]
    assert_clean_error(client.post(POST, data=MultiDict(fields)), 400, "invalid_request")
    assert stored(app) is None
    assert_spent(client, pairs)


def test_repeated_state_is_400_and_consumes_nothing(app, client, fake_provider):
    _, pairs = provider_answer(client)
    fields = [*script_fields(pairs), ("state", "other")]
    assert_clean_error(client.post(POST, data=MultiDict(fields)), 400, "invalid_request")
    assert client.post(POST, data=MultiDict(script_fields(pairs))).status_code == 302


def test_a_body_that_is_not_a_form_is_400_and_consumes_nothing(app, client, fake_provider):
    _, pairs = provider_answer(client)
    response = client.post(POST, json=dict(script_fields(pairs)))
    assert_clean_error(response, 400, "invalid_request")
    assert client.post(POST, data=MultiDict(script_fields(pairs))).status_code == 302


def test_state_of_another_provider_is_400_and_spent(make_app, fake_provider):
    providers = {
        name: {
            "client_id": fake_provider.client_id,
            "authorize_url": fake_provider.authorize_url,
            "grant_type": "implicit",
        }
        for name in ("demo", "other")
    }
    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        app = make_app(oauth=OAuth2Client(user_id_loader=fixed_user), OAUTH2_PROVIDERS=providers)
    client = app.test_client()
    start = client.get("/oauth2/other/login")
    answer = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    fields = script_fields(parse_qsl(urlsplit(answer.headers["Location"]).fragment))
    assert_clean_error(client.post(POST, data=MultiDict(fields)), 400, "invalid_state")
    assert_clean_error(client.post("/oauth2/other/implicit", data=MultiDict(fields)), 400, "invalid_state")
    assert len(store_of(app)) == 0


def test_expired_state_is_400_and_spent(make_implicit_app, fake_provider, monkeypatch):
    app = make_implicit_app(OAUTH2_STATE_TTL=60)
    client = app.test_client()
    _, pairs = provider_answer(client)
    import flask_oauth2_client.pending as pending

    later = time.time() + 61  # the pending module's clock only, not the process's
    monkeypatch.setattr(pending, "time", SimpleNamespace(time=lambda: later))
    assert_clean_error(client.post(POST, data=MultiDict(script_fields(pairs))), 400, "expired_state")
    monkeypatch.undo()
    assert_spent(client, pairs)
    assert stored(app) is None


def test_issuer_is_checked_when_configured(make_implicit_app, fake_provider):
    fake_provider.send_iss = True
    app = make_implicit_app(provider={"issuer": fake_provider.issuer, "require_iss": True})
    client = app.test_client()
    _, pairs = provider_answer(client)
    assert dict(pairs)["iss"] == fake_provider.issuer
    mixed_up = replaced(script_fields(pairs), iss="https://attacker.example")
    assert_clean_error(client.post(POST, data=MultiDict(mixed_up)), 400, "invalid_issuer")
    assert_spent(client, pairs)

    _, pairs = provider_answer(client)
    assert client.post(POST, data=MultiDict(script_fields(pairs))).status_code == 302
    assert stored(app) is not None


def test_missing_iss_is_400_when_required(make_implicit_app, fake_provider):
    app = make_implicit_app(provider={"issuer": fake_provider.issuer, "require_iss": True})
    client = app.test_client()
    _, pairs = provider_answer(client)  # send_iss is off
    assert_clean_error(client.post(POST, data=MultiDict(script_fields(pairs))), 400, "invalid_issuer")
    assert stored(app) is None


def test_nobody_signed_in_is_401_and_spends_the_state(make_implicit_app, fake_provider):
    who = {"id": USER}
    app = make_implicit_app(oauth=OAuth2Client(user_id_loader=lambda: who["id"]))
    client = app.test_client()
    _, pairs = provider_answer(client)
    who["id"] = None
    assert_clean_error(client.post(POST, data=MultiDict(script_fields(pairs))), 401, "login_required")
    who["id"] = USER
    assert_spent(client, pairs)
    assert stored(app) is None


def test_expired_implicit_token_sends_to_login_without_a_refresh(app, client, fake_provider):
    _, pairs = provider_answer(client)
    assert client.post(POST, data=MultiDict(script_fields(pairs))).status_code == 302
    token = stored(app)
    assert token.refresh_token is None
    store_of(app).set("demo", USER, token.replace(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    with client.session_transaction() as session:
        session["_oauth2"]["d"]["demo"][0] -= 60  # the login finished a minute ago
        session.modified = True
    before = len(fake_provider.requests)
    response = client.get("/protected")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/oauth2/demo/login"
    assert parse_qs(location.query)["next"] == ["/protected"]
    assert stored(app) is None
    assert fake_provider.requests[before:] == []  # no refresh attempt, no request at all

    # ...and the login starts again with a token request, not a code.
    again = client.get(response.headers["Location"])
    assert parse_qs(urlsplit(again.headers["Location"]).query)["response_type"] == ["token"]


def test_expiring_implicit_token_is_used_while_it_lasts(app, client, fake_provider):
    _, pairs = provider_answer(client)
    assert client.post(POST, data=MultiDict(script_fields(pairs))).status_code == 302
    store_of(app).set("demo", USER, aged(stored(app), 10))  # inside the refresh leeway
    assert client.get("/protected").status_code == 200
    assert fake_provider.calls("token") == 0
    assert stored(app) is not None
