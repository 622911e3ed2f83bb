"""The example app end to end, in a real browser: home → provider consent page → profile → API →
log out, against the FakeProvider that the example app embeds (no network needed); and the legacy
password-grant demo (``/password-login``) on the same FakeProvider."""

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
    # The password-grant demo provider is legacy: init_app says so (SECURITY.md P-17).
    with pytest.warns(DeprecationWarning, match=r"'demo-password'.*RFC 9700 §2\.4"):
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


def test_password_grant_demo(browser: Browser, live_example: LiveExample, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: the password must appear in none of them
    base, fake = live_example.url, live_example.provider
    wrong, right = "not-the-Wonderland-pw", "wonderland"
    context = browser.new_context()
    page: Page = context.new_page()
    page.set_default_timeout(15_000)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    try:
        # Home links the legacy form; it is a page of the app, not of the provider.
        page.goto(base + "/")
        link = page.locator("#password-login")
        assert "legacy" in link.inner_text()
        link.click()
        page.wait_for_url(base + "/password-login")
        assert "RFC 9700" in page.inner_text("main")

        # A wrong password: the form again, with an error and without the password.
        page.fill("#username", "alice")
        page.fill("#password", wrong)
        with page.expect_response(lambda r: r.request.method == "POST") as answer:
            page.click("#password-submit")
        assert answer.value.status == 400
        page.wait_for_load_state()
        assert page.inner_text("#problem") == "Wrong username or password."
        assert wrong not in page.content()
        assert page.input_value("#username") == "alice"
        assert page.input_value("#password") == ""
        assert fake.calls("token", grant_type="password") == 1

        # A post without the form's one-time nonce (what another site could send) is refused
        # before the provider is asked.
        forged = context.request.post(
            base + "/password-login", form={"username": "alice", "password": right}, max_redirects=0
        )
        assert forged.status == 400
        assert fake.calls("token", grant_type="password") == 1

        # The right password: the profile, read through oauth.session() with the new token.
        page.goto(base + "/password-login")
        page.fill("#username", "alice")
        page.fill("#password", right)
        page.click("#password-submit")
        page.wait_for_url(base + "/password-profile")
        assert page.inner_text("#name") == "Alice Liddell"
        assert page.inner_text("#scopes").split() == ["read", "write"]
        profile = page.content()
        assert right not in profile
        assert fake.calls("token", grant_type="password") == 2

        # The token endpoint got the credentials in the POST body, the API the bearer token.
        sent = [r.form for r in fake.requests if r.endpoint == "token" and r.grant_type == "password"]
        assert [form["password"] for form in sent] == [wrong, right]
        assert [form["username"] for form in sent] == ["alice", "alice"]
        bearer = [r.headers["Authorization"] for r in fake.requests if r.endpoint == "userinfo"]
        assert len(bearer) == 1
        assert bearer[0].startswith("Bearer ")
        assert bearer[0].split(" ", 1)[1] not in profile

        # Forget the token (POST to the library's logout route): the profile needs the form again.
        page.click("#password-logout")
        page.wait_for_url(base + "/")
        page.goto(base + "/password-profile")
        page.wait_for_url(base + "/password-login")
    finally:
        context.close()

    assert fake.calls("revoke") == 2  # the refresh token, then the access token
    for url in requested:
        assert wrong not in url
        assert right not in url
    for record in caplog.records:
        assert wrong not in record.getMessage()
        assert right not in record.getMessage()
