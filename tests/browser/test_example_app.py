"""The example app end to end, in a real browser: home → provider consent page → profile → API →
log out, against the FakeProvider that the example app embeds (no network needed)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from example_app.app import EXTENSION_KEY
from example_app.app import ExampleState
from example_app.app import create_app
from flask_oauth2_client.testing import FakeProvider

if TYPE_CHECKING:
    from playwright.sync_api import Browser
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

# A fixed, well-known path on purpose: people look at it after a run.
PROFILE_SCREENSHOT = "/tmp/example-profile.png"  # noqa: S108


@dataclass
class LiveExample:
    url: str
    provider: FakeProvider


@pytest.fixture
def live_example(monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveExample]:
    """The example app with its embedded FakeProvider, served on an ephemeral loopback port."""
    monkeypatch.delenv("EXAMPLE_PROVIDER", raising=False)
    app = create_app({"TESTING": True})
    state = app.extensions[EXTENSION_KEY]
    assert isinstance(state, ExampleState)
    fake = state.provider.fake
    assert fake is not None
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        # The redirect_uri follows the request's host: browse to 127.0.0.1, as registered.
        yield LiveExample(url=f"http://127.0.0.1:{server.server_port}", provider=fake)
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
        fake.stop()


def _same_origin(url: str, base: str) -> bool:
    return urlsplit(url)[:2] == urlsplit(base)[:2]


def test_login_profile_api_logout(
    browser: Browser, live_example: LiveExample, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="werkzeug")
    base, fake = live_example.url, live_example.provider
    context = browser.new_context()
    page: Page = context.new_page()
    page.set_default_timeout(15_000)
    committed: list[str] = []  # every URL the tab displayed
    requested: list[str] = []  # every URL the browser asked for (redirects included)
    page.on("framenavigated", lambda frame: committed.append(frame.url) if frame == page.main_frame else None)
    page.on("request", lambda request: requested.append(request.url))
    pages: dict[str, str] = {}
    try:
        # Home: what this is, and the login button.
        page.goto(base + "/")
        assert "flask-oauth2-client" in page.title()
        pages["home"] = page.content()
        page.click("#login")

        # The provider's own consent page (a different origin), then back.
        page.wait_for_url(re.compile("^" + re.escape(fake.authorize_url)))
        assert "example-app" in page.inner_text("body")
        page.click("#approve")
        page.wait_for_url(base + "/profile")
        assert page.inner_text("#name") == "Alice Liddell"
        assert page.inner_text("#email") == "alice@example.test"
        assert page.inner_text("#scopes").split() == ["read", "write"]
        assert re.search(r"UTC \(in (59|60) min\)", page.inner_text("#expiry"))
        pages["profile"] = page.content()
        page.screenshot(path=PROFILE_SCREENSHOT, full_page=True)

        # The provider's API, called on the server with the token.
        page.click("nav >> text=API")
        page.wait_for_url(base + "/api")
        notes = page.locator("#items li").all_inner_texts()
        assert notes == ["Curiouser and curiouser!", "We're all mad here.", "Drink me."]
        pages["api"] = page.content()

        # Log out (a POST form): back home, signed out.
        page.click("#logout")
        page.wait_for_url(base + "/")
        assert page.locator("#login").is_visible()
        pages["after logout"] = page.content()

        # The token is gone: /profile starts the flow again at the provider.
        page.goto(base + "/profile")
        page.wait_for_url(re.compile("^" + re.escape(fake.authorize_url)))
        assert page.locator("#approve").is_visible()
    finally:
        context.close()

    # The callback was visited with a code, and redirected at once: the tab never showed it.
    callbacks = [u for u in requested if urlsplit(u).path == "/oauth2/demo/callback"]
    assert len(callbacks) == 1
    assert "code=" in callbacks[0]
    shown = [u for u in committed if _same_origin(u, base)]
    assert shown
    assert not [u for u in shown if "code=" in u or "state=" in u]

    # Nothing of the tokens in any page: the access token as presented to the provider's APIs,
    # the refresh token as revoked at logout.
    recorded = fake.requests
    bearer = {r.headers["Authorization"].split(" ", 1)[1] for r in recorded if r.endpoint in ("userinfo", "api")}
    revoked = {r.form["token"] for r in recorded if r.endpoint == "revoke"}
    codes = {r.form["code"] for r in recorded if r.endpoint == "token" and "code" in r.form}
    assert len(bearer) == 1
    assert len(revoked) == 2  # the refresh token, then the access token
    assert bearer < revoked
    assert len(codes) == 1
    secrets = bearer | revoked | codes
    for name, html in pages.items():
        for secret in secrets:
            assert secret not in html, f"a token or code appears in the {name} page"

    # The dev server's request log shows the callback, with its code and state redacted.
    log = [record.getMessage() for record in caplog.records if record.name == "werkzeug"]
    callback_lines = [line for line in log if "/oauth2/demo/callback?" in line]
    assert len(callback_lines) == 1, log
    assert "code=***" in callback_lines[0]
    assert "state=***" in callback_lines[0]
    for line in log:
        for secret in secrets:
            assert secret not in line


def test_denied_consent_shows_the_apps_error_page(browser: Browser, live_example: LiveExample) -> None:
    base, fake = live_example.url, live_example.provider
    context = browser.new_context()
    page: Page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        page.goto(base + "/")
        page.click("#login")
        page.wait_for_url(re.compile("^" + re.escape(fake.authorize_url)))
        with page.expect_response(lambda response: urlsplit(response.url).path == "/oauth2/demo/callback") as answer:
            page.click("#deny")
        assert answer.value.status == 403
        # The library's error, in the example's own layout (templates/oauth2/error.html).
        assert page.inner_text("#error-code") == "access_denied"
        assert "denied" in page.inner_text("#problem")
        assert page.locator("header .brand").is_visible()
        assert fake.calls("token") == 0

        page.goto(base + "/")
        assert page.locator("#login").is_visible()
    finally:
        context.close()
