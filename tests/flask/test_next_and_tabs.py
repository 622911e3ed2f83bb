"""The ``next`` open-redirect table, and several logins in flight at once (tabs)."""

from __future__ import annotations

import pytest
import requests
from helpers import callback_path
from helpers import login

from flask_oauth2_client.redirects import safe_next

REFUSED = [
    "//evil.example",
    "//evil.example/path",
    "/\\evil.example",
    "\\/evil.example",
    "\\\\evil.example",
    "https://evil.example",
    "http://localhost.evil.example/",
    "https:evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,hi",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    " //evil.example",
    "evil.example",
    "",
    "///evil.example",
    "/%09/evil.example\t",
]
ACCEPTED = ["/", "/profile", "/a/b?c=d&e=f", "/page#frag", "/%2F%2Fencoded-is-a-path"]


@pytest.mark.parametrize("target", REFUSED)
def test_refused_next_values(target):
    assert safe_next(target, "/home") == "/home"


@pytest.mark.parametrize("target", ACCEPTED)
def test_accepted_next_values(target):
    assert safe_next(target, "/home") == target


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "https:evil.example", "javascript:x"])
def test_login_never_redirects_off_site(client, fake_provider, target):
    response = login(client, fake_provider, next_url=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_default_next_is_configurable(make_app, fake_provider):
    app = make_app(OAUTH2_DEFAULT_NEXT="/dashboard")
    assert login(app.test_client(), fake_provider, next_url="//evil").headers["Location"] == "/dashboard"


def start(client):
    response = client.get("/oauth2/demo/login")
    answer = requests.get(response.headers["Location"], allow_redirects=False, timeout=5)
    return callback_path(answer.headers["Location"])


def test_tabs_within_the_cap_all_complete_in_any_order(client, fake_provider):
    paths = [start(client) for _ in range(5)]
    for path in reversed(paths):
        assert client.get(path).status_code == 302
    assert fake_provider.calls("token") == 5


def test_oldest_login_is_dropped_beyond_the_cap(make_app, fake_provider):
    app = make_app(OAUTH2_MAX_PENDING_LOGINS=3)
    client = app.test_client()
    paths = [start(client) for _ in range(5)]
    assert [client.get(p).status_code for p in paths] == [400, 400, 302, 302, 302]


def test_session_cookie_stays_small_after_many_started_logins(make_app, fake_provider):
    app = make_app(OAUTH2_TOKEN_STORE="session")
    client = app.test_client()
    login(client, fake_provider)
    for _ in range(20):
        client.get("/oauth2/demo/login?next=/some/page")
    cookie = client.get_cookie("session")
    assert cookie is not None
    assert len(cookie.value) <= 1536  # 1.5 KB, far below the browsers' 4 KB
